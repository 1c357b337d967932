// pkcs11js and lifecycle compatibility, attacked as a careless user would: calls before load()
// and after close(), wrongly typed template values, templates sized to exhaust the process.
import { createRequire } from "node:module";

import { describe, expect, it } from "vitest";

import { runGrapheneProgram } from "../../examples/graphene-program.js";
import { MAX_ATTRIBUTE_VALUE_BYTES, MAX_TEMPLATE_ATTRIBUTES } from "../../src/pkcs11/template.js";
import { P, type TokenFixture, outcome, userSession } from "../helpers.js";

const require = createRequire(import.meta.url);
const pkcs11js = require("pkcs11js") as typeof import("pkcs11js");
const graphene = require("graphene-pk11") as typeof import("graphene-pk11");

// Well-formed arguments for every C_ call, so that only the module's state can refuse it.
const H = Buffer.alloc(8);
const M = { mechanism: P.CKM_SHA256 };
const B = () => Buffer.alloc(16);
const ARGS: Record<string, () => unknown[]> = {
  C_Initialize: () => [], C_Finalize: () => [], C_GetInfo: () => [], C_GetSlotList: () => [],
  C_GetSlotInfo: () => [H], C_GetTokenInfo: () => [H], C_GetMechanismList: () => [H], C_GetMechanismInfo: () => [H, P.CKM_SHA256],
  C_InitToken: () => [H, "so-pin-1234", "label"], C_InitPIN: () => [H, "user-pin-1234"], C_SetPIN: () => [H, "old-pin-1", "new-pin-1"],
  C_WaitForSlotEvent: () => [0],
  C_OpenSession: () => [H, P.CKF_SERIAL_SESSION], C_CloseSession: () => [H], C_CloseAllSessions: () => [H],
  C_GetSessionInfo: () => [H], C_Login: () => [H, P.CKU_USER, "user-pin-1234"], C_Logout: () => [H],
  C_CreateObject: () => [H, []], C_CopyObject: () => [H, H, []], C_DestroyObject: () => [H, H], C_GetObjectSize: () => [H, H],
  C_GetAttributeValue: () => [H, H, []], C_SetAttributeValue: () => [H, H, []],
  C_FindObjectsInit: () => [H, []], C_FindObjects: () => [H], C_FindObjectsFinal: () => [H],
  C_EncryptInit: () => [H, M, H], C_Encrypt: () => [H, B(), B()], C_EncryptUpdate: () => [H, B(), B()], C_EncryptFinal: () => [H, B()],
  C_DecryptInit: () => [H, M, H], C_Decrypt: () => [H, B(), B()], C_DecryptUpdate: () => [H, B(), B()], C_DecryptFinal: () => [H, B()],
  C_DigestInit: () => [H, M], C_Digest: () => [H, B(), B()], C_DigestUpdate: () => [H, B()], C_DigestKey: () => [H, H],
  C_DigestFinal: () => [H, B()],
  C_SignInit: () => [H, M, H], C_Sign: () => [H, B(), B()], C_SignUpdate: () => [H, B()], C_SignFinal: () => [H, B()],
  C_VerifyInit: () => [H, M, H], C_Verify: () => [H, B(), B()], C_VerifyUpdate: () => [H, B()], C_VerifyFinal: () => [H, B()],
  C_GenerateKey: () => [H, M, []], C_GenerateKeyPair: () => [H, M, [], []], C_WrapKey: () => [H, M, H, H, B()],
  C_UnwrapKey: () => [H, M, H, B(), []], C_DeriveKey: () => [H, M, H, []],
  C_SeedRandom: () => [H, B()], C_GenerateRandom: () => [H, B()],
  C_SignRecoverInit: () => [H, M, H], C_SignRecover: () => [H, B(), B()],
  C_VerifyRecoverInit: () => [H, M, H], C_VerifyRecover: () => [H, B(), B()],
  C_DigestEncryptUpdate: () => [H, B(), B()], C_DecryptDigestUpdate: () => [H, B(), B()],
  C_SignEncryptUpdate: () => [H, B(), B()], C_DecryptVerifyUpdate: () => [H, B(), B()],
};
const methods = Object.getOwnPropertyNames(P.PKCS11.prototype).filter((name) => name.startsWith("C_"));
const syncMethods = methods.filter((name) => !name.endsWith("Async"));

type AnyCalls = Record<string, (...args: unknown[]) => unknown>;
function callAll(pkcs11: P.PKCS11, names: string[]): { name: string; error: unknown }[] {
  return names.map((name) => {
    try {
      (pkcs11 as unknown as AnyCalls)[name](...ARGS[name]());
      return { name, error: undefined };
    } catch (error) {
      return { name, error };
    }
  });
}
async function callAllAsync(pkcs11: P.PKCS11): Promise<{ name: string; error: unknown }[]> {
  return Promise.all(methods.filter((name) => name.endsWith("Async")).map(async (name) => {
    try {
      await (pkcs11 as unknown as AnyCalls)[name](...ARGS[name.slice(0, -"Async".length)]());
      return { name, error: undefined };
    } catch (error) {
      return { name, error };
    }
  }));
}
function expectNotLoaded(results: { name: string; error: unknown }[]): void {
  for (const { name, error } of results) {
    expect(error, name).toBeInstanceOf(P.NativeError);
    expect(error, name).not.toBeInstanceOf(P.Pkcs11Error);
    expect((error as Error).message, name).toMatch(/^PKCS11 module not loaded yet: call load\(target\)/);
  }
}

describe("lifecycle: load, C_Initialize, C_Finalize, close", () => {
  it("has well-formed arguments for every C_ call (so the sweeps below cover them all)", () => {
    expect(syncMethods.length).toBeGreaterThan(60);
    for (const name of syncMethods) expect(ARGS[name], name).toBeDefined();
  });

  it("C_Initialize without load() answers pkcs11js's NativeError, and says to call load(target)", () => {
    let real: unknown;
    try {
      new pkcs11js.PKCS11().C_Initialize();
    } catch (e) {
      real = e;
    }
    expect(real).toBeInstanceOf(pkcs11js.NativeError);
    expect((real as Error).message).toBe("PKCS11 module not loaded yet");

    let ours: unknown;
    try {
      new P.PKCS11().C_Initialize();
    } catch (e) {
      ours = e;
    }
    expect(ours).toBeInstanceOf(P.NativeError);
    expect(ours).toBeInstanceOf(Error);
    expect((ours as P.NativeError).name).toBe("NativeError");
    expect((ours as P.NativeError).method).toBe("C_Initialize");
    expect((ours as Error).message.startsWith((real as Error).message)).toBe(true);
    expect((ours as Error).message).toContain("load(target)");
  });

  it("every call before load() answers the same NativeError, sync and Async forms alike", async () => {
    const pkcs11 = new P.PKCS11();
    expectNotLoaded(callAll(pkcs11, syncMethods));
    expectNotLoaded(await callAllAsync(pkcs11));
  });

  it("every call after load() but before C_Initialize answers CKR_CRYPTOKI_NOT_INITIALIZED", async () => {
    const pkcs11 = P.load("memory:");
    for (const { name, error } of callAll(pkcs11, syncMethods.filter((n) => n !== "C_Initialize"))) {
      expect(error, name).toBeInstanceOf(P.Pkcs11Error);
      expect((error as P.Pkcs11Error).message, name).toBe("CKR_CRYPTOKI_NOT_INITIALIZED");
      expect((error as P.Pkcs11Error).method, name).toBe(name);
    }
    for (const { name, error } of await callAllAsync(pkcs11)) {
      expect((error as P.Pkcs11Error).message, name).toBe("CKR_CRYPTOKI_NOT_INITIALIZED");
    }
  });

  it("close() unloads: later calls fail as before load(), closing twice is harmless, load() works again", async () => {
    const f = userSession();
    f.pkcs11.C_Finalize();
    f.pkcs11.close();
    expect(f.pkcs11.libPath).toBe("");
    expectNotLoaded(callAll(f.pkcs11, syncMethods));
    expectNotLoaded(await callAllAsync(f.pkcs11));
    f.pkcs11.close();
    expect(() => f.pkcs11.close()).not.toThrow();
    // pkcs11js closes an unloaded module twice without complaint too.
    const theirs = new pkcs11js.PKCS11();
    theirs.close();
    theirs.close();

    f.pkcs11.load("memory:?pinHashIterations=16");
    f.pkcs11.C_Initialize();
    const slot = f.pkcs11.C_GetSlotList(true)[0];
    expect(f.pkcs11.C_GetTokenInfo(slot).flags & P.CKF_TOKEN_INITIALIZED).toBe(0); // a fresh module
  });

  it("close() while still initialized ends this application's sessions (no leak against the session limit)", () => {
    const chip = P.createChip({ pinHashIterations: 16 });
    const pkcs11 = new P.PKCS11(chip);
    pkcs11.C_Initialize();
    const slot = pkcs11.C_GetSlotList(true)[0];
    pkcs11.C_InitToken(slot, "so-pin-1234", "t");
    const slotId = slot.readUInt32LE(0);
    pkcs11.C_OpenSession(slot, P.CKF_SERIAL_SESSION);
    pkcs11.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    expect(chip.getTokenInfo(slotId).sessionCount).toBe(2);
    pkcs11.close();
    expect(chip.getTokenInfo(slotId).sessionCount).toBe(0);
    expect(() => pkcs11.C_GetSlotList()).toThrow(P.NativeError);
  });

  it("graphene-pk11 runs its whole lifecycle down to Module.close(), then refuses calls", () => {
    expect(runGrapheneProgram("memory:?pinHashIterations=16")).toEqual({
      manufacturer: "hsmsim", decrypted: "graphene says hi", verified: true, privateKeys: 1,
    });
    const mod = new graphene.Module(P.load("memory:"));
    mod.initialize();
    mod.finalize();
    mod.close();
    mod.close();
    expect(() => mod.getSlots()).toThrow(/PKCS11 module not loaded yet/);
    expect(() => mod.initialize()).toThrow(/PKCS11 module not loaded yet/);
  });
});

describe("pkcs11js's dual-function calls hsmsim does not offer", () => {
  it("answer CKR_FUNCTION_NOT_SUPPORTED synchronously, through the callback, and as a rejected promise", async () => {
    const f = userSession();
    const calls = ["C_DigestEncryptUpdate", "C_DecryptDigestUpdate", "C_SignEncryptUpdate", "C_DecryptVerifyUpdate"];
    for (const name of calls) {
      const call = (f.pkcs11 as unknown as AnyCalls)[name].bind(f.pkcs11);
      expect(() => call(f.session, B(), B()), name).toThrow("CKR_FUNCTION_NOT_SUPPORTED");
      const viaCallback = await new Promise<unknown[]>((resolve) => call(f.session, B(), B(), (...args: unknown[]) => resolve(args)));
      expect((viaCallback[0] as P.Pkcs11Error).message, name).toBe("CKR_FUNCTION_NOT_SUPPORTED");
      expect(viaCallback[1], name).toBeNull();
      await expect((f.pkcs11 as unknown as AnyCalls)[`${name}Async`](f.session, B(), B()), name).rejects.toThrow("CKR_FUNCTION_NOT_SUPPORTED");
    }
  });
});

describe("the facade holds its backend out of the application's reach", () => {
  it("a PKCS11 has no property or method that yields, replaces or bypasses its backend", () => {
    const pkcs11 = P.load("memory:");
    pkcs11.C_Initialize();
    expect(Object.getOwnPropertyNames(pkcs11)).toEqual(["libPath"]);
    expect(Object.getOwnPropertySymbols(pkcs11)).toEqual([]);
    const extras = Object.getOwnPropertyNames(P.PKCS11.prototype).filter((name) => !name.startsWith("C_")).sort();
    expect(extras).toEqual(["close", "constructor", "getAttributeValues", "load"]);
    // Writing a property named like the old field changes nothing the calls use.
    (pkcs11 as unknown as { backend: unknown }).backend = null;
    expect(pkcs11.C_GetSlotList(true)).toHaveLength(1);
  });
});

describe("templates: every wrongly typed value gets a precise error", () => {
  const f: TokenFixture = userSession();
  const aesTemplate = (valueLen: unknown): P.Template => [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
    { type: P.CKA_VALUE_LEN, value: valueLen as number },
    { type: P.CKA_ENCRYPT, value: true },
  ];
  const generate = (template: P.Template) => () => f.pkcs11.C_GenerateKey(f.session, { mechanism: P.CKM_AES_KEY_GEN }, template);

  function pkcs11Error(fn: () => unknown): P.Pkcs11Error {
    const { error } = outcome(fn);
    if (error === undefined) throw new Error("expected a Pkcs11Error, the call succeeded");
    return error;
  }

  it("CKA_VALUE_LEN: \"32\" answers CKR_ATTRIBUTE_VALUE_INVALID (not CKR_TEMPLATE_INCOMPLETE), naming the attribute", () => {
    const error = pkcs11Error(generate(aesTemplate("32")));
    expect(error.message).toBe("CKR_ATTRIBUTE_VALUE_INVALID");
    expect(error.code).toBe(pkcs11js.CKR_ATTRIBUTE_VALUE_INVALID);
    expect(error.method).toBe("C_GenerateKey");
    expect(error.detail).toMatch(/template\[1\] \(CKA_VALUE_LEN\) must be a CK_ULONG, given a string/);
    expect(f.pkcs11.C_GenerateKey(f.session, { mechanism: P.CKM_AES_KEY_GEN }, aesTemplate(32))).toHaveLength(8);
  });

  it("a value of the wrong C type answers CKR_ATTRIBUTE_VALUE_INVALID in every call that takes an object template", () => {
    const wrong: [string, P.Attribute][] = [
      ["boolean as a string", { type: P.CKA_ENCRYPT, value: "true" }],
      ["boolean as a number", { type: P.CKA_TOKEN, value: 1 }],
      ["CK_ULONG as a boolean", { type: P.CKA_VALUE_LEN, value: true }],
      ["CK_ULONG as a 4-byte Buffer", { type: P.CKA_VALUE_LEN, value: Buffer.alloc(4) }],
      ["CK_ULONG as a string", { type: P.CKA_CLASS, value: "4" }],
      ["date of the wrong length", { type: P.CKA_START_DATE, value: "2024-01-01" }],
      ["mechanism list not of CK_ULONGs", { type: P.CKA_ALLOWED_MECHANISMS, value: Buffer.alloc(5) }],
    ];
    const key = f.pkcs11.C_GenerateKey(f.session, { mechanism: P.CKM_AES_KEY_GEN }, [...aesTemplate(16), { type: P.CKA_WRAP, value: true },
      { type: P.CKA_UNWRAP, value: true }, { type: P.CKA_EXTRACTABLE, value: true }]);
    const wrapped = f.pkcs11.C_WrapKey(f.session, { mechanism: P.CKM_AES_KEY_WRAP }, key, key, Buffer.alloc(64));
    const ec = f.pkcs11.C_GenerateKeyPair(f.session, { mechanism: P.CKM_EC_KEY_PAIR_GEN },
      [{ type: P.CKA_EC_PARAMS, value: Buffer.from("06082a8648ce3d030107", "hex") }], [{ type: P.CKA_DERIVE, value: true }]);
    const calls: [string, (attr: P.Attribute) => unknown][] = [
      ["C_CreateObject", (a) => f.pkcs11.C_CreateObject(f.session, [{ type: P.CKA_CLASS, value: P.CKO_DATA }, a])],
      ["C_CopyObject", (a) => f.pkcs11.C_CopyObject(f.session, key, [a])],
      ["C_SetAttributeValue", (a) => f.pkcs11.C_SetAttributeValue(f.session, key, [a])],
      ["C_GenerateKey", (a) => f.pkcs11.C_GenerateKey(f.session, { mechanism: P.CKM_AES_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 16 }, a])],
      ["C_GenerateKeyPair", (a) => f.pkcs11.C_GenerateKeyPair(f.session, { mechanism: P.CKM_EC_KEY_PAIR_GEN }, [], [a])],
      ["C_UnwrapKey", (a) => f.pkcs11.C_UnwrapKey(f.session, { mechanism: P.CKM_AES_KEY_WRAP }, key, wrapped,
        [{ type: P.CKA_KEY_TYPE, value: P.CKK_AES }, a])],
      ["C_DeriveKey", (a) => f.pkcs11.C_DeriveKey(f.session, { mechanism: P.CKM_ECDH1_DERIVE }, ec.privateKey, [a])],
    ];
    for (const [method, call] of calls) {
      for (const [what, attr] of wrong) {
        const error = pkcs11Error(() => call(attr));
        expect(error.message, `${method}: ${what}`).toBe("CKR_ATTRIBUTE_VALUE_INVALID");
        expect(error.method, `${method}: ${what}`).toBe(method);
        expect(error.detail, `${method}: ${what}`).toMatch(/\(CKA_[A-Z_]+\) must be a CK_/);
      }
    }
  });

  it("numbers that are no CK_ULONG throw a TypeError naming the attribute; an invalid Date too", () => {
    for (const bad of [-1, Number.NaN, 1.5, Number.POSITIVE_INFINITY, 2 ** 60]) {
      expect(generate(aesTemplate(bad)), String(bad)).toThrow(TypeError);
      expect(generate(aesTemplate(bad)), String(bad)).toThrow(/template\[1\]\.value \(CKA_VALUE_LEN\) must be a non-negative integer/);
    }
    const badDate = () => f.pkcs11.C_CreateObject(f.session, [{ type: P.CKA_CLASS, value: P.CKO_DATA }, { type: P.CKA_START_DATE, value: new Date(Number.NaN) }]);
    expect(badDate).toThrow(TypeError);
    expect(badDate).toThrow(/not a valid date/);
    // A safe integer the token cannot use is the token's to refuse.
    expect(pkcs11Error(generate(aesTemplate(2 ** 40))).message).toBe("CKR_ATTRIBUTE_VALUE_INVALID");
  });

  it("a search template with a wrongly typed value finds nothing, as on a real token", () => {
    f.pkcs11.C_FindObjectsInit(f.session, [{ type: P.CKA_CLASS, value: "4" }]);
    expect(f.pkcs11.C_FindObjects(f.session, 10)).toEqual([]);
    f.pkcs11.C_FindObjectsFinal(f.session);
  });

  it("a huge attribute value is refused with a reason before any copy reaches the backend", () => {
    const huge = Buffer.alloc(MAX_ATTRIBUTE_VALUE_BYTES + 1);
    const error = pkcs11Error(() => f.pkcs11.C_CreateObject(f.session, [{ type: P.CKA_CLASS, value: P.CKO_DATA }, { type: P.CKA_VALUE, value: huge }]));
    expect(error.message).toBe("CKR_ATTRIBUTE_VALUE_INVALID");
    expect(error.detail).toMatch(/CKA_VALUE\) is 1048577 bytes/);
    const justFits = Buffer.alloc(MAX_ATTRIBUTE_VALUE_BYTES, 1);
    const object = f.pkcs11.C_CreateObject(f.session, [{ type: P.CKA_CLASS, value: P.CKO_DATA }, { type: P.CKA_VALUE, value: justFits }]);
    expect(f.pkcs11.C_GetAttributeValue(f.session, object, [{ type: P.CKA_VALUE }])[0].value.equals(justFits)).toBe(true);
  });

  it("a sparse template of length 2^32-1 is refused at once (no hang, no abort), in every template call", () => {
    const sparse = new Array(2 ** 32 - 1) as P.Template;
    const key = f.pkcs11.C_GenerateKey(f.session, { mechanism: P.CKM_AES_KEY_GEN }, aesTemplate(16));
    const calls = [
      () => f.pkcs11.C_CreateObject(f.session, sparse),
      () => f.pkcs11.C_FindObjectsInit(f.session, sparse),
      () => f.pkcs11.C_GetAttributeValue(f.session, key, sparse),
      () => f.pkcs11.getAttributeValues(f.session, key, sparse),
      () => f.pkcs11.C_SetAttributeValue(f.session, key, sparse),
      () => f.pkcs11.C_GenerateKey(f.session, { mechanism: P.CKM_AES_KEY_GEN }, sparse),
    ];
    for (const call of calls) expect(call).toThrow(/has 4294967295 attributes; at most 1024/);
    const many = Array.from({ length: MAX_TEMPLATE_ATTRIBUTES + 1 }, () => ({ type: P.CKA_LABEL }));
    expect(() => f.pkcs11.C_GetAttributeValue(f.session, key, many)).toThrow(TypeError);
  });
});
