// The asynchronous forms pkcs11js offers: callbacks and C_*Async promises, off the main
// thread, with a busy session refusing other calls until the work is done.
import * as crypto from "node:crypto";

import { describe, expect, it } from "vitest";

import { P, aesKey, ecKeyPair, gcm, secretKey, userSession } from "./helpers.js";

describe("async forms", () => {
  it("hsmsim's C_EncryptInitAsync / C_DecryptInitAsync: on the chip they init at once; a bad key rejects with the CKR", async () => {
    const f = userSession();
    const key = aesKey(f, crypto.randomBytes(32));
    await f.pkcs11.C_EncryptInitAsync(f.session, gcm(Buffer.alloc(12)), key);
    const sealed = Buffer.from(await f.pkcs11.C_EncryptAsync(f.session, Buffer.from("init async"), Buffer.alloc(64)));
    await f.pkcs11.C_DecryptInitAsync(f.session, gcm(Buffer.alloc(12)), key);
    expect((await f.pkcs11.C_DecryptAsync(f.session, sealed, Buffer.alloc(64))).toString()).toBe("init async");
    await expect(f.pkcs11.C_EncryptInitAsync(f.session, gcm(Buffer.alloc(12)), Buffer.from([0x77, 0x77, 0, 0, 0, 0, 0, 0]))).rejects.toMatchObject({ message: "CKR_KEY_HANDLE_INVALID" });
    await expect(f.pkcs11.C_EncryptInitAsync(f.session, { mechanism: 0x7fff_ffff }, key)).rejects.toMatchObject({ message: "CKR_MECHANISM_INVALID" });
  });

  it("C_EncryptAsync / C_DecryptAsync / C_DigestAsync / C_SignAsync / C_VerifyAsync and their Final forms", async () => {
    const f = userSession();
    const key = aesKey(f, crypto.randomBytes(32));
    f.pkcs11.C_EncryptInit(f.session, gcm(Buffer.alloc(12)), key);
    const sealed = Buffer.from(await f.pkcs11.C_EncryptAsync(f.session, Buffer.from("async data"), Buffer.alloc(64)));
    f.pkcs11.C_DecryptInit(f.session, gcm(Buffer.alloc(12)), key);
    expect((await f.pkcs11.C_DecryptAsync(f.session, sealed, Buffer.alloc(64))).toString()).toBe("async data");
    f.pkcs11.C_EncryptInit(f.session, gcm(Buffer.alloc(12)), key);
    f.pkcs11.C_EncryptUpdate(f.session, Buffer.from("async data"), Buffer.alloc(64));
    expect(await f.pkcs11.C_EncryptFinalAsync(f.session, Buffer.alloc(16))).toHaveLength(16);
    f.pkcs11.C_DecryptInit(f.session, gcm(Buffer.alloc(12)), key);
    f.pkcs11.C_DecryptUpdate(f.session, sealed, Buffer.alloc(64));
    expect((await f.pkcs11.C_DecryptFinalAsync(f.session, Buffer.alloc(64))).toString()).toBe("async data");

    f.pkcs11.C_DigestInit(f.session, { mechanism: P.CKM_SHA384 });
    expect((await f.pkcs11.C_DigestAsync(f.session, Buffer.from("d"), Buffer.alloc(48))).toString("hex")).toBe(crypto.createHash("sha384").update("d").digest("hex"));
    f.pkcs11.C_DigestInit(f.session, { mechanism: P.CKM_SHA256 });
    f.pkcs11.C_DigestUpdate(f.session, Buffer.from("d"));
    expect(await f.pkcs11.C_DigestFinalAsync(f.session, Buffer.alloc(32))).toHaveLength(32);

    const hmac = secretKey(f, crypto.randomBytes(32));
    f.pkcs11.C_SignInit(f.session, { mechanism: P.CKM_SHA256_HMAC }, hmac);
    const mac = Buffer.from(await f.pkcs11.C_SignAsync(f.session, Buffer.from("m"), Buffer.alloc(32)));
    f.pkcs11.C_VerifyInit(f.session, { mechanism: P.CKM_SHA256_HMAC }, hmac);
    expect(await f.pkcs11.C_VerifyAsync(f.session, Buffer.from("m"), mac)).toBe(true);
    f.pkcs11.C_SignInit(f.session, { mechanism: P.CKM_SHA256_HMAC }, hmac);
    f.pkcs11.C_SignUpdate(f.session, Buffer.from("m"));
    expect((await f.pkcs11.C_SignFinalAsync(f.session, Buffer.alloc(32))).equals(mac)).toBe(true);
    f.pkcs11.C_VerifyInit(f.session, { mechanism: P.CKM_SHA256_HMAC }, hmac);
    f.pkcs11.C_VerifyUpdate(f.session, Buffer.from("m"));
    expect(await f.pkcs11.C_VerifyFinalAsync(f.session, mac)).toBe(true);
    mac[0] ^= 1;
    f.pkcs11.C_VerifyInit(f.session, { mechanism: P.CKM_SHA256_HMAC }, hmac);
    await expect(f.pkcs11.C_VerifyAsync(f.session, Buffer.from("m"), mac)).rejects.toMatchObject({ name: "Pkcs11Error", message: "CKR_SIGNATURE_INVALID", method: "C_Verify" });
  });

  it("key management async forms", async () => {
    const f = userSession();
    const kek = await f.pkcs11.C_GenerateKeyAsync(f.session, { mechanism: P.CKM_AES_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 32 }]);
    const pair = await f.pkcs11.C_GenerateKeyPairAsync(f.session, { mechanism: P.CKM_EC_KEY_PAIR_GEN },
      [{ type: P.CKA_EC_PARAMS, value: Buffer.from("06082a8648ce3d030107", "hex") }],
      [{ type: P.CKA_DERIVE, value: true }, { type: P.CKA_EXTRACTABLE, value: true }]);
    const wrapped = Buffer.from(await f.pkcs11.C_WrapKeyAsync(f.session, { mechanism: P.CKM_AES_KEY_WRAP_KWP }, kek, pair.privateKey, Buffer.alloc(256)));
    const back = await f.pkcs11.C_UnwrapKeyAsync(f.session, { mechanism: P.CKM_AES_KEY_WRAP_KWP }, kek, wrapped,
      [{ type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_EC }, { type: P.CKA_DERIVE, value: true }]);
    const peer = ecKeyPair(f);
    const [{ value: point }] = f.pkcs11.C_GetAttributeValue(f.session, peer.publicKey, [{ type: P.CKA_EC_POINT }]);
    const derived = await f.pkcs11.C_DeriveKeyAsync(f.session,
      { mechanism: P.CKM_ECDH1_DERIVE, parameter: { type: P.CK_PARAMS_EC_DH, kdf: P.CKD_SHA256_KDF, publicData: point } }, back,
      [{ type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES }, { type: P.CKA_VALUE_LEN, value: 16 }]);
    expect(f.pkcs11.C_GetAttributeValue(f.session, derived, [{ type: P.CKA_VALUE_LEN }])[0].value.readUInt32LE(0)).toBe(16);
  });

  it("callback overloads deliver (error, result) as pkcs11js does", async () => {
    const f = userSession();
    const key = aesKey(f, crypto.randomBytes(16));
    f.pkcs11.C_EncryptInit(f.session, gcm(Buffer.alloc(12)), key);
    const result = await new Promise<Buffer | null>((resolve, reject) =>
      f.pkcs11.C_Encrypt(f.session, Buffer.from("cb"), Buffer.alloc(32), (error, data) => (error ? reject(error) : resolve(data))));
    expect(result).toHaveLength(18);
    const error = await new Promise<Error | null>((resolve) =>
      f.pkcs11.C_Encrypt(f.session, Buffer.from("cb"), Buffer.alloc(32), (e) => resolve(e)));
    expect(error).toBeInstanceOf(P.Pkcs11Error);
    expect(error?.message).toBe("CKR_OPERATION_NOT_INITIALIZED");
  });

  it("a session with an asynchronous call in flight refuses other calls with CKR_OPERATION_ACTIVE", async () => {
    const f = userSession();
    const { privateKey } = f.pkcs11.C_GenerateKeyPair(f.session, { mechanism: P.CKM_RSA_PKCS_KEY_PAIR_GEN },
      [{ type: P.CKA_MODULUS_BITS, value: 2048 }], [{ type: P.CKA_SIGN, value: true }]);
    f.pkcs11.C_SignInit(f.session, { mechanism: P.CKM_SHA256_RSA_PKCS }, privateKey);
    const pending = f.pkcs11.C_SignAsync(f.session, Buffer.from("slow"), Buffer.alloc(256));
    expect(() => f.pkcs11.C_DigestInit(f.session, { mechanism: P.CKM_SHA256 })).toThrow("CKR_OPERATION_ACTIVE");
    await expect(f.pkcs11.C_SignAsync(f.session, Buffer.from("again"), Buffer.alloc(256))).rejects.toThrow("CKR_OPERATION_ACTIVE");
    expect(await pending).toHaveLength(256);
    f.pkcs11.C_DigestInit(f.session, { mechanism: P.CKM_SHA256 }); // free again
    // Many operations in flight on separate sessions all complete.
    const sessions = Array.from({ length: 8 }, () => f.pkcs11.C_OpenSession(f.slot, P.CKF_SERIAL_SESSION));
    const key = aesKey(f, crypto.randomBytes(32));
    const results = await Promise.all(sessions.map((s, i) => {
      f.pkcs11.C_EncryptInit(s, gcm(Buffer.alloc(12, i)), key);
      return f.pkcs11.C_EncryptAsync(s, Buffer.alloc(1024, i), Buffer.alloc(1040));
    }));
    expect(new Set(results.map((r) => r.toString("hex"))).size).toBe(8);
  });
});
