// Attacks on KMS's fleet and ciphertext blobs: a reader of the data folder who takes the PIN
// file and logs in to the token, an editor of that folder, a caller handing the fleet hostile
// values, and a verifier fed malformed signatures (Wycheproof's DER cases).
import { execFileSync } from "node:child_process";
import { createPublicKey, randomBytes, verify as nodeVerify } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import * as P from "../../src/pkcs11/index.js";
import { decodeBlob } from "../../src/kms/ciphertext.js";
import { KmsError } from "../../src/kms/errors.js";
import { FLEET_PIN_FILE, FLEET_TOKEN_LABEL, Fleet } from "../../src/kms/fleet.js";
import { derToRaw, rawToDer } from "../../src/kms/fleet-codec.js";
import { freshFleetFolder, refusal } from "../kms/fleet-fixture.js";

const VECTORS = join(__dirname, "..", "..", "..", "shared", "vectors", "wycheproof");

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "hsmsim-kms-crypto-"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));



describe("key material stays in the chip", () => {
  it("a reader of the data folder who logs in with fleet.pin can read no key's value, nor make one extractable, wrap or copy it out", async () => {
    const { dir, target } = freshFleetFolder(root);
    const fleet = await Fleet.open({ target });
    await Promise.all([
      fleet.createKey("sym", "SYMMETRIC_DEFAULT"), fleet.createKey("ec", "ECC_NIST_P256"),
      fleet.createKey("hmac", "HMAC_384"), fleet.createKey("rsa", "RSA_2048"),
    ]);
    fleet.close();

    const pins = JSON.parse(readFileSync(join(dir, FLEET_PIN_FILE), "utf8")) as { userPin: string };
    const p = new P.PKCS11(`file:${dir}`);
    p.C_Initialize();
    try {
      const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === FLEET_TOKEN_LABEL)!;
      const session = p.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
      p.C_Login(session, P.CKU_USER, pins.userPin);
      p.C_FindObjectsInit(session, []);
      const objects = p.C_FindObjects(session, 1000);
      p.C_FindObjectsFinal(session);
      const secrets = objects.filter((o) => p.C_GetAttributeValue(session, o, [{ type: P.CKA_CLASS }])[0].value.readUInt32LE(0) !== P.CKO_PUBLIC_KEY);
      // sym, ec, hmac, rsa, and KMS's own record, sealing and trail keys.
      expect(secrets.length).toBe(7);
      const mine = p.C_GenerateKey(session, { mechanism: P.CKM_AES_KEY_GEN }, [
        { type: P.CKA_VALUE_LEN, value: 32 }, { type: P.CKA_WRAP, value: true }, { type: P.CKA_TOKEN, value: false },
      ]);
      for (const key of secrets) {
        const { attributes } = p.getAttributeValues(session, key, [
          { type: P.CKA_VALUE }, { type: P.CKA_EXTRACTABLE }, { type: P.CKA_SENSITIVE }, { type: P.CKA_NEVER_EXTRACTABLE },
          { type: P.CKA_TOKEN }, { type: P.CKA_PRIVATE_EXPONENT },
        ]);
        expect(attributes[0].value).toBeNull();
        expect(attributes[1].value).toEqual(Buffer.from([0]));
        expect(attributes[2].value).toEqual(Buffer.from([1]));
        expect(attributes[3].value).toEqual(Buffer.from([1]));
        expect(attributes[4].value).toEqual(Buffer.from([1]));
        expect(attributes[5].value).toBeNull();
        expect(() => p.C_SetAttributeValue(session, key, [{ type: P.CKA_EXTRACTABLE, value: true }])).toThrow(P.Pkcs11Error);
        expect(() => p.C_SetAttributeValue(session, key, [{ type: P.CKA_SENSITIVE, value: false }])).toThrow(P.Pkcs11Error);
        expect(() => p.C_WrapKey(session, { mechanism: P.CKM_AES_KEY_WRAP_PAD }, mine, key, Buffer.alloc(4096))).toThrow(P.Pkcs11Error);
        expect(() => p.C_CopyObject(session, key, [{ type: P.CKA_EXTRACTABLE, value: true }])).toThrow(P.Pkcs11Error);
      }
    } finally {
      p.C_Finalize();
      p.close();
    }
  }, 30_000);

  it("a key imported under a fleet label by a holder of fleet.pin (its value known to them) makes the open fail", async () => {
    const { dir, target } = freshFleetFolder(root);
    const fleet = await Fleet.open({ target });
    await fleet.createKey("victim", "SYMMETRIC_DEFAULT");
    fleet.close();
    const pins = JSON.parse(readFileSync(join(dir, FLEET_PIN_FILE), "utf8")) as { userPin: string };
    const plant = (label: string) => {
      const p = new P.PKCS11(`file:${dir}`);
      p.C_Initialize();
      try {
        const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === FLEET_TOKEN_LABEL)!;
        const session = p.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
        p.C_Login(session, P.CKU_USER, pins.userPin);
        return p.C_CreateObject(session, [
          { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES }, { type: P.CKA_VALUE, value: Buffer.alloc(32, 0x41) },
          { type: P.CKA_TOKEN, value: true }, { type: P.CKA_PRIVATE, value: true }, { type: P.CKA_SENSITIVE, value: true },
          { type: P.CKA_EXTRACTABLE, value: false }, { type: P.CKA_ENCRYPT, value: true }, { type: P.CKA_DECRYPT, value: true },
          { type: P.CKA_LABEL, value: label }, { type: P.CKA_ID, value: Buffer.from("SYMMETRIC_DEFAULT") },
        ]);
      } finally {
        p.C_Finalize();
        p.close();
      }
    };
    plant("not-yet-made"); // a label KMS may give a key later: the attacker would know that key's value
    const e = await refusal(() => Fleet.open({ target }));
    expect(e.code).toBe("KMSInternalException");
    expect(e.message).toMatch(/did not make/);
  });

  it("the fleet never reads a key's value: no CKA_VALUE in its source but CKA_VALUE_LEN", () => {
    for (const file of ["fleet.ts", "fleet-token.ts", "fleet-algorithms.ts", "fleet-setup.ts", "fleet-codec.ts", "ciphertext.ts"]) {
      let text = readFileSync(join(__dirname, "..", "..", "src", "kms", file), "utf8");
      // The one CKA_VALUE the fleet touches is its anchor's, a data object found by class CKO_DATA: no key's.
      const anchor = /  readAnchor\(\)[\s\S]*?\n  #anchorHandle\(\)[\s\S]*?\n  }\n/.exec(text);
      if (file === "fleet.ts") {
        expect(anchor?.[0]).toContain("{ type: C.CKA_CLASS, value: C.CKO_DATA }, { type: C.CKA_LABEL, value: ANCHOR_LABEL }");
        text = text.replace(anchor![0], "");
      }
      expect(text.match(/CKA_VALUE(?!_LEN)\b/g) ?? [], file).toEqual([]);
      expect(text.match(/CKA_PRIVATE_EXPONENT|CKA_PRIME_|exportToken|C_WrapKey/g) ?? [], file).toEqual([]);
    }
  });

  it("the Fleet object shows nothing of its module, session or handles", async () => {
    const fleet = await Fleet.open({ target: "memory:?pinHashIterations=16" });
    try {
      expect(Reflect.ownKeys(fleet)).toEqual([]);
      expect(JSON.stringify(fleet)).toBe("{}");
      expect(Object.isFrozen(Fleet.prototype)).toBe(true);
      expect(Object.getOwnPropertyNames(Fleet.prototype).filter((n) => /pkcs|session|handle|pin/i.test(n))).toEqual([]);
    } finally {
      fleet.close();
    }
  });
});

describe("the PIN file and the token folder", () => {
  it("refuses a planted fleet.pin symlink on first open and writes nothing through it", async () => {
    const { dir, target } = freshFleetFolder(root);
    const elsewhere = join(root, "victim");
    writeFileSync(elsewhere, "do not touch");
    mkdirSync(dir, { mode: 0o700 }); // the folder exists before the fleet's first open, the plant in it
    symlinkSync(elsewhere, join(dir, FLEET_PIN_FILE));
    const e = await refusal(() => Fleet.open({ target }));
    expect(e.code).toBe("KMSInternalException");
    expect(e.message).toMatch(/fleet\.pin/);
    expect(readFileSync(elsewhere, "utf8")).toBe("do not touch");
    expect(readdirSync(dir).filter((n) => n.endsWith(".token"))).toEqual([]);
  });

  it("refuses a fleet.pin others can read, a missing one, one that became a symlink, and edited PINs", async () => {
    const { dir, target } = freshFleetFolder(root);
    (await Fleet.open({ target })).close();
    const pinPath = join(dir, FLEET_PIN_FILE);
    const original = readFileSync(pinPath);

    chmodSync(pinPath, 0o644);
    expect((await refusal(() => Fleet.open({ target }))).message).toMatch(/0600/);
    chmodSync(pinPath, 0o600);

    unlinkSync(pinPath);
    expect((await refusal(() => Fleet.open({ target }))).message).toMatch(/missing/);

    const copy = join(root, "pin-copy");
    writeFileSync(copy, original, { mode: 0o600 });
    symlinkSync(copy, pinPath);
    expect((await refusal(() => Fleet.open({ target }))).message).toMatch(/symlink/);
    unlinkSync(pinPath);

    const edited = JSON.parse(original.toString()) as { userPin: string };
    writeFileSync(pinPath, JSON.stringify({ ...edited, userPin: `${edited.userPin}x` }), { mode: 0o600 });
    expect((await refusal(() => Fleet.open({ target }))).code).toBe("KMSInternalException");
    writeFileSync(pinPath, "not json", { mode: 0o600 });
    expect((await refusal(() => Fleet.open({ target }))).message).toMatch(/not a fleet PIN file/);

    unlinkSync(pinPath);
    execFileSync("mkfifo", ["-m", "600", pinPath]); // would block a plain open for ever
    expect((await refusal(() => Fleet.open({ target }))).message).toMatch(/not a regular file/);
    unlinkSync(pinPath);

    writeFileSync(pinPath, original, { mode: 0o600 });
    (await Fleet.open({ target })).close(); // whole again
  }, 30_000);

  it("an altered token file fails the open as a KmsError, never a raw folder error", async () => {
    const { dir, target } = freshFleetFolder(root);
    const fleet = await Fleet.open({ target });
    await fleet.createKey("k", "SYMMETRIC_DEFAULT");
    fleet.close();
    const tokenFile = readdirSync(dir).find((n) => n.endsWith(".token"))!;
    const bytes = readFileSync(join(dir, tokenFile));
    bytes[bytes.length - 5] ^= 1;
    writeFileSync(join(dir, tokenFile), bytes);
    const e = await refusal(() => Fleet.open({ target }));
    expect(e.code).toBe("KMSInternalException");
    expect(e.message).toMatch(/altered|sealed record/);
  });

  it("a target that is not file: or memory: is refused", async () => {
    for (const target of ["cloudhsm:x", "", "FILE:/tmp/x", 7 as never, undefined as never]) {
      expect((await refusal(() => Fleet.open({ target }))).code).toBe("KMSInternalException");
    }
    expect(existsSync(join(root, "x"))).toBe(false);
  });
});

describe("hostile values", () => {
  let fleet: Fleet;
  let other: Fleet;
  beforeAll(async () => {
    [fleet, other] = await Promise.all([Fleet.open({ target: "memory:?pinHashIterations=16" }), Fleet.open({ target: "memory:?pinHashIterations=16" })]);
    await Promise.all([fleet.createKey("aes", "SYMMETRIC_DEFAULT"), fleet.createKey("ec", "ECC_NIST_P256"), fleet.createKey("hmac", "HMAC_256"),
      other.createKey("aes", "SYMMETRIC_DEFAULT")]);
  });
  afterAll(() => {
    fleet.close();
    other.close();
  });

  it("every wrong type, size or label is a KmsError, never a TypeError or a Pkcs11Error", async () => {
    const bad = ["text", 5, null, undefined, {}, [], new Uint8Array(4), Buffer.alloc((1 << 20) + 1)] as unknown as Buffer[];
    for (const value of bad) {
      await refusal(() => fleet.encrypt("aes", value, Buffer.alloc(0)));
      await refusal(() => fleet.encrypt("aes", Buffer.alloc(1), value));
      await refusal(() => fleet.decrypt("aes", value, Buffer.alloc(16), Buffer.alloc(0)));
      await refusal(() => fleet.sign("ec", "ECDSA_SHA_256", value, "RAW"));
      await refusal(() => fleet.verify("ec", "ECDSA_SHA_256", Buffer.alloc(1), "RAW", value));
      await refusal(() => fleet.generateMac("hmac", "HMAC_SHA_256", value));
      await refusal(() => fleet.verifyMac("hmac", "HMAC_SHA_256", Buffer.alloc(1), value));
      await refusal(() => fleet.seal(value, "p"));
      await refusal(() => fleet.unseal(value, "p"));
      await refusal(() => fleet.recordMac(value));
      await refusal(() => fleet.signTrail(value));
    }
    for (const label of [5, null, {}, "", "x".repeat(10_000)] as unknown as string[]) {
      expect((await refusal(() => fleet.createKey(label, "SYMMETRIC_DEFAULT"))).code).toBe("KMSInternalException");
    }
    // Labels are looked up in a Map: names of Object.prototype's members are no keys.
    for (const label of [5, null, {}, "__proto__", "constructor", "toString", "hasOwnProperty"] as unknown as string[]) {
      expect(fleet.hasKey(label)).toBe(false);
      expect((await refusal(() => fleet.encrypt(label, Buffer.alloc(1), Buffer.alloc(0)))).code).toBe("KMSInternalException");
      expect((await refusal(() => fleet.destroyKey(label))).code).toBe("KMSInternalException");
    }
    await refusal(() => fleet.seal(Buffer.from("x"), 5 as never));
  });

  it("random blobs, ciphertexts, signatures and MACs are refused or false, and the fleet keeps working", async () => {
    for (let i = 0; i < 300; i++) {
      const junk = randomBytes(i % 90);
      try {
        decodeBlob(junk);
      } catch (e) {
        expect((e as KmsError).code).toBe("InvalidCiphertextException");
      }
      expect((await refusal(() => fleet.decrypt("aes", junk.subarray(0, 12), junk, Buffer.alloc(0)))).code).toBe("InvalidCiphertextException");
      expect(fleet.verify("ec", "ECDSA_SHA_256", junk, "RAW", Buffer.concat([Buffer.from([0x30, junk.length]), junk]))).toBe(false);
      expect(fleet.verifyMac("hmac", "HMAC_SHA_256", junk, junk)).toBe(false);
    }
    const { iv, ciphertext } = fleet.encrypt("aes", Buffer.from("still fine"), Buffer.alloc(0));
    expect(fleet.decrypt("aes", iv, ciphertext, Buffer.alloc(0)).toString()).toBe("still fine");
  });

  it("another fleet's ciphertexts and sealed secrets do not open, even under the same label", async () => {
    const { iv, ciphertext } = other.encrypt("aes", Buffer.from("theirs"), Buffer.alloc(0));
    expect((await refusal(() => fleet.decrypt("aes", iv, ciphertext, Buffer.alloc(0)))).code).toBe("InvalidCiphertextException");
    const sealed = other.seal(Buffer.from("their password"), "cks");
    expect((await refusal(() => fleet.unseal(sealed, "cks"))).code).toBe("KMSInternalException");
  });

  it("a high-S twin of a valid ECDSA signature verifies as ECDSA does (DER is strict, the math is not malleability-free)", () => {
    const message = Buffer.from("m");
    const der = fleet.sign("ec", "ECDSA_SHA_256", message, "RAW");
    const raw = derToRaw(der, 32)!;
    const n = BigInt("0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    const s = BigInt(`0x${raw.subarray(32).toString("hex")}`);
    const twin = Buffer.concat([raw.subarray(0, 32), Buffer.from((n - s).toString(16).padStart(64, "0"), "hex")]);
    const spki = createPublicKey({ key: fleet.publicKey("ec"), format: "der", type: "spki" });
    const twinOk = nodeVerify("sha256", message, { key: spki, dsaEncoding: "ieee-p1363" }, twin);
    expect(twinOk).toBe(true);
    // The fleet agrees with node:crypto on the twin once it is in DER.
    expect(fleet.verify("ec", "ECDSA_SHA_256", message, "RAW", rawToDer(twin))).toBe(twinOk);
  });
});

describe("Wycheproof ecdsa_secp256r1_sha256_test.json through the fleet's DER decoding", () => {
  // The fleet cannot import a public key (all its keys are its own), so Wycheproof's keys cannot
  // reach its chip. What the fleet adds to the chip's verification is the strict DER decoding:
  // decoded here, then checked as r‖s by node:crypto, the pair must give every case's verdict.
  it("accepts every valid case and refuses every invalid one", () => {
    const file = JSON.parse(readFileSync(join(VECTORS, "ecdsa_secp256r1_sha256_test.json"), "utf8")) as {
      testGroups: { publicKeyDer: string; tests: { tcId: number; msg: string; sig: string; result: string }[] }[];
    };
    let valid = 0, invalid = 0, refusedAsDer = 0;
    for (const group of file.testGroups) {
      const key = createPublicKey({ key: Buffer.from(group.publicKeyDer, "hex"), format: "der", type: "spki" });
      for (const test of group.tests) {
        const raw = derToRaw(Buffer.from(test.sig, "hex"), 32);
        if (raw === null) refusedAsDer++;
        const verdict = raw !== null && nodeVerify("sha256", Buffer.from(test.msg, "hex"), { key, dsaEncoding: "ieee-p1363" }, raw);
        if (test.result === "valid") {
          expect(verdict, `tcId ${test.tcId}`).toBe(true);
          valid++;
        } else if (test.result === "invalid") {
          expect(verdict, `tcId ${test.tcId}`).toBe(false);
          invalid++;
        }
      }
    }
    expect(valid).toBeGreaterThan(100);
    expect(invalid).toBeGreaterThan(200);
    expect(refusedAsDer).toBeGreaterThan(100);
  });
});
