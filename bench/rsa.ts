// RSA-2048 the same way in every peer: one key made by node:crypto and imported into the PKCS#11
// tokens (so the three sign with the same key), the PKCS#1 v1.5 and PSS mechanisms with their
// node:crypto equivalents, and a token key-pair generation. Shared by the chip benchmark and its test.
import * as crypto from "node:crypto";

import * as P from "../src/index.js";

export const RSA_BITS = 2048;
export const PSS_SALT_BYTES = 32;

/** DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1): CKM_RSA_PKCS signs prefix || digest. */
export const SHA256_DIGEST_INFO_PREFIX = Buffer.from("3031300d060960864801650304020105000420", "hex");

export type RsaPadding = "pkcs1" | "pss";

/** The hashing PKCS#11 mechanisms (the token computes SHA-256 of the message first). */
export function rsaMechanism(padding: RsaPadding): P.Mechanism {
  if (padding === "pkcs1") return { mechanism: P.CKM_SHA256_RSA_PKCS };
  return {
    mechanism: P.CKM_SHA256_RSA_PKCS_PSS,
    parameter: { type: P.CK_PARAMS_RSA_PSS, hashAlg: P.CKM_SHA256, mgf: P.CKG_MGF1_SHA256, saltLen: PSS_SALT_BYTES },
  };
}

/** The raw PKCS#11 mechanisms, given a digest (PSS) or a DigestInfo (PKCS#1 v1.5) by the caller. */
export function rawRsaMechanism(padding: RsaPadding): P.Mechanism {
  if (padding === "pkcs1") return { mechanism: P.CKM_RSA_PKCS };
  return {
    mechanism: P.CKM_RSA_PKCS_PSS,
    parameter: { type: P.CK_PARAMS_RSA_PSS, hashAlg: P.CKM_SHA256, mgf: P.CKG_MGF1_SHA256, saltLen: PSS_SALT_BYTES },
  };
}

/** node:crypto's key argument for crypto.sign/verify("sha256", …) with the same padding. */
export function nodeRsaKey(key: crypto.KeyObject, padding: RsaPadding): crypto.SignKeyObjectInput {
  return padding === "pkcs1"
    ? { key, padding: crypto.constants.RSA_PKCS1_PADDING }
    : { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_BYTES };
}

export function nodeRsaKeyPair(): crypto.KeyPairKeyObjectResult {
  return crypto.generateKeyPairSync("rsa", { modulusLength: RSA_BITS, publicExponent: 65537 });
}

const b64 = (value: string | undefined, name: string): Buffer => {
  if (!value) throw new Error(`RSA JWK lacks ${name}`);
  return Buffer.from(value, "base64url");
};

export interface ImportedRsaKey { privateKey: Buffer; publicKey: Buffer }

/** Imports node:crypto's key pair (all CRT parts) into a token as session objects. */
export function importRsaKeyPair(pkcs11: P.PKCS11, session: Buffer, keyPair: crypto.KeyPairKeyObjectResult): ImportedRsaKey {
  const jwk = keyPair.privateKey.export({ format: "jwk" });
  const common = [{ type: P.CKA_KEY_TYPE, value: P.CKK_RSA }, { type: P.CKA_TOKEN, value: false },
    { type: P.CKA_MODULUS, value: b64(jwk.n, "n") }, { type: P.CKA_PUBLIC_EXPONENT, value: b64(jwk.e, "e") }];
  const privateKey = pkcs11.C_CreateObject(session, [
    { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY }, ...common, { type: P.CKA_SIGN, value: true },
    { type: P.CKA_PRIVATE_EXPONENT, value: b64(jwk.d, "d") },
    { type: P.CKA_PRIME_1, value: b64(jwk.p, "p") }, { type: P.CKA_PRIME_2, value: b64(jwk.q, "q") },
    { type: P.CKA_EXPONENT_1, value: b64(jwk.dp, "dp") }, { type: P.CKA_EXPONENT_2, value: b64(jwk.dq, "dq") },
    { type: P.CKA_COEFFICIENT, value: b64(jwk.qi, "qi") },
  ]);
  const publicKey = pkcs11.C_CreateObject(session, [
    { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY }, ...common, { type: P.CKA_VERIFY, value: true },
  ]);
  return { privateKey, publicKey };
}

/** CKM_RSA_PKCS_KEY_PAIR_GEN, 2048 bits, e = 65537, session objects. */
export function generateRsaKeyPair(pkcs11: P.PKCS11, session: Buffer): ImportedRsaKey {
  return pkcs11.C_GenerateKeyPair(session, { mechanism: P.CKM_RSA_PKCS_KEY_PAIR_GEN },
    [{ type: P.CKA_MODULUS_BITS, value: RSA_BITS }, { type: P.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
      { type: P.CKA_VERIFY, value: true }, { type: P.CKA_TOKEN, value: false }],
    [{ type: P.CKA_SIGN, value: true }, { type: P.CKA_TOKEN, value: false }]);
}

/** A token public key as a node:crypto KeyObject (from CKA_MODULUS and CKA_PUBLIC_EXPONENT). */
export function nodePublicKeyOf(pkcs11: P.PKCS11, session: Buffer, publicKey: Buffer): crypto.KeyObject {
  const [n, e] = pkcs11.C_GetAttributeValue(session, publicKey, [{ type: P.CKA_MODULUS }, { type: P.CKA_PUBLIC_EXPONENT }]);
  return crypto.createPublicKey({ format: "jwk", key: { kty: "RSA", n: (n.value as Buffer).toString("base64url"), e: (e.value as Buffer).toString("base64url") } });
}

export function tokenSign(pkcs11: P.PKCS11, session: Buffer, mechanism: P.Mechanism, key: Buffer, data: Buffer): Buffer {
  pkcs11.C_SignInit(session, mechanism, key);
  return Buffer.from(pkcs11.C_Sign(session, data, Buffer.alloc(RSA_BITS / 8)));
}

/** True when the signature verifies; false on CKR_SIGNATURE_INVALID, which pkcs11js (and so hsmsim) throws. */
export function tokenVerify(pkcs11: P.PKCS11, session: Buffer, mechanism: P.Mechanism, key: Buffer, data: Buffer, signature: Buffer): boolean {
  pkcs11.C_VerifyInit(session, mechanism, key);
  try {
    return pkcs11.C_Verify(session, data, signature);
  } catch (e) {
    const error = e as { code?: number; message?: string };
    if (error.code === P.CKR_SIGNATURE_INVALID || error.message === "CKR_SIGNATURE_INVALID") return false;
    throw e;
  }
}
