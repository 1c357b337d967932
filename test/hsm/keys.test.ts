// Keys on the device: ownership and sharing, quotas, CloudHSM's GCM, durability across
// restarts, damaged or foreign data folders, and the audit chain.
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { expectCkr } from "../helpers.js";
import { type Device, FAST, H, activatedDevice, cuSession, expectHsmError, tempDir, tokenAesKey } from "./fixture.js";
import { internalsOf } from "../../src/hsm/internals.js";

const require = createRequire(import.meta.url);
const Database = require("better-sqlite3") as typeof import("better-sqlite3");

let device: Device | undefined;
afterEach(() => device?.cleanup());

describe("key ownership", () => {
  it("the creating CU owns a key; only the owner may delete, wrap, share or change it; shared users may use it", () => {
    device = activatedDevice();
    const { hsm } = device;
    const a = cuSession(hsm, "alice", "alice-password");
    const key = tokenAesKey(a.pkcs11, a.session, "alice key", [{ type: H.CKA_EXTRACTABLE, value: true }]);
    const kek = tokenAesKey(a.pkcs11, a.session, "alice kek");
    const alice = hsm.login("alice", "alice-password");
    const [keyId] = hsm.auditLog().filter((e) => e.operation === "GENERATE_KEY").map((e) => e.keys[0]);
    expect(hsm.describeKey(alice, keyId)).toEqual({ keyId, owner: "alice", sharedWith: [] });

    const b = cuSession(hsm, "bob", "bob-password");
    const bob = hsm.login("bob", "bob-password");
    b.pkcs11.C_FindObjectsInit(b.session, []);
    expect(b.pkcs11.C_FindObjects(b.session, 10)).toEqual([]); // not shared yet: invisible
    b.pkcs11.C_FindObjectsFinal(b.session);
    expectHsmError(() => hsm.describeKey(bob, keyId), "KEY_NOT_FOUND");
    expectHsmError(() => hsm.shareKey(bob, keyId, "bob"), "KEY_NOT_FOUND");

    hsm.shareKey(alice, keyId, "bob");
    expect(hsm.describeKey(bob, keyId).sharedWith).toEqual(["bob"]);
    b.pkcs11.C_FindObjectsInit(b.session, [{ type: H.CKA_LABEL, value: "alice key" }]);
    const seen = b.pkcs11.C_FindObjects(b.session)!;
    b.pkcs11.C_FindObjectsFinal(b.session);
    const gcm = { mechanism: H.CKM_AES_GCM, parameter: { type: H.CK_PARAMS_AES_GCM, iv: Buffer.alloc(12), tagBits: 128 } };
    b.pkcs11.C_EncryptInit(b.session, gcm, seen);
    expect(b.pkcs11.C_Encrypt(b.session, Buffer.from("shared use"), Buffer.alloc(64))).toHaveLength(26);
    expectCkr(() => b.pkcs11.C_DestroyObject(b.session, seen), "CKR_ACTION_PROHIBITED");
    expectCkr(() => b.pkcs11.C_SetAttributeValue(b.session, seen, [{ type: H.CKA_LABEL, value: "mine" }]), "CKR_ACTION_PROHIBITED");
    const bobKek = tokenAesKey(b.pkcs11, b.session, "bob kek");
    expectCkr(() => b.pkcs11.C_WrapKey(b.session, { mechanism: H.CKM_AES_KEY_WRAP_KWP }, bobKek, seen, Buffer.alloc(64)), "CKR_KEY_NOT_WRAPPABLE");
    expectHsmError(() => hsm.shareKey(bob, keyId, "bob"), "NOT_OWNER");

    // The owner may do all of it.
    expect(a.pkcs11.C_WrapKey(a.session, { mechanism: H.CKM_AES_KEY_WRAP_KWP }, kek, key, Buffer.alloc(64)).length).toBe(40);
    hsm.unshareKey(alice, keyId, "bob");
    expectCkr(() => b.pkcs11.C_EncryptInit(b.session, gcm, seen), "CKR_KEY_HANDLE_INVALID");
    a.pkcs11.C_DestroyObject(a.session, key);
    expectHsmError(() => hsm.describeKey(alice, keyId), "KEY_NOT_FOUND");
    const ops = hsm.auditLog().map((e) => `${e.operation}:${e.actor}:${e.result}`);
    for (const op of ["GENERATE_KEY:alice:OK", "SHARE_KEY:alice:OK", "DELETE_KEY:bob:CKR_ACTION_PROHIBITED", "UNSHARE_KEY:alice:OK", "DELETE_KEY:alice:OK"]) {
      expect(ops).toContain(op);
    }
  });

  it("only a CO may set CKA_TRUSTED; a CU may not delete a user who owns keys", () => {
    device = activatedDevice();
    const { hsm, co } = device;
    const a = cuSession(hsm, "alice", "alice-password");
    tokenAesKey(a.pkcs11, a.session, "to trust");
    const keyId = hsm.auditLog().find((e) => e.operation === "GENERATE_KEY")!.keys[0];
    expectHsmError(() => hsm.setKeyTrusted(hsm.login("alice", "alice-password"), keyId, true), "ACCESS_DENIED");
    hsm.setKeyTrusted(co, keyId, true);
    expectCkr(() => a.pkcs11.C_GenerateKey(a.session, { mechanism: H.CKM_AES_KEY_GEN },
      [{ type: H.CKA_VALUE_LEN, value: 16 }, { type: H.CKA_TRUSTED, value: true }]), "CKR_ATTRIBUTE_READ_ONLY");
    expectHsmError(() => hsm.deleteUser(co, "alice"), "ACCESS_DENIED");
  });
});

describe("asynchronous key creation", () => {
  it("C_GenerateKeyAsync and C_GenerateKeyPairAsync persist and audit token keys before resolving", async () => {
    device = activatedDevice();
    const { pkcs11, session } = cuSession(device.hsm, "alice", "alice-password");
    const key = await pkcs11.C_GenerateKeyAsync(session, { mechanism: H.CKM_AES_KEY_GEN },
      [{ type: H.CKA_VALUE_LEN, value: 16 }, { type: H.CKA_TOKEN, value: true }]);
    await pkcs11.C_GenerateKeyPairAsync(session, { mechanism: H.CKM_EC_KEY_PAIR_GEN },
      [{ type: H.CKA_EC_PARAMS, value: Buffer.from("06082a8648ce3d030107", "hex") }, { type: H.CKA_TOKEN, value: true }],
      [{ type: H.CKA_TOKEN, value: true }, { type: H.CKA_SIGN, value: true }]);
    expect(internalsOf(device.hsm).store.keys()).toHaveLength(3);
    expect(device.hsm.keyIdOf(key)).toBeGreaterThan(0);
    expectHsmError(() => device!.hsm.keyIdOf(Buffer.alloc(8)), "KEY_NOT_FOUND");
    await expect(pkcs11.C_GenerateKeyAsync(session, { mechanism: H.CKM_AES_KEY_GEN }, [{ type: H.CKA_VALUE_LEN, value: 7 }]))
      .rejects.toThrow("CKR_ATTRIBUTE_VALUE_INVALID");
    const results = device.hsm.auditLog().filter((e) => e.operation.startsWith("GENERATE_KEY")).map((e) => `${e.operation}:${e.keys.length}:${e.result}`);
    expect(results).toEqual(["GENERATE_KEY:1:OK", "GENERATE_KEY_PAIR:2:OK", "GENERATE_KEY:0:CKR_ATTRIBUTE_VALUE_INVALID"]);
  });
});

describe("quotas", () => {
  it("hsm2m.medium holds at most 3,333 asymmetric keys; past it a key fails cleanly and changes nothing", () => {
    device = activatedDevice();
    const { pkcs11, session } = cuSession(device.hsm, "alice", "alice-password");
    const pair = () => pkcs11.C_GenerateKeyPair(session, { mechanism: H.CKM_EC_KEY_PAIR_GEN },
      [{ type: H.CKA_EC_PARAMS, value: Buffer.from("06082a8648ce3d030107", "hex") }], [{ type: H.CKA_SIGN, value: true }]);
    for (let i = 0; i < 1666; i++) pair(); // 3,332 keys
    tokenAesKey(pkcs11, session, "symmetric still fits"); // throws if the quota refused it
    expectCkr(pair, "CKR_DEVICE_MEMORY");
    pkcs11.C_FindObjectsInit(session, []);
    expect(pkcs11.C_FindObjects(session, 10_000)).toHaveLength(3333); // 3,332 asymmetric + 1 secret: nothing half-stored
    pkcs11.C_FindObjectsFinal(session);
  });

  it("1,024 PKCS#11 sessions per application", () => {
    device = activatedDevice();
    const pkcs11 = device.hsm.pkcs11();
    pkcs11.C_Initialize();
    const slot = pkcs11.C_GetSlotList(true)[0];
    for (let i = 0; i < 1024; i++) pkcs11.C_OpenSession(slot, H.CKF_SERIAL_SESSION);
    expectCkr(() => pkcs11.C_OpenSession(slot, H.CKF_SERIAL_SESSION), "CKR_SESSION_COUNT");
  });
});

describe("CKM_CLOUDHSM_AES_GCM", () => {
  it("the HSM picks a 12-byte IV and prepends it; standard CKM_AES_GCM keeps the caller's IV", () => {
    device = activatedDevice();
    const { pkcs11, session } = cuSession(device.hsm, "alice", "alice-password");
    const key = tokenAesKey(pkcs11, session, "gcm");
    const vendor = { mechanism: H.CKM_CLOUDHSM_AES_GCM, parameter: { type: H.CK_PARAMS_AES_GCM, iv: Buffer.alloc(12), aad: Buffer.from("a"), tagBits: 128 } };
    pkcs11.C_EncryptInit(session, vendor, key);
    const sealed = Buffer.from(pkcs11.C_Encrypt(session, Buffer.from("hello"), Buffer.alloc(64)));
    expect(sealed).toHaveLength(12 + 5 + 16);
    const standard = { mechanism: H.CKM_AES_GCM, parameter: { type: H.CK_PARAMS_AES_GCM, iv: sealed.subarray(0, 12), aad: Buffer.from("a"), tagBits: 128 } };
    pkcs11.C_DecryptInit(session, standard, key);
    expect(pkcs11.C_Decrypt(session, sealed.subarray(12), Buffer.alloc(64)).toString()).toBe("hello");
    pkcs11.C_DecryptInit(session, vendor, key);
    expect(pkcs11.C_Decrypt(session, sealed, Buffer.alloc(64)).toString()).toBe("hello");
  });
});

describe("durable state", () => {
  it("a restart loads users, counters, keys with their sharing and attributes, and the audit log", () => {
    device = activatedDevice();
    const { hsm, dir } = device;
    const a = cuSession(hsm, "alice", "alice-password");
    const key = tokenAesKey(a.pkcs11, a.session, "durable");
    a.pkcs11.C_SetAttributeValue(a.session, key, [{ type: H.CKA_LABEL, value: "renamed" }]);
    tokenAesKey(a.pkcs11, a.session, "doomed");
    a.pkcs11.C_FindObjectsInit(a.session, [{ type: H.CKA_LABEL, value: "doomed" }]);
    a.pkcs11.C_DestroyObject(a.session, a.pkcs11.C_FindObjects(a.session)!);
    a.pkcs11.C_FindObjectsFinal(a.session);
    a.pkcs11.C_GenerateKey(a.session, { mechanism: H.CKM_AES_KEY_GEN }, [{ type: H.CKA_VALUE_LEN, value: 16 }]); // session key: gone at restart
    const gcm = { mechanism: H.CKM_AES_GCM, parameter: { type: H.CK_PARAMS_AES_GCM, iv: Buffer.alloc(12, 7), tagBits: 128 } };
    a.pkcs11.C_EncryptInit(a.session, gcm, key);
    const sealed = Buffer.from(a.pkcs11.C_Encrypt(a.session, Buffer.from("still here"), Buffer.alloc(64)));
    const keyId = hsm.auditLog().find((e) => e.operation === "GENERATE_KEY")!.keys[0];
    hsm.shareKey(hsm.login("alice", "alice-password"), keyId, "bob");
    const entriesBefore = hsm.auditLog().length;
    hsm.close();

    const again = H.Hsm.open(dir, FAST);
    device.hsm = again;
    expect(again.reboot).toBe(1);
    expect(again.auditLog()).toHaveLength(entriesBefore + 1);
    expect(again.verifyAudit().ok).toBe(true);
    const b = cuSession(again, "bob", "bob-password");
    b.pkcs11.C_FindObjectsInit(b.session, []);
    const visible = b.pkcs11.C_FindObjects(b.session, 10);
    b.pkcs11.C_FindObjectsFinal(b.session);
    expect(visible).toHaveLength(1);
    expect(b.pkcs11.C_GetAttributeValue(b.session, visible[0], [{ type: H.CKA_LABEL }])[0].value.toString()).toBe("renamed");
    b.pkcs11.C_DecryptInit(b.session, gcm, visible[0]);
    expect(b.pkcs11.C_Decrypt(b.session, sealed, Buffer.alloc(64)).toString()).toBe("still here");
    expect(internalsOf(again).store.keys()).toHaveLength(1);
    again.close();
    expect(H.Hsm.open(dir, FAST).reboot).toBe(2);
  });

  it("the masking key lives in the data folder with owner-only permissions; no key plaintext is stored", () => {
    device = activatedDevice();
    const { hsm, dir } = device;
    const a = cuSession(hsm, "alice", "alice-password");
    const value = Buffer.from("0123456789abcdef0123456789abcdef");
    a.pkcs11.C_CreateObject(a.session, [{ type: H.CKA_CLASS, value: H.CKO_SECRET_KEY }, { type: H.CKA_KEY_TYPE, value: H.CKK_AES },
      { type: H.CKA_VALUE, value }, { type: H.CKA_TOKEN, value: true }]);
    const { statSync, readFileSync } = require("node:fs") as typeof import("node:fs");
    expect(statSync(join(dir, "masking.key")).mode & 0o777).toBe(0o600);
    hsm.close();
    expect(readFileSync(join(dir, "hsm.db")).includes(value)).toBe(false);
    device.hsm = H.Hsm.open(dir, FAST);
  });

  it("a damaged or foreign data folder gives a clear error, never a silent empty HSM", () => {
    const dir = tempDir();
    try {
      expectHsmError(() => H.Hsm.open(dir.path, FAST), "DATA_FOLDER_INVALID"); // missing
      mkdirSync(dir.path, { recursive: true });
      expectHsmError(() => H.Hsm.open(dir.path, FAST), "DATA_FOLDER_INVALID"); // empty
      writeFileSync(join(dir.path, "hsm.db"), "this is not a database");
      expectHsmError(() => H.Hsm.open(dir.path, FAST), "DATA_FOLDER_INVALID"); // garbage
      const foreign = new Database(join(dir.path, "hsm.db").replace("hsm.db", "other.db"));
      foreign.exec("CREATE TABLE meta (name TEXT, value TEXT); INSERT INTO meta VALUES ('format', 'someone-else');");
      foreign.close();
      copyFileSync(join(dir.path, "other.db"), join(dir.path, "hsm.db"));
      expectHsmError(() => H.Hsm.open(dir.path, FAST), "DATA_FOLDER_INVALID"); // foreign
    } finally {
      dir.cleanup();
    }
    // A real HSM whose masking key was swapped for another HSM's.
    const mine = activatedDevice();
    device = mine;
    const other = activatedDevice();
    const a = cuSession(mine.hsm, "alice", "alice-password");
    tokenAesKey(a.pkcs11, a.session, "k");
    mine.hsm.close();
    other.hsm.close();
    copyFileSync(join(other.dir, "masking.key"), join(mine.dir, "masking.key"));
    expectHsmError(() => H.Hsm.open(mine.dir, FAST), "DATA_FOLDER_INVALID");
    other.cleanup();
    expectHsmError(() => H.Hsm.create(mine.dir, FAST), "DATA_FOLDER_INVALID"); // never over an existing HSM
    const stale = tempDir();
    mkdirSync(stale.path, { recursive: true });
    writeFileSync(join(stale.path, "masking.key"), Buffer.alloc(32), { mode: 0o600 });
    expectHsmError(() => H.Hsm.create(stale.path, FAST), "DATA_FOLDER_INVALID"); // never over another masking key
    stale.cleanup();
  });
});

describe("audit log", () => {
  it("entries carry time, gapless sequence, reboot counter, operation, actor, session, keys and result", () => {
    device = activatedDevice();
    const { pkcs11, session } = cuSession(device.hsm, "alice", "alice-password");
    tokenAesKey(pkcs11, session, "audited");
    const log = device.hsm.auditLog();
    expect(log.map((e) => e.seq)).toEqual(log.map((_, i) => i + 1));
    const gen = log.find((e) => e.operation === "GENERATE_KEY")!;
    expect(gen).toMatchObject({ actor: "alice", reboot: 0, result: "OK", session: session.readUInt32LE(0) });
    expect(gen.keys).toHaveLength(1);
    expect(gen.timeUs).toBeGreaterThan(Date.now() * 1000 - 60e6);
  });

  it("the verifier detects an edited, a dropped and a reordered entry", () => {
    device = activatedDevice();
    const log = device.hsm.auditLog();
    expect(H.verifyChain(log).ok).toBe(true);
    const edited = log.map((e) => ({ ...e }));
    edited[3].actor = "mallory";
    expect(H.verifyChain(edited).problem?.seq).toBe(4);
    const dropped = log.filter((e) => e.seq !== 3);
    expect(H.verifyChain(dropped)).toMatchObject({ ok: false, problem: { seq: 4 } });
    const reordered = [...log];
    [reordered[2], reordered[3]] = [reordered[3], reordered[2]];
    expect(H.verifyChain(reordered).ok).toBe(false);
    // Straight in the database, as an attacker with the file would.
    device.hsm.close();
    const db = new Database(join(device.dir, "hsm.db"));
    db.prepare("UPDATE audit SET result = 'TAMPERED' WHERE seq = 2").run();
    db.close();
    device.hsm = H.Hsm.open(device.dir, FAST);
    expect(device.hsm.verifyAudit()).toMatchObject({ ok: false, problem: { seq: 2 } });
  });
});
