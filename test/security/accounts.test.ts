// Attacks on the device's accounts, each made the way an attacker would make it: a PRECO
// login kept past activation, capabilities kept past a delete or a password reset (here and
// through replication), writing the audit log through whatever an Hsm or an Actor reaches,
// unlocking by reopening, telling locked or existing accounts apart, and case variants of names.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { internalsOf } from "../../src/hsm/internals.js";
import { passwordDerivations } from "../../src/hsm/passwords.js";
import { expectCkr } from "../helpers.js";
import { type Device, FAST, H, activatedDevice, cloneHsm, cuSession, expectHsmError, tempDir, tokenAesKey } from "../hsm/fixture.js";

let device: Device | undefined;
const cleanups: (() => void)[] = [];
afterEach(() => {
  device?.cleanup();
  device = undefined;
  while (cleanups.length) cleanups.pop()!();
});

function freshHsm(options: H.HsmOptions = {}): { hsm: H.Hsm; dir: string } {
  const dir = tempDir();
  const hsm = H.Hsm.create(dir.path, { ...FAST, ...options });
  cleanups.push(() => {
    hsm.close();
    dir.cleanup();
  });
  return { hsm, dir: dir.path };
}

function auditCount(hsm: H.Hsm, operation: string, result = "OK"): number {
  return hsm.auditLog().filter((e) => e.operation === operation && e.result === result).length;
}

describe("PRECO is gone after activation", () => {
  it("a PRECO Actor taken before activation cannot re-activate and take over the CO account", () => {
    const { hsm } = freshHsm();
    const attacker = hsm.login(H.PRECO_USERNAME, H.PRECO_DEFAULT_PASSWORD); // the default password is public
    const admin = hsm.login(H.PRECO_USERNAME, H.PRECO_DEFAULT_PASSWORD);
    hsm.changePassword(admin, "admin", "real-co-password");
    const appUserBefore = internalsOf(hsm).store.user("app_user")!;

    expectHsmError(() => hsm.changePassword(attacker, "admin", "attacker-password"), "NOT_LOGGED_IN");
    expectHsmError(() => hsm.createUser(attacker, "mallory", "CU", "mallory-password"), "NOT_LOGGED_IN");
    expectHsmError(() => hsm.listUsers(attacker), "NOT_LOGGED_IN");

    expect(auditCount(hsm, "ACTIVATE")).toBe(1);
    expectHsmError(() => hsm.login("admin", "attacker-password"), "LOGIN_FAILED");
    const co = hsm.login("admin", "real-co-password");
    expect(co.role).toBe("CO");
    expect(hsm.listUsers(co).map((u) => u.username)).toEqual(["admin"]);
    // app_user was made once, at the one activation.
    expect(internalsOf(hsm).store.user("app_user")!.hash.equals(appUserBefore.hash)).toBe(true);
    expect(internalsOf(hsm).state.entriesAfter(0, 0).filter((e) => e.change.kind === "activate")).toHaveLength(1);
  });

  it("a PRECO login after activation fails, and PRECO's default password opens nothing", () => {
    const { hsm } = freshHsm();
    hsm.changePassword(hsm.login("admin", "password"), "admin", "real-co-password");
    expectHsmError(() => hsm.login("admin", "password"), "LOGIN_FAILED");
    expectHsmError(() => hsm.login("ADMIN", "password"), "LOGIN_FAILED");
  });
});

describe("revocation on the next call", () => {
  it("a deleted CO's Actor creates no users", () => {
    device = activatedDevice();
    const { hsm, co } = device;
    hsm.createUser(co, "carol", "CO", "carol-password");
    const carol = hsm.login("carol", "carol-password");
    hsm.deleteUser(co, "carol");
    expectHsmError(() => hsm.createUser(carol, "mallory", "CU", "mallory-password"), "NOT_LOGGED_IN");
    expectHsmError(() => hsm.changePassword(carol, "admin", "taken-over-pass"), "NOT_LOGGED_IN");
    expectHsmError(() => hsm.deleteUser(carol, "alice"), "NOT_LOGGED_IN");
    expect(hsm.listUsers(co).map((u) => u.username)).toEqual(["admin", "alice", "bob"]);
    // Re-creating the name does not bring the old Actor back: a new account is a new credential.
    hsm.createUser(co, "carol", "CO", "carol-password");
    expectHsmError(() => hsm.createUser(carol, "mallory", "CU", "mallory-password"), "NOT_LOGGED_IN");
  });

  it("an Actor does not survive a CO's password reset", () => {
    device = activatedDevice();
    const { hsm, co } = device;
    const alice = hsm.login("alice", "alice-password");
    hsm.changePassword(co, "alice", "alice-reset-pass");
    expectHsmError(() => hsm.changePassword(alice, "alice", "alice-chosen-pass"), "NOT_LOGGED_IN");
    expectHsmError(() => hsm.listUsers(alice), "NOT_LOGGED_IN");
    hsm.login("alice", "alice-reset-pass"); // the reset password is the one that works
  });

  it("an Actor does not survive its own password change, nor does any other Actor of that user", () => {
    device = activatedDevice();
    const { hsm, co } = device;
    const alice = hsm.login("alice", "alice-password");
    const aliceElsewhere = hsm.login("alice", "alice-password");
    hsm.changePassword(alice, "alice", "alice-new-password");
    expectHsmError(() => hsm.listUsers(alice), "NOT_LOGGED_IN");
    expectHsmError(() => hsm.changePassword(aliceElsewhere, "alice", "stolen-password"), "NOT_LOGGED_IN");
    const again = hsm.login("alice", "alice-new-password");
    expect(hsm.listUsers(again)).toHaveLength(3);
    // A CO's own change ends its other Actors too.
    const coElsewhere = hsm.login("admin", "co-password-1");
    hsm.changePassword(co, "admin", "co-password-2");
    expectHsmError(() => hsm.createUser(coElsewhere, "mallory", "CU", "mallory-password"), "NOT_LOGGED_IN");
  });

  it("a deleted CU's open session creates no token key and loses its session objects", () => {
    device = activatedDevice();
    const { hsm, co } = device;
    const alice = cuSession(hsm, "alice", "alice-password");
    const sessionKey = alice.pkcs11.C_GenerateKey(alice.session, { mechanism: H.CKM_AES_KEY_GEN }, [{ type: H.CKA_VALUE_LEN, value: 32 }, { type: H.CKA_ENCRYPT, value: true }]);
    alice.pkcs11.C_EncryptInit(alice.session, { mechanism: H.CKM_AES_CBC_PAD, parameter: Buffer.alloc(16) }, sessionKey); // works before
    alice.pkcs11.C_Encrypt(alice.session, Buffer.alloc(16), Buffer.alloc(32));
    hsm.deleteUser(co, "alice");

    let created: Buffer | undefined;
    expect(() => {
      created = tokenAesKey(alice.pkcs11, alice.session, "orphan");
    }).toThrow(H.Pkcs11Error);
    expect(created).toBeUndefined();
    expect(internalsOf(hsm).store.keys()).toHaveLength(0);
    expect(alice.pkcs11.C_GetSessionInfo(alice.session).state).toBe(H.CKS_RW_PUBLIC_SESSION);
    expect(() => alice.pkcs11.C_EncryptInit(alice.session, { mechanism: H.CKM_AES_CBC_PAD, parameter: Buffer.alloc(16) }, sessionKey))
      .toThrow(H.Pkcs11Error);
    expect(auditCount(hsm, "GENERATE_KEY")).toBe(1); // only the session key, made before the delete
  });

  it("a token key generated asynchronously while its user is deleted is not kept", async () => {
    device = activatedDevice();
    const { hsm, co } = device;
    const alice = cuSession(hsm, "alice", "alice-password");
    const pending = alice.pkcs11.C_GenerateKeyAsync(alice.session, { mechanism: H.CKM_AES_KEY_GEN },
      [{ type: H.CKA_VALUE_LEN, value: 32 }, { type: H.CKA_TOKEN, value: true }]);
    hsm.deleteUser(co, "alice"); // before the worker's result comes back to JavaScript
    await expect(pending).rejects.toBeInstanceOf(H.Pkcs11Error);
    expect(internalsOf(hsm).store.keys()).toHaveLength(0);
    expect(internalsOf(hsm).keyIds.size).toBe(0);
  });

  it("a CO's password reset logs the user's other applications out; the one that ran C_SetPIN stays in", () => {
    device = activatedDevice();
    const { hsm, co } = device;
    const first = cuSession(hsm, "alice", "alice-password");
    const second = cuSession(hsm, "alice", "alice-password");
    second.pkcs11.C_SetPIN(second.session, "alice-password", "alice-new-password");
    expect(second.pkcs11.C_GetSessionInfo(second.session).state).toBe(H.CKS_RW_USER_FUNCTIONS);
    tokenAesKey(second.pkcs11, second.session, "still works");
    expect(first.pkcs11.C_GetSessionInfo(first.session).state).toBe(H.CKS_RW_PUBLIC_SESSION);
    expect(() => tokenAesKey(first.pkcs11, first.session, "old password")).toThrow(H.Pkcs11Error);

    hsm.changePassword(co, "alice", "alice-reset-pass");
    expect(second.pkcs11.C_GetSessionInfo(second.session).state).toBe(H.CKS_RW_PUBLIC_SESSION);
    expect(() => tokenAesKey(second.pkcs11, second.session, "after reset")).toThrow(H.Pkcs11Error);
    // The revoked application may log in again, with the new password.
    second.pkcs11.C_Login(second.session, H.CKU_USER, "alice:alice-reset-pass");
    tokenAesKey(second.pkcs11, second.session, "new login");
    // Keys of a user whose password was reset stay the user's.
    const alice = hsm.login("alice", "alice-reset-pass");
    const owned = hsm.auditLog().filter((e) => e.operation === "GENERATE_KEY" && e.result === "OK").flatMap((e) => e.keys);
    expect(owned).toHaveLength(2);
    for (const keyId of owned) expect(hsm.describeKey(alice, keyId).owner).toBe("alice");
  });

  it("C_SetPIN with a new PIN of the wrong length is CKR_PIN_LEN_RANGE and changes nothing", () => {
    device = activatedDevice();
    const alice = cuSession(device.hsm, "alice", "alice-password");
    expectCkr(() => alice.pkcs11.C_SetPIN(alice.session, "alice-password", "short"), "CKR_PIN_LEN_RANGE");
    expectCkr(() => alice.pkcs11.C_SetPIN(alice.session, "alice-password", "x".repeat(33)), "CKR_PIN_LEN_RANGE");
    device.hsm.login("alice", "alice-password");
  });

  it("a delete or a reset replicated from another HSM ends the user's Actors and sessions there", () => {
    const root = mkdtempSync(join(tmpdir(), "hsmsim-revoke-"));
    const a = H.Hsm.create(join(root, "a"), { ...FAST, origin: 1 });
    const b = cloneHsm(a, join(root, "b"), { ...FAST, origin: 2 });
    cleanups.push(() => {
      a.close();
      b.close();
      rmSync(root, { recursive: true, force: true });
    });
    const sync = () => {
      for (const entry of internalsOf(a).state.entriesAfter(1, internalsOf(b).state.head(1))) internalsOf(b).state.apply(entry);
    };
    a.changePassword(a.login("admin", "password"), "admin", "co-password-1");
    const co = a.login("admin", "co-password-1");
    a.createUser(co, "alice", "CU", "alice-password");
    a.createUser(co, "bob", "CU", "bob-password");
    sync();

    const aliceOnB = b.login("alice", "alice-password");
    const aliceSessionOnB = cuSession(b, "alice", "alice-password");
    a.deleteUser(co, "alice");
    sync();
    expectHsmError(() => b.listUsers(aliceOnB), "NOT_LOGGED_IN");
    expect(aliceSessionOnB.pkcs11.C_GetSessionInfo(aliceSessionOnB.session).state).toBe(H.CKS_RW_PUBLIC_SESSION);
    expect(() => tokenAesKey(aliceSessionOnB.pkcs11, aliceSessionOnB.session, "orphan")).toThrow(H.Pkcs11Error);
    expect(internalsOf(b).store.keys()).toHaveLength(0);

    const bobOnB = b.login("bob", "bob-password");
    const bobSessionOnB = cuSession(b, "bob", "bob-password");
    a.changePassword(co, "bob", "bob-reset-pass1");
    sync();
    expectHsmError(() => b.listUsers(bobOnB), "NOT_LOGGED_IN");
    expect(bobSessionOnB.pkcs11.C_GetSessionInfo(bobSessionOnB.session).state).toBe(H.CKS_RW_PUBLIC_SESSION);
    b.login("bob", "bob-reset-pass1");
  });

  it("a user who owns keys still cannot be deleted", () => {
    device = activatedDevice();
    const { hsm, co } = device;
    const alice = cuSession(hsm, "alice", "alice-password");
    tokenAesKey(alice.pkcs11, alice.session, "kept");
    expectHsmError(() => hsm.deleteUser(co, "alice"), "ACCESS_DENIED");
    expect(alice.pkcs11.C_GetSessionInfo(alice.session).state).toBe(H.CKS_RW_USER_FUNCTIONS);
  });
});

describe("the audit log cannot be written from outside", () => {
  /** Every object and function reachable from `roots` through own and prototype properties. */
  function reachable(roots: object[]): Map<object, string> {
    const seen = new Map<object, string>();
    const stack: [unknown, string][] = roots.map((r, i) => [r, `root${i}`]);
    const builtins = new Set<unknown>([Object.prototype, Function.prototype, Array.prototype, Buffer.prototype, Uint8Array.prototype,
      Object.getPrototypeOf(Uint8Array.prototype), Map.prototype, Set.prototype, Promise.prototype]);
    while (stack.length) {
      const [value, path] = stack.pop()!;
      if ((typeof value !== "object" && typeof value !== "function") || value === null || seen.has(value) || builtins.has(value)) continue;
      seen.set(value, path);
      if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) continue;
      stack.push([Object.getPrototypeOf(value), `${path}.__proto__`]);
      for (const key of Reflect.ownKeys(value)) {
        const descriptor = Object.getOwnPropertyDescriptor(value, key)!;
        let child: unknown = descriptor.value;
        if (descriptor.get) {
          try {
            child = descriptor.get.call(roots.find((r) => value === r || Object.getPrototypeOf(r) === value) ?? value);
          } catch {
            child = undefined;
          }
        }
        stack.push([child, `${path}.${String(key)}`]);
      }
    }
    return seen;
  }

  it("no property of an Hsm, an Actor or a PKCS11 application leads to the store, the chip or an audit append", () => {
    device = activatedDevice();
    const { hsm, co } = device;
    const alice = cuSession(hsm, "alice", "alice-password");
    const objects = reachable([hsm, co, hsm.login("alice", "alice-password"), alice.pkcs11]);
    const names = new Set<string>();
    for (const object of objects.keys()) for (const key of Reflect.ownKeys(object)) names.add(String(key));
    for (const forbidden of ["audit", "appendAudit", "store", "chip", "state", "principalOf", "keyIds", "openChipSession", "transaction", "setFailures", "insertUser"]) {
      expect(names.has(forbidden), `"${forbidden}" is reachable`).toBe(false);
    }
    const internals = internalsOf(hsm);
    for (const secret of [internals, internals.store, internals.chip, internals.state]) expect(objects.has(secret)).toBe(false);
    // The readers that are public read; they append nothing.
    const before = hsm.auditLog().length;
    hsm.verifyAudit();
    hsm.auditLog();
    expect(hsm.auditLog().length).toBe(before);
  });
});

describe("lockout", () => {
  it("reopening with a higher maxLoginFailures does not unlock a locked account", () => {
    const { hsm, dir } = freshHsm({ maxLoginFailures: 3 });
    hsm.changePassword(hsm.login("admin", "password"), "admin", "co-password-1");
    hsm.createUser(hsm.login("admin", "co-password-1"), "alice", "CU", "alice-password");
    for (let i = 0; i < 3; i++) expectHsmError(() => hsm.login("alice", "wrong-password"), "LOGIN_FAILED");
    expectHsmError(() => hsm.login("alice", "alice-password"), "ACCOUNT_LOCKED");
    hsm.close();

    expectHsmError(() => H.Hsm.open(dir, { ...FAST, maxLoginFailures: 1000 }), "INVALID_ARGUMENT");
    const reopened = H.Hsm.open(dir, FAST); // the limit stored at creation
    try {
      expect(reopened.maxLoginFailures).toBe(3);
      expectHsmError(() => reopened.login("alice", "alice-password"), "ACCOUNT_LOCKED");
    } finally {
      reopened.close();
    }
    const same = H.Hsm.open(dir, { ...FAST, maxLoginFailures: 3 });
    same.close();
  });

  it("a default-limit HSM reopened with a lower or higher limit is refused", () => {
    const { hsm, dir } = freshHsm();
    hsm.close();
    for (const maxLoginFailures of [1, 6, 0, 2.5, -1]) expectHsmError(() => H.Hsm.open(dir, { ...FAST, maxLoginFailures }), "INVALID_ARGUMENT");
    const reopened = H.Hsm.open(dir, FAST);
    expect(reopened.maxLoginFailures).toBe(5);
    reopened.close();
  });

  it("every login path computes exactly one slow hash: an unknown, internal, locked or existing account looks the same", () => {
    device = activatedDevice({ maxLoginFailures: 3 });
    const { hsm } = device;
    for (let i = 0; i < 3; i++) expectHsmError(() => hsm.login("bob", "wrong-password"), "LOGIN_FAILED");
    const attempts: [string, unknown, H.HsmErrorCode | "OK"][] = [
      ["nobody", "some-password", "LOGIN_FAILED"],
      ["app_user", "some-password", "LOGIN_FAILED"],
      ["bob", "bob-password", "ACCOUNT_LOCKED"], // locked: answers only after the same hash
      ["bob", "wrong-password", "ACCOUNT_LOCKED"],
      ["alice", "wrong-password", "LOGIN_FAILED"],
      ["alice", 12345678, "LOGIN_FAILED"],
      ["alice", "alice-password", "OK"],
    ];
    for (const [name, password, outcome] of attempts) {
      const before = passwordDerivations();
      if (outcome === "OK") hsm.login(name, password as string);
      else expectHsmError(() => hsm.login(name, password as string), outcome);
      expect(passwordDerivations() - before, `${name}/${String(password)}`).toBe(1);
    }
  });

  it("repeated guesses answer the same for an existing and an unknown name: both lock after the limit", () => {
    device = activatedDevice({ maxLoginFailures: 3 });
    const { hsm } = device;
    const answers = (name: string) => Array.from({ length: 5 }, () => {
      try {
        hsm.login(name, "guessed-password");
        return "OK";
      } catch (e) {
        return (e as H.HsmError).code;
      }
    });
    expect(answers("nobody")).toEqual(answers("alice"));
    expect(answers("alice")).toEqual(Array(5).fill("ACCOUNT_LOCKED"));
    const entries = hsm.auditLog().filter((e) => e.operation === "LOGIN" && e.actor === "nobody");
    expect(entries.map((e) => e.result)).toEqual([...Array(3).fill("LOGIN_FAILED"), ...Array(2).fill("ACCOUNT_LOCKED")]);
  });
});

describe("usernames fold case", () => {
  it("Alice and alice are one account: create, login, lockout, share, delete, C_Login", () => {
    device = activatedDevice();
    const { hsm, co } = device;
    hsm.createUser(co, "Carol", "CU", "carol-password");
    expect(hsm.listUsers(co).map((u) => u.username)).toEqual(["admin", "alice", "bob", "carol"]);
    expectHsmError(() => hsm.createUser(co, "CAROL", "CO", "carol-password"), "USER_EXISTS");
    expectHsmError(() => hsm.createUser(co, "Bob", "CU", "bob-password2"), "USER_EXISTS");
    expect(hsm.login("cArOl", "carol-password").username).toBe("carol");
    expect(hsm.login("ADMIN", "co-password-1").role).toBe("CO");

    const alice = cuSession(hsm, "alice", "alice-password");
    const handle = tokenAesKey(alice.pkcs11, alice.session, "shared");
    const keyId = hsm.keyIdOf(handle);
    const aliceActor = hsm.login("Alice", "alice-password");
    hsm.shareKey(aliceActor, keyId, "BOB");
    expect(hsm.describeKey(aliceActor, keyId)).toEqual({ keyId, owner: "alice", sharedWith: ["bob"] });
    hsm.changePassword(hsm.login("ALICE", "alice-password"), "aLiCe", "alice-new-password");

    const upper = cuSession(hsm, "CAROL", "carol-password");
    expect(upper.pkcs11.C_GetSessionInfo(upper.session).state).toBe(H.CKS_RW_USER_FUNCTIONS);
    hsm.deleteUser(co, "CaRoL");
    expectHsmError(() => hsm.login("carol", "carol-password"), "LOGIN_FAILED");
  });

  it("failures under every spelling of a name count against the one account", () => {
    device = activatedDevice();
    const { hsm } = device;
    for (const spelling of ["alice", "Alice", "ALICE", "aLICE", "alicE"]) expectHsmError(() => hsm.login(spelling, "wrong-password"), "LOGIN_FAILED");
    expectHsmError(() => hsm.login("AlIcE", "alice-password"), "ACCOUNT_LOCKED");
  });
});

describe("key ownership as the management API reports it", () => {
  it("a key shared with a user who was deleted does not report that user, nor a bare principal number", () => {
    device = activatedDevice();
    const { hsm, co } = device;
    hsm.createUser(co, "carol", "CU", "carol-password");
    const alice = cuSession(hsm, "alice", "alice-password");
    const keyId = hsm.keyIdOf(tokenAesKey(alice.pkcs11, alice.session, "shared"));
    const aliceActor = hsm.login("alice", "alice-password");
    hsm.shareKey(aliceActor, keyId, "carol");
    hsm.shareKey(aliceActor, keyId, "bob");
    hsm.deleteUser(co, "carol");
    expect(hsm.describeKey(co, keyId)).toEqual({ keyId, owner: "alice", sharedWith: ["bob"] });
  });

  it("no key reports a CO or a number as its owner", () => {
    device = activatedDevice();
    const { hsm, co } = device;
    const pkcs11 = hsm.pkcs11();
    pkcs11.C_Initialize();
    const session = pkcs11.C_OpenSession(pkcs11.C_GetSlotList(true)[0], H.CKF_SERIAL_SESSION | H.CKF_RW_SESSION);
    // Never logged in: the chip refuses a token key (engineer A's rule). Were one made, no CO
    // and no number may be reported as its owner.
    let handle: Buffer | undefined;
    try {
      handle = tokenAesKey(pkcs11, session, "unowned");
    } catch (e) {
      expect(e).toBeInstanceOf(H.Pkcs11Error);
    }
    const keyIds = hsm.auditLog().filter((e) => e.operation === "GENERATE_KEY" && e.result === "OK").flatMap((e) => e.keys);
    expect(keyIds).toHaveLength(handle ? 1 : 0);
    for (const keyId of keyIds) expect(hsm.describeKey(co, keyId).owner).toBeNull();
  });
});
