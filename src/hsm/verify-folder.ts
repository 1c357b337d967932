// Verifies a data folder offline, as a reader with file access and no running HSM: a chip
// loads the folder's masking key natively (it never enters JavaScript), then the seal, the
// digest of every stored item and the audit chain are checked on one consistent snapshot,
// so it works on the folder of a running HSM too (hsm.lock is not taken).
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";

import { createChip } from "../pkcs11/addon.js";
import { type AuditEntry, type AuditVerdict, verifyChain } from "./audit.js";
import type { DeviceMac } from "./seal.js";
import { MASKING_KEY_FILE, Store } from "./store.js";

export interface FolderVerdict {
  ok: boolean;
  /** Why the folder's seal (masking key check, sealed head, stored items) does not hold. */
  folderProblem?: string;
  audit: AuditVerdict;
  entries: AuditEntry[];
}

/** Throws HsmError DATA_FOLDER_INVALID only when `dir` is not an hsmsim data folder at all. */
export function verifyFolder(dir: string): FolderVerdict {
  const store = Store.open(dir, { readOnly: true });
  try {
    const mac = folderMac(dir);
    return store.snapshotRead(() => {
      const entries = [...store.auditEntries()];
      if (typeof mac === "string") {
        return { ok: false, folderProblem: mac, audit: { ok: false, entries: entries.length, problem: { seq: 0, reason: mac } }, entries };
      }
      const sealed = store.verifySeal(mac);
      const { head } = sealed;
      // An edited schema (a planted trigger, view, index or table) is tampering even when every row still matches its seal.
      const problem = store.schemaProblem ?? sealed.problem;
      // Without a trusted head the chain is still checked, but truncation cannot be judged.
      const audit = verifyChain(entries, mac, head);
      return { ok: !problem && audit.ok, folderProblem: problem, audit, entries };
    });
  } finally {
    store.close();
  }
}

/** The folder's chip MAC, or why there is none. */
function folderMac(dir: string): DeviceMac | string {
  const path = join(dir, MASKING_KEY_FILE);
  if (!existsSync(path)) return `${MASKING_KEY_FILE} is missing`;
  const chip = createChip({ slotCount: 1, pinHashIterations: 1 });
  chip.initToken(0, randomBytes(16), Buffer.from("hsmsim audit"));
  try {
    chip.loadMaskingKey(0, path);
  } catch {
    return `${MASKING_KEY_FILE} is unreadable, the wrong size or readable by others`;
  }
  return (purpose, data) => chip.deviceMac(0, purpose, data);
}
