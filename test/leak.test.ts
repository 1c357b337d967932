// Invariant 1: no call yields a sensitive or non-extractable key's bytes.
import * as crypto from "node:crypto";

import { describe, expect, it } from "vitest";

import { P, aesKey, chipUserSession, expectCkr, gcm } from "./helpers.js";

describe("key material never leaves the chip", () => {
  it("no attribute read, copy, search, wrap or digest returns a locked key's value", () => {
    const f = chipUserSession();
    const secret = crypto.randomBytes(32);
    const key = aesKey(f, secret, [{ type: P.CKA_EXTRACTABLE, value: false }, { type: P.CKA_TOKEN, value: true }]);
    const seen: Buffer[] = [];
    const everyType = Object.entries(P).filter(([n, v]) => n.startsWith("CKA_") && typeof v === "number").map(([, v]) => v as number);
    const all = f.pkcs11.getAttributeValues(f.session, key, everyType.map((type) => ({ type })));
    expect(all.rv).toBe(P.CKR_ATTRIBUTE_SENSITIVE);
    seen.push(...all.attributes.map((a) => a.value).filter((v): v is Buffer => v !== null));
    // Copies cannot loosen sensitivity or extractability.
    expectCkr(() => f.pkcs11.C_CopyObject(f.session, key, [{ type: P.CKA_EXTRACTABLE, value: true }]), "CKR_ATTRIBUTE_READ_ONLY");
    expectCkr(() => f.pkcs11.C_CopyObject(f.session, key, [{ type: P.CKA_SENSITIVE, value: false }]), "CKR_ATTRIBUTE_READ_ONLY");
    const copy = f.pkcs11.C_CopyObject(f.session, key, [{ type: P.CKA_LABEL, value: "copy" }]);
    expectCkr(() => f.pkcs11.C_GetAttributeValue(f.session, copy, [{ type: P.CKA_VALUE }]), "CKR_ATTRIBUTE_SENSITIVE");
    // Wrapping under any mechanism is refused.
    const kek = aesKey(f, crypto.randomBytes(32));
    for (const mech of [{ mechanism: P.CKM_AES_KEY_WRAP }, { mechanism: P.CKM_AES_KEY_WRAP_KWP }, gcm(Buffer.alloc(12)),
      { mechanism: P.CKM_AES_CBC_PAD, parameter: Buffer.alloc(16) }]) {
      const out = Buffer.alloc(128);
      expectCkr(() => f.pkcs11.C_WrapKey(f.session, mech, kek, key, out), "CKR_KEY_UNEXTRACTABLE");
      seen.push(out);
    }
    // A search on the value does not match (it would be an oracle for the key).
    f.pkcs11.C_FindObjectsInit(f.session, [{ type: P.CKA_VALUE, value: secret }]);
    expect(f.pkcs11.C_FindObjects(f.session, 10)).toEqual([]);
    f.pkcs11.C_FindObjectsFinal(f.session);
    // Encryption output and digests are not the key.
    f.pkcs11.C_EncryptInit(f.session, { mechanism: P.CKM_AES_ECB }, key);
    seen.push(Buffer.from(f.pkcs11.C_Encrypt(f.session, Buffer.alloc(64), Buffer.alloc(64))));
    f.pkcs11.C_DigestInit(f.session, { mechanism: P.CKM_SHA256 });
    f.pkcs11.C_DigestKey(f.session, key);
    seen.push(Buffer.from(f.pkcs11.C_DigestFinal(f.session, Buffer.alloc(32))));
    // The masked record is sealed.
    const chip = f.chip;
    seen.push(chip.exportMasked(0, key.readUInt32LE(0), 1), chip.exportMasked(0, key.readUInt32LE(0), 2));
    for (const b of seen) {
      expect(b.includes(secret)).toBe(false);
      expect(b.includes(secret.subarray(0, 16))).toBe(false);
    }
  });
});
