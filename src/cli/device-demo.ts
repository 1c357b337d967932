// The device part of `hsmsim demo`: a CloudHSM-style HSM with users, sharing, a lockout and
// its reset, and the tail of the audit log.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { HsmError } from "../hsm/errors.js";
import { Hsm } from "../hsm/hsm.js";
import * as P from "../pkcs11/index.js";
import { formatTime } from "./audit.js";
import type { Output } from "./format.js";
import { internalsOf } from "../hsm/internals.js";

function failure(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof HsmError || e instanceof P.Pkcs11Error) return e instanceof HsmError ? e.code : e.message;
    throw e;
  }
  throw new Error("the demo expected this call to fail");
}

export function runDeviceDemo(out: Output): string {
  const dir = join(mkdtempSync(join(tmpdir(), "hsmsim-demo-")), "hsm");
  out.step("Create a CloudHSM-style HSM (hsm2m.medium) in a data folder");
  const hsm = Hsm.create(dir);
  out.line(`${hsm.id}, state in ${dir}`);
  const preco = hsm.login("admin", "password");
  out.line(`before activation, PRECO creating a user: ${failure(() => hsm.createUser(preco, "alice", "CU", "alice-password"))}`);
  hsm.changePassword(preco, "admin", "admin-password");
  out.line("PRECO changed its password: the HSM is activated and admin is its first CO");

  out.step("The CO creates a second CO and two crypto users");
  const admin = hsm.login("admin", "admin-password");
  hsm.createUser(admin, "officer2", "CO", "officer2-password");
  hsm.createUser(admin, "alice", "CU", "alice-password");
  hsm.createUser(admin, "bob", "CU", "bob-password");
  out.table(["user", "role", "locked"], hsm.listUsers(admin).map((u) => [u.username, u.role, u.locked ? "yes" : "no"]));
  out.line(`a CO using keys: C_Login as admin → ${failure(() => {
    const p = hsm.pkcs11();
    p.C_Initialize();
    p.C_Login(p.C_OpenSession(p.C_GetSlotList(true)[0], P.CKF_SERIAL_SESSION), P.CKU_USER, "admin:admin-password");
  })}`);

  out.step("alice creates a key and shares it with bob; bob may use it, not delete it");
  const a = hsm.pkcs11();
  a.C_Initialize();
  const aliceSession = a.C_OpenSession(a.C_GetSlotList(true)[0], P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
  a.C_Login(aliceSession, P.CKU_USER, "alice:alice-password");
  const key = a.C_GenerateKey(aliceSession, { mechanism: P.CKM_AES_KEY_GEN },
    [{ type: P.CKA_VALUE_LEN, value: 32 }, { type: P.CKA_TOKEN, value: true }, { type: P.CKA_LABEL, value: "payments" }]);
  const keyId = hsm.keyIdOf(key);
  const alice = hsm.login("alice", "alice-password");
  hsm.shareKey(alice, keyId, "bob");
  const described = hsm.describeKey(alice, keyId);
  out.line(`key ${keyId} "payments": owner ${described.owner}, shared with ${described.sharedWith.join(", ")}`);
  const b = hsm.pkcs11();
  b.C_Initialize();
  const bobSession = b.C_OpenSession(b.C_GetSlotList(true)[0], P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
  b.C_Login(bobSession, P.CKU_USER, "bob:bob-password");
  b.C_FindObjectsInit(bobSession, [{ type: P.CKA_LABEL, value: "payments" }]);
  const bobsView = b.C_FindObjects(bobSession)!;
  b.C_FindObjectsFinal(bobSession);
  const gcm = { mechanism: P.CKM_CLOUDHSM_AES_GCM, parameter: { type: P.CK_PARAMS_AES_GCM, iv: Buffer.alloc(12), tagBits: 128 } };
  b.C_EncryptInit(bobSession, gcm, bobsView);
  const sealed = b.C_Encrypt(bobSession, Buffer.from("pay 100"), Buffer.alloc(64));
  out.line(`bob encrypts with CKM_CLOUDHSM_AES_GCM: ${sealed.length} bytes (the HSM's 12-byte IV first)`);
  out.line(`bob deletes it: ${failure(() => b.C_DestroyObject(bobSession, bobsView))}`);

  out.step("bob is locked out after 5 wrong passwords; a CO resets him");
  for (let i = 1; i <= 5; i++) failure(() => hsm.login("bob", "not-bobs-password"));
  out.line(`bob with the right password now: ${failure(() => hsm.login("bob", "bob-password"))}`);
  hsm.changePassword(hsm.login("officer2", "officer2-password"), "bob", "bob-new-password");
  hsm.login("bob", "bob-new-password");
  out.line("officer2 set a new password; bob logs in again");

  out.step("Revocation and isolation: a reset ends bob's open sessions; no application reaches another's");
  out.line(`bob's PKCS#11 session opened before the reset, using the key: ${failure(() => b.C_EncryptInit(bobSession, gcm, bobsView))}`);
  const stranger = hsm.pkcs11();
  stranger.C_Initialize();
  out.line(`another application, never logged in, using alice's session handle: ${failure(() => stranger.C_EncryptInit(aliceSession, gcm, key))}`);
  const strangerSession = stranger.C_OpenSession(stranger.C_GetSlotList(true)[0], P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
  out.line(`… and creating a key in its own session without logging in: ${failure(() => stranger.C_GenerateKey(strangerSession,
    { mechanism: P.CKM_AES_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 32 }, { type: P.CKA_TOKEN, value: true }]))}`);
  hsm.unshareKey(alice, keyId, "bob");
  b.C_Login(bobSession, P.CKU_USER, "bob:bob-new-password");
  out.line(`alice unshared the key; bob, logged in again, using it: ${failure(() => b.C_EncryptInit(bobSession, gcm, bobsView))}`);

  out.step("Restart the HSM from its data folder, then read the audit log");
  hsm.close();
  const again = Hsm.open(dir);
  const verdict = again.verifyAudit();
  out.table(["seq", "time (UTC)", "operation", "actor", "result"],
    again.auditLog().slice(-8).map((e) => [String(e.seq), formatTime(e.timeUs), e.operation, e.actor ?? "-", e.result]));
  out.line(`chain ${verdict.ok ? "verified" : "BROKEN"}: ${verdict.entries} entries; keys restored: ${internalsOf(again).keyIds.size}; reboot ${again.reboot}`);
  out.line(`the whole log: hsmsim audit ${dir}`);
  again.close();
  return dir;
}
