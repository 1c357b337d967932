// Accounts, activation and lockout, each rule a test named after it.
import { afterEach, describe, expect, it } from "vitest";

import { expectCkr } from "../helpers.js";
import { type Device, FAST, H, activatedDevice, cuSession, expectHsmError, tempDir } from "./fixture.js";
import { internalsOf } from "../../src/hsm/internals.js";

let device: Device | undefined;
afterEach(() => device?.cleanup());

describe("activation", () => {
  it("a new HSM has only PRECO, and nothing but activation works before it", () => {
    const dir = tempDir();
    const hsm = H.Hsm.create(dir.path, FAST);
    try {
      const preco = hsm.login(H.PRECO_USERNAME, H.PRECO_DEFAULT_PASSWORD);
      expect(preco.role).toBe("PRECO");
      expect(hsm.activated).toBe(false);
      expectHsmError(() => hsm.createUser(preco, "carol", "CU", "carol-password"), "NOT_ACTIVATED");
      expectHsmError(() => hsm.listUsers(preco), "NOT_ACTIVATED");
      const pkcs11 = hsm.pkcs11();
      pkcs11.C_Initialize();
      const session = pkcs11.C_OpenSession(pkcs11.C_GetSlotList(true)[0], H.CKF_SERIAL_SESSION);
      expectCkr(() => pkcs11.C_Login(session, H.CKU_USER, "admin:password"), "CKR_USER_PIN_NOT_INITIALIZED");
    } finally {
      hsm.close();
      dir.cleanup();
    }
  });

  it("PRECO changing its password activates the HSM and becomes the first CO", () => {
    const dir = tempDir();
    const hsm = H.Hsm.create(dir.path, FAST);
    try {
      const preco = hsm.login("admin", "password");
      expectHsmError(() => hsm.changePassword(preco, "admin", "short"), "INVALID_PASSWORD");
      hsm.changePassword(preco, "admin", "co-password-1");
      expect(hsm.activated).toBe(true);
      expectHsmError(() => hsm.login("admin", "password"), "LOGIN_FAILED");
      const co = hsm.login("admin", "co-password-1");
      expect(co.role).toBe("CO");
      expect(hsm.listUsers(co).map((u) => [u.username, u.role])).toEqual([["admin", "CO"]]);
      expectHsmError(() => hsm.listUsers(preco), "NOT_LOGGED_IN"); // PRECO's login ended with activation
    } finally {
      hsm.close();
      dir.cleanup();
    }
  });
});

describe("users", () => {
  it("a CO creates, lists and deletes users; a CU cannot", () => {
    device = activatedDevice();
    const { hsm, co } = device;
    hsm.createUser(co, "carol", "CO", "carol-password");
    expectHsmError(() => hsm.createUser(co, "carol", "CU", "carol-password"), "USER_EXISTS");
    expect(hsm.listUsers(co).map((u) => u.username)).toEqual(["admin", "alice", "bob", "carol"]);
    const alice = hsm.login("alice", "alice-password");
    expectHsmError(() => hsm.createUser(alice, "dave", "CU", "dave-password"), "ACCESS_DENIED");
    expectHsmError(() => hsm.deleteUser(alice, "bob"), "ACCESS_DENIED");
    hsm.deleteUser(co, "carol");
    expectHsmError(() => hsm.deleteUser(co, "carol"), "USER_NOT_FOUND");
    expectHsmError(() => hsm.deleteUser(co, "admin"), "ACCESS_DENIED"); // not itself
  });

  it("usernames are 1–31 characters of [A-Za-z0-9_] and passwords 8–32 characters", () => {
    device = activatedDevice();
    const { hsm, co } = device;
    for (const name of ["", "x".repeat(32), "has space", "dash-ed", "ünï"]) expectHsmError(() => hsm.createUser(co, name, "CU", "password1"), "INVALID_USERNAME");
    for (const password of ["1234567", "x".repeat(33)]) expectHsmError(() => hsm.createUser(co, "ok_name", "CU", password), "INVALID_PASSWORD");
    hsm.createUser(co, "A_1".padEnd(31, "z"), "CU", "x".repeat(32));
  });

  it("a CO changes any user's password; a CU changes only its own", () => {
    device = activatedDevice();
    const { hsm, co } = device;
    hsm.changePassword(co, "alice", "alice-new-password");
    const alice = hsm.login("alice", "alice-new-password");
    expectHsmError(() => hsm.changePassword(alice, "bob", "bob-new-password"), "ACCESS_DENIED");
    hsm.changePassword(alice, "alice", "alice-third-password");
    hsm.login("alice", "alice-third-password");
  });

  it("users per HSM type: hsm1.medium holds 250", () => {
    device = activatedDevice({ type: "hsm1.medium" });
    const { hsm, co } = device;
    for (let i = hsm.listUsers(co).length; i < 250; i++) hsm.createUser(co, `user_${i}`, "CU", "password-1");
    expectHsmError(() => hsm.createUser(co, "one_too_many", "CU", "password-1"), "QUOTA_EXCEEDED");
    expect(hsm.listUsers(co)).toHaveLength(250);
  });

  it("passwords are stored only as salted slow hashes", () => {
    device = activatedDevice();
    const rows = internalsOf(device.hsm).store.users();
    const alice = rows.find((r) => r.name === "alice")!;
    expect(alice.hash.includes(Buffer.from("alice-password"))).toBe(false);
    expect(alice.salt.length).toBe(16);
    expect(new Set(rows.map((r) => r.salt.toString("hex"))).size).toBe(rows.length);
  });
});

describe("lockout", () => {
  it("the 5th consecutive failed login locks the account; even the right password then fails", () => {
    device = activatedDevice();
    const { hsm } = device;
    for (let i = 1; i <= 5; i++) expectHsmError(() => hsm.login("alice", "wrong-password"), "LOGIN_FAILED");
    expectHsmError(() => hsm.login("alice", "alice-password"), "ACCOUNT_LOCKED");
    expect(hsm.listUsers(device.co).find((u) => u.username === "alice")).toMatchObject({ locked: true, failedLogins: 5 });
  });

  it("a successful login resets the counter", () => {
    device = activatedDevice();
    const { hsm } = device;
    for (let i = 0; i < 4; i++) expectHsmError(() => hsm.login("alice", "wrong-password"), "LOGIN_FAILED");
    hsm.login("alice", "alice-password");
    for (let i = 0; i < 4; i++) expectHsmError(() => hsm.login("alice", "wrong-password"), "LOGIN_FAILED");
    hsm.login("alice", "alice-password");
  });

  it("a CO setting a new password unlocks; COs lock too and another CO resets them", () => {
    device = activatedDevice({ maxLoginFailures: 3 });
    const { hsm, co } = device;
    for (let i = 0; i < 3; i++) expectHsmError(() => hsm.login("alice", "wrong-password"), "LOGIN_FAILED");
    expectHsmError(() => hsm.login("alice", "alice-password"), "ACCOUNT_LOCKED");
    hsm.changePassword(co, "alice", "alice-reset-password");
    hsm.login("alice", "alice-reset-password");
    hsm.createUser(co, "second_co", "CO", "second-co-password");
    for (let i = 0; i < 3; i++) expectHsmError(() => hsm.login("admin", "wrong-password"), "LOGIN_FAILED");
    expectHsmError(() => hsm.login("admin", "co-password-1"), "ACCOUNT_LOCKED");
    hsm.changePassword(hsm.login("second_co", "second-co-password"), "admin", "admin-reset-password");
    hsm.login("admin", "admin-reset-password");
  });

  it("lockout counters are persisted and every attempt is audited", () => {
    device = activatedDevice();
    const { hsm, dir } = device;
    for (let i = 0; i < 5; i++) expectHsmError(() => hsm.login("bob", "wrong-password"), "LOGIN_FAILED");
    hsm.close();
    const again = H.Hsm.open(dir, FAST);
    try {
      expectHsmError(() => again.login("bob", "bob-password"), "ACCOUNT_LOCKED");
      const attempts = again.auditLog().filter((e) => e.operation === "LOGIN" && e.actor === "bob").map((e) => e.result);
      expect(attempts).toEqual(["LOGIN_FAILED", "LOGIN_FAILED", "LOGIN_FAILED", "LOGIN_FAILED", "LOGIN_FAILED", "ACCOUNT_LOCKED"]);
    } finally {
      again.close();
    }
    device.hsm = again;
  });

  it("PKCS#11 login: CKR_PIN_INCORRECT, then CKR_PIN_LOCKED after the 5th failure; COs cannot log in", () => {
    device = activatedDevice();
    const pkcs11 = device.hsm.pkcs11();
    pkcs11.C_Initialize();
    const session = pkcs11.C_OpenSession(pkcs11.C_GetSlotList(true)[0], H.CKF_SERIAL_SESSION);
    for (let i = 0; i < 5; i++) expectCkr(() => pkcs11.C_Login(session, H.CKU_USER, "bob:wrong-password"), "CKR_PIN_INCORRECT");
    expectCkr(() => pkcs11.C_Login(session, H.CKU_USER, "bob:bob-password"), "CKR_PIN_LOCKED");
    expectCkr(() => pkcs11.C_Login(session, H.CKU_USER, "no colon at all"), "CKR_PIN_INCORRECT");
    expectCkr(() => pkcs11.C_Login(session, H.CKU_USER, "admin:co-password-1"), "CKR_USER_TYPE_INVALID");
    expectCkr(() => pkcs11.C_Login(session, H.CKU_SO, "admin:co-password-1"), "CKR_USER_TYPE_INVALID");
    pkcs11.C_Login(session, H.CKU_USER, "alice:alice-password");
    expectCkr(() => pkcs11.C_Login(session, H.CKU_USER, "alice:alice-password"), "CKR_USER_ALREADY_LOGGED_IN");
  });

  it("C_InitToken and C_InitPIN are not part of the CloudHSM profile", () => {
    device = activatedDevice();
    const { pkcs11, slot, session } = cuSession(device.hsm, "alice", "alice-password");
    expectCkr(() => pkcs11.C_InitToken(slot, "x", "y"), "CKR_FUNCTION_NOT_SUPPORTED");
    expectCkr(() => pkcs11.C_InitPIN(session, "whatever"), "CKR_FUNCTION_NOT_SUPPORTED");
    pkcs11.C_SetPIN(session, "alice-password", "alice-via-pkcs11");
    device.hsm.login("alice", "alice-via-pkcs11");
  });
});

describe("deterministic device", () => {
  it("with a seeded chip, seeded random bytes and an injected clock, the same calls give the same HSM", async () => {
    const { Rng } = await import("../../src/sim/index.js");
    const run = () => {
      const dir = tempDir();
      const rng = new Rng("device-determinism");
      let now = 1_700_000_000_000_000;
      const hsm = H.Hsm.create(dir.path, { ...FAST, seed: Buffer.from("chip seed"), randomBytes: (n) => rng.bytes(n), clockUs: () => (now += 17) });
      hsm.changePassword(hsm.login("admin", "password"), "admin", "co-password-1");
      hsm.createUser(hsm.login("admin", "co-password-1"), "alice", "CU", "alice-password");
      const { pkcs11, session } = cuSession(hsm, "alice", "alice-password");
      pkcs11.C_GenerateKey(session, { mechanism: H.CKM_AES_KEY_GEN }, [{ type: H.CKA_VALUE_LEN, value: 32 }, { type: H.CKA_TOKEN, value: true }]);
      const result = { id: hsm.id, audit: hsm.auditLog().map((e) => e.hash), keys: internalsOf(hsm).store.keys().map((k) => k.record.toString("hex")),
        users: internalsOf(hsm).store.users().map((u) => u.salt.toString("hex")) };
      hsm.close();
      dir.cleanup();
      return result;
    };
    const first = run(), second = run();
    expect(second).toEqual(first);
    expect(first.audit.length).toBeGreaterThan(5);
  });
});
