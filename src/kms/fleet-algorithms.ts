// AWS's algorithm names as the chip's mechanisms (signing, MAC, RSA-OAEP, the hashes they use),
// and the checks every fleet call makes of its inputs, apart from the token the fleet holds.
import { Buffer } from "node:buffer";

import * as C from "../pkcs11/constants.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import type { Mechanism } from "../pkcs11/mechanism.js";
import { TokenFolderError } from "../pkcs11/token-folder.js";
import { KmsError } from "./errors.js";
import { DIGEST_INFO_PREFIX } from "./fleet-codec.js";
import type { KeySpec } from "./types.js";

/** AWS's algorithm names the fleet serves. */
export type SigningAlgorithm =
  | "ECDSA_SHA_256" | "ECDSA_SHA_384"
  | "RSASSA_PSS_SHA_256" | "RSASSA_PSS_SHA_384" | "RSASSA_PSS_SHA_512"
  | "RSASSA_PKCS1_V1_5_SHA_256" | "RSASSA_PKCS1_V1_5_SHA_384" | "RSASSA_PKCS1_V1_5_SHA_512";
export type MacAlgorithm = "HMAC_SHA_256" | "HMAC_SHA_384" | "HMAC_SHA_512";
export type AsymmetricEncryptionAlgorithm = "RSAES_OAEP_SHA_1" | "RSAES_OAEP_SHA_256";

/** Largest input of one fleet call (KMS's own limits are far lower; this bounds a careless caller). */
export const MAX_FLEET_INPUT_BYTES = 1 << 20;
const MAX_LABEL_BYTES = 512;

export const KEY_SPECS: readonly KeySpec[] = [
  "SYMMETRIC_DEFAULT", "ECC_NIST_P256", "ECC_NIST_P384", "RSA_2048", "RSA_3072", "RSA_4096", "HMAC_256", "HMAC_384", "HMAC_512",
];

export type Hash = "sha1" | "sha256" | "sha384" | "sha512";
export const HASH_BYTES: Record<Hash, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };
export const HASH_MECHANISM: Record<Hash, number> = { sha1: C.CKM_SHA_1, sha256: C.CKM_SHA256, sha384: C.CKM_SHA384, sha512: C.CKM_SHA512 };
export const MGF: Record<Hash, number> = { sha1: C.CKG_MGF1_SHA1, sha256: C.CKG_MGF1_SHA256, sha384: C.CKG_MGF1_SHA384, sha512: C.CKG_MGF1_SHA512 };

export interface SigningScheme {
  family: "ecdsa" | "pss" | "pkcs1";
  hash: "sha256" | "sha384" | "sha512";
  /** The chip's hash-then-sign mechanism (MessageType RAW). */
  hashing: number;
  /** The key specs it serves. */
  specs: readonly KeySpec[];
}
export const RSA_SPECS: readonly KeySpec[] = ["RSA_2048", "RSA_3072", "RSA_4096"];
export const SIGNING: Record<SigningAlgorithm, SigningScheme> = {
  ECDSA_SHA_256: { family: "ecdsa", hash: "sha256", hashing: C.CKM_ECDSA_SHA256, specs: ["ECC_NIST_P256"] },
  ECDSA_SHA_384: { family: "ecdsa", hash: "sha384", hashing: C.CKM_ECDSA_SHA384, specs: ["ECC_NIST_P384"] },
  RSASSA_PSS_SHA_256: { family: "pss", hash: "sha256", hashing: C.CKM_SHA256_RSA_PKCS_PSS, specs: RSA_SPECS },
  RSASSA_PSS_SHA_384: { family: "pss", hash: "sha384", hashing: C.CKM_SHA384_RSA_PKCS_PSS, specs: RSA_SPECS },
  RSASSA_PSS_SHA_512: { family: "pss", hash: "sha512", hashing: C.CKM_SHA512_RSA_PKCS_PSS, specs: RSA_SPECS },
  RSASSA_PKCS1_V1_5_SHA_256: { family: "pkcs1", hash: "sha256", hashing: C.CKM_SHA256_RSA_PKCS, specs: RSA_SPECS },
  RSASSA_PKCS1_V1_5_SHA_384: { family: "pkcs1", hash: "sha384", hashing: C.CKM_SHA384_RSA_PKCS, specs: RSA_SPECS },
  RSASSA_PKCS1_V1_5_SHA_512: { family: "pkcs1", hash: "sha512", hashing: C.CKM_SHA512_RSA_PKCS, specs: RSA_SPECS },
};
export const MACS: Record<MacAlgorithm, { mechanism: number; spec: KeySpec; bytes: number }> = {
  HMAC_SHA_256: { mechanism: C.CKM_SHA256_HMAC, spec: "HMAC_256", bytes: 32 },
  HMAC_SHA_384: { mechanism: C.CKM_SHA384_HMAC, spec: "HMAC_384", bytes: 48 },
  HMAC_SHA_512: { mechanism: C.CKM_SHA512_HMAC, spec: "HMAC_512", bytes: 64 },
};
export const OAEP: Record<AsymmetricEncryptionAlgorithm, Hash> = { RSAES_OAEP_SHA_1: "sha1", RSAES_OAEP_SHA_256: "sha256" };

export const fail = (code: ConstructorParameters<typeof KmsError>[0], message: string) => new KmsError(code, message);

export function buffer(value: unknown, name: string): Buffer {
  if (!Buffer.isBuffer(value)) throw fail("ValidationException", `${name} must be a Buffer`);
  if (value.length > MAX_FLEET_INPUT_BYTES) throw fail("ValidationException", `${name} is longer than ${MAX_FLEET_INPUT_BYTES} bytes`);
  return value;
}

// A lone surrogate has no UTF-8 form: the label would come back from the token as another string.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function checkLabel(label: unknown): string {
  if (typeof label !== "string" || label === "" || Buffer.byteLength(label) > MAX_LABEL_BYTES || LONE_SURROGATE.test(label)) {
    throw fail("KMSInternalException", `a fleet key label is a non-empty, well-formed string of at most ${MAX_LABEL_BYTES} bytes`);
  }
  return label;
}

/** A failure of the chip or the folder as a KmsError; the detail stays a CKR name, never a secret. */
export function internal(error: unknown, what: string): KmsError {
  if (error instanceof KmsError) return error;
  if (error instanceof TokenFolderError) {
    if (error.code === "TOKEN_FOLDER_IN_USE") return fail("KMSInternalException", `KMS's fleet: ${error.message}`);
    return fail("KMSInternalException", `KMS's fleet folder cannot be opened: ${error.message}`);
  }
  const detail = error instanceof Pkcs11Error ? `${error.message} from ${error.method}` : error instanceof Error ? error.message : String(error);
  return fail("KMSInternalException", `KMS's fleet could not ${what} (${detail})`);
}

export const isCkr = (error: unknown, ...codes: number[]) => error instanceof Pkcs11Error && codes.includes(error.code);

/** The mechanism and the input the chip signs: hash-then-sign for RAW, the raw mechanism over the digest for DIGEST. */
export function signingInput(scheme: SigningScheme, message: Buffer, messageType: unknown): { mechanism: Mechanism; input: Buffer } {
  const pss = { type: C.CK_PARAMS_RSA_PSS, hashAlg: HASH_MECHANISM[scheme.hash], mgf: MGF[scheme.hash], saltLen: HASH_BYTES[scheme.hash] };
  if (messageType === "RAW") {
    return { mechanism: { mechanism: scheme.hashing, parameter: scheme.family === "pss" ? pss : null }, input: message };
  }
  if (messageType !== "DIGEST") throw fail("ValidationException", "MessageType must be RAW or DIGEST");
  if (message.length !== HASH_BYTES[scheme.hash]) {
    throw fail("ValidationException", `Message: a DIGEST for ${scheme.hash.toUpperCase()} is ${HASH_BYTES[scheme.hash]} bytes, not ${message.length}`);
  }
  switch (scheme.family) {
    case "ecdsa": return { mechanism: { mechanism: C.CKM_ECDSA }, input: message };
    case "pss": return { mechanism: { mechanism: C.CKM_RSA_PKCS_PSS, parameter: pss }, input: message };
    default: return { mechanism: { mechanism: C.CKM_RSA_PKCS }, input: Buffer.concat([DIGEST_INFO_PREFIX[scheme.hash], message]) };
  }
}
