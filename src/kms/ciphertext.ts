// The ciphertext blob of symmetric Encrypt, GenerateDataKey and ReEncrypt: opaque to callers,
// self-identifying (it names its KMS key, so Decrypt needs no key id), authenticated (its version,
// location and key id, then the canonical encryption context, are the AES-GCM AAD; the IV is
// GCM's own input, and the chip or the HSM picks it during the encryption, so it cannot be in
// the AAD, nor need it: a changed IV fails the tag).
//
//   byte 0      version (1)
//   byte 1      where the material is: 0 KMS's fleet, 1 a custom key store
//   bytes 2–17  the KMS key id (a UUID's 16 bytes)
//   bytes 18–29 the IV (12 bytes)
//   bytes 30–   ciphertext ‖ 16-byte tag
//
// The canonical encryption context (the AAD's tail) is: u32 count, then for each pair in the
// order of its key's code points: u32 length ‖ key (UTF-8), u32 length ‖ value (UTF-8), lengths
// big-endian. Every pair is length-prefixed, so no two different contexts share an encoding. An
// absent and an empty context both encode as nothing: AWS treats `{}` as no encryption context.
import { Buffer } from "node:buffer";

import { KmsError } from "./errors.js";

export interface CiphertextBlob {
  /** The KMS key id (UUID text). */
  keyId: string;
  location: "fleet" | "custom-key-store";
  iv: Buffer;
  /** Ciphertext ‖ tag. */
  ciphertext: Buffer;
}

export const BLOB_VERSION = 1;
export const BLOB_IV_BYTES = 12;
export const BLOB_TAG_BYTES = 16;
/** Version, location, key id and IV. */
export const BLOB_HEADER_BYTES = 2 + 16 + BLOB_IV_BYTES;
/** The AAD's fixed part: version, location and key id. */
export const BLOB_AAD_PREFIX_BYTES = 2 + 16;
/** The shortest blob: a header and the tag of an empty plaintext. */
export const BLOB_MIN_BYTES = BLOB_HEADER_BYTES + BLOB_TAG_BYTES;

const LOCATIONS: readonly CiphertextBlob["location"][] = ["fleet", "custom-key-store"];
const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const NIL_UUID = Buffer.alloc(16);
const ZERO_IV = Buffer.alloc(BLOB_IV_BYTES);
// A lone surrogate has no UTF-8 form (Buffer.from makes it U+FFFD): two contexts would collide.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function invalidCiphertext(): KmsError {
  // One message for every malformation: a caller probing blobs learns nothing about which check failed.
  return new KmsError("InvalidCiphertextException", "the ciphertext blob is not valid: it is truncated, altered or not a ciphertext of this KMS");
}

/** The 16 bytes of a UUID in its canonical (lower-case) text. */
function uuidBytes(keyId: string): Buffer {
  if (typeof keyId !== "string" || !UUID_TEXT.test(keyId)) throw new KmsError("KMSInternalException", "a ciphertext blob names its key by a lower-case UUID");
  return Buffer.from(keyId.replace(/-/g, ""), "hex");
}

function uuidText(bytes: Buffer): string {
  const h = bytes.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The AAD's fixed part of a blob about to be made: version, location and key id (the header without its IV). */
export function blobAadPrefix(keyId: string, location: CiphertextBlob["location"]): Buffer {
  return blobHeader(keyId, location, ZERO_IV).subarray(0, BLOB_AAD_PREFIX_BYTES);
}

/** The header bytes (version … IV) of a blob. */
export function blobHeader(keyId: string, location: CiphertextBlob["location"], iv: Buffer): Buffer {
  const locationByte = LOCATIONS.indexOf(location);
  if (locationByte < 0) throw new KmsError("KMSInternalException", `unknown ciphertext location '${String(location)}'`);
  if (!Buffer.isBuffer(iv) || iv.length !== BLOB_IV_BYTES) throw new KmsError("KMSInternalException", `a ciphertext blob's IV is ${BLOB_IV_BYTES} bytes`);
  const header = Buffer.allocUnsafe(BLOB_HEADER_BYTES);
  header[0] = BLOB_VERSION;
  header[1] = locationByte;
  uuidBytes(keyId).copy(header, 2);
  iv.copy(header, 18);
  return header;
}

export function encodeBlob(blob: CiphertextBlob): Buffer {
  if (!Buffer.isBuffer(blob.ciphertext) || blob.ciphertext.length < BLOB_TAG_BYTES) {
    throw new KmsError("KMSInternalException", `a ciphertext blob's body holds at least its ${BLOB_TAG_BYTES}-byte tag`);
  }
  return Buffer.concat([blobHeader(blob.keyId, blob.location, blob.iv), blob.ciphertext]);
}

/** KmsError InvalidCiphertextException when `data` is not a blob of this format (too short, unknown version or location, bad UUID). */
export function decodeBlob(data: Buffer): CiphertextBlob {
  if (!Buffer.isBuffer(data) || data.length < BLOB_MIN_BYTES) throw invalidCiphertext();
  if (data[0] !== BLOB_VERSION || data[1] >= LOCATIONS.length) throw invalidCiphertext();
  const id = data.subarray(2, 18);
  if (id.equals(NIL_UUID)) throw invalidCiphertext();
  // Copies: the caller's request buffer may be reused or changed after the call.
  return {
    keyId: uuidText(id),
    location: LOCATIONS[data[1]],
    iv: Buffer.from(data.subarray(18, BLOB_HEADER_BYTES)),
    ciphertext: Buffer.from(data.subarray(BLOB_HEADER_BYTES)),
  };
}

/**
 * The canonical encoding of an encryption context (empty for none): see the top of the file.
 * ValidationException for a context that is not a map of strings.
 */
export function canonicalContext(encryptionContext: Record<string, string> | undefined | null): Buffer {
  if (encryptionContext === undefined || encryptionContext === null) return Buffer.alloc(0);
  if (typeof encryptionContext !== "object" || Array.isArray(encryptionContext)) {
    throw new KmsError("ValidationException", "EncryptionContext must be a map of strings to strings");
  }
  const pairs: [Buffer, Buffer][] = [];
  for (const key of Object.keys(encryptionContext)) {
    const value = (encryptionContext as Record<string, unknown>)[key];
    if (typeof value !== "string") throw new KmsError("ValidationException", `EncryptionContext value of '${key}' must be a string`);
    if (LONE_SURROGATE.test(key) || LONE_SURROGATE.test(value)) {
      throw new KmsError("ValidationException", "EncryptionContext keys and values must be valid Unicode (a lone surrogate is not)");
    }
    pairs.push([Buffer.from(key, "utf8"), Buffer.from(value, "utf8")]);
  }
  if (pairs.length === 0) return Buffer.alloc(0);
  // UTF-8 byte order is code point order (JavaScript's < compares UTF-16 units, which differs above U+FFFF).
  pairs.sort((a, b) => Buffer.compare(a[0], b[0]));
  const parts: Buffer[] = [u32(pairs.length)];
  for (const [key, value] of pairs) parts.push(u32(key.length), key, u32(value.length), value);
  return Buffer.concat(parts);
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n);
  return b;
}

/** The AAD: header ‖ the canonical encryption context (keys sorted by code point; case-sensitive). */
export function blobAad(header: Buffer, encryptionContext: Record<string, string> | undefined): Buffer {
  if (!Buffer.isBuffer(header) || header.length !== BLOB_AAD_PREFIX_BYTES) throw new KmsError("KMSInternalException", `a blob's AAD starts with its ${BLOB_AAD_PREFIX_BYTES}-byte prefix`);
  const context = canonicalContext(encryptionContext);
  return context.length === 0 ? Buffer.from(header) : Buffer.concat([header, context]);
}
