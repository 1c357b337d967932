// Conformance: symmetric encryption, digests, signatures and MACs, random numbers:
// operation state, the two-call convention, termination and parameter checks.
import * as crypto from "node:crypto";

import { describe, expect, it } from "vitest";

import { P, aesKey, ecKeyPair, expectCkr, gcm, secretKey, userSession } from "../helpers.js";

describe("symmetric", () => {
  it("one active operation of each kind; calls without init fail", () => {
    const f = userSession();
    const key = aesKey(f, crypto.randomBytes(32));
    expectCkr(() => f.pkcs11.C_Encrypt(f.session, Buffer.alloc(1), Buffer.alloc(32)), "CKR_OPERATION_NOT_INITIALIZED");
    f.pkcs11.C_EncryptInit(f.session, gcm(Buffer.alloc(12)), key);
    expectCkr(() => f.pkcs11.C_EncryptInit(f.session, gcm(Buffer.alloc(12)), key), "CKR_OPERATION_ACTIVE");
    f.pkcs11.C_DecryptInit(f.session, gcm(Buffer.alloc(12)), key); // another kind may run alongside
  });

  it("a short buffer gives CKR_BUFFER_TOO_SMALL and keeps the operation; success ends it", () => {
    const f = userSession();
    const key = aesKey(f, crypto.randomBytes(16));
    f.pkcs11.C_EncryptInit(f.session, gcm(Buffer.alloc(12)), key);
    expectCkr(() => f.pkcs11.C_Encrypt(f.session, Buffer.alloc(10), Buffer.alloc(25)), "CKR_BUFFER_TOO_SMALL");
    expect(f.pkcs11.C_Encrypt(f.session, Buffer.alloc(10), Buffer.alloc(26))).toHaveLength(26);
    expectCkr(() => f.pkcs11.C_Encrypt(f.session, Buffer.alloc(10), Buffer.alloc(26)), "CKR_OPERATION_NOT_INITIALIZED");
  });

  it("a failed call ends the operation", () => {
    const f = userSession();
    const key = aesKey(f, crypto.randomBytes(16));
    f.pkcs11.C_EncryptInit(f.session, { mechanism: P.CKM_AES_CBC, parameter: Buffer.alloc(16) }, key);
    expectCkr(() => f.pkcs11.C_Encrypt(f.session, Buffer.alloc(15), Buffer.alloc(32)), "CKR_DATA_LEN_RANGE");
    expectCkr(() => f.pkcs11.C_Encrypt(f.session, Buffer.alloc(16), Buffer.alloc(32)), "CKR_OPERATION_NOT_INITIALIZED");
  });

  it("GCM: tag failure gives CKR_ENCRYPTED_DATA_INVALID and releases no plaintext", () => {
    const f = userSession();
    const key = aesKey(f, crypto.randomBytes(32));
    const iv = crypto.randomBytes(12);
    f.pkcs11.C_EncryptInit(f.session, gcm(iv, Buffer.from("aad")), key);
    const sealed = Buffer.from(f.pkcs11.C_Encrypt(f.session, Buffer.from("attack at dawn"), Buffer.alloc(64)));
    sealed[sealed.length - 1] ^= 1;
    const out = Buffer.alloc(64, 0xee);
    f.pkcs11.C_DecryptInit(f.session, gcm(iv, Buffer.from("aad")), key);
    expectCkr(() => f.pkcs11.C_Decrypt(f.session, sealed, out), "CKR_ENCRYPTED_DATA_INVALID");
    expect(out.subarray(0, 14).includes(Buffer.from("attack"))).toBe(false);
    // Multi-part decryption holds everything back until the tag verifies.
    sealed[sealed.length - 1] ^= 1;
    f.pkcs11.C_DecryptInit(f.session, gcm(iv, Buffer.from("aad")), key);
    expect(f.pkcs11.C_DecryptUpdate(f.session, sealed.subarray(0, 10), Buffer.alloc(64))).toHaveLength(0);
    expect(f.pkcs11.C_DecryptUpdate(f.session, sealed.subarray(10), Buffer.alloc(64))).toHaveLength(0);
    expect(f.pkcs11.C_DecryptFinal(f.session, Buffer.alloc(64)).toString()).toBe("attack at dawn");
  });

  it("GCM: multi-part encryption equals single-part; tag lengths and IVs are checked", () => {
    const f = userSession();
    const key = aesKey(f, crypto.randomBytes(32));
    const iv = crypto.randomBytes(12), msg = crypto.randomBytes(100);
    f.pkcs11.C_EncryptInit(f.session, gcm(iv, undefined, 96), key);
    const single = Buffer.from(f.pkcs11.C_Encrypt(f.session, msg, Buffer.alloc(200)));
    expect(single).toHaveLength(112);
    f.pkcs11.C_EncryptInit(f.session, gcm(iv, undefined, 96), key);
    const a = Buffer.from(f.pkcs11.C_EncryptUpdate(f.session, msg.subarray(0, 33), Buffer.alloc(100)));
    const b = Buffer.from(f.pkcs11.C_EncryptUpdate(f.session, msg.subarray(33), Buffer.alloc(100)));
    const tag = Buffer.from(f.pkcs11.C_EncryptFinal(f.session, Buffer.alloc(16)));
    expect(Buffer.concat([a, b, tag]).equals(single)).toBe(true);
    for (const tagBits of [0, 8, 95, 136]) expectCkr(() => f.pkcs11.C_EncryptInit(f.session, gcm(iv, undefined, tagBits), key), "CKR_MECHANISM_PARAM_INVALID");
    expectCkr(() => f.pkcs11.C_EncryptInit(f.session, gcm(Buffer.alloc(0)), key), "CKR_MECHANISM_PARAM_INVALID");
    expectCkr(() => f.pkcs11.C_EncryptInit(f.session, { mechanism: P.CKM_AES_GCM }, key), "CKR_MECHANISM_PARAM_INVALID");
    expect(() => f.pkcs11.C_EncryptInit(f.session, { mechanism: P.CKM_AES_GCM, parameter: { type: P.CK_PARAMS_AES_GCM, tagBits: 128 } }, key)).toThrow(/parameter\.iv must be a Buffer/);
  });

  it("checks key type, usage flags and CKA_ALLOWED_MECHANISMS", () => {
    const f = userSession();
    const noEncrypt = aesKey(f, crypto.randomBytes(16), [{ type: P.CKA_ENCRYPT, value: false }]);
    expectCkr(() => f.pkcs11.C_EncryptInit(f.session, gcm(Buffer.alloc(12)), noEncrypt), "CKR_KEY_FUNCTION_NOT_PERMITTED");
    const onlyCbc = aesKey(f, crypto.randomBytes(16), [{ type: P.CKA_ALLOWED_MECHANISMS, value: [P.CKM_AES_CBC_PAD] }]);
    expectCkr(() => f.pkcs11.C_EncryptInit(f.session, gcm(Buffer.alloc(12)), onlyCbc), "CKR_MECHANISM_INVALID");
    f.pkcs11.C_EncryptInit(f.session, { mechanism: P.CKM_AES_CBC_PAD, parameter: Buffer.alloc(16) }, onlyCbc);
    const hmacKey = secretKey(f, crypto.randomBytes(32));
    expectCkr(() => f.pkcs11.C_DecryptInit(f.session, gcm(Buffer.alloc(12)), hmacKey), "CKR_KEY_TYPE_INCONSISTENT");
    expectCkr(() => f.pkcs11.C_DecryptInit(f.session, { mechanism: P.CKM_DES3_CBC }, onlyCbc), "CKR_MECHANISM_INVALID");
    expectCkr(() => f.pkcs11.C_DecryptInit(f.session, gcm(Buffer.alloc(12)), Buffer.from([99, 0, 0, 0, 0, 0, 0, 0])), "CKR_KEY_HANDLE_INVALID");
    expectCkr(() => f.pkcs11.C_DecryptInit(f.session, { mechanism: P.CKM_AES_GCM, parameter: { type: P.CK_PARAMS_RC5, wordSize: 1, rounds: 1 } }, onlyCbc), "CKR_MECHANISM_PARAM_INVALID");
  });

  it("AES-ECB and AES-CBC without padding need whole blocks", () => {
    const f = userSession();
    const value = crypto.randomBytes(16);
    const key = aesKey(f, value);
    const msg = crypto.randomBytes(48);
    f.pkcs11.C_EncryptInit(f.session, { mechanism: P.CKM_AES_ECB }, key);
    const ecb = f.pkcs11.C_Encrypt(f.session, msg, Buffer.alloc(48));
    const c = crypto.createCipheriv("aes-128-ecb", value, null).setAutoPadding(false);
    expect(ecb.equals(Buffer.concat([c.update(msg), c.final()]))).toBe(true);
    f.pkcs11.C_DecryptInit(f.session, { mechanism: P.CKM_AES_CBC, parameter: Buffer.alloc(16) }, key);
    expect(f.pkcs11.C_DecryptUpdate(f.session, msg.subarray(0, 20), Buffer.alloc(64))).toHaveLength(16);
    expectCkr(() => f.pkcs11.C_DecryptFinal(f.session, Buffer.alloc(64)), "CKR_ENCRYPTED_DATA_LEN_RANGE");
  });
});

describe("digest", () => {
  it("single-part, multi-part and C_DigestKey", () => {
    const f = userSession();
    const value = crypto.randomBytes(32);
    // Only a key whose value may be read anyway is digestible (a digest is an oracle for the value).
    const key = aesKey(f, value, [{ type: P.CKA_SENSITIVE, value: false }]);
    const sensitive = aesKey(f, value);
    const unextractable = aesKey(f, value, [{ type: P.CKA_SENSITIVE, value: false }, { type: P.CKA_EXTRACTABLE, value: false }]);
    f.pkcs11.C_DigestInit(f.session, { mechanism: P.CKM_SHA256 });
    expectCkr(() => f.pkcs11.C_DigestInit(f.session, { mechanism: P.CKM_SHA256 }), "CKR_OPERATION_ACTIVE");
    expect(f.pkcs11.C_Digest(f.session, Buffer.from("abc"), Buffer.alloc(32)).toString("hex")).toBe(crypto.createHash("sha256").update("abc").digest("hex"));
    f.pkcs11.C_DigestInit(f.session, { mechanism: P.CKM_SHA512 });
    f.pkcs11.C_DigestUpdate(f.session, Buffer.from("prefix"));
    expectCkr(() => f.pkcs11.C_DigestKey(f.session, sensitive), "CKR_KEY_INDIGESTIBLE");
    expectCkr(() => f.pkcs11.C_DigestKey(f.session, unextractable), "CKR_KEY_INDIGESTIBLE");
    f.pkcs11.C_DigestKey(f.session, key);
    const expected = crypto.createHash("sha512").update("prefix").update(value).digest("hex");
    expectCkr(() => f.pkcs11.C_DigestFinal(f.session, Buffer.alloc(10)), "CKR_BUFFER_TOO_SMALL");
    expect(f.pkcs11.C_DigestFinal(f.session, Buffer.alloc(64)).toString("hex")).toBe(expected);
    expectCkr(() => f.pkcs11.C_DigestInit(f.session, { mechanism: P.CKM_MD5 }), "CKR_MECHANISM_INVALID");
  });
});

describe("sign/verify", () => {
  it("HMAC single- and multi-part; the general form truncates", () => {
    const f = userSession();
    const value = crypto.randomBytes(32);
    const key = secretKey(f, value);
    const msg = crypto.randomBytes(200);
    f.pkcs11.C_SignInit(f.session, { mechanism: P.CKM_SHA256_HMAC_GENERAL, parameter: 16 }, key);
    f.pkcs11.C_SignUpdate(f.session, msg.subarray(0, 50));
    f.pkcs11.C_SignUpdate(f.session, msg.subarray(50));
    const mac = f.pkcs11.C_SignFinal(f.session, Buffer.alloc(32));
    expect(mac.toString("hex")).toBe(crypto.createHmac("sha256", value).update(msg).digest().subarray(0, 16).toString("hex"));
    f.pkcs11.C_VerifyInit(f.session, { mechanism: P.CKM_SHA256_HMAC_GENERAL, parameter: 16 }, key);
    f.pkcs11.C_VerifyUpdate(f.session, msg);
    expect(f.pkcs11.C_VerifyFinal(f.session, mac)).toBe(true);
    f.pkcs11.C_VerifyInit(f.session, { mechanism: P.CKM_SHA256_HMAC }, key);
    expectCkr(() => f.pkcs11.C_Verify(f.session, msg, mac), "CKR_SIGNATURE_LEN_RANGE");
    expectCkr(() => f.pkcs11.C_SignInit(f.session, { mechanism: P.CKM_SHA256_HMAC_GENERAL, parameter: 33 }, key), "CKR_MECHANISM_PARAM_INVALID");
  });

  it("ECDSA over a digest and with hashing; raw ECDSA is single-part only", () => {
    const f = userSession();
    const { publicKey, privateKey } = ecKeyPair(f);
    const digest = crypto.createHash("sha256").update("data").digest();
    f.pkcs11.C_SignInit(f.session, { mechanism: P.CKM_ECDSA }, privateKey);
    const sig = f.pkcs11.C_Sign(f.session, digest, Buffer.alloc(64));
    f.pkcs11.C_VerifyInit(f.session, { mechanism: P.CKM_ECDSA_SHA256 }, publicKey);
    f.pkcs11.C_VerifyUpdate(f.session, Buffer.from("da"));
    f.pkcs11.C_VerifyUpdate(f.session, Buffer.from("ta"));
    expect(f.pkcs11.C_VerifyFinal(f.session, sig)).toBe(true);
    f.pkcs11.C_SignInit(f.session, { mechanism: P.CKM_ECDSA }, privateKey);
    expectCkr(() => f.pkcs11.C_SignUpdate(f.session, digest), "CKR_FUNCTION_NOT_SUPPORTED");
    expectCkr(() => f.pkcs11.C_SignInit(f.session, { mechanism: P.CKM_ECDSA }, publicKey), "CKR_KEY_FUNCTION_NOT_PERMITTED");
  });
});

describe("random", () => {
  it("fills the caller's buffer and accepts seed material", () => {
    const f = userSession();
    const a = Buffer.alloc(64), b = Buffer.alloc(64);
    expect(f.pkcs11.C_GenerateRandom(f.session, a)).toBe(a);
    f.pkcs11.C_SeedRandom(f.session, Buffer.from("more entropy"));
    f.pkcs11.C_GenerateRandom(f.session, b);
    expect(a.equals(b)).toBe(false);
    expect(a.equals(Buffer.alloc(64))).toBe(false);
    const big = f.pkcs11.C_GenerateRandom(f.session, Buffer.alloc(200_000));
    expect(new Set(big.subarray(0, 4096)).size).toBeGreaterThan(200);
  });

  it("deterministic mode: the same seed and calls give the same keys and bytes", () => {
    const run = (seed: string) => {
      const f = userSession(`memory:?pinHashIterations=16&seed=${seed}`);
      const key = f.pkcs11.C_GenerateKey(f.session, { mechanism: P.CKM_AES_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 32 }, { type: P.CKA_SENSITIVE, value: false }]);
      const { publicKey } = ecKeyPair(f);
      const [value] = f.pkcs11.C_GetAttributeValue(f.session, key, [{ type: P.CKA_VALUE }]);
      const [point] = f.pkcs11.C_GetAttributeValue(f.session, publicKey, [{ type: P.CKA_EC_POINT }]);
      const random = f.pkcs11.C_GenerateRandom(f.session, Buffer.alloc(32));
      return [value.value, point.value, random].map((b) => b.toString("hex")).join(":");
    };
    expect(run("c0ffee")).toBe(run("c0ffee"));
    expect(run("c0ffee")).not.toBe(run("c0ffef"));
  });
});
