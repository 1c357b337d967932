// The ciphertext blob's format and the canonical encryption context (src/kms/ciphertext.ts).
import { describe, expect, it } from "vitest";

import {
  BLOB_HEADER_BYTES, BLOB_MIN_BYTES, blobAad, blobAadPrefix, blobHeader, canonicalContext, decodeBlob, encodeBlob,
} from "../../src/kms/ciphertext.js";
import { KmsError } from "../../src/kms/errors.js";

const KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab";
const IV = Buffer.from("000102030405060708090a0b", "hex");
const BODY = Buffer.alloc(20, 0xee); // 4 bytes of ciphertext and a 16-byte tag

function kmsCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(KmsError);
    return (e as KmsError).code;
  }
  throw new Error("expected a KmsError");
}

describe("ciphertext blobs", () => {
  it("lays out version, location, key id, IV and body as documented", () => {
    const blob = encodeBlob({ keyId: KEY_ID, location: "custom-key-store", iv: IV, ciphertext: BODY });
    expect(blob.length).toBe(BLOB_HEADER_BYTES + BODY.length);
    expect(blob[0]).toBe(1);
    expect(blob[1]).toBe(1);
    expect(blob.subarray(2, 18).toString("hex")).toBe(KEY_ID.replace(/-/g, ""));
    expect(blob.subarray(18, 30)).toEqual(IV);
    expect(blob.subarray(30)).toEqual(BODY);
    expect(blob.subarray(0, 30)).toEqual(blobHeader(KEY_ID, "custom-key-store", IV));
    expect(encodeBlob({ keyId: KEY_ID, location: "fleet", iv: IV, ciphertext: BODY })[1]).toBe(0);
  });

  it("decodes what it encodes, as copies of the input", () => {
    const data = encodeBlob({ keyId: KEY_ID, location: "fleet", iv: IV, ciphertext: BODY });
    const decoded = decodeBlob(data);
    expect(decoded).toEqual({ keyId: KEY_ID, location: "fleet", iv: IV, ciphertext: BODY });
    data.fill(0);
    expect(decoded.iv).toEqual(IV);
    expect(decoded.ciphertext).toEqual(BODY);
  });

  it("takes the shortest blob (an empty plaintext's tag) and refuses one byte less", () => {
    const min = encodeBlob({ keyId: KEY_ID, location: "fleet", iv: IV, ciphertext: Buffer.alloc(16) });
    expect(min.length).toBe(BLOB_MIN_BYTES);
    expect(decodeBlob(min).ciphertext.length).toBe(16);
    expect(kmsCode(() => decodeBlob(min.subarray(0, min.length - 1)))).toBe("InvalidCiphertextException");
  });

  it("refuses anything not exactly in the format with InvalidCiphertextException", () => {
    const good = encodeBlob({ keyId: KEY_ID, location: "fleet", iv: IV, ciphertext: BODY });
    const altered = (at: number, value: number) => {
      const b = Buffer.from(good);
      b[at] = value;
      return b;
    };
    const bad: unknown[] = [
      Buffer.alloc(0), Buffer.alloc(45), altered(0, 0), altered(0, 2), altered(1, 2), altered(1, 0xff),
      Buffer.concat([Buffer.from([1, 0]), Buffer.alloc(16), IV, BODY]), // the nil UUID
      "not a buffer", null, undefined, new Uint8Array(good), { length: 100 },
    ];
    for (const data of bad) expect(kmsCode(() => decodeBlob(data as Buffer))).toBe("InvalidCiphertextException");
    // Every refusal says the same: a prober learns nothing of which check failed.
    const messages = new Set(bad.map((d) => { try { decodeBlob(d as Buffer); } catch (e) { return (e as Error).message; } return ""; }));
    expect(messages.size).toBe(1);
  });

  it("makes blobs only of canonical key ids, known locations and 12-byte IVs", () => {
    expect(kmsCode(() => blobHeader(KEY_ID.toUpperCase(), "fleet", IV))).toBe("KMSInternalException");
    expect(kmsCode(() => blobHeader("alias/foo", "fleet", IV))).toBe("KMSInternalException");
    expect(kmsCode(() => blobHeader(KEY_ID, "elsewhere" as never, IV))).toBe("KMSInternalException");
    expect(kmsCode(() => blobHeader(KEY_ID, "fleet", Buffer.alloc(16)))).toBe("KMSInternalException");
    expect(kmsCode(() => encodeBlob({ keyId: KEY_ID, location: "fleet", iv: IV, ciphertext: Buffer.alloc(15) }))).toBe("KMSInternalException");
  });
});

describe("the canonical encryption context", () => {
  const header = blobAadPrefix(KEY_ID, "fleet");

  it("is order-free", () => {
    expect(blobAad(header, { a: "1", b: "2" })).toEqual(blobAad(header, { b: "2", a: "1" }));
  });

  it("is case-sensitive in keys and values", () => {
    const base = blobAad(header, { a: "1", b: "2" });
    expect(blobAad(header, { a: "1", B: "2" })).not.toEqual(base);
    expect(blobAad(header, { a: "1", b: "X" })).not.toEqual(blobAad(header, { a: "1", b: "x" }));
  });

  it("treats an absent and an empty context alike, and any pair as different from none", () => {
    expect(blobAad(header, undefined)).toEqual(header);
    expect(blobAad(header, {})).toEqual(header);
    expect(blobAad(header, { "": "" })).not.toEqual(header);
  });

  it("keeps every pair apart: no two contexts share an encoding", () => {
    const contexts: Record<string, string>[] = [
      { ab: "c" }, { a: "bc" }, { a: "b", c: "" }, { a: "", bc: "" }, { a: "b\u0000c" }, { "a\u0000b": "c" }, { abc: "" }, { "": "abc" },
    ];
    const encodings = new Set(contexts.map((c) => canonicalContext(c).toString("hex")));
    expect(encodings.size).toBe(contexts.length);
  });

  it("sorts keys by code point (UTF-8 order), not by UTF-16 unit", () => {
    const bmp = "\uFFFF"; // U+FFFF sorts before U+10000 by code point, after it by UTF-16 unit
    const astral = "\u{10000}";
    const encoded = canonicalContext({ [astral]: "x", [bmp]: "y" });
    const first = encoded.subarray(8, 8 + 3).toString("utf8");
    expect(first).toBe(bmp);
    expect(encoded.readUInt32BE(0)).toBe(2);
  });

  it("refuses what is not a map of well-formed strings with ValidationException", () => {
    expect(kmsCode(() => canonicalContext({ a: 1 } as never))).toBe("ValidationException");
    expect(kmsCode(() => canonicalContext(["a"] as never))).toBe("ValidationException");
    expect(kmsCode(() => canonicalContext("a=b" as never))).toBe("ValidationException");
    // A lone surrogate becomes U+FFFD in UTF-8: it would collide with a real U+FFFD.
    expect(kmsCode(() => canonicalContext({ "\uD800": "a" }))).toBe("ValidationException");
    expect(kmsCode(() => canonicalContext({ a: "x\uDC00" }))).toBe("ValidationException");
    expect(canonicalContext({ "\uFFFD": "a" }).length).toBeGreaterThan(0);
  });
});
