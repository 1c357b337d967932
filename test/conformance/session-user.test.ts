// Conformance: sessions, the login state table, PINs and lockout.
import { describe, expect, it } from "vitest";

import { P, SO_PIN, USER_PIN, expectCkr, userSession } from "../helpers.js";

const RW = P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION;
const RO = P.CKF_SERIAL_SESSION;

function freshToken(target = "memory:?pinHashIterations=16") {
  const f = userSession(target);
  f.pkcs11.C_CloseAllSessions(f.slot);
  return f;
}

describe("session", () => {
  it("requires CKF_SERIAL_SESSION and reports session states", () => {
    const f = freshToken();
    expectCkr(() => f.pkcs11.C_OpenSession(f.slot, P.CKF_RW_SESSION), "CKR_SESSION_PARALLEL_NOT_SUPPORTED");
    const ro = f.pkcs11.C_OpenSession(f.slot, RO);
    const rw = f.pkcs11.C_OpenSession(f.slot, RW);
    expect(f.pkcs11.C_GetSessionInfo(ro).state).toBe(P.CKS_RO_PUBLIC_SESSION);
    expect(f.pkcs11.C_GetSessionInfo(rw).state).toBe(P.CKS_RW_PUBLIC_SESSION);
    expect(f.pkcs11.C_GetSessionInfo(rw).slotID.equals(f.slot)).toBe(true);
    f.pkcs11.C_Login(ro, P.CKU_USER, USER_PIN);
    // Login in one session changes every session of the application.
    expect(f.pkcs11.C_GetSessionInfo(ro).state).toBe(P.CKS_RO_USER_FUNCTIONS);
    expect(f.pkcs11.C_GetSessionInfo(rw).state).toBe(P.CKS_RW_USER_FUNCTIONS);
    f.pkcs11.C_CloseSession(ro);
    expectCkr(() => f.pkcs11.C_GetSessionInfo(ro), "CKR_SESSION_HANDLE_INVALID");
    expectCkr(() => f.pkcs11.C_CloseSession(ro), "CKR_SESSION_HANDLE_INVALID");
  });

  it("closing the last session logs the application out", () => {
    const f = freshToken();
    const s = f.pkcs11.C_OpenSession(f.slot, RW);
    f.pkcs11.C_Login(s, P.CKU_USER, USER_PIN);
    f.pkcs11.C_CloseSession(s);
    const again = f.pkcs11.C_OpenSession(f.slot, RW);
    expect(f.pkcs11.C_GetSessionInfo(again).state).toBe(P.CKS_RW_PUBLIC_SESSION);
  });

  it("has no R/O SO sessions", () => {
    const f = freshToken();
    const ro = f.pkcs11.C_OpenSession(f.slot, RO);
    const rw = f.pkcs11.C_OpenSession(f.slot, RW);
    expectCkr(() => f.pkcs11.C_Login(rw, P.CKU_SO, SO_PIN), "CKR_SESSION_READ_ONLY_EXISTS");
    f.pkcs11.C_CloseSession(ro);
    f.pkcs11.C_Login(rw, P.CKU_SO, SO_PIN);
    expect(f.pkcs11.C_GetSessionInfo(rw).state).toBe(P.CKS_RW_SO_FUNCTIONS);
    expectCkr(() => f.pkcs11.C_OpenSession(f.slot, RO), "CKR_SESSION_READ_WRITE_SO_EXISTS");
  });

  it("rejects malformed handles with TypeError", () => {
    const f = freshToken();
    expect(() => f.pkcs11.C_CloseSession(Buffer.alloc(4))).toThrow(TypeError);
    expect(() => f.pkcs11.C_OpenSession("0" as unknown as Buffer, RW)).toThrow(/slot must be an 8-byte handle Buffer/);
  });
});

describe("user", () => {
  it("follows the login rules", () => {
    const f = freshToken();
    const s = f.pkcs11.C_OpenSession(f.slot, RW);
    expectCkr(() => f.pkcs11.C_Logout(s), "CKR_USER_NOT_LOGGED_IN");
    expectCkr(() => f.pkcs11.C_Login(s, 7, USER_PIN), "CKR_USER_TYPE_INVALID");
    f.pkcs11.C_Login(s, P.CKU_USER, USER_PIN);
    expectCkr(() => f.pkcs11.C_Login(s, P.CKU_USER, USER_PIN), "CKR_USER_ALREADY_LOGGED_IN");
    expectCkr(() => f.pkcs11.C_Login(s, P.CKU_SO, SO_PIN), "CKR_USER_ANOTHER_ALREADY_LOGGED_IN");
    f.pkcs11.C_Login(s, P.CKU_CONTEXT_SPECIFIC, USER_PIN);
    f.pkcs11.C_Logout(s);
    expectCkr(() => f.pkcs11.C_Login(s, P.CKU_CONTEXT_SPECIFIC, USER_PIN), "CKR_USER_NOT_LOGGED_IN");
  });

  it("needs an initialized user PIN, and C_InitPIN needs the SO", () => {
    const pkcs11 = P.load("memory:?pinHashIterations=16");
    pkcs11.C_Initialize();
    const [slot] = pkcs11.C_GetSlotList(true);
    pkcs11.C_InitToken(slot, SO_PIN, "t");
    const s = pkcs11.C_OpenSession(slot, RW);
    expectCkr(() => pkcs11.C_Login(s, P.CKU_USER, USER_PIN), "CKR_USER_PIN_NOT_INITIALIZED");
    expectCkr(() => pkcs11.C_InitPIN(s, USER_PIN), "CKR_USER_NOT_LOGGED_IN");
    pkcs11.C_Login(s, P.CKU_SO, SO_PIN);
    expectCkr(() => pkcs11.C_InitPIN(s, "12"), "CKR_PIN_LEN_RANGE");
    pkcs11.C_InitPIN(s, USER_PIN);
    pkcs11.C_Logout(s);
    pkcs11.C_Login(s, P.CKU_USER, USER_PIN);
  });

  it("C_SetPIN changes the logged-in user's PIN after checking the old one", () => {
    const f = freshToken();
    const s = f.pkcs11.C_OpenSession(f.slot, RW);
    f.pkcs11.C_Login(s, P.CKU_USER, USER_PIN);
    expectCkr(() => f.pkcs11.C_SetPIN(s, "not-the-pin", "new-pin-1"), "CKR_PIN_INCORRECT");
    f.pkcs11.C_SetPIN(s, USER_PIN, "new-pin-1");
    f.pkcs11.C_Logout(s);
    expectCkr(() => f.pkcs11.C_Login(s, P.CKU_USER, USER_PIN), "CKR_PIN_INCORRECT");
    f.pkcs11.C_Login(s, P.CKU_USER, "new-pin-1");
    const ro = f.pkcs11.C_OpenSession(f.slot, RO);
    expectCkr(() => f.pkcs11.C_SetPIN(ro, "new-pin-1", "other-pin"), "CKR_SESSION_READ_ONLY");
  });

  it("locks the user PIN after 5 consecutive failures, with COUNT_LOW and FINAL_TRY on the way; the SO's C_InitPIN unlocks", () => {
    const f = freshToken();
    const s = f.pkcs11.C_OpenSession(f.slot, RW);
    const flags = () => f.pkcs11.C_GetTokenInfo(f.slot).flags;
    for (let i = 1; i <= 4; i++) {
      expectCkr(() => f.pkcs11.C_Login(s, P.CKU_USER, "wrong-pin"), "CKR_PIN_INCORRECT");
      expect(flags() & P.CKF_USER_PIN_COUNT_LOW).toBeTruthy();
      expect(Boolean(flags() & P.CKF_USER_PIN_FINAL_TRY)).toBe(i === 4);
    }
    expectCkr(() => f.pkcs11.C_Login(s, P.CKU_USER, "wrong-pin"), "CKR_PIN_INCORRECT");
    expect(flags() & P.CKF_USER_PIN_LOCKED).toBeTruthy();
    expectCkr(() => f.pkcs11.C_Login(s, P.CKU_USER, USER_PIN), "CKR_PIN_LOCKED");
    f.pkcs11.C_Login(s, P.CKU_SO, SO_PIN);
    f.pkcs11.C_InitPIN(s, "fresh-pin-1");
    f.pkcs11.C_Logout(s);
    expect(flags() & P.CKF_USER_PIN_LOCKED).toBe(0);
    f.pkcs11.C_Login(s, P.CKU_USER, "fresh-pin-1");
  });

  it("a successful login resets the failure count; the limit is configurable; the SO PIN locks too", () => {
    const f = freshToken("memory:?pinHashIterations=16&maxPinFailures=3");
    const s = f.pkcs11.C_OpenSession(f.slot, RW);
    expectCkr(() => f.pkcs11.C_Login(s, P.CKU_USER, "wrong-pin"), "CKR_PIN_INCORRECT");
    expectCkr(() => f.pkcs11.C_Login(s, P.CKU_USER, "wrong-pin"), "CKR_PIN_INCORRECT");
    f.pkcs11.C_Login(s, P.CKU_USER, USER_PIN);
    expect(f.pkcs11.C_GetTokenInfo(f.slot).flags & P.CKF_USER_PIN_COUNT_LOW).toBe(0);
    f.pkcs11.C_Logout(s);
    for (let i = 0; i < 3; i++) expectCkr(() => f.pkcs11.C_Login(s, P.CKU_SO, "wrong-pin"), "CKR_PIN_INCORRECT");
    expectCkr(() => f.pkcs11.C_Login(s, P.CKU_SO, SO_PIN), "CKR_PIN_LOCKED");
    expect(f.pkcs11.C_GetTokenInfo(f.slot).flags & P.CKF_SO_PIN_LOCKED).toBeTruthy();
  });
});
