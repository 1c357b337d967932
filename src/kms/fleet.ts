// KMS's own HSM fleet, where the key material of AWS_KMS keys lives: a token of the chip (a
// `file:` token folder in the data folder, or `memory:` for a store that lives in memory). Every
// key is a token key, non-extractable and sensitive, labelled with the name KMS gives it; its
// plaintext never enters the JavaScript heap. The fleet also holds KMS's own keys: the record
// key (HMAC-SHA-256 over store rows and grant tokens), the sealing key (AES-256-GCM for secrets
// at rest, e.g. kmsuser passwords) and the trail's signing key. [helper: crypto]
import type { KeySpec } from "./types.js";

export interface FleetOptions {
  /** "file:DIR" (durable; created 0700 if absent) or "memory:?seed=HEX" (deterministic, nothing durable). */
  target: string;
}

/** AWS's algorithm names the fleet serves. */
export type SigningAlgorithm =
  | "ECDSA_SHA_256" | "ECDSA_SHA_384"
  | "RSASSA_PSS_SHA_256" | "RSASSA_PSS_SHA_384" | "RSASSA_PSS_SHA_512"
  | "RSASSA_PKCS1_V1_5_SHA_256" | "RSASSA_PKCS1_V1_5_SHA_384" | "RSASSA_PKCS1_V1_5_SHA_512";
export type MacAlgorithm = "HMAC_SHA_256" | "HMAC_SHA_384" | "HMAC_SHA_512";
export type AsymmetricEncryptionAlgorithm = "RSAES_OAEP_SHA_1" | "RSAES_OAEP_SHA_256";

export class Fleet {
  /** Opens the fleet's token (initializing it on first use). */
  static async open(options: FleetOptions): Promise<Fleet> {
    void options;
    throw new Error("not built yet");
  }

  /** Generates key material for `spec` under `label` (RSA key generation is slow: asynchronous). */
  async createKey(label: string, spec: KeySpec): Promise<void> { void label, spec; throw new Error("not built yet"); }
  hasKey(label: string): boolean { void label; throw new Error("not built yet"); }
  destroyKey(label: string): void { void label; throw new Error("not built yet"); }

  /** AES-256-GCM under a SYMMETRIC_DEFAULT key: a fresh 12-byte IV from the chip; ciphertext ends with the 16-byte tag. */
  encrypt(label: string, plaintext: Buffer, aad: Buffer): { iv: Buffer; ciphertext: Buffer } { void label, plaintext, aad; throw new Error("not built yet"); }
  /** KmsError InvalidCiphertextException when the tag does not verify. */
  decrypt(label: string, iv: Buffer, ciphertext: Buffer, aad: Buffer): Buffer { void label, iv, ciphertext, aad; throw new Error("not built yet"); }

  random(length: number): Buffer { void length; throw new Error("not built yet"); }

  /** MessageType RAW hashes `message`; DIGEST takes it as the digest (its length must fit the algorithm: ValidationException). ECDSA signatures are DER, as AWS's. */
  sign(label: string, algorithm: SigningAlgorithm, message: Buffer, messageType: "RAW" | "DIGEST"): Buffer { void label, algorithm, message, messageType; throw new Error("not built yet"); }
  verify(label: string, algorithm: SigningAlgorithm, message: Buffer, messageType: "RAW" | "DIGEST", signature: Buffer): boolean { void label, algorithm, message, messageType, signature; throw new Error("not built yet"); }
  /** The public key as DER SubjectPublicKeyInfo. */
  publicKey(label: string): Buffer { void label; throw new Error("not built yet"); }
  asymmetricEncrypt(label: string, algorithm: AsymmetricEncryptionAlgorithm, plaintext: Buffer): Buffer { void label, algorithm, plaintext; throw new Error("not built yet"); }
  /** KmsError InvalidCiphertextException when it does not decrypt. */
  asymmetricDecrypt(label: string, algorithm: AsymmetricEncryptionAlgorithm, ciphertext: Buffer): Buffer { void label, algorithm, ciphertext; throw new Error("not built yet"); }
  generateMac(label: string, algorithm: MacAlgorithm, message: Buffer): Buffer { void label, algorithm, message; throw new Error("not built yet"); }
  verifyMac(label: string, algorithm: MacAlgorithm, message: Buffer, mac: Buffer): boolean { void label, algorithm, message, mac; throw new Error("not built yet"); }

  /** HMAC-SHA-256 under KMS's record key. */
  recordMac(data: Buffer): Buffer { void data; throw new Error("not built yet"); }
  /** AES-256-GCM under KMS's sealing key, `purpose` bound as AAD. */
  seal(data: Buffer, purpose: string): Buffer { void data, purpose; throw new Error("not built yet"); }
  /** KmsError KMSInternalException when the sealed blob is not the fleet's or not for `purpose`. */
  unseal(sealed: Buffer, purpose: string): Buffer { void sealed, purpose; throw new Error("not built yet"); }
  /** ECDSA P-256 over SHA-256 of `data` with the trail's signing key: DER. */
  signTrail(data: Buffer): Buffer { void data; throw new Error("not built yet"); }
  /** The trail signing key's public key, PEM (SPKI). */
  trailPublicKeyPem(): string { throw new Error("not built yet"); }

  close(): void { throw new Error("not built yet"); }
}
