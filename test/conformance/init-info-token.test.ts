// Conformance: C_Initialize/C_Finalize, info calls, slots and token initialization.
import { describe, expect, it } from "vitest";

import { P, SO_PIN, expectCkr, userSession } from "../helpers.js";

describe("init", () => {
  it("refuses calls before C_Initialize and a second C_Initialize", () => {
    const pkcs11 = P.load("memory:");
    expectCkr(() => pkcs11.C_GetSlotList(), "CKR_CRYPTOKI_NOT_INITIALIZED");
    pkcs11.C_Initialize();
    expectCkr(() => pkcs11.C_Initialize(), "CKR_CRYPTOKI_ALREADY_INITIALIZED");
    pkcs11.C_Finalize();
    expectCkr(() => pkcs11.C_GetInfo(), "CKR_CRYPTOKI_NOT_INITIALIZED");
  });

  it("C_Finalize closes every session but keeps token objects", () => {
    const f = userSession();
    const obj = f.pkcs11.C_CreateObject(f.session, [{ type: P.CKA_CLASS, value: P.CKO_DATA }, { type: P.CKA_TOKEN, value: true }, { type: P.CKA_LABEL, value: "kept" }]);
    f.pkcs11.C_Finalize();
    f.pkcs11.C_Initialize();
    expectCkr(() => f.pkcs11.C_GetSessionInfo(f.session), "CKR_SESSION_HANDLE_INVALID");
    const s = f.pkcs11.C_OpenSession(f.slot, P.CKF_SERIAL_SESSION);
    const [{ value }] = f.pkcs11.C_GetAttributeValue(s, obj, [{ type: P.CKA_LABEL }]);
    expect(value.toString()).toBe("kept");
  });
});

describe("chip options", () => {
  it("are checked, in TypeScript by name and again in native code", () => {
    expect(() => P.createChip({ slotCount: Number.NaN })).toThrow("options.slotCount must be an integer from 0 to 64");
    expect(() => P.createChip({ maxKeys: -1 })).toThrow(/options\.maxKeys/);
    expect(() => P.createChip({ seed: "abc" as unknown as Buffer })).toThrow("options.seed must be a Buffer");
    expect(() => P.createChip(null as unknown as P.ChipOptions)).toThrow(TypeError);
    const Native = (P.createChip({}) as unknown as { constructor: new (o: unknown) => unknown }).constructor;
    expect(() => new Native({ slotCount: Number.NaN })).toThrow(/chip option slotCount/);
    expect(() => new Native({ maxPinFailures: 0 })).toThrow(/out of range/);
    expect(() => P.load("memory:?slots=0")).toThrow(/slots must be an integer/);
    expect(() => P.load("memory:?bogus=1")).toThrow(/unknown target option/);
    expect(() => P.load("pkcs11:/usr/lib/x.so")).toThrow(/unknown target/);
  });
});

describe("info", () => {
  it("identifies hsmsim in C_GetInfo, C_GetSlotInfo and C_GetTokenInfo", () => {
    const f = userSession();
    const info = f.pkcs11.C_GetInfo();
    expect(info.manufacturerID.trim()).toBe("hsmsim");
    expect(info.cryptokiVersion).toEqual({ major: 2, minor: 40 });
    expect(info.manufacturerID).toHaveLength(32);
    const slotInfo = f.pkcs11.C_GetSlotInfo(f.slot);
    expect(slotInfo.flags & P.CKF_TOKEN_PRESENT).toBeTruthy();
    const token = f.pkcs11.C_GetTokenInfo(f.slot);
    expect(token.manufacturerID.trim()).toBe("hsmsim");
    expect(token.label.trim()).toBe("test token");
    expect(token.flags & P.CKF_TOKEN_INITIALIZED).toBeTruthy();
    expect(token.flags & P.CKF_USER_PIN_INITIALIZED).toBeTruthy();
    expect(token.flags & P.CKF_RNG).toBeTruthy();
    expect(token.sessionCount).toBe(1);
    expect(token.rwSessionCount).toBe(1);
  });

  it("lists mechanisms with their info and refuses unknown ones", () => {
    const f = userSession();
    const list = f.pkcs11.C_GetMechanismList(f.slot);
    for (const m of [P.CKM_AES_GCM, P.CKM_AES_KEY_WRAP, P.CKM_AES_KEY_WRAP_KWP, P.CKM_AES_CBC_PAD, P.CKM_SHA256_HMAC,
      P.CKM_SHA512_HMAC_GENERAL, P.CKM_ECDSA, P.CKM_ECDSA_SHA384, P.CKM_ECDH1_DERIVE, P.CKM_EC_KEY_PAIR_GEN, P.CKM_SHA256]) {
      expect(list).toContain(m);
    }
    const gcmInfo = f.pkcs11.C_GetMechanismInfo(f.slot, P.CKM_AES_GCM);
    expect(gcmInfo.minKeySize).toBe(16);
    expect(gcmInfo.flags & P.CKF_ENCRYPT).toBeTruthy();
    expectCkr(() => f.pkcs11.C_GetMechanismInfo(f.slot, P.CKM_DES3_CBC), "CKR_MECHANISM_INVALID");
    expectCkr(() => f.pkcs11.C_GetMechanismList(Buffer.from([9, 0, 0, 0, 0, 0, 0, 0])), "CKR_SLOT_ID_INVALID");
  });
});

describe("token", () => {
  it("has one free slot, and initializing it makes a new free slot appear", () => {
    const pkcs11 = P.load("memory:?pinHashIterations=16");
    pkcs11.C_Initialize();
    const before = pkcs11.C_GetSlotList(true);
    expect(before).toHaveLength(1);
    expect(pkcs11.C_GetTokenInfo(before[0]).flags & P.CKF_TOKEN_INITIALIZED).toBe(0);
    expectCkr(() => pkcs11.C_OpenSession(before[0], P.CKF_SERIAL_SESSION), "CKR_TOKEN_NOT_RECOGNIZED");
    expect(pkcs11.C_InitToken(before[0], SO_PIN, "first")).toBe("first".padEnd(32));
    const after = pkcs11.C_GetSlotList(true);
    expect(after).toHaveLength(2);
    expect(pkcs11.C_GetTokenInfo(after[1]).flags & P.CKF_TOKEN_INITIALIZED).toBe(0);
  });

  it("honours a fixed slot count", () => {
    const pkcs11 = P.load("memory:?slots=3&pinHashIterations=16");
    pkcs11.C_Initialize();
    const slots = pkcs11.C_GetSlotList(true);
    expect(slots).toHaveLength(3);
    pkcs11.C_InitToken(slots[2], SO_PIN, "third");
    expect(pkcs11.C_GetSlotList(true)).toHaveLength(3);
  });

  it("re-initializing needs the SO PIN and no open sessions, and wipes the token's objects", () => {
    const f = userSession();
    f.pkcs11.C_CreateObject(f.session, [{ type: P.CKA_CLASS, value: P.CKO_DATA }, { type: P.CKA_TOKEN, value: true }]);
    expectCkr(() => f.pkcs11.C_InitToken(f.slot, SO_PIN, "again"), "CKR_SESSION_EXISTS");
    f.pkcs11.C_CloseAllSessions(f.slot);
    expectCkr(() => f.pkcs11.C_InitToken(f.slot, "wrong-pin", "again"), "CKR_PIN_INCORRECT");
    f.pkcs11.C_InitToken(f.slot, SO_PIN, "again");
    const s = f.pkcs11.C_OpenSession(f.slot, P.CKF_SERIAL_SESSION);
    f.pkcs11.C_FindObjectsInit(s, []);
    expect(f.pkcs11.C_FindObjects(s, 10)).toHaveLength(0);
    expect(f.pkcs11.C_GetTokenInfo(f.slot).flags & P.CKF_USER_PIN_INITIALIZED).toBe(0);
  });

  it("checks PIN lengths", () => {
    const pkcs11 = P.load("memory:?pinHashIterations=16");
    pkcs11.C_Initialize();
    const [slot] = pkcs11.C_GetSlotList(true);
    expectCkr(() => pkcs11.C_InitToken(slot, "123", "short"), "CKR_PIN_LEN_RANGE");
    expectCkr(() => pkcs11.C_InitToken(slot, "x".repeat(256), "long"), "CKR_PIN_LEN_RANGE");
  });
});
