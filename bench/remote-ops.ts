// The five operations of the remote benchmark, over any pkcs11js-shaped module with a logged-in
// session: the same keys made on each path, and each operation as a sync call (the caller blocked,
// as pkcs11js) or, where the path offers one, an async call (many in flight).
import * as crypto from "node:crypto";

import * as P from "../src/index.js";

export const OPERATIONS = ["round trip (C_GetSessionInfo)", "network round trip (C_GetTokenInfo)", "AES-GCM 4 KiB", "HMAC-SHA256 64 B", "ECDSA P-256 sign", "C_GenerateRandom 32 B"] as const;
export type OperationName = (typeof OPERATIONS)[number];

const P256 = Buffer.from("06082a8648ce3d030107", "hex");
const keyBytes = crypto.randomBytes(32);
const block4k = crypto.randomBytes(4096);
const message64 = crypto.randomBytes(64);
const digest = crypto.createHash("sha256").update("benchmark").digest();
export const gcmMechanism: P.Mechanism = {
  mechanism: P.CKM_AES_GCM,
  parameter: { type: P.CK_PARAMS_AES_GCM, iv: crypto.randomBytes(12), aad: Buffer.alloc(0), tagBits: 128 },
};

export interface BenchKeys { aes: Buffer; hmac: Buffer; ecPrivate: Buffer }

/** Makes the keys on a path. `token` true on a cluster, so every HSM holds them and any may serve. */
export function makeKeys(pkcs11: P.PKCS11, session: Buffer, token: boolean): BenchKeys {
  const aes = pkcs11.C_CreateObject(session, [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES }, { type: P.CKA_VALUE, value: keyBytes },
    { type: P.CKA_ENCRYPT, value: true }, { type: P.CKA_DECRYPT, value: true }, { type: P.CKA_TOKEN, value: token },
  ]);
  const hmac = pkcs11.C_CreateObject(session, [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET }, { type: P.CKA_VALUE, value: keyBytes },
    { type: P.CKA_SIGN, value: true }, { type: P.CKA_VERIFY, value: true }, { type: P.CKA_TOKEN, value: token },
  ]);
  const ec = pkcs11.C_GenerateKeyPair(session, { mechanism: P.CKM_EC_KEY_PAIR_GEN },
    [{ type: P.CKA_EC_PARAMS, value: P256 }, { type: P.CKA_VERIFY, value: true }, { type: P.CKA_TOKEN, value: token }],
    [{ type: P.CKA_SIGN, value: true }, { type: P.CKA_TOKEN, value: token }]);
  return { aes, hmac, ecPrivate: ec.privateKey };
}

/** One session's sync operations (each call's own output buffer, so lanes never share one). */
export function syncOperations(pkcs11: P.PKCS11, session: Buffer, keys: BenchKeys): Record<OperationName, () => void> {
  const slot = (pkcs11.C_GetSessionInfo(session) as unknown as { slotID: Buffer }).slotID;
  const gcmOut = Buffer.alloc(4096 + 16), macOut = Buffer.alloc(32), sigOut = Buffer.alloc(64), random = Buffer.alloc(32);
  return {
    "round trip (C_GetSessionInfo)": () => void pkcs11.C_GetSessionInfo(session),
    // The remote client answers C_GetSessionInfo itself (sessions are logical); C_GetTokenInfo goes to an HSM.
    "network round trip (C_GetTokenInfo)": () => void pkcs11.C_GetTokenInfo(slot),
    "AES-GCM 4 KiB": () => {
      pkcs11.C_EncryptInit(session, gcmMechanism, keys.aes);
      pkcs11.C_Encrypt(session, block4k, gcmOut);
    },
    "HMAC-SHA256 64 B": () => {
      pkcs11.C_SignInit(session, { mechanism: P.CKM_SHA256_HMAC }, keys.hmac);
      pkcs11.C_Sign(session, message64, macOut);
    },
    "ECDSA P-256 sign": () => {
      pkcs11.C_SignInit(session, { mechanism: P.CKM_ECDSA }, keys.ecPrivate);
      pkcs11.C_Sign(session, digest, sigOut);
    },
    "C_GenerateRandom 32 B": () => void pkcs11.C_GenerateRandom(session, random),
  };
}

/** Why an operation cannot run on a path (e.g. p11-kit's CKR_MECHANISM_INVALID for GCM), or null. */
export function probe(op: () => unknown): string | null {
  try {
    op();
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}
