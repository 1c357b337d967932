// A fresh HSM in a temporary data folder, activated, with a CO and two CUs.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import * as H from "../../src/index.js";
import { restoreHsm } from "../../src/hsm/hsm.js";
import { internalsOf } from "../../src/hsm/internals.js";
import type { HsmSnapshot } from "../../src/hsm/snapshot.js";

export { H };
export const FAST = { passwordCost: 4 } as const; // scrypt N = 16: the rules, not the cost, are under test

export interface Device {
  dir: string;
  hsm: H.Hsm;
  co: H.Actor;
  cleanup(): void;
}

export function tempDir(): { path: string; cleanup(): void } {
  const root = mkdtempSync(join(tmpdir(), "hsmsim-hsm-"));
  return { path: join(root, "hsm"), cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

export function activatedDevice(options: H.HsmOptions = {}): Device {
  const dir = tempDir();
  const hsm = H.Hsm.create(dir.path, { ...FAST, ...options });
  hsm.changePassword(hsm.login("admin", "password"), "admin", "co-password-1");
  const co = hsm.login("admin", "co-password-1");
  hsm.createUser(co, "alice", "CU", "alice-password");
  hsm.createUser(co, "bob", "CU", "bob-password");
  return { dir: dir.path, hsm, co, cleanup: () => { hsm.close(); dir.cleanup(); } };
}

/** A PKCS11 on the HSM with `user` logged in on a R/W session. */
export function cuSession(hsm: H.Hsm, user: string, password: string) {
  const pkcs11 = hsm.pkcs11();
  pkcs11.C_Initialize();
  const slot = pkcs11.C_GetSlotList(true)[0];
  const session = pkcs11.C_OpenSession(slot, H.CKF_SERIAL_SESSION | H.CKF_RW_SESSION);
  pkcs11.C_Login(session, H.CKU_USER, `${user}:${password}`);
  return { pkcs11, slot, session };
}

export function tokenAesKey(pkcs11: H.PKCS11, session: Buffer, label: string, extra: H.Template = []): Buffer {
  return pkcs11.C_GenerateKey(session, { mechanism: H.CKM_AES_KEY_GEN }, [
    { type: H.CKA_VALUE_LEN, value: 32 }, { type: H.CKA_TOKEN, value: true }, { type: H.CKA_LABEL, value: label }, ...extra,
  ]);
}

export function expectHsmError(fn: () => unknown, code: H.HsmErrorCode): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  if (!(thrown instanceof H.HsmError)) throw new Error(`expected HsmError ${code}, got ${String(thrown)}`);
  if (thrown.code !== code) throw new Error(`expected HsmError ${code}, got ${thrown.code}: ${thrown.message}`);
}

/** An internal snapshot of `hsm` (no masking key: restoreSnapshot copies it chip to chip). */
export function snapshotOf(hsm: H.Hsm): HsmSnapshot {
  return internalsOf(hsm).snapshot();
}

/** A new HSM in `dir` restored from a snapshot taken with snapshotOf, its masking key copied from `keyFrom`'s chip. */
export function restoreSnapshot(dir: string, snapshot: HsmSnapshot, keyFrom: H.Hsm, options: H.HsmOptions = {}): H.Hsm {
  const chip = internalsOf(keyFrom).chip;
  return restoreHsm(dir, snapshot, (target) => chip.shareMaskingKey(0, target, 0), options);
}

/** A clone of a live `hsm` in `dir`: its masking key copied chip to chip, as a cluster clones. */
export function cloneHsm(hsm: H.Hsm, dir: string, options: H.HsmOptions = {}): H.Hsm {
  return restoreSnapshot(dir, snapshotOf(hsm), hsm, options);
}
