// Conformance: objects, attributes, the attribute rules, visibility and search.
import { describe, expect, it } from "vitest";

import { P, USER_PIN, aesKey, ecKeyPair, expectCkr, userSession } from "../helpers.js";

const data = (extra: P.Template = []): P.Template => [{ type: P.CKA_CLASS, value: P.CKO_DATA }, ...extra];

describe("object", () => {
  it("creates, copies, sizes and destroys objects", () => {
    const f = userSession();
    const obj = f.pkcs11.C_CreateObject(f.session, data([{ type: P.CKA_LABEL, value: "d" }, { type: P.CKA_VALUE, value: Buffer.from("payload") }]));
    expect(f.pkcs11.C_GetObjectSize(f.session, obj)).toBeGreaterThan(7);
    const copy = f.pkcs11.C_CopyObject(f.session, obj, [{ type: P.CKA_LABEL, value: "copy" }]);
    const [label, value] = f.pkcs11.C_GetAttributeValue(f.session, copy, [{ type: P.CKA_LABEL }, { type: P.CKA_VALUE }]);
    expect(label.value.toString()).toBe("copy");
    expect(value.value.toString()).toBe("payload");
    f.pkcs11.C_DestroyObject(f.session, obj);
    expectCkr(() => f.pkcs11.C_GetObjectSize(f.session, obj), "CKR_OBJECT_HANDLE_INVALID");
    expectCkr(() => f.pkcs11.C_DestroyObject(f.session, obj), "CKR_OBJECT_HANDLE_INVALID");
  });

  it("checks templates on create", () => {
    const f = userSession();
    expectCkr(() => f.pkcs11.C_CreateObject(f.session, [{ type: P.CKA_LABEL, value: "no class" }]), "CKR_TEMPLATE_INCOMPLETE");
    expectCkr(() => f.pkcs11.C_CreateObject(f.session, data([{ type: P.CKA_TOKEN, value: Buffer.from([1, 1]) }])), "CKR_ATTRIBUTE_VALUE_INVALID");
    expectCkr(() => f.pkcs11.C_CreateObject(f.session, data([{ type: P.CKA_MODULUS, value: Buffer.alloc(1) }])), "CKR_ATTRIBUTE_TYPE_INVALID");
    expectCkr(() => aesKey(f, Buffer.alloc(15)), "CKR_ATTRIBUTE_VALUE_INVALID");
    expectCkr(() => aesKey(f, Buffer.alloc(16), [{ type: P.CKA_LOCAL, value: true }]), "CKR_ATTRIBUTE_READ_ONLY");
    expectCkr(() => aesKey(f, Buffer.alloc(16), [{ type: P.CKA_ALWAYS_SENSITIVE, value: true }]), "CKR_ATTRIBUTE_READ_ONLY");
    expectCkr(() => aesKey(f, Buffer.alloc(16), [{ type: P.CKA_TRUSTED, value: true }]), "CKR_ATTRIBUTE_READ_ONLY");
    expectCkr(() => f.pkcs11.C_CreateObject(f.session, data([{ type: P.CKA_LABEL, value: "a" }, { type: P.CKA_LABEL, value: "b" }])), "CKR_TEMPLATE_INCONSISTENT");
    expect(() => f.pkcs11.C_CreateObject(f.session, [{ type: -1, value: 1 }])).toThrow(TypeError);
    expect(() => f.pkcs11.C_CreateObject(f.session, [{ type: 1, value: {} as unknown as Buffer }])).toThrow(/template\[0\]\.value/);
  });

  it("C_GetAttributeValue processes every attribute; pkcs11js-style throws, getAttributeValues reports", () => {
    const f = userSession();
    const key = aesKey(f, Buffer.alloc(32, 7));
    expectCkr(() => f.pkcs11.C_GetAttributeValue(f.session, key, [{ type: P.CKA_LABEL }, { type: P.CKA_VALUE }]), "CKR_ATTRIBUTE_SENSITIVE");
    const result = f.pkcs11.getAttributeValues(f.session, key, [{ type: P.CKA_VALUE }, { type: P.CKA_MODULUS }, { type: P.CKA_VALUE_LEN }]);
    expect(result.rv).toBe(P.CKR_ATTRIBUTE_SENSITIVE);
    expect(result.attributes[0].value).toBeNull();
    expect(result.attributes[1].value).toBeNull();
    expect(result.attributes[2].value?.readUInt32LE(0)).toBe(32);
    expectCkr(() => f.pkcs11.C_GetAttributeValue(f.session, key, [{ type: P.CKA_MODULUS }]), "CKR_ATTRIBUTE_TYPE_INVALID");
  });

  it("enforces one-way attribute changes and read-only attributes", () => {
    const f = userSession();
    const key = aesKey(f, Buffer.alloc(16), [{ type: P.CKA_SENSITIVE, value: false }]);
    f.pkcs11.C_SetAttributeValue(f.session, key, [{ type: P.CKA_SENSITIVE, value: true }]);
    expectCkr(() => f.pkcs11.C_SetAttributeValue(f.session, key, [{ type: P.CKA_SENSITIVE, value: false }]), "CKR_ATTRIBUTE_READ_ONLY");
    f.pkcs11.C_SetAttributeValue(f.session, key, [{ type: P.CKA_EXTRACTABLE, value: false }]);
    expectCkr(() => f.pkcs11.C_SetAttributeValue(f.session, key, [{ type: P.CKA_EXTRACTABLE, value: true }]), "CKR_ATTRIBUTE_READ_ONLY");
    f.pkcs11.C_SetAttributeValue(f.session, key, [{ type: P.CKA_WRAP_WITH_TRUSTED, value: true }]);
    expectCkr(() => f.pkcs11.C_SetAttributeValue(f.session, key, [{ type: P.CKA_WRAP_WITH_TRUSTED, value: false }]), "CKR_ATTRIBUTE_READ_ONLY");
    for (const type of [P.CKA_ALWAYS_SENSITIVE, P.CKA_NEVER_EXTRACTABLE, P.CKA_LOCAL, P.CKA_CLASS, P.CKA_KEY_TYPE, P.CKA_VALUE, P.CKA_TOKEN]) {
      expectCkr(() => f.pkcs11.C_SetAttributeValue(f.session, key, [{ type, value: true }]), type === P.CKA_CLASS || type === P.CKA_KEY_TYPE ? "CKR_ATTRIBUTE_VALUE_INVALID" : type === P.CKA_VALUE ? "CKR_ATTRIBUTE_READ_ONLY" : "CKR_ATTRIBUTE_READ_ONLY");
    }
    expectCkr(() => f.pkcs11.C_SetAttributeValue(f.session, key, [{ type: P.CKA_TRUSTED, value: true }]), "CKR_ATTRIBUTE_READ_ONLY");
    // All or nothing: a bad change leaves the good one unapplied.
    expectCkr(() => f.pkcs11.C_SetAttributeValue(f.session, key, [{ type: P.CKA_LABEL, value: "new" }, { type: P.CKA_LOCAL, value: true }]), "CKR_ATTRIBUTE_READ_ONLY");
    expect(f.pkcs11.C_GetAttributeValue(f.session, key, [{ type: P.CKA_LABEL }])[0].value.length).toBe(0);
  });

  it("only the SO sets CKA_TRUSTED", () => {
    const f = userSession();
    const pub = f.pkcs11.C_CreateObject(f.session, [
      { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
      { type: P.CKA_VALUE, value: Buffer.alloc(16) }, { type: P.CKA_TOKEN, value: true }, { type: P.CKA_PRIVATE, value: false },
    ]);
    f.pkcs11.C_Logout(f.session);
    f.pkcs11.C_Login(f.session, P.CKU_SO, "so-secret-1");
    f.pkcs11.C_SetAttributeValue(f.session, pub, [{ type: P.CKA_TRUSTED, value: true }]);
    expect(f.pkcs11.C_GetAttributeValue(f.session, pub, [{ type: P.CKA_TRUSTED }])[0].value[0]).toBe(1);
  });

  it("honours CKA_MODIFIABLE, CKA_COPYABLE and CKA_DESTROYABLE", () => {
    const f = userSession();
    const fixed = f.pkcs11.C_CreateObject(f.session, data([{ type: P.CKA_MODIFIABLE, value: false }, { type: P.CKA_COPYABLE, value: false }, { type: P.CKA_DESTROYABLE, value: false }]));
    expectCkr(() => f.pkcs11.C_SetAttributeValue(f.session, fixed, [{ type: P.CKA_LABEL, value: "x" }]), "CKR_ACTION_PROHIBITED");
    expectCkr(() => f.pkcs11.C_CopyObject(f.session, fixed, []), "CKR_ACTION_PROHIBITED");
    expectCkr(() => f.pkcs11.C_DestroyObject(f.session, fixed), "CKR_ACTION_PROHIBITED");
  });

  it("sets CKA_LOCAL, CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE itself", () => {
    const f = userSession();
    const generated = f.pkcs11.C_GenerateKey(f.session, { mechanism: P.CKM_AES_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 32 }, { type: P.CKA_EXTRACTABLE, value: false }]);
    const imported = aesKey(f, Buffer.alloc(32));
    const read = (k: Buffer) => f.pkcs11.C_GetAttributeValue(f.session, k, [{ type: P.CKA_LOCAL }, { type: P.CKA_ALWAYS_SENSITIVE }, { type: P.CKA_NEVER_EXTRACTABLE }, { type: P.CKA_KEY_GEN_MECHANISM }]).map((a) => a.value);
    const [local, always, never, mech] = read(generated);
    expect([local[0], always[0], never[0]]).toEqual([1, 1, 1]);
    expect(mech.readUInt32LE(0)).toBe(P.CKM_AES_KEY_GEN);
    const [local2, always2, never2] = read(imported);
    expect([local2[0], always2[0], never2[0]]).toEqual([0, 0, 0]);
  });

  it("hides private objects from public sessions; logout destroys private session objects", () => {
    const f = userSession();
    const priv = f.pkcs11.C_CreateObject(f.session, data([{ type: P.CKA_PRIVATE, value: true }, { type: P.CKA_LABEL, value: "secret" }]));
    const tokenPriv = f.pkcs11.C_CreateObject(f.session, data([{ type: P.CKA_PRIVATE, value: true }, { type: P.CKA_TOKEN, value: true }]));
    const pub = f.pkcs11.C_CreateObject(f.session, data([{ type: P.CKA_LABEL, value: "public" }]));
    f.pkcs11.C_Logout(f.session);
    expectCkr(() => f.pkcs11.C_GetObjectSize(f.session, priv), "CKR_OBJECT_HANDLE_INVALID");
    expectCkr(() => f.pkcs11.C_GetObjectSize(f.session, tokenPriv), "CKR_OBJECT_HANDLE_INVALID");
    f.pkcs11.C_FindObjectsInit(f.session, []);
    const visible = f.pkcs11.C_FindObjects(f.session, 100);
    f.pkcs11.C_FindObjectsFinal(f.session);
    expect(visible.map((h) => h.toString("hex"))).toEqual([pub.toString("hex")]);
    expectCkr(() => f.pkcs11.C_CreateObject(f.session, data([{ type: P.CKA_PRIVATE, value: true }])), "CKR_USER_NOT_LOGGED_IN");
    f.pkcs11.C_Login(f.session, P.CKU_USER, USER_PIN);
    expectCkr(() => f.pkcs11.C_GetObjectSize(f.session, priv), "CKR_OBJECT_HANDLE_INVALID"); // destroyed at logout
    expect(f.pkcs11.C_GetObjectSize(f.session, tokenPriv)).toBeGreaterThan(0);
  });

  it("needs a R/W session for token objects; session objects die with their session", () => {
    const f = userSession();
    const ro = f.pkcs11.C_OpenSession(f.slot, P.CKF_SERIAL_SESSION);
    expectCkr(() => f.pkcs11.C_CreateObject(ro, data([{ type: P.CKA_TOKEN, value: true }])), "CKR_SESSION_READ_ONLY");
    const sessionObject = f.pkcs11.C_CreateObject(ro, data());
    expect(f.pkcs11.C_GetObjectSize(f.session, sessionObject)).toBeGreaterThan(0); // visible to the application's other sessions
    f.pkcs11.C_CloseSession(ro);
    expectCkr(() => f.pkcs11.C_GetObjectSize(f.session, sessionObject), "CKR_OBJECT_HANDLE_INVALID");
  });

  it("finds objects by template, in batches, and never matches on secret values", () => {
    const f = userSession();
    for (let i = 0; i < 5; i++) f.pkcs11.C_CreateObject(f.session, data([{ type: P.CKA_LABEL, value: "batch" }, { type: P.CKA_APPLICATION, value: `app${i % 2}` }]));
    const key = aesKey(f, Buffer.alloc(16, 1), [{ type: P.CKA_LABEL, value: "batch" }]);
    f.pkcs11.C_FindObjectsInit(f.session, [{ type: P.CKA_LABEL, value: "batch" }, { type: P.CKA_CLASS, value: P.CKO_DATA }]);
    expectCkr(() => f.pkcs11.C_FindObjectsInit(f.session, []), "CKR_OPERATION_ACTIVE");
    expect(f.pkcs11.C_FindObjects(f.session, 3)).toHaveLength(3);
    expect(f.pkcs11.C_FindObjects(f.session, 3)).toHaveLength(2);
    expect(f.pkcs11.C_FindObjects(f.session)).toBeNull();
    f.pkcs11.C_FindObjectsFinal(f.session);
    expectCkr(() => f.pkcs11.C_FindObjects(f.session, 1), "CKR_OPERATION_NOT_INITIALIZED");
    f.pkcs11.C_FindObjectsInit(f.session, [{ type: P.CKA_VALUE, value: Buffer.alloc(16, 1) }]);
    expect(f.pkcs11.C_FindObjects(f.session, 10)).toHaveLength(0);
    f.pkcs11.C_FindObjectsFinal(f.session);
    f.pkcs11.C_FindObjectsInit(f.session, [{ type: P.CKA_KEY_TYPE, value: P.CKK_AES }]);
    expect(f.pkcs11.C_FindObjects(f.session)?.equals(key)).toBe(true);
    f.pkcs11.C_FindObjectsFinal(f.session);
  });

  it("stores EC points DER-wrapped and rejects points off the curve", () => {
    const f = userSession();
    const { publicKey } = ecKeyPair(f);
    const [{ value }] = f.pkcs11.C_GetAttributeValue(f.session, publicKey, [{ type: P.CKA_EC_POINT }]);
    expect(value.subarray(0, 3).toString("hex")).toBe("044104");
    const bad = Buffer.from(value);
    bad[40] ^= 1;
    expectCkr(() => f.pkcs11.C_CreateObject(f.session, [
      { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_EC },
      { type: P.CKA_EC_PARAMS, value: Buffer.from("06082a8648ce3d030107", "hex") }, { type: P.CKA_EC_POINT, value: bad },
    ]), "CKR_ATTRIBUTE_VALUE_INVALID");
    expectCkr(() => f.pkcs11.C_GenerateKeyPair(f.session, { mechanism: P.CKM_EC_KEY_PAIR_GEN },
      [{ type: P.CKA_EC_PARAMS, value: Buffer.from("06052b8104000a", "hex") }], []), "CKR_CURVE_NOT_SUPPORTED");
  });
});
