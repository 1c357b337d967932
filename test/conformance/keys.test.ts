// Conformance: key generation, wrapping and unwrapping (extractability, trusted
// wrapping, CKA_LOCAL), ECDH derivation with KDFs, and masked object records.
import * as crypto from "node:crypto";

import { describe, expect, it } from "vitest";

import { P, P384_PARAMS, SO_PIN, USER_PIN, aesKey, chipUserSession, ecKeyPair, expectCkr, gcm, userSession } from "../helpers.js";

const secretTemplate = (extra: P.Template = []): P.Template => [
  { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
  { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
  ...extra,
];

describe("generate", () => {
  it("AES and generic secret keys need CKA_VALUE_LEN in range", () => {
    const f = userSession();
    expectCkr(() => f.pkcs11.C_GenerateKey(f.session, { mechanism: P.CKM_AES_KEY_GEN }, []), "CKR_TEMPLATE_INCOMPLETE");
    expectCkr(() => f.pkcs11.C_GenerateKey(f.session, { mechanism: P.CKM_AES_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 20 }]), "CKR_ATTRIBUTE_VALUE_INVALID");
    expectCkr(() => f.pkcs11.C_GenerateKey(f.session, { mechanism: P.CKM_AES_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 16 }, { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET }]), "CKR_TEMPLATE_INCONSISTENT");
    const g = f.pkcs11.C_GenerateKey(f.session, { mechanism: P.CKM_GENERIC_SECRET_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 48 }]);
    expect(f.pkcs11.C_GetAttributeValue(f.session, g, [{ type: P.CKA_KEY_TYPE }])[0].value.readUInt32LE(0)).toBe(P.CKK_GENERIC_SECRET);
    expectCkr(() => f.pkcs11.C_GenerateKey(f.session, { mechanism: P.CKM_DES3_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 24 }]), "CKR_MECHANISM_INVALID");
  });

  it("EC P-256 and P-384 pairs; RSA pairs with CKA_MODULUS_BITS", () => {
    const f = userSession();
    const { publicKey, privateKey } = ecKeyPair(f, P384_PARAMS);
    f.pkcs11.C_SignInit(f.session, { mechanism: P.CKM_ECDSA_SHA384 }, privateKey);
    const sig = f.pkcs11.C_Sign(f.session, Buffer.from("x"), Buffer.alloc(96));
    expect(sig).toHaveLength(96);
    f.pkcs11.C_VerifyInit(f.session, { mechanism: P.CKM_ECDSA_SHA384 }, publicKey);
    expect(f.pkcs11.C_Verify(f.session, Buffer.from("x"), sig)).toBe(true);
    expectCkr(() => f.pkcs11.C_GenerateKeyPair(f.session, { mechanism: P.CKM_RSA_PKCS_KEY_PAIR_GEN }, [], []), "CKR_TEMPLATE_INCOMPLETE");
    expectCkr(() => f.pkcs11.C_GenerateKeyPair(f.session, { mechanism: P.CKM_RSA_PKCS_KEY_PAIR_GEN }, [{ type: P.CKA_MODULUS_BITS, value: 512 }], []), "CKR_KEY_SIZE_RANGE");
  });
});

describe("wrap", () => {
  it("wraps and unwraps secret and private keys with KW, KWP, GCM and CBC-PAD", () => {
    const f = userSession();
    const kek = f.pkcs11.C_GenerateKey(f.session, { mechanism: P.CKM_AES_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 32 }]);
    const value = crypto.randomBytes(32);
    const target = aesKey(f, value, [{ type: P.CKA_EXTRACTABLE, value: true }]);
    const { privateKey } = ecKeyPair(f, undefined, [{ type: P.CKA_EXTRACTABLE, value: true }]);
    const mechs: P.Mechanism[] = [
      { mechanism: P.CKM_AES_KEY_WRAP },
      { mechanism: P.CKM_AES_KEY_WRAP_KWP },
      { mechanism: P.CKM_AES_KEY_WRAP_PAD },
      gcm(crypto.randomBytes(12), Buffer.from("wrap")),
      { mechanism: P.CKM_AES_CBC_PAD, parameter: crypto.randomBytes(16) },
    ];
    for (const mech of mechs) {
      const wrapped = Buffer.from(f.pkcs11.C_WrapKey(f.session, mech, kek, target, Buffer.alloc(256)));
      const back = f.pkcs11.C_UnwrapKey(f.session, mech, kek, wrapped, secretTemplate([{ type: P.CKA_SENSITIVE, value: false }]));
      expect(f.pkcs11.C_GetAttributeValue(f.session, back, [{ type: P.CKA_VALUE }])[0].value.equals(value)).toBe(true);
      const [local] = f.pkcs11.C_GetAttributeValue(f.session, back, [{ type: P.CKA_LOCAL }]);
      expect(local.value[0]).toBe(0);
      if (mech.mechanism === P.CKM_AES_KEY_WRAP) continue; // PKCS#8 is not a multiple of 8 bytes
      const wrappedEc = Buffer.from(f.pkcs11.C_WrapKey(f.session, mech, kek, privateKey, Buffer.alloc(512)));
      const ec = f.pkcs11.C_UnwrapKey(f.session, mech, kek, wrappedEc, [
        { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_EC }, { type: P.CKA_SIGN, value: true },
      ]);
      f.pkcs11.C_SignInit(f.session, { mechanism: P.CKM_ECDSA_SHA256 }, ec);
      expect(f.pkcs11.C_Sign(f.session, Buffer.from("m"), Buffer.alloc(64))).toHaveLength(64);
    }
  });

  it("refuses unextractable keys, and CKA_WRAP_WITH_TRUSTED keys under untrusted wrapping keys", () => {
    const f = userSession();
    const kek = aesKey(f, crypto.randomBytes(16), [{ type: P.CKA_TOKEN, value: true }, { type: P.CKA_PRIVATE, value: false }]);
    const locked = aesKey(f, crypto.randomBytes(16), [{ type: P.CKA_EXTRACTABLE, value: false }]);
    expectCkr(() => f.pkcs11.C_WrapKey(f.session, { mechanism: P.CKM_AES_KEY_WRAP }, kek, locked, Buffer.alloc(64)), "CKR_KEY_UNEXTRACTABLE");
    // A token object: private session objects would die with the logout below.
    const guarded = aesKey(f, crypto.randomBytes(16), [{ type: P.CKA_WRAP_WITH_TRUSTED, value: true }, { type: P.CKA_TOKEN, value: true }]);
    expectCkr(() => f.pkcs11.C_WrapKey(f.session, { mechanism: P.CKM_AES_KEY_WRAP }, kek, guarded, Buffer.alloc(64)), "CKR_KEY_NOT_WRAPPABLE");
    f.pkcs11.C_Logout(f.session);
    f.pkcs11.C_Login(f.session, P.CKU_SO, SO_PIN);
    f.pkcs11.C_SetAttributeValue(f.session, kek, [{ type: P.CKA_TRUSTED, value: true }]);
    f.pkcs11.C_Logout(f.session);
    f.pkcs11.C_Login(f.session, P.CKU_USER, USER_PIN);
    expect(f.pkcs11.C_WrapKey(f.session, { mechanism: P.CKM_AES_KEY_WRAP }, kek, guarded, Buffer.alloc(64))).toHaveLength(24);
    expectCkr(() => f.pkcs11.C_WrapKey(f.session, { mechanism: P.CKM_AES_KEY_WRAP }, kek, guarded, Buffer.alloc(8)), "CKR_BUFFER_TOO_SMALL");
  });

  it("reports unwrap failures with the unwrap codes", () => {
    const f = userSession();
    const kek = aesKey(f, crypto.randomBytes(16));
    expectCkr(() => f.pkcs11.C_UnwrapKey(f.session, { mechanism: P.CKM_AES_KEY_WRAP }, kek, crypto.randomBytes(24), secretTemplate()), "CKR_WRAPPED_KEY_INVALID");
    expectCkr(() => f.pkcs11.C_UnwrapKey(f.session, { mechanism: P.CKM_AES_KEY_WRAP }, kek, crypto.randomBytes(20), secretTemplate()), "CKR_WRAPPED_KEY_LEN_RANGE");
    expectCkr(() => f.pkcs11.C_UnwrapKey(f.session, { mechanism: P.CKM_AES_KEY_WRAP }, kek, crypto.randomBytes(24), []), "CKR_TEMPLATE_INCOMPLETE");
    expectCkr(() => f.pkcs11.C_UnwrapKey(f.session, { mechanism: P.CKM_AES_KEY_WRAP }, Buffer.from([77, 0, 0, 0, 0, 0, 0, 0]), crypto.randomBytes(24), secretTemplate()), "CKR_UNWRAPPING_KEY_HANDLE_INVALID");
  });
});

describe("derive", () => {
  it("ECDH1 with CKD_NULL and the X9.63 SHA-2 KDFs agrees on both sides", () => {
    const f = userSession();
    const alice = ecKeyPair(f), bob = ecKeyPair(f);
    const point = (k: Buffer) => f.pkcs11.C_GetAttributeValue(f.session, k, [{ type: P.CKA_EC_POINT }])[0].value;
    const derive = (priv: Buffer, peer: Buffer, kdf: number, sharedData?: Buffer) =>
      f.pkcs11.C_DeriveKey(f.session, { mechanism: P.CKM_ECDH1_DERIVE, parameter: { type: P.CK_PARAMS_EC_DH, kdf, publicData: peer, sharedData } }, priv, [
        { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES }, { type: P.CKA_VALUE_LEN, value: 32 },
        { type: P.CKA_SENSITIVE, value: false }, { type: P.CKA_EXTRACTABLE, value: true },
      ]);
    const value = (k: Buffer) => f.pkcs11.C_GetAttributeValue(f.session, k, [{ type: P.CKA_VALUE }])[0].value.toString("hex");
    for (const kdf of [P.CKD_NULL, P.CKD_SHA256_KDF, P.CKD_SHA512_KDF]) {
      const info = kdf === P.CKD_NULL ? undefined : Buffer.from("context");
      expect(value(derive(alice.privateKey, point(bob.publicKey), kdf, info))).toBe(value(derive(bob.privateKey, point(alice.publicKey), kdf, info)));
    }
    // The X9.63 KDF by hand: SHA-256(Z || 00000001 || sharedInfo).
    const z = value(derive(alice.privateKey, point(bob.publicKey), P.CKD_NULL));
    const expected = crypto.createHash("sha256").update(Buffer.from(z, "hex")).update(Buffer.from([0, 0, 0, 1])).update("ctx").digest("hex");
    expect(value(derive(alice.privateKey, point(bob.publicKey), P.CKD_SHA256_KDF, Buffer.from("ctx")))).toBe(expected);
    expectCkr(() => derive(alice.privateKey, point(bob.publicKey), P.CKD_NULL, Buffer.from("x")), "CKR_MECHANISM_PARAM_INVALID");
    expectCkr(() => derive(alice.privateKey, Buffer.from([4, 1, 2, 3]), P.CKD_NULL), "CKR_MECHANISM_PARAM_INVALID");
  });
});

describe("masked records", () => {
  it("round-trip a token key through its record, also into another module sharing the masking key", () => {
    const f = chipUserSession();
    const chip = P.createChip({ pinHashIterations: 16 });
    const value = crypto.randomBytes(32);
    const key = aesKey(f, value, [{ type: P.CKA_TOKEN, value: true }, { type: P.CKA_LABEL, value: "masked" }]);
    // The chip-level API works on numeric handles; the facade's Buffer handles hold the same number.
    const pkcs11Chip = f.chip;
    for (const algorithm of [1, 2]) {
      const record = pkcs11Chip.exportMasked(0, key.readUInt32LE(0), algorithm);
      expect(record.includes(value)).toBe(false);
      expect(record.subarray(0, 4).toString()).toBe("HSMR");
      const copy = pkcs11Chip.importMasked(0, record);
      const handle = Buffer.alloc(8);
      handle.writeUInt32LE(copy, 0);
      f.pkcs11.C_EncryptInit(f.session, gcm(Buffer.alloc(12)), handle);
      const viaCopy = Buffer.from(f.pkcs11.C_Encrypt(f.session, Buffer.from("same key"), Buffer.alloc(64)));
      f.pkcs11.C_EncryptInit(f.session, gcm(Buffer.alloc(12)), key);
      expect(f.pkcs11.C_Encrypt(f.session, Buffer.from("same key"), Buffer.alloc(64)).equals(viaCopy)).toBe(true);

      chip.initToken(0, Buffer.from(SO_PIN), Buffer.from("other"));
      expect(() => chip.importMasked(0, record)).toThrow("CKR_DATA_INVALID"); // a different masking key
      pkcs11Chip.shareMaskingKey(0, chip, 0);
      expect(chip.importMasked(0, record)).toBeGreaterThan(0);
      const tampered = Buffer.from(record);
      tampered[tampered.length - 5] ^= 1;
      expect(() => pkcs11Chip.importMasked(0, tampered)).toThrow("CKR_DATA_INVALID");
      expect(() => pkcs11Chip.importMasked(0, record.subarray(0, 10))).toThrow("CKR_DATA_INVALID");
    }
    const sessionKey = aesKey(f, value);
    expect(() => pkcs11Chip.exportMasked(0, sessionKey.readUInt32LE(0), 1)).toThrow("CKR_OBJECT_HANDLE_INVALID");
  });
});
