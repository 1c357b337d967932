// A whole HSM's replicable state in one value: the masking key, users, token keys (masked
// records), tombstones and the change journal. The cluster encrypts it into a backup, and
// restores it to clone an HSM or to start a new cluster (src/cluster/backup.ts). The audit
// log is not part of it: every HSM keeps its own audit stream.
//
// Snapshots are internal (internalsOf(hsm).snapshot): no Hsm or Actor method hands one out.
// A clone inside the process copies the masking key chip to chip (shareMaskingKey, native);
// only a backup carries it as bytes (maskingKey), sealed at once under the lineage key.
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { type NativeChip, createChip } from "../pkcs11/addon.js";
import { HsmError } from "./errors.js";
import { checkOrigin } from "./journal.js";
import { type JournalRow, MASKING_KEY_FILE, Store, type KeyRow, type Tombstone, type UserRow } from "./store.js";
import { HSM_TYPES, type HsmType } from "./types.js";

export interface HsmSnapshot {
  type: HsmType;
  /** The source HSM's id, for the restored HSM's audit. */
  sourceHsmId: string;
  /** Present only in a snapshot taken for a backup: a clone copies the key chip to chip. */
  maskingKey?: Buffer;
  activated: boolean;
  lamport: number;
  users: UserRow[];
  keys: KeyRow[];
  tombstones: Tombstone[];
  journal: JournalRow[];
  /** Journal heads, which pruning leaves above the oldest entries kept. */
  heads: [number, number][];
}

/** Where a restored HSM's masking key comes from: a live chip holding it (copied natively), or a backup's bytes. */
export type MaskingKeySource = { readonly chip: NativeChip } | { readonly bytes: Buffer };

export function takeSnapshot(store: Store, withMaskingKey = false): HsmSnapshot {
  return {
    type: store.meta("type") as HsmType,
    sourceHsmId: store.meta("hsm_id"),
    ...(withMaskingKey ? { maskingKey: readFileSync(join(store.dir, MASKING_KEY_FILE)) } : {}),
    activated: store.meta("activated") === "1",
    lamport: Number(store.meta("lamport")),
    users: store.users(),
    keys: store.keys(),
    tombstones: store.tombstones(),
    journal: store.journalAll(),
    heads: [...store.journalHeads()],
  };
}

/** Writes `snapshot` into the new data folder `dir` as HSM `hsmId` with cluster ordinal `origin`. */
export function writeSnapshot(dir: string, snapshot: HsmSnapshot, source: MaskingKeySource, hsmId: string, origin: number, timeUs: number): void {
  checkOrigin(origin);
  const bytes = "bytes" in source ? source.bytes : undefined;
  if (!HSM_TYPES[snapshot.type] || (bytes !== undefined && !Buffer.isBuffer(bytes)) || (bytes === undefined && !("chip" in source))) {
    throw new HsmError("INVALID_ARGUMENT", "not an HSM snapshot");
  }
  const store = Store.create(dir, { hsmId, type: snapshot.type, origin });
  try {
    const maskingKey = join(dir, MASKING_KEY_FILE);
    // A chip holding the folder's masking key seals what is written, as the HSM itself would.
    const chip = createChip({ slotCount: 1, pinHashIterations: 1 });
    chip.initToken(0, randomBytes(16), Buffer.from("hsmsim restore"));
    if (bytes === undefined) {
      // A clone: the key goes chip to chip and from the chip to the new folder, never through JavaScript.
      (source as { chip: NativeChip }).chip.shareMaskingKey(0, chip, 0);
      chip.saveMaskingKey(0, maskingKey);
    } else {
      writeFileSync(maskingKey, bytes, { mode: 0o600, flag: "wx" });
      try {
        chip.loadMaskingKey(0, maskingKey);
      } catch {
        throw new HsmError("INVALID_ARGUMENT", "the snapshot's masking key is not a masking key");
      }
    }
    store.attachChip((purpose, data) => chip.deviceMac(0, purpose, data), "new");
    store.load(snapshot);
    store.transaction(() => store.appendAudit({ timeUs, reboot: 0, operation: "RESTORE", actor: null, session: null, keys: [],
      result: "OK", detail: `from ${snapshot.sourceHsmId}: ${snapshot.users.length} users, ${snapshot.keys.length} keys` }));
  } finally {
    store.close();
  }
}
