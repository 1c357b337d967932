// Every Wycheproof file in ../shared/vectors/wycheproof runs through the C_* API: keys are
// imported with C_CreateObject, then used with C_Encrypt/C_Decrypt/C_Sign/C_Verify/
// C_UnwrapKey/C_DeriveKey. Valid cases must give the expected output; invalid ones must
// fail with the CKR code the standard gives for that failure; "acceptable" may do either.
import { beforeAll, describe, expect, it } from "vitest";

import { P, P256_PARAMS, P384_PARAMS, type TokenFixture, aesKey, expectCkr, gcm, hex, outcome, secretKey, userSession,
  wycheproof } from "./helpers.js";

let f: TokenFixture;
beforeAll(() => {
  f = userSession();
});

interface Tally { valid: number; invalid: number; acceptable: number }
function tally(): Tally {
  return { valid: 0, invalid: 0, acceptable: 0 };
}
function expectFailure(result: { error?: P.Pkcs11Error }, allowed: string[], tcId: number): void {
  expect(result.error, `tcId ${tcId} should fail`).toBeDefined();
  expect(allowed, `tcId ${tcId}`).toContain(result.error!.message);
}

describe("Wycheproof AES-GCM (aes_gcm_test.json)", () => {
  it("encrypts and decrypts every valid case and rejects every invalid one", () => {
    const file = wycheproof<{ ivSize: number; tagSize: number }>("aes_gcm_test.json");
    const t = tally();
    for (const group of file.testGroups) {
      for (const test of group.tests) {
        const key = aesKey(f, hex(test.key), [{ type: P.CKA_SENSITIVE, value: true }]);
        const mech = gcm(hex(test.iv), hex(test.aad), group.tagSize);
        const sealed = Buffer.concat([hex(test.ct), hex(test.tag)]);
        const open = outcome(() => {
          f.pkcs11.C_DecryptInit(f.session, mech, key);
          return Buffer.from(f.pkcs11.C_Decrypt(f.session, sealed, Buffer.alloc(sealed.length + 16)));
        });
        if (test.result === "valid") {
          expect(open.value?.toString("hex"), `tcId ${test.tcId}`).toBe(test.msg);
          f.pkcs11.C_EncryptInit(f.session, mech, key);
          const out = f.pkcs11.C_Encrypt(f.session, hex(test.msg), Buffer.alloc(sealed.length + 16));
          expect(out.toString("hex")).toBe(sealed.toString("hex"));
        } else {
          const expected = group.ivSize === 0 ? ["CKR_MECHANISM_PARAM_INVALID"] : ["CKR_ENCRYPTED_DATA_INVALID"];
          expectFailure(open, expected, test.tcId);
        }
        t[test.result]++;
        f.pkcs11.C_DestroyObject(f.session, key);
      }
    }
    expect(t).toEqual({ valid: 229, invalid: 87, acceptable: 0 });
  });
});

describe("Wycheproof AES-CBC-PKCS5 (aes_cbc_pkcs5_test.json)", () => {
  it("matches every valid case and rejects bad padding", () => {
    const file = wycheproof<object>("aes_cbc_pkcs5_test.json");
    const t = tally();
    for (const group of file.testGroups) {
      for (const test of group.tests) {
        const key = aesKey(f, hex(test.key));
        const mech = { mechanism: P.CKM_AES_CBC_PAD, parameter: hex(test.iv) };
        const ct = hex(test.ct);
        const open = outcome(() => {
          f.pkcs11.C_DecryptInit(f.session, mech, key);
          return Buffer.from(f.pkcs11.C_Decrypt(f.session, ct, Buffer.alloc(ct.length + 16)));
        });
        if (test.result === "valid") {
          expect(open.value?.toString("hex"), `tcId ${test.tcId}`).toBe(test.msg);
          f.pkcs11.C_EncryptInit(f.session, mech, key);
          expect(f.pkcs11.C_Encrypt(f.session, hex(test.msg), Buffer.alloc(ct.length + 16)).toString("hex")).toBe(test.ct);
        } else {
          expectFailure(open, ["CKR_ENCRYPTED_DATA_INVALID", "CKR_ENCRYPTED_DATA_LEN_RANGE"], test.tcId);
        }
        t[test.result]++;
        f.pkcs11.C_DestroyObject(f.session, key);
      }
    }
    expect(t.valid).toBe(72);
    expect(t.invalid).toBe(144);
  });
});

const extractableSecret: P.Template = [
  { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
  { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET },
  { type: P.CKA_EXTRACTABLE, value: true },
  { type: P.CKA_SENSITIVE, value: false },
];

for (const [file, mechanism] of [["aes_wrap_test.json", P.CKM_AES_KEY_WRAP], ["aes_kwp_test.json", P.CKM_AES_KEY_WRAP_KWP]] as const) {
  describe(`Wycheproof ${file}`, () => {
    it("unwraps every valid case to the message, wraps it back, and rejects invalid ones", () => {
      const vectors = wycheproof<object>(file);
      const t = tally();
      for (const group of vectors.testGroups) {
        for (const test of group.tests) {
          const kek = aesKey(f, hex(test.key));
          const unwrapped = outcome(() => f.pkcs11.C_UnwrapKey(f.session, { mechanism }, kek, hex(test.ct), extractableSecret));
          if (test.result === "valid") {
            expect(unwrapped.error, `tcId ${test.tcId}`).toBeUndefined();
            const [{ value }] = f.pkcs11.C_GetAttributeValue(f.session, unwrapped.value!, [{ type: P.CKA_VALUE }]);
            expect(value.toString("hex")).toBe(test.msg);
            const wrapped = f.pkcs11.C_WrapKey(f.session, { mechanism }, kek, unwrapped.value!, Buffer.alloc(1024));
            expect(wrapped.toString("hex")).toBe(test.ct);
          } else if (test.result === "invalid") {
            expectFailure(unwrapped, ["CKR_WRAPPED_KEY_INVALID", "CKR_WRAPPED_KEY_LEN_RANGE"], test.tcId);
          }
          t[test.result]++;
        }
      }
      expect(t.valid + t.invalid + t.acceptable).toBe(file === "aes_wrap_test.json" ? 165 : 254);
    });
  });
}

for (const [file, full, general] of [
  ["hmac_sha256_test.json", P.CKM_SHA256_HMAC, P.CKM_SHA256_HMAC_GENERAL],
  ["hmac_sha384_test.json", P.CKM_SHA384_HMAC, P.CKM_SHA384_HMAC_GENERAL],
  ["hmac_sha512_test.json", P.CKM_SHA512_HMAC, P.CKM_SHA512_HMAC_GENERAL],
] as const) {
  describe(`Wycheproof ${file}`, () => {
    it("signs every valid tag and rejects every invalid one", () => {
      const vectors = wycheproof<{ tagSize: number }>(file);
      const t = tally();
      for (const group of vectors.testGroups) {
        const digestBits = { [P.CKM_SHA256_HMAC]: 256, [P.CKM_SHA384_HMAC]: 384, [P.CKM_SHA512_HMAC]: 512 }[full];
        const mech = group.tagSize === digestBits ? { mechanism: full } : { mechanism: general, parameter: group.tagSize / 8 };
        for (const test of group.tests) {
          const key = secretKey(f, hex(test.key));
          const verified = outcome(() => {
            f.pkcs11.C_VerifyInit(f.session, mech, key);
            return f.pkcs11.C_Verify(f.session, hex(test.msg), hex(test.tag));
          });
          if (test.result === "valid") {
            expect(verified.value, `tcId ${test.tcId}`).toBe(true);
            f.pkcs11.C_SignInit(f.session, mech, key);
            expect(f.pkcs11.C_Sign(f.session, hex(test.msg), Buffer.alloc(64)).toString("hex")).toBe(test.tag);
          } else {
            expectFailure(verified, ["CKR_SIGNATURE_INVALID", "CKR_SIGNATURE_LEN_RANGE"], test.tcId);
          }
          t[test.result]++;
          f.pkcs11.C_DestroyObject(f.session, key);
        }
      }
      expect(t).toEqual({ valid: 66, invalid: 108, acceptable: 0 });
    });
  });
}

function ecPublicKey(point: Buffer, params: Buffer): Buffer {
  return f.pkcs11.C_CreateObject(f.session, [
    { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY },
    { type: P.CKA_KEY_TYPE, value: P.CKK_EC },
    { type: P.CKA_EC_PARAMS, value: params },
    { type: P.CKA_EC_POINT, value: point },
  ]);
}

function verifyEcdsa(key: Buffer, mechanism: number, msg: Buffer, sig: Buffer) {
  return outcome(() => {
    f.pkcs11.C_VerifyInit(f.session, { mechanism }, key);
    return f.pkcs11.C_Verify(f.session, msg, sig);
  });
}

for (const [file, params, mechanism] of [
  ["ecdsa_secp256r1_sha256_p1363_test.json", P256_PARAMS, P.CKM_ECDSA_SHA256],
  ["ecdsa_secp384r1_sha384_p1363_test.json", P384_PARAMS, P.CKM_ECDSA_SHA384],
] as const) {
  describe(`Wycheproof ${file}`, () => {
    it("verifies every valid signature and rejects every invalid one", () => {
      const vectors = wycheproof<{ publicKey: { uncompressed: string } }>(file);
      const t = tally();
      for (const group of vectors.testGroups) {
        const key = ecPublicKey(hex(group.publicKey.uncompressed), params);
        for (const test of group.tests) {
          const verified = verifyEcdsa(key, mechanism, hex(test.msg), hex(test.sig));
          if (test.result === "valid") expect(verified.value, `tcId ${test.tcId}`).toBe(true);
          else expectFailure(verified, ["CKR_SIGNATURE_INVALID", "CKR_SIGNATURE_LEN_RANGE"], test.tcId);
          t[test.result]++;
        }
      }
      expect(t).toEqual(file.startsWith("ecdsa_secp256r1") ? { valid: 173, invalid: 89, acceptable: 0 } : { valid: 193, invalid: 87, acceptable: 0 });
    });
  });
}

/**
 * Strict DER decoding of ECDSA-Sig-Value into PKCS#11's raw r||s. PKCS#11 carries raw
 * signatures only, so a malformed DER encoding can never reach a token: this decoder is
 * where those Wycheproof cases are rejected, and every case it accepts goes to C_Verify.
 */
function derToRaw(der: Buffer, size: number): Buffer | null {
  let offset = 0;
  const readLength = (): number | null => {
    const first = der[offset++];
    if (first === undefined) return null;
    if (first < 0x80) return first;
    if (first !== 0x81) return null;
    const n = der[offset++];
    return n !== undefined && n >= 0x80 ? n : null;
  };
  const readInteger = (): Buffer | null => {
    if (der[offset++] !== 0x02) return null;
    const length = readLength();
    if (length === null || length === 0 || offset + length > der.length) return null;
    const bytes = der.subarray(offset, offset + length);
    offset += length;
    if (bytes[0] & 0x80) return null; // negative
    if (bytes.length > 1 && bytes[0] === 0 && !(bytes[1] & 0x80)) return null; // not minimal
    const trimmed = bytes[0] === 0 ? bytes.subarray(1) : bytes;
    return trimmed.length > size ? null : Buffer.concat([Buffer.alloc(size - trimmed.length), trimmed]);
  };
  if (der[offset++] !== 0x30) return null;
  const length = readLength();
  if (length === null || offset + length !== der.length) return null;
  const r = readInteger();
  const s = r && readInteger();
  if (!r || !s || offset !== der.length) return null;
  return Buffer.concat([r, s]);
}

describe("Wycheproof ecdsa_secp256r1_sha256_test.json (DER signatures)", () => {
  it("verifies every valid signature; invalid ones fail in DER decoding or in C_Verify", () => {
    const vectors = wycheproof<{ publicKey: { uncompressed: string } }>("ecdsa_secp256r1_sha256_test.json");
    let throughToken = 0, rejectedAsDer = 0;
    for (const group of vectors.testGroups) {
      const key = ecPublicKey(hex(group.publicKey.uncompressed), P256_PARAMS);
      for (const test of group.tests) {
        const raw = derToRaw(hex(test.sig), 32);
        if (raw === null) {
          expect(test.result, `tcId ${test.tcId} has a DER signature the decoder refused`).toBe("invalid");
          rejectedAsDer++;
          continue;
        }
        throughToken++;
        const verified = verifyEcdsa(key, P.CKM_ECDSA_SHA256, hex(test.msg), raw);
        if (test.result === "valid") expect(verified.value, `tcId ${test.tcId}`).toBe(true);
        else if (test.result === "invalid") expectFailure(verified, ["CKR_SIGNATURE_INVALID"], test.tcId);
      }
    }
    expect(throughToken).toBeGreaterThan(150);
    expect(rejectedAsDer).toBeGreaterThan(50);
  });
});

describe("Wycheproof ecdh_secp256r1_test.json", () => {
  it("derives every valid shared secret and rejects every invalid public key", () => {
    const vectors = wycheproof<object>("ecdh_secp256r1_test.json");
    const t = tally();
    for (const group of vectors.testGroups) {
      for (const test of group.tests) {
        const priv = f.pkcs11.C_CreateObject(f.session, [
          { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
          { type: P.CKA_KEY_TYPE, value: P.CKK_EC },
          { type: P.CKA_EC_PARAMS, value: P256_PARAMS },
          { type: P.CKA_VALUE, value: hex(test.private) },
          { type: P.CKA_DERIVE, value: true },
        ]);
        const derived = outcome(() =>
          f.pkcs11.C_DeriveKey(
            f.session,
            { mechanism: P.CKM_ECDH1_DERIVE, parameter: { type: P.CK_PARAMS_EC_DH, kdf: P.CKD_NULL, publicData: hex(test.public) } },
            priv,
            [...extractableSecret, { type: P.CKA_VALUE_LEN, value: 32 }],
          ),
        );
        if (test.result === "valid") {
          expect(derived.error, `tcId ${test.tcId}`).toBeUndefined();
          const [{ value }] = f.pkcs11.C_GetAttributeValue(f.session, derived.value!, [{ type: P.CKA_VALUE }]);
          expect(value.toString("hex"), `tcId ${test.tcId}`).toBe(test.shared);
          f.pkcs11.C_DestroyObject(f.session, derived.value!);
        } else if (test.result === "invalid") {
          expectFailure(derived, ["CKR_MECHANISM_PARAM_INVALID"], test.tcId);
        }
        t[test.result]++;
        f.pkcs11.C_DestroyObject(f.session, priv);
      }
    }
    expect(t).toEqual({ valid: 330, invalid: 52, acceptable: 230 });
  });
});

function rsaPublic(key: { modulus: string; publicExponent: string }): Buffer {
  return f.pkcs11.C_CreateObject(f.session, [
    { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY },
    { type: P.CKA_KEY_TYPE, value: P.CKK_RSA },
    { type: P.CKA_MODULUS, value: hex(key.modulus) },
    { type: P.CKA_PUBLIC_EXPONENT, value: hex(key.publicExponent) },
  ]);
}

describe("Wycheproof rsa_oaep_2048_sha256_mgf1sha256_test.json", () => {
  it("decrypts every valid ciphertext and rejects every invalid one", () => {
    const vectors = wycheproof<{ privateKey: Record<string, string> }>("rsa_oaep_2048_sha256_mgf1sha256_test.json");
    const t = tally();
    for (const group of vectors.testGroups) {
      const k = group.privateKey;
      const key = f.pkcs11.C_CreateObject(f.session, [
        { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_RSA },
        { type: P.CKA_MODULUS, value: hex(k.modulus) },
        { type: P.CKA_PUBLIC_EXPONENT, value: hex(k.publicExponent) },
        { type: P.CKA_PRIVATE_EXPONENT, value: hex(k.privateExponent) },
        { type: P.CKA_PRIME_1, value: hex(k.prime1) },
        { type: P.CKA_PRIME_2, value: hex(k.prime2) },
        { type: P.CKA_EXPONENT_1, value: hex(k.exponent1) },
        { type: P.CKA_EXPONENT_2, value: hex(k.exponent2) },
        { type: P.CKA_COEFFICIENT, value: hex(k.coefficient) },
      ]);
      for (const test of group.tests) {
        const mech = {
          mechanism: P.CKM_RSA_PKCS_OAEP,
          parameter: { type: P.CK_PARAMS_RSA_OAEP, hashAlg: P.CKM_SHA256, mgf: P.CKG_MGF1_SHA256, source: 1, sourceData: hex(test.label) },
        };
        const open = outcome(() => {
          f.pkcs11.C_DecryptInit(f.session, mech, key);
          return Buffer.from(f.pkcs11.C_Decrypt(f.session, hex(test.ct), Buffer.alloc(512)));
        });
        if (test.result === "valid") expect(open.value?.toString("hex"), `tcId ${test.tcId}`).toBe(test.msg);
        else expectFailure(open, ["CKR_ENCRYPTED_DATA_INVALID", "CKR_ENCRYPTED_DATA_LEN_RANGE"], test.tcId);
        t[test.result]++;
      }
    }
    expect(t.valid).toBe(18);
    expect(t.invalid).toBe(19);
  });
});

describe("Wycheproof rsa_pss_2048_sha256_mgf1_32_test.json", () => {
  it("verifies every valid signature and rejects every invalid one", () => {
    const vectors = wycheproof<{ publicKey: { modulus: string; publicExponent: string }; sLen: number }>("rsa_pss_2048_sha256_mgf1_32_test.json");
    const t = tally();
    for (const group of vectors.testGroups) {
      const key = rsaPublic(group.publicKey);
      const mech = {
        mechanism: P.CKM_SHA256_RSA_PKCS_PSS,
        parameter: { type: P.CK_PARAMS_RSA_PSS, hashAlg: P.CKM_SHA256, mgf: P.CKG_MGF1_SHA256, saltLen: group.sLen },
      };
      for (const test of group.tests) {
        const verified = outcome(() => {
          f.pkcs11.C_VerifyInit(f.session, mech, key);
          return f.pkcs11.C_Verify(f.session, hex(test.msg), hex(test.sig));
        });
        if (test.result === "valid") expect(verified.value, `tcId ${test.tcId}`).toBe(true);
        else expectFailure(verified, ["CKR_SIGNATURE_INVALID", "CKR_SIGNATURE_LEN_RANGE"], test.tcId);
        t[test.result]++;
      }
    }
    expect(t).toEqual({ valid: 63, invalid: 45, acceptable: 0 });
  });
});

describe("Wycheproof rsa_signature_2048_sha256_test.json", () => {
  it("verifies every valid PKCS#1 v1.5 signature and rejects every invalid one", () => {
    const vectors = wycheproof<{ publicKey: { modulus: string; publicExponent: string } }>("rsa_signature_2048_sha256_test.json");
    const t = tally();
    for (const group of vectors.testGroups) {
      const key = rsaPublic(group.publicKey);
      for (const test of group.tests) {
        const verified = outcome(() => {
          f.pkcs11.C_VerifyInit(f.session, { mechanism: P.CKM_SHA256_RSA_PKCS }, key);
          return f.pkcs11.C_Verify(f.session, hex(test.msg), hex(test.sig));
        });
        if (test.result === "valid") expect(verified.value, `tcId ${test.tcId}`).toBe(true);
        else if (test.result === "invalid") expectFailure(verified, ["CKR_SIGNATURE_INVALID", "CKR_SIGNATURE_LEN_RANGE"], test.tcId);
        t[test.result]++;
      }
    }
    expect(t).toEqual({ valid: 9, invalid: 249, acceptable: 1 });
  });
});

it("expectCkr helper fails when nothing is thrown", () => {
  expect(() => expectCkr(() => 1, "CKR_OK")).toThrow(/no error/);
});
