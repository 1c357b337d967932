// Cluster backups: an HSM's snapshot (masking key, users, keys, tombstones, journal) sealed
// with AES-256-GCM under a key derived from the cluster's lineage secret. The lineage secret
// stays with the simulated control plane (the vault); a cluster restored from a backup keeps
// the lineage, so only clusters of that lineage open its backups. The masking key is not in the
// backup in clear: it is sealed natively (exportMaskingKeyFor) to the lineage's chip, which the
// vault holds and which alone imports it and hands it on to a restoring chip (deliverMaskingKey).
import { freezeClass } from "../primordials.js";
import { createCipheriv, createDecipheriv, hkdfSync } from "node:crypto";

import type { HsmSnapshot } from "../hsm/snapshot.js";
import { type NativeChip, createChip } from "../pkcs11/addon.js";
import { MapGet, MapSet, WeakMapGet, WeakMapSet } from "../primordials.js";
import { ClusterError } from "./errors.js";

export type BackupTrigger = "activation" | "add-hsm" | "remove-hsm" | "periodic" | "manual";

export interface Backup {
  backupId: string;
  clusterId: string;
  lineageId: string;
  sourceHsmId: string;
  trigger: BackupTrigger;
  /** Simulated microseconds when it was taken. */
  createdUs: number;
  /** iv ‖ ciphertext ‖ tag */
  sealed: Buffer;
}

const BYTES = new Set(["sealedMaskingKey", "salt", "hash", "record"]);

/** Each vault's lineage chips (lineage id → chip): module-private, so holding a vault does not reach them. */
const lineageChips = new WeakMap<BackupVault, Map<string, NativeChip>>();

/** The chip that receives a lineage's sealed masking keys: seeded from the lineage secret, so simulated runs stay deterministic. */
function lineageChip(secret: Buffer): NativeChip {
  const chip = createChip({ slotCount: 1, pinHashIterations: 1, seed: Buffer.from(hkdfSync("sha256", secret, Buffer.alloc(0), Buffer.from("hsmsim lineage chip v1"), 32)) });
  chip.initToken(0, Buffer.from(hkdfSync("sha256", secret, Buffer.alloc(0), Buffer.from("hsmsim lineage chip pin v1"), 16)), Buffer.from("hsmsim lineage"));
  chip.transportPublicKey(0); // its transport key pair, fixed for the lineage's life
  return chip;
}

/**
 * Internal (the cluster's restore): imports a backup's sealed masking key into the lineage's
 * chip and copies it from there into `target`, natively. Not exported from the package.
 */
export function deliverMaskingKey(vault: BackupVault, lineageId: string, sealed: Buffer, target: NativeChip): void {
  const chip = MapGet(WeakMapGet(lineageChips, vault) ?? new Map<string, NativeChip>(), lineageId);
  if (!chip) throw new ClusterError("LINEAGE_MISMATCH", `no lineage ${lineageId} in this vault`);
  chip.importMaskingKey(0, sealed);
  chip.shareMaskingKey(0, target, 0);
}

/** Holds every lineage's secret and every backup, as the cloud provider's backup service does. */
export class BackupVault {
  private readonly lineages = new Map<string, Buffer>();
  private readonly backups = new Map<string, Backup>();

  constructor(private readonly random: (length: number) => Buffer) {
    WeakMapSet(lineageChips, this, new Map());
  }

  newLineage(): string {
    const id = `lineage-${this.random(6).toString("hex")}`;
    const secret = this.random(32);
    this.lineages.set(id, secret);
    MapSet(WeakMapGet(lineageChips, this)!, id, lineageChip(secret));
    return id;
  }

  /**
   * A lineage whose secret is kept elsewhere (the real-time supervisor keeps it in a 0600 file
   * of the cluster folder): the secret goes in, never out.
   */
  adoptLineage(lineageId: string, secret: Buffer): void {
    if (!/^lineage-[0-9a-f]{12}$/.test(lineageId)) throw new ClusterError("INVALID_ARGUMENT", "lineageId must be lineage- and 12 hex digits");
    if (!Buffer.isBuffer(secret) || secret.length !== 32) throw new ClusterError("INVALID_ARGUMENT", "a lineage secret is 32 bytes");
    if (this.lineages.has(lineageId)) throw new ClusterError("INVALID_STATE", `lineage ${lineageId} is in this vault already`);
    this.lineages.set(lineageId, Buffer.from(secret));
    MapSet(WeakMapGet(lineageChips, this)!, lineageId, lineageChip(secret));
  }

  /** Takes back a backup sealed earlier (read from a file): it must open under its lineage. */
  admit(backup: Backup): void {
    this.open(backup, backup.lineageId);
    this.backups.set(backup.backupId, backup);
  }

  /** The public key a lineage's backups seal their masking key to (exportMaskingKeyFor). */
  transportKey(lineageId: string): Buffer {
    const chip = MapGet(WeakMapGet(lineageChips, this)!, lineageId);
    if (!chip) throw new ClusterError("LINEAGE_MISMATCH", `no lineage ${lineageId} in this vault`);
    return chip.transportPublicKey(0);
  }

  seal(snapshot: HsmSnapshot, meta: Omit<Backup, "backupId" | "sealed">): Backup {
    const backupId = `backup-${this.random(8).toString("hex")}`;
    const iv = this.random(12);
    const cipher = createCipheriv("aes-256-gcm", this.keyFor(meta.lineageId, backupId), iv);
    cipher.setAAD(Buffer.from(`${meta.lineageId}/${backupId}`));
    const plain = Buffer.from(JSON.stringify(snapshot, (name, value) => (BYTES.has(name) && value?.type === "Buffer" ? Buffer.from(value.data).toString("base64") : value)));
    const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    const backup: Backup = { backupId, ...meta, sealed };
    this.backups.set(backupId, backup);
    return backup;
  }

  /** Opens a backup for a cluster of `lineageId`; any other lineage, or a changed byte, fails. */
  open(backup: Backup, lineageId: string): HsmSnapshot {
    if (backup.lineageId !== lineageId) throw new ClusterError("LINEAGE_MISMATCH", `backup ${backup.backupId} belongs to ${backup.lineageId}, not ${lineageId}`);
    const key = this.keyFor(lineageId, backup.backupId);
    try {
      const decipher = createDecipheriv("aes-256-gcm", key, backup.sealed.subarray(0, 12));
      decipher.setAAD(Buffer.from(`${lineageId}/${backup.backupId}`));
      decipher.setAuthTag(backup.sealed.subarray(backup.sealed.length - 16));
      const plain = Buffer.concat([decipher.update(backup.sealed.subarray(12, backup.sealed.length - 16)), decipher.final()]);
      return JSON.parse(plain.toString(), (name, value) => (BYTES.has(name) && typeof value === "string" ? Buffer.from(value, "base64") : value)) as HsmSnapshot;
    } catch {
      throw new ClusterError("LINEAGE_MISMATCH", `backup ${backup.backupId} does not open under lineage ${lineageId} (another lineage's key, or damaged)`);
    }
  }

  get(backupId: string): Backup {
    const backup = this.backups.get(backupId);
    if (!backup) throw new ClusterError("BACKUP_NOT_FOUND", `no backup ${backupId}`);
    return backup;
  }

  list(clusterId?: string): Backup[] {
    return [...this.backups.values()].filter((b) => clusterId === undefined || b.clusterId === clusterId).sort((a, b) => a.createdUs - b.createdUs);
  }

  /** Deletes a cluster's backups older than `maxAgeUs`, but always keeps its newest one. */
  expire(clusterId: string, nowUs: number, maxAgeUs: number): Backup[] {
    const mine = this.list(clusterId);
    const expired = mine.slice(0, -1).filter((b) => nowUs - b.createdUs > maxAgeUs);
    for (const b of expired) this.backups.delete(b.backupId);
    return expired;
  }

  private keyFor(lineageId: string, backupId: string): Buffer {
    const secret = this.lineages.get(lineageId);
    if (!secret) throw new ClusterError("LINEAGE_MISMATCH", `no lineage ${lineageId} in this vault`);
    return Buffer.from(hkdfSync("sha256", secret, Buffer.from(backupId), Buffer.from("hsmsim backup v1"), 32));
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(BackupVault);
