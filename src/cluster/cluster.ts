// A CloudHSM-style cluster and its control plane: HSMs spread over availability zones,
// cluster and HSM states, membership (add by cloning, remove, replace), crash and restart
// of an HSM from its data folder, health checks, and backups with retention. Everything runs
// on an injected clock, transport and random stream, so a seed replays it exactly.
import { freezeClass } from "../primordials.js";
import { join } from "node:path";

import { Hsm, type HsmOptions, restoreHsm } from "../hsm/hsm.js";
import { internalsOf } from "../hsm/internals.js";
import { MAX_ORIGIN } from "../hsm/journal.js";
import type { HsmSnapshot, MaskingKeySource } from "../hsm/snapshot.js";
import type { HsmType } from "../hsm/types.js";
import type { Clock } from "../runtime/clock.js";
import type { Random } from "../runtime/random.js";
import type { Transport } from "../runtime/transport.js";
import { type Backup, type BackupTrigger, BackupVault, deliverMaskingKey } from "./backup.js";
import { ClusterError } from "./errors.js";
import { ClusterNode, type Member, type NodeConfig } from "./node.js";
import { DEFAULT_COMPACTION, badCompactionSetting } from "./replication.js";
import type { RequestOp } from "./protocol.js";

import {
  type ClusterState, type HsmState, MAX_HSMS, checkHsmCount, checkZones, clusterStateAfterHealth, isInitialized, keyAvailabilityMinOf, leastUsedZone,
  requireManageable,
} from "./control-plane.js";

export { MAX_HSMS, type ClusterState, type HsmState };

export interface HsmInfo {
  hsmId: string;
  address: string;
  availabilityZone: string;
  origin: number;
  state: HsmState;
}

export interface ClusterOptions {
  clock: Clock;
  transport: Transport;
  rng: Random;
  /** Each HSM keeps its data folder under here. */
  dataDir: string;
  hsmCount?: number;
  /** Availability zones; HSMs go round-robin over them (default three). */
  availabilityZones?: string[];
  hsmType?: HsmType;
  /** HSMs that must hold a new token key before its create returns (default 2 with 2+ HSMs, else 1). */
  keyAvailabilityMin?: number;
  /** Periodic backups (default 24 hours); 0 turns them off. */
  backupIntervalUs?: number;
  /** Backups older than this are deleted, the newest excepted (default 90 days). */
  backupRetentionUs?: number;
  vault?: BackupVault;
  /** scrypt cost of password hashes (default 15; the simulator uses less). */
  passwordCost?: number;
  node?: Partial<NodeConfig>;
  /** How often the control plane checks its HSMs (default 5 s). */
  healthCheckIntervalUs?: number;
  /** The first two octets of the HSMs' addresses (default "10.0"): one zone per third octet. Give clusters sharing a network different ones. */
  addressPrefix?: string;
  /** The epoch of the HSMs' audit clocks (default 2026-01-01). */
  epochUs?: number;
}

interface HsmRecord extends HsmInfo {
  node: ClusterNode | null;
  dir: string;
}

const HOUR_US = 3_600_000_000;
/** Periodic backups: every 24 hours, kept 90 days (AWS's default retention), the newest always. */
export const DEFAULT_BACKUP_INTERVAL_US = 24 * HOUR_US;
export const DEFAULT_BACKUP_RETENTION_US = 90 * 24 * HOUR_US;

export const DEFAULT_NODE: Omit<NodeConfig, "clusterId" | "address" | "availabilityZone"> = {
  queueCapacity: 32,
  replicationTimeoutUs: 2_000_000,
  gossipIntervalUs: 200_000,
  serviceTimeUs: defaultServiceTimeUs,
  ...DEFAULT_COMPACTION,
};

/** Rough service times of an hsm2m.medium, for the simulator's queues. */
export function defaultServiceTimeUs(op: RequestOp): number {
  if (op.kind === "manage") return 5_000;
  if (op.kind !== "call") return 50;
  switch (op.method) {
    case "generateKeyPair": return 20_000;
    case "generateKey": case "createObject": case "unwrapKey": case "deriveKey": case "copyObject": case "destroyObject": return 2_000;
    case "sign": case "signFinal": return 500;
    case "login": return 5_000;
    default: return 100;
  }
}

export class Cluster {
  readonly clusterId: string;
  readonly lineageId: string;
  readonly vault: BackupVault;
  private stateValue: ClusterState = "CREATE_IN_PROGRESS";
  private readonly hsms: HsmRecord[] = [];
  private nextOrigin = 1;
  private membershipEpoch = 0;
  private readonly zones: string[];
  private readonly rng: Random;
  private activated = false;
  /** What happened, in order, for reports and the demo. */
  readonly events: { atUs: number; event: string }[] = [];

  private constructor(private readonly options: ClusterOptions, lineageId: string | null, initial: HsmSnapshot | null) {
    const count = options.hsmCount ?? 1;
    checkHsmCount(count);
    this.zones = checkZones(options.availabilityZones);
    if (options.keyAvailabilityMin !== undefined && (!Number.isInteger(options.keyAvailabilityMin) || options.keyAvailabilityMin < 1)) {
      throw new ClusterError("INVALID_ARGUMENT", "keyAvailabilityMin must be a positive integer");
    }
    for (const name of ["backupIntervalUs", "backupRetentionUs", "healthCheckIntervalUs"] as const) {
      const value = options[name];
      const least = name === "backupIntervalUs" ? 0 : 1; // 0 turns periodic backups off
      if (value !== undefined && !(Number.isFinite(value) && value >= least)) throw new ClusterError("INVALID_ARGUMENT", `${name} must be a number of microseconds ≥ ${least}`);
    }
    for (const name of ["queueCapacity", "replicationTimeoutUs", "gossipIntervalUs"] as const) {
      const value = options.node?.[name];
      if (value !== undefined && !(Number.isInteger(value) && value >= 1)) throw new ClusterError("INVALID_ARGUMENT", `node.${name} must be a positive integer`);
    }
    const engines = options.node?.engines;
    if (engines !== undefined && !(Number.isInteger(engines) && engines >= 1 && engines <= 1024)) throw new ClusterError("INVALID_ARGUMENT", "node.engines must be an integer from 1 to 1024");
    const badSetting = badCompactionSetting(options.node ?? {});
    if (badSetting) {
      throw new ClusterError("INVALID_ARGUMENT", `node.${badSetting} must be an integer: journalRetainEntries ≥ 0, memberSilentAfterUs and `
        + "snapshotRetryUs ≥ 1, snapshotChunkChars from 1 to 1 MiB");
    }
    if (options.addressPrefix !== undefined && !/^\d{1,3}\.\d{1,3}$/.test(options.addressPrefix)) {
      throw new ClusterError("INVALID_ARGUMENT", "addressPrefix must be two octets, like 10.0");
    }
    this.rng = options.rng;
    const random = (n: number) => this.rng.bytes(n);
    this.vault = options.vault ?? new BackupVault(random);
    this.clusterId = `cluster-${random(6).toString("hex")}`;
    this.lineageId = lineageId ?? this.vault.newLineage();
    this.log(`cluster ${this.clusterId} CREATE_IN_PROGRESS with ${count} HSM(s)`);
    const first = initial ? this.restoreHsm(initial, this.fromBackup(initial), this.zones[0]) : this.createHsm(this.zones[0]);
    this.activated = first.node!.hsm.activated;
    // The other HSMs are clones of the first: the masking key goes chip to chip, never through JavaScript.
    const source = internalsOf(first.node!.hsm);
    for (let i = 1; i < count; i++) this.restoreHsm(source.snapshot(), (target) => source.chip.shareMaskingKey(0, target, 0), this.zones[i % this.zones.length]);
    this.stateValue = this.activated ? "ACTIVE" : "UNINITIALIZED";
    this.publishMembership();
    this.log(`cluster ${this.stateValue}`);
    const interval = options.backupIntervalUs ?? DEFAULT_BACKUP_INTERVAL_US;
    if (interval > 0) this.every(interval, () => this.backupNow("periodic"));
    this.every(options.healthCheckIntervalUs ?? 5_000_000, () => this.healthCheck());
  }

  /** A new cluster of fresh HSMs (the first one created, the others cloned from it). */
  static create(options: ClusterOptions): Cluster {
    return new Cluster(options, null, null);
  }

  /** A new cluster from a backup: same lineage, one HSM holding the backup's users and keys. */
  static restore(backupId: string, options: ClusterOptions & { vault: BackupVault; lineageId: string }): Cluster {
    const backup = options.vault.get(backupId);
    const snapshot = options.vault.open(backup, options.lineageId);
    return new Cluster(options, options.lineageId, snapshot);
  }

  get state(): ClusterState {
    return this.stateValue;
  }

  get keyAvailabilityMin(): number {
    const live = this.members().length;
    return keyAvailabilityMinOf(live, this.options.keyAvailabilityMin);
  }

  describe(): HsmInfo[] {
    return this.hsms.map(({ hsmId, address, availabilityZone, origin, state }) => ({ hsmId, address, availabilityZone, origin, state }));
  }

  /** Addresses a client may bootstrap from. */
  addresses(): string[] {
    return this.hsms.filter((h) => h.state !== "DELETED").map((h) => h.address);
  }

  /** Every HSM's data folder, removed ones included (for checkers and audits). */
  dataFolders(): { hsmId: string; dir: string }[] {
    return this.hsms.map(({ hsmId, dir }) => ({ hsmId, dir }));
  }

  node(hsmId: string): ClusterNode | null {
    return this.record(hsmId).node;
  }

  liveNodes(): ClusterNode[] {
    return this.hsms.flatMap((h) => (h.node?.running ? [h.node] : []));
  }

  /** Signs the cluster's certificate, in AWS's words: UNINITIALIZED → INITIALIZED; then PRECO may activate. */
  initialize(): void {
    if (this.stateValue !== "UNINITIALIZED") throw new ClusterError("INVALID_STATE", `initialize needs an UNINITIALIZED cluster, not ${this.stateValue}`);
    this.stateValue = "INITIALIZED";
    this.log("cluster INITIALIZED");
    this.publishMembership();
  }

  /** The control plane notices an activation (PRECO's password change on any HSM) and backs up. */
  private noticeActivation(): void {
    if (this.activated || !this.liveNodes().some((n) => n.hsm.activated)) return;
    this.activated = true;
    this.stateValue = "ACTIVE";
    this.log("cluster ACTIVE (activated)");
    this.backupNow("activation");
  }

  /** Adds an HSM in `availabilityZone`, cloned from a backup of a live HSM; it catches up by anti-entropy. */
  addHsm(availabilityZone?: string): HsmInfo {
    this.requireManageable("add an HSM");
    if (this.hsms.filter((h) => h.state !== "DELETED").length >= MAX_HSMS) throw new ClusterError("HSM_LIMIT", `a cluster holds at most ${MAX_HSMS} HSMs`);
    const zone = availabilityZone ?? this.leastUsedZone();
    if (!this.zones.includes(zone)) throw new ClusterError("INVALID_ARGUMENT", `availabilityZone must be one of ${this.zones.join(", ")}`);
    const source = this.liveNodes()[0];
    if (!source) throw new ClusterError("NO_LIVE_HSM", "no live HSM to clone from");
    const previous = this.stateValue;
    this.stateValue = "UPDATE_IN_PROGRESS";
    const backup = this.backupFrom(source, "add-hsm");
    const opened = this.vault.open(backup, this.lineageId);
    const added = this.restoreHsm(opened, this.fromBackup(opened), zone);
    this.publishMembership();
    this.stateValue = previous === "UPDATE_IN_PROGRESS" ? "ACTIVE" : previous;
    this.healthCheck();
    return this.info(added);
  }

  /** Removes an HSM from the cluster (its data folder is kept, but it never rejoins). */
  removeHsm(hsmId: string): void {
    this.requireManageable("remove an HSM");
    const record = this.record(hsmId);
    if (record.state === "DELETED") throw new ClusterError("INVALID_STATE", `HSM ${hsmId} is deleted already`);
    record.node?.stop();
    record.node = null;
    record.state = "DELETED";
    this.log(`HSM ${hsmId} DELETED`);
    this.publishMembership();
    if (this.liveNodes().length > 0) this.backupNow("remove-hsm");
    this.healthCheck();
  }

  /** Replaces an HSM (usually a failed one) with a new one in the same zone: new id, new address, new audit stream. */
  replaceHsm(hsmId: string): HsmInfo {
    const zone = this.record(hsmId).availabilityZone;
    this.removeHsm(hsmId);
    return this.addHsm(zone);
  }

  // ---- faults ----
  /** Kills an HSM's process: what it committed survives in its data folder; everything else is lost. */
  crashHsm(hsmId: string): void {
    const record = this.record(hsmId);
    if (!record.node) throw new ClusterError("INVALID_STATE", `HSM ${hsmId} is not running`);
    record.node.stop();
    record.node = null;
    this.log(`HSM ${hsmId} crashed`);
  }

  /** Restarts a crashed HSM from its data folder, at the same address. */
  restartHsm(hsmId: string): void {
    const record = this.record(hsmId);
    if (record.state === "DELETED") throw new ClusterError("INVALID_STATE", `HSM ${hsmId} was removed from the cluster`);
    if (record.node) throw new ClusterError("INVALID_STATE", `HSM ${hsmId} is running`);
    record.node = this.startNode(Hsm.open(record.dir, this.hsmOptions(record.origin)), record);
    this.publishMembership();
    this.log(`HSM ${hsmId} restarted`);
    this.healthCheck();
  }

  // ---- backups ----
  backupNow(trigger: BackupTrigger = "manual"): Backup {
    const source = this.liveNodes()[0];
    if (!source) throw new ClusterError("NO_LIVE_HSM", "no live HSM to back up");
    return this.backupFrom(source, trigger);
  }

  backups(): Backup[] {
    return this.vault.list(this.clusterId);
  }

  private backupFrom(source: ClusterNode, trigger: BackupTrigger): Backup {
    // The masking key travels sealed by the source chip to the lineage's chip: never in clear in JavaScript.
    const internals = internalsOf(source.hsm);
    const sealedMaskingKey = internals.chip.exportMaskingKeyFor(0, this.vault.transportKey(this.lineageId));
    const backup = this.vault.seal({ ...internals.snapshot(), sealedMaskingKey }, {
      clusterId: this.clusterId, lineageId: this.lineageId, sourceHsmId: source.hsm.id, trigger, createdUs: this.options.clock.nowUs(),
    });
    this.log(`backup ${backup.backupId} (${trigger}) from ${source.hsm.id}`);
    const expired = this.vault.expire(this.clusterId, this.options.clock.nowUs(), this.options.backupRetentionUs ?? DEFAULT_BACKUP_RETENTION_US);
    for (const b of expired) this.log(`backup ${b.backupId} expired`);
    return backup;
  }

  /** Stops every HSM (the end of a run). */
  shutdown(): void {
    for (const h of this.hsms) {
      h.node?.stop();
      h.node = null;
    }
    this.stateValue = "DELETED";
  }

  // ---- internals ----
  private createHsm(zone: string): HsmRecord {
    const { origin, hsmDir } = this.allocate();
    const hsm = Hsm.create(hsmDir, { ...this.hsmOptions(origin), type: this.options.hsmType });
    return this.register(hsm, zone, origin, hsmDir);
  }

  private restoreHsm(snapshot: HsmSnapshot, maskingKey: MaskingKeySource, zone: string): HsmRecord {
    const { origin, hsmDir } = this.allocate();
    const hsm = restoreHsm(hsmDir, snapshot, maskingKey, this.hsmOptions(origin));
    return this.register(hsm, zone, origin, hsmDir);
  }

  /** A backup's masking key, delivered from the vault's lineage chip to the restoring chip. */
  private fromBackup(snapshot: HsmSnapshot): MaskingKeySource {
    const sealed = snapshot.sealedMaskingKey;
    if (!Buffer.isBuffer(sealed)) throw new ClusterError("INVALID_ARGUMENT", "the backup holds no masking key");
    return (target) => deliverMaskingKey(this.vault, this.lineageId, sealed, target);
  }

  private allocate(): { origin: number; hsmDir: string } {
    const origin = this.nextOrigin++;
    if (origin > MAX_ORIGIN) throw new ClusterError("HSM_LIMIT", `a cluster creates at most ${MAX_ORIGIN} HSMs over its life`);
    return { origin, hsmDir: join(this.options.dataDir, `${this.clusterId}-hsm${origin}`) };
  }

  private register(hsm: Hsm, zone: string, origin: number, dir: string): HsmRecord {
    const zoneIndex = this.zones.indexOf(zone);
    const record: HsmRecord = { hsmId: hsm.id, address: `${this.options.addressPrefix ?? "10.0"}.${zoneIndex}.${10 + origin}`, availabilityZone: zone, origin,
      state: "CREATE_IN_PROGRESS", node: null, dir };
    this.hsms.push(record);
    this.log(`HSM ${hsm.id} CREATE_IN_PROGRESS in ${zone} at ${record.address}`);
    record.node = this.startNode(hsm, record);
    record.state = "ACTIVE";
    this.log(`HSM ${hsm.id} ACTIVE`);
    return record;
  }

  private startNode(hsm: Hsm, record: HsmRecord): ClusterNode {
    const config: NodeConfig = { ...DEFAULT_NODE, ...this.options.node, clusterId: this.clusterId, address: record.address,
      availabilityZone: record.availabilityZone };
    return new ClusterNode(hsm, config, this.options.transport, this.options.clock, () => this.options.clock.schedule(0, () => this.noticeActivation()));
  }

  private hsmOptions(origin: number): HsmOptions {
    const stream = this.rng.fork(`${this.clusterId}/hsm${origin}/${this.events.length}`);
    const epochUs = this.options.epochUs ?? Date.UTC(2026, 0, 1) * 1000;
    return { origin, passwordCost: this.options.passwordCost, seed: stream.bytes(32), randomBytes: (n) => stream.bytes(n),
      clockUs: () => epochUs + this.options.clock.nowUs() };
  }

  private members(): Member[] {
    return this.hsms.filter((h) => h.state !== "DELETED").map(({ hsmId, address, availabilityZone, origin }) => ({ hsmId, address, availabilityZone, origin }));
  }

  private publishMembership(): void {
    this.membershipEpoch++;
    const members = this.members();
    const initialized = isInitialized(this.stateValue);
    for (const h of this.hsms) h.node?.setMembers(members, this.membershipEpoch, this.keyAvailabilityMin, initialized, this.nextOrigin - 1);
  }

  private healthCheck(): void {
    for (const h of this.hsms) {
      if (h.state === "DELETED") continue;
      const next: HsmState = h.node?.running ? "ACTIVE" : "DEGRADED";
      if (next !== h.state) {
        h.state = next;
        this.log(`HSM ${h.hsmId} ${next}`);
      }
    }
    this.noticeActivation();
    const next = clusterStateAfterHealth(this.stateValue, this.hsms.map((h) => h.state));
    if (next !== this.stateValue) {
      this.stateValue = next;
      this.log(`cluster ${next}`);
    }
  }

  private requireManageable(what: string): void {
    requireManageable(this.stateValue, what);
  }

  private leastUsedZone(): string {
    return leastUsedZone(this.zones, this.hsms.filter((h) => h.state !== "DELETED").map((h) => h.availabilityZone));
  }

  private record(hsmId: string): HsmRecord {
    const record = this.hsms.find((h) => h.hsmId === hsmId);
    if (!record) throw new ClusterError("HSM_NOT_FOUND", `no HSM ${hsmId} in ${this.clusterId}`);
    return record;
  }

  private info(record: HsmRecord): HsmInfo {
    return this.describe().find((h) => h.hsmId === record.hsmId)!;
  }

  private every(intervalUs: number, fn: () => void): void {
    const tick = () => {
      if (this.stateValue === "DELETED") return;
      fn();
      this.options.clock.schedule(intervalUs, tick);
    };
    this.options.clock.schedule(intervalUs, tick);
  }

  private log(event: string): void {
    this.events.push({ atUs: this.options.clock.nowUs(), event });
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(Cluster);
