// C_GetMechanismInfo must tell the truth: for every mechanism the token lists, every
// operation its flags claim works, and every operation they do not claim is refused with
// CKR_MECHANISM_INVALID (keys are made with every usage allowed, so nothing else refuses).
import { describe, expect, it } from "vitest";

import { P, P256_PARAMS, type TokenFixture, outcome, userSession } from "../helpers.js";

const OPERATIONS = {
  encrypt: P.CKF_ENCRYPT,
  decrypt: P.CKF_DECRYPT,
  sign: P.CKF_SIGN,
  verify: P.CKF_VERIFY,
  digest: P.CKF_DIGEST,
  generate: P.CKF_GENERATE,
  generateKeyPair: P.CKF_GENERATE_KEY_PAIR,
  wrap: P.CKF_WRAP,
  unwrap: P.CKF_UNWRAP,
  derive: P.CKF_DERIVE,
} as const;
type Operation = keyof typeof OPERATIONS;

interface Keys {
  aes: Buffer;
  hmac: Buffer;
  ec: P.KeyPair;
  peerPoint: Buffer;
  rsa: P.KeyPair;
  target: Buffer; // an extractable AES key to wrap
}

function makeKeys(f: TokenFixture): Keys {
  const { pkcs11, session } = f;
  const secretUsages = [P.CKA_ENCRYPT, P.CKA_DECRYPT, P.CKA_SIGN, P.CKA_VERIFY, P.CKA_WRAP, P.CKA_UNWRAP, P.CKA_DERIVE]
    .map((type) => ({ type, value: true }));
  const secret = (keyType: number, length: number) => pkcs11.C_CreateObject(session, [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: keyType },
    { type: P.CKA_VALUE, value: Buffer.alloc(length, 7) }, ...secretUsages,
  ]);
  const publicUsages = [P.CKA_ENCRYPT, P.CKA_VERIFY, P.CKA_WRAP, P.CKA_DERIVE].map((type) => ({ type, value: true }));
  const privateUsages = [P.CKA_DECRYPT, P.CKA_SIGN, P.CKA_UNWRAP, P.CKA_DERIVE].map((type) => ({ type, value: true }));
  const ec = pkcs11.C_GenerateKeyPair(session, { mechanism: P.CKM_EC_KEY_PAIR_GEN },
    [{ type: P.CKA_EC_PARAMS, value: P256_PARAMS }, ...publicUsages], privateUsages);
  const peer = pkcs11.C_GenerateKeyPair(session, { mechanism: P.CKM_EC_KEY_PAIR_GEN },
    [{ type: P.CKA_EC_PARAMS, value: P256_PARAMS }], []);
  const encodedPoint = pkcs11.C_GetAttributeValue(session, peer.publicKey, [{ type: P.CKA_EC_POINT }])[0].value;
  const rsa = pkcs11.C_GenerateKeyPair(session, { mechanism: P.CKM_RSA_PKCS_KEY_PAIR_GEN },
    [{ type: P.CKA_MODULUS_BITS, value: 1024 }, { type: P.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }, ...publicUsages],
    privateUsages);
  const target = pkcs11.C_CreateObject(session, [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
    { type: P.CKA_VALUE, value: Buffer.alloc(16, 9) }, { type: P.CKA_EXTRACTABLE, value: true },
  ]);
  return { aes: secret(P.CKK_AES, 32), hmac: secret(P.CKK_GENERIC_SECRET, 32), ec, peerPoint: encodedPoint.subarray(2), rsa, target };
}

/** The mechanism parameter and the keys each mechanism works with. */
function recipe(type: number, keys: Keys): { parameter?: P.Mechanism["parameter"]; secret?: Buffer; pair?: P.KeyPair; input: Buffer } {
  const data16 = Buffer.alloc(16, 1);
  const digest32 = Buffer.alloc(32, 2);
  const oaep = (hashAlg: number, mgf: number) => ({ type: P.CK_PARAMS_RSA_OAEP, hashAlg, mgf, source: 0 });
  const pss = (hashAlg: number, mgf: number, saltLen: number) => ({ type: P.CK_PARAMS_RSA_PSS, hashAlg, mgf, saltLen });
  switch (type) {
    case P.CKM_AES_ECB: case P.CKM_AES_KEY_WRAP: case P.CKM_AES_KEY_WRAP_PAD: case P.CKM_AES_KEY_WRAP_KWP:
    case P.CKM_CLOUDHSM_AES_GCM:
      return { secret: keys.aes, input: data16 };
    case P.CKM_AES_CBC: case P.CKM_AES_CBC_PAD:
      return { secret: keys.aes, parameter: Buffer.alloc(16, 3), input: data16 };
    case P.CKM_AES_GCM:
      return { secret: keys.aes, parameter: { type: P.CK_PARAMS_AES_GCM, iv: Buffer.alloc(12, 4), tagBits: 128 }, input: data16 };
    case P.CKM_SHA256_HMAC_GENERAL: case P.CKM_SHA384_HMAC_GENERAL: case P.CKM_SHA512_HMAC_GENERAL:
      return { secret: keys.hmac, parameter: 16, input: data16 };
    case P.CKM_SHA256_HMAC: case P.CKM_SHA384_HMAC: case P.CKM_SHA512_HMAC:
      return { secret: keys.hmac, input: data16 };
    case P.CKM_ECDSA:
      return { pair: keys.ec, input: digest32 };
    case P.CKM_ECDSA_SHA256: case P.CKM_ECDSA_SHA384: case P.CKM_ECDSA_SHA512:
      return { pair: keys.ec, input: data16 };
    case P.CKM_ECDH1_DERIVE:
      return { pair: keys.ec, parameter: { type: P.CK_PARAMS_EC_DH, kdf: P.CKD_NULL, publicData: keys.peerPoint }, input: data16 };
    case P.CKM_RSA_PKCS:
      return { pair: keys.rsa, input: data16 };
    case P.CKM_RSA_PKCS_OAEP:
      return { pair: keys.rsa, parameter: oaep(P.CKM_SHA256, P.CKG_MGF1_SHA256), input: data16 };
    case P.CKM_RSA_PKCS_PSS:
      return { pair: keys.rsa, parameter: pss(P.CKM_SHA256, P.CKG_MGF1_SHA256, 32), input: digest32 };
    case P.CKM_SHA256_RSA_PKCS_PSS: return { pair: keys.rsa, parameter: pss(P.CKM_SHA256, P.CKG_MGF1_SHA256, 32), input: data16 };
    case P.CKM_SHA384_RSA_PKCS_PSS: return { pair: keys.rsa, parameter: pss(P.CKM_SHA384, P.CKG_MGF1_SHA384, 48), input: data16 };
    case P.CKM_SHA512_RSA_PKCS_PSS: return { pair: keys.rsa, parameter: pss(P.CKM_SHA512, P.CKG_MGF1_SHA512, 32), input: data16 };
    case P.CKM_SHA256_RSA_PKCS: case P.CKM_SHA384_RSA_PKCS: case P.CKM_SHA512_RSA_PKCS:
      return { pair: keys.rsa, input: data16 };
    default:
      // Key generation and digests take no key; everything else must have a recipe above.
      return { secret: keys.aes, input: data16 };
  }
}

/** Runs one operation with one mechanism; returns what the token answered. */
function attempt(f: TokenFixture, keys: Keys, type: number, operation: Operation) {
  const { pkcs11, session } = f;
  const r = recipe(type, keys);
  const mechanism: P.Mechanism = { mechanism: type, parameter: r.parameter };
  const forPublic = r.pair?.publicKey ?? r.secret!;
  const forPrivate = r.pair?.privateKey ?? r.secret!;
  const out = Buffer.alloc(1024);
  return outcome(() => {
    switch (operation) {
      case "encrypt":
        pkcs11.C_EncryptInit(session, mechanism, forPublic);
        return pkcs11.C_Encrypt(session, r.input, out);
      case "decrypt": {
        // Decrypt what the same mechanism encrypted, when it encrypts; else any block.
        let sealed = Buffer.alloc(128, 5);
        if (outcome(() => pkcs11.C_EncryptInit(session, mechanism, forPublic)).error === undefined) {
          sealed = Buffer.from(pkcs11.C_Encrypt(session, r.input, Buffer.alloc(1024)));
        }
        pkcs11.C_DecryptInit(session, mechanism, forPrivate);
        return pkcs11.C_Decrypt(session, sealed, out);
      }
      case "sign":
        pkcs11.C_SignInit(session, mechanism, forPrivate);
        return pkcs11.C_Sign(session, r.input, out);
      case "verify": {
        let signature = Buffer.alloc(64, 6);
        if (outcome(() => pkcs11.C_SignInit(session, mechanism, forPrivate)).error === undefined) {
          signature = Buffer.from(pkcs11.C_Sign(session, r.input, Buffer.alloc(1024)));
        }
        pkcs11.C_VerifyInit(session, mechanism, forPublic);
        return pkcs11.C_Verify(session, r.input, signature);
      }
      case "digest":
        pkcs11.C_DigestInit(session, mechanism);
        return pkcs11.C_Digest(session, r.input, out);
      case "generate":
        return pkcs11.C_GenerateKey(session, mechanism, [{ type: P.CKA_VALUE_LEN, value: 32 }]);
      case "generateKeyPair":
        return pkcs11.C_GenerateKeyPair(session, mechanism,
          [{ type: P.CKA_EC_PARAMS, value: P256_PARAMS }, { type: P.CKA_MODULUS_BITS, value: 1024 }].filter((a) =>
            type === P.CKM_EC_KEY_PAIR_GEN ? a.type === P.CKA_EC_PARAMS : a.type === P.CKA_MODULUS_BITS), []);
      case "wrap":
        return pkcs11.C_WrapKey(session, mechanism, forPublic, keys.target, out);
      case "unwrap": {
        let wrapped = Buffer.alloc(40, 8);
        const wrappedOutcome = outcome(() => pkcs11.C_WrapKey(session, mechanism, forPublic, keys.target, Buffer.alloc(1024)));
        if (wrappedOutcome.value) wrapped = Buffer.from(wrappedOutcome.value);
        return pkcs11.C_UnwrapKey(session, mechanism, forPrivate, wrapped, [
          { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES }, { type: P.CKA_VALUE_LEN, value: 16 },
        ]);
      }
      case "derive":
        return pkcs11.C_DeriveKey(session, mechanism, forPrivate, [
          { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET },
          { type: P.CKA_VALUE_LEN, value: 32 },
        ]);
    }
  });
}

describe("C_GetMechanismInfo flags are true to behaviour", () => {
  const f = userSession();
  const keys = makeKeys(f);
  const mechanisms = f.pkcs11.C_GetMechanismList(f.slot);

  it("lists the mechanisms the token implements", () => {
    expect(mechanisms.length).toBeGreaterThan(30);
    expect(mechanisms).toContain(P.CKM_RSA_PKCS_OAEP);
  });

  for (const type of mechanisms) {
    const name = Object.entries(P).find(([k, v]) => k.startsWith("CKM_") && v === type)?.[0] ?? `0x${type.toString(16)}`;
    it(`${name}: every claimed operation works, every other one is CKR_MECHANISM_INVALID`, () => {
      const { flags } = f.pkcs11.C_GetMechanismInfo(f.slot, type);
      for (const [operation, flag] of Object.entries(OPERATIONS) as [Operation, number][]) {
        const result = attempt(f, keys, type, operation);
        if (flags & flag) {
          expect(result.error?.message, `${name} ${operation} is claimed`).toBeUndefined();
        } else {
          expect(result.error?.message, `${name} ${operation} is not claimed`).toBe("CKR_MECHANISM_INVALID");
        }
      }
    });
  }

  it("RSA-OAEP claims wrap and unwrap, and a key wrapped with it unwraps to the same key", () => {
    const info = f.pkcs11.C_GetMechanismInfo(f.slot, P.CKM_RSA_PKCS_OAEP);
    expect(info.flags & (P.CKF_WRAP | P.CKF_UNWRAP)).toBe(P.CKF_WRAP | P.CKF_UNWRAP);
    const mechanism = { mechanism: P.CKM_RSA_PKCS_OAEP, parameter: { type: P.CK_PARAMS_RSA_OAEP, hashAlg: P.CKM_SHA256, mgf: P.CKG_MGF1_SHA256, source: 0 } };
    const wrapped = f.pkcs11.C_WrapKey(f.session, mechanism, keys.rsa.publicKey, keys.target, Buffer.alloc(256));
    const unwrapped = f.pkcs11.C_UnwrapKey(f.session, mechanism, keys.rsa.privateKey, wrapped, [
      { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
      { type: P.CKA_ENCRYPT, value: true }, { type: P.CKA_EXTRACTABLE, value: true },
    ]);
    // Same key: both wrap to the same bytes under AES key wrap.
    const kw = f.pkcs11.C_CreateObject(f.session, [
      { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
      { type: P.CKA_VALUE, value: Buffer.alloc(16, 1) }, { type: P.CKA_WRAP, value: true },
    ]);
    const wrapWith = (key: Buffer) => f.pkcs11.C_WrapKey(f.session, { mechanism: P.CKM_AES_KEY_WRAP }, kw, key, Buffer.alloc(64));
    expect(wrapWith(unwrapped)).toEqual(wrapWith(keys.target));
  });

  it("key sizes: the advertised minimum and maximum generate, one beyond either does not", () => {
    for (const type of [P.CKM_AES_KEY_GEN, P.CKM_GENERIC_SECRET_KEY_GEN]) {
      const { minKeySize, maxKeySize } = f.pkcs11.C_GetMechanismInfo(f.slot, type);
      const generate = (length: number) => outcome(() => f.pkcs11.C_GenerateKey(f.session, { mechanism: type }, [{ type: P.CKA_VALUE_LEN, value: length }]));
      expect(generate(minKeySize).error).toBeUndefined();
      expect(generate(maxKeySize).error).toBeUndefined();
      expect(generate(minKeySize - 1).error?.message).toBe("CKR_ATTRIBUTE_VALUE_INVALID");
      expect(generate(maxKeySize + 1).error?.message).toBe("CKR_ATTRIBUTE_VALUE_INVALID");
    }
    const rsa = f.pkcs11.C_GetMechanismInfo(f.slot, P.CKM_RSA_PKCS_KEY_PAIR_GEN);
    const rsaPair = (bits: number) => outcome(() => f.pkcs11.C_GenerateKeyPair(f.session, { mechanism: P.CKM_RSA_PKCS_KEY_PAIR_GEN },
      [{ type: P.CKA_MODULUS_BITS, value: bits }], []));
    expect(rsaPair(rsa.minKeySize).error).toBeUndefined();
    expect(rsaPair(rsa.minKeySize - 8).error?.message).toBe("CKR_KEY_SIZE_RANGE");
    expect(rsaPair(rsa.maxKeySize + 8).error?.message).toBe("CKR_KEY_SIZE_RANGE");
  });
});
