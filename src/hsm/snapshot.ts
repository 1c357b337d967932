// A whole HSM's replicable state in one value: the masking key, users, token keys (masked
// records), tombstones and the change journal. The cluster encrypts it into a backup, and
// restores it to clone an HSM or to start a new cluster (src/cluster/backup.ts). The audit
// log is not part of it: every HSM keeps its own audit stream.
//
// Snapshots are internal (internalsOf(hsm).snapshot): no Hsm or Actor method hands one out,
// and none holds the masking key in clear. A clone copies it chip to chip (shareMaskingKey); a
// backup carries it sealed natively to the vault's lineage chip (exportMaskingKeyFor), which
// alone can import it and pass it on to the restoring chip. The key never enters JavaScript.
import { randomBytes } from "node:crypto";
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
  /** A backup's masking key, sealed to its lineage's chip (exportMaskingKeyFor); absent in a clone's snapshot. */
  sealedMaskingKey?: Buffer;
  activated: boolean;
  lamport: number;
  users: UserRow[];
  keys: KeyRow[];
  tombstones: Tombstone[];
  journal: JournalRow[];
  /** Journal heads, which pruning leaves above the oldest entries kept. */
  heads: [number, number][];
}

/**
 * Puts the restored HSM's masking key into `target` (a fresh chip) natively: a live HSM's chip
 * (shareMaskingKey), or a backup's lineage chip (importMaskingKey, then shareMaskingKey).
 */
export type MaskingKeySource = (target: NativeChip) => void;

export function takeSnapshot(store: Store): HsmSnapshot {
  return {
    type: store.meta("type") as HsmType,
    sourceHsmId: store.meta("hsm_id"),
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
  if (!HSM_TYPES[snapshot.type] || typeof source !== "function") throw new HsmError("INVALID_ARGUMENT", "not an HSM snapshot");
  const store = Store.create(dir, { hsmId, type: snapshot.type, origin });
  try {
    const maskingKey = join(dir, MASKING_KEY_FILE);
    // A chip holding the folder's masking key seals what is written, as the HSM itself would.
    const chip = createChip({ slotCount: 1, pinHashIterations: 1 });
    chip.initToken(0, randomBytes(16), Buffer.from("hsmsim restore"));
    // The key goes chip to chip, and from the chip to the new folder (native code), never through JavaScript.
    try {
      source(chip);
    } catch {
      throw new HsmError("INVALID_ARGUMENT", "the snapshot's masking key could not be delivered (sealed to another lineage, or damaged)");
    }
    chip.saveMaskingKey(0, maskingKey);
    store.attachChip((purpose, data) => chip.deviceMac(0, purpose, data), "new");
    store.load(snapshot);
    store.transaction(() => store.appendAudit({ timeUs, reboot: 0, operation: "RESTORE", actor: null, session: null, keys: [],
      result: "OK", detail: `from ${snapshot.sourceHsmId}: ${snapshot.users.length} users, ${snapshot.keys.length} keys` }));
  } finally {
    store.close();
  }
}
