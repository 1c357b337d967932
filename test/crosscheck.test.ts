// Cross-checks against independent implementations: signatures made by the token verify
// with @noble/curves and node:crypto and theirs verify on the token; GCM, CBC, HMAC, SHA,
// ECDH and RSA outputs equal node:crypto's for the same keys.
import * as crypto from "node:crypto";

import { p256, p384 } from "@noble/curves/nist.js";
import { beforeAll, describe, expect, it } from "vitest";

import { P, P256_PARAMS, P384_PARAMS, type TokenFixture, aesKey, ecKeyPair, gcm, secretKey, userSession } from "./helpers.js";

let f: TokenFixture;
beforeAll(() => {
  f = userSession();
});

function ecPoint(publicKey: Buffer): Buffer {
  const [{ value }] = f.pkcs11.C_GetAttributeValue(f.session, publicKey, [{ type: P.CKA_EC_POINT }]);
  expect(value[0]).toBe(0x04); // DER OCTET STRING around the uncompressed point
  const headerLength = value[1] === 0x81 ? 3 : 2;
  return value.subarray(headerLength);
}

function nodePublicKey(point: Buffer, curve: "P-256" | "P-384"): crypto.KeyObject {
  const n = (point.length - 1) / 2;
  return crypto.createPublicKey({
    format: "jwk",
    key: { kty: "EC", crv: curve, x: point.subarray(1, 1 + n).toString("base64url"), y: point.subarray(1 + n).toString("base64url") },
  });
}

const curves = [
  { name: "P-256" as const, params: P256_PARAMS, noble: p256, mech: P.CKM_ECDSA_SHA256, hash: "sha256", size: 64 },
  { name: "P-384" as const, params: P384_PARAMS, noble: p384, mech: P.CKM_ECDSA_SHA384, hash: "sha384", size: 96 },
];

describe.each(curves)("ECDSA $name", (c) => {
  it("token signatures verify with @noble/curves and node:crypto", () => {
    const { publicKey, privateKey } = ecKeyPair(f, c.params);
    const point = ecPoint(publicKey);
    for (let i = 0; i < 20; i++) {
      const msg = crypto.randomBytes(i * 7);
      f.pkcs11.C_SignInit(f.session, { mechanism: c.mech }, privateKey);
      const sig = f.pkcs11.C_Sign(f.session, msg, Buffer.alloc(c.size));
      expect(sig.length).toBe(c.size);
      expect(c.noble.verify(sig, msg, point, { lowS: false })).toBe(true);
      expect(crypto.verify(c.hash, msg, { key: nodePublicKey(point, c.name), dsaEncoding: "ieee-p1363" }, sig)).toBe(true);
      const tampered = Buffer.from(msg.length ? msg : Buffer.from([0]));
      tampered[0] ^= 1;
      expect(c.noble.verify(sig, tampered, point, { lowS: false })).toBe(false);
    }
  });

  it("@noble/curves and node:crypto signatures verify on the token; altered ones do not", () => {
    const secret = c.noble.utils.randomSecretKey();
    const point = Buffer.from(c.noble.getPublicKey(secret, false));
    const key = f.pkcs11.C_CreateObject(f.session, [
      { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY },
      { type: P.CKA_KEY_TYPE, value: P.CKK_EC },
      { type: P.CKA_EC_PARAMS, value: c.params },
      { type: P.CKA_EC_POINT, value: point },
    ]);
    const nodeKeys = crypto.generateKeyPairSync("ec", { namedCurve: c.name });
    const nodeJwk = nodeKeys.publicKey.export({ format: "jwk" });
    const nodePoint = Buffer.concat([Buffer.from([4]), Buffer.from(nodeJwk.x!, "base64url"), Buffer.from(nodeJwk.y!, "base64url")]);
    const nodeKey = f.pkcs11.C_CreateObject(f.session, [
      { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY },
      { type: P.CKA_KEY_TYPE, value: P.CKK_EC },
      { type: P.CKA_EC_PARAMS, value: c.params },
      { type: P.CKA_EC_POINT, value: nodePoint },
    ]);
    for (let i = 0; i < 10; i++) {
      const msg = crypto.randomBytes(33 + i);
      const nobleSig = Buffer.from(c.noble.sign(msg, secret, { lowS: false }));
      f.pkcs11.C_VerifyInit(f.session, { mechanism: c.mech }, key);
      expect(f.pkcs11.C_Verify(f.session, msg, nobleSig)).toBe(true);
      const nodeSig = crypto.sign(c.hash, msg, { key: nodeKeys.privateKey, dsaEncoding: "ieee-p1363" });
      f.pkcs11.C_VerifyInit(f.session, { mechanism: c.mech }, nodeKey);
      expect(f.pkcs11.C_Verify(f.session, msg, nodeSig)).toBe(true);
      nodeSig[5] ^= 0x40;
      f.pkcs11.C_VerifyInit(f.session, { mechanism: c.mech }, nodeKey);
      expect(() => f.pkcs11.C_Verify(f.session, msg, nodeSig)).toThrow("CKR_SIGNATURE_INVALID");
    }
  });

  it("ECDH derives the same secret as node:crypto", () => {
    const { publicKey, privateKey } = ecKeyPair(f, c.params);
    const peer = crypto.createECDH(c.name === "P-256" ? "prime256v1" : "secp384r1");
    peer.generateKeys();
    const derived = f.pkcs11.C_DeriveKey(
      f.session,
      { mechanism: P.CKM_ECDH1_DERIVE, parameter: { type: P.CK_PARAMS_EC_DH, kdf: P.CKD_NULL, publicData: peer.getPublicKey() } },
      privateKey,
      [
        { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
        { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET },
        { type: P.CKA_SENSITIVE, value: false },
        { type: P.CKA_EXTRACTABLE, value: true },
      ],
    );
    const [{ value: secret }] = f.pkcs11.C_GetAttributeValue(f.session, derived, [{ type: P.CKA_VALUE }]);
    expect(secret.toString("hex")).toBe(peer.computeSecret(ecPoint(publicKey)).toString("hex"));
  });
});

describe("symmetric outputs equal node:crypto's", () => {
  it("AES-GCM 128/192/256 with AAD and IVs of many lengths", () => {
    for (const keyLength of [16, 24, 32]) {
      const value = crypto.randomBytes(keyLength);
      const key = aesKey(f, value);
      // node:crypto stops at 128-byte IVs; longer ones are covered by the Wycheproof vectors.
      for (const ivLength of [1, 8, 12, 16, 60, 128]) {
        const iv = crypto.randomBytes(ivLength), aad = crypto.randomBytes(ivLength % 17), msg = crypto.randomBytes(ivLength * 3);
        const cipher = crypto.createCipheriv(`aes-${keyLength * 8}-gcm` as crypto.CipherGCMTypes, value, iv);
        cipher.setAAD(aad);
        const expected = Buffer.concat([cipher.update(msg), cipher.final(), cipher.getAuthTag()]);
        f.pkcs11.C_EncryptInit(f.session, gcm(iv, aad), key);
        expect(f.pkcs11.C_Encrypt(f.session, msg, Buffer.alloc(msg.length + 16)).toString("hex")).toBe(expected.toString("hex"));
      }
    }
  });

  it("AES-CBC-PAD multi-part equals node:crypto", () => {
    const value = crypto.randomBytes(32), iv = crypto.randomBytes(16);
    const key = aesKey(f, value);
    const msg = crypto.randomBytes(1000);
    const c = crypto.createCipheriv("aes-256-cbc", value, iv);
    const expected = Buffer.concat([c.update(msg), c.final()]);
    f.pkcs11.C_EncryptInit(f.session, { mechanism: P.CKM_AES_CBC_PAD, parameter: iv }, key);
    const parts = [];
    for (let i = 0; i < msg.length; i += 77) parts.push(Buffer.from(f.pkcs11.C_EncryptUpdate(f.session, msg.subarray(i, i + 77), Buffer.alloc(128))));
    parts.push(Buffer.from(f.pkcs11.C_EncryptFinal(f.session, Buffer.alloc(32))));
    expect(Buffer.concat(parts).toString("hex")).toBe(expected.toString("hex"));
  });

  it("HMAC-SHA-256/384/512 and SHA-256/384/512 digests", () => {
    const value = crypto.randomBytes(48);
    const key = secretKey(f, value);
    const msg = crypto.randomBytes(300);
    for (const [mech, digestMech, name] of [
      [P.CKM_SHA256_HMAC, P.CKM_SHA256, "sha256"],
      [P.CKM_SHA384_HMAC, P.CKM_SHA384, "sha384"],
      [P.CKM_SHA512_HMAC, P.CKM_SHA512, "sha512"],
    ] as const) {
      f.pkcs11.C_SignInit(f.session, { mechanism: mech }, key);
      const mac = f.pkcs11.C_Sign(f.session, msg, Buffer.alloc(64));
      expect(mac.toString("hex")).toBe(crypto.createHmac(name, value).update(msg).digest("hex"));
      f.pkcs11.C_DigestInit(f.session, { mechanism: digestMech });
      f.pkcs11.C_DigestUpdate(f.session, msg.subarray(0, 100));
      f.pkcs11.C_DigestUpdate(f.session, msg.subarray(100));
      expect(f.pkcs11.C_DigestFinal(f.session, Buffer.alloc(64)).toString("hex")).toBe(crypto.createHash(name).update(msg).digest("hex"));
    }
  });

  it("RSA-2048: token PKCS#1 and PSS signatures verify with node:crypto; OAEP round-trips with it", () => {
    const { publicKey, privateKey } = f.pkcs11.C_GenerateKeyPair(
      f.session,
      { mechanism: P.CKM_RSA_PKCS_KEY_PAIR_GEN },
      [{ type: P.CKA_MODULUS_BITS, value: 2048 }, { type: P.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }],
      [{ type: P.CKA_SIGN, value: true }, { type: P.CKA_DECRYPT, value: true }],
    );
    const [n, e] = f.pkcs11.C_GetAttributeValue(f.session, publicKey, [{ type: P.CKA_MODULUS }, { type: P.CKA_PUBLIC_EXPONENT }]);
    const nodeKey = crypto.createPublicKey({ format: "jwk", key: { kty: "RSA", n: n.value.toString("base64url"), e: e.value.toString("base64url") } });
    const msg = Buffer.from("cross-check me");
    f.pkcs11.C_SignInit(f.session, { mechanism: P.CKM_SHA256_RSA_PKCS }, privateKey);
    expect(crypto.verify("sha256", msg, nodeKey, f.pkcs11.C_Sign(f.session, msg, Buffer.alloc(256)))).toBe(true);
    const pss = { type: P.CK_PARAMS_RSA_PSS, hashAlg: P.CKM_SHA256, mgf: P.CKG_MGF1_SHA256, saltLen: 32 };
    f.pkcs11.C_SignInit(f.session, { mechanism: P.CKM_SHA256_RSA_PKCS_PSS, parameter: pss }, privateKey);
    const pssSig = f.pkcs11.C_Sign(f.session, msg, Buffer.alloc(256));
    expect(crypto.verify("sha256", msg, { key: nodeKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, pssSig)).toBe(true);
    const ct = crypto.publicEncrypt({ key: nodeKey, oaepHash: "sha256", padding: crypto.constants.RSA_PKCS1_OAEP_PADDING }, msg);
    const oaep = { type: P.CK_PARAMS_RSA_OAEP, hashAlg: P.CKM_SHA256, mgf: P.CKG_MGF1_SHA256, source: 1 };
    f.pkcs11.C_DecryptInit(f.session, { mechanism: P.CKM_RSA_PKCS_OAEP, parameter: oaep }, privateKey);
    expect(f.pkcs11.C_Decrypt(f.session, ct, Buffer.alloc(256)).toString()).toBe("cross-check me");
  });
});
