// The ciphertext blob of symmetric Encrypt, GenerateDataKey and ReEncrypt: opaque to callers,
// self-identifying (it names its KMS key, so Decrypt needs no key id), authenticated (its header
// and the canonical encryption context are the AES-GCM AAD). [helper: crypto]
//
//   byte 0      version (1)
//   byte 1      where the material is: 0 KMS's fleet, 1 a custom key store
//   bytes 2–17  the KMS key id (a UUID's 16 bytes)
//   bytes 18–29 the IV (12 bytes)
//   bytes 30–   ciphertext ‖ 16-byte tag

export interface CiphertextBlob {
  /** The KMS key id (UUID text). */
  keyId: string;
  location: "fleet" | "custom-key-store";
  iv: Buffer;
  /** Ciphertext ‖ tag. */
  ciphertext: Buffer;
}

/** The header bytes (version … IV) of a blob about to be made: part of the AAD. */
export function blobHeader(keyId: string, location: CiphertextBlob["location"], iv: Buffer): Buffer { void keyId, location, iv; throw new Error("not built yet"); }
export function encodeBlob(blob: CiphertextBlob): Buffer { void blob; throw new Error("not built yet"); }
/** KmsError InvalidCiphertextException when `data` is not a blob of this format (too short, unknown version or location, bad UUID). */
export function decodeBlob(data: Buffer): CiphertextBlob { void data; throw new Error("not built yet"); }
/** The AAD: header ‖ the canonical encryption context (keys sorted by code point; case-sensitive). */
export function blobAad(header: Buffer, encryptionContext: Record<string, string> | undefined): Buffer { void header, encryptionContext; throw new Error("not built yet"); }
