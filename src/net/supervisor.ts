// The control plane of a real-time cluster: one HSM process per HSM (hsm-process.ts), the
// cluster and HSM states of the in-process Cluster (rules shared in src/cluster/control-plane.ts),
// health checks, add/remove/replace, backups (periodic and triggered, with retention), and
// restarting a crashed HSM process after a short backoff (as AWS replaces a failed HSM).
// Membership is pushed to every HSM process over IPC. State persists in cluster.json.
import { readFileSync } from "node:fs";

import type { Backup, BackupTrigger, BackupVault } from "../cluster/backup.js";
import { DEFAULT_BACKUP_INTERVAL_US, DEFAULT_BACKUP_RETENTION_US } from "../cluster/cluster.js";
import {
  type ClusterState, type HsmState, MAX_HSMS, clusterStateAfterHealth, isInitialized, keyAvailabilityMinOf, leastUsedZone, requireManageable,
} from "../cluster/control-plane.js";
import { MAX_ORIGIN } from "../hsm/journal.js";
import { type ClusterFile, type ClusterFolder, type HsmEntry, type ProfileView, nthAddress, profileView } from "./cluster-folder.js";
import { HsmChild } from "./hsm-child.js";
import type { BackupResult, CloneResult, HsmStatus } from "./hsm-ipc.js";
import { issueHsmFiles } from "./new-cluster.js";
import { KmsProcess, type KmsView } from "./supervisor-kms.js";
import { ProcessError } from "./process-errors.js";
import type { Logger } from "./process-log.js";
import { deleteBackup, openVault, saveBackup } from "./vault-files.js";

export interface SupervisorOptions {
  /** First restart delay after a crash; doubles per crash in a row up to 30 s (default 500 ms). */
  restartDelayMs?: number;
  /** Periodic backups (default 24 h; 0 turns them off). */
  backupIntervalMs?: number;
  /** Backups older than this are deleted, the newest excepted (default 90 days). */
  backupRetentionMs?: number;
  /** How long an HSM process may take to start (default 60 s). */
  startTimeoutMs?: number;
  /** How often the supervisor asks each HSM process for its status (default 5 s); three missed answers in a row and it is killed and restarted. */
  healthCheckIntervalMs?: number;
  /**
   * The HSMs this supervisor runs (ids); the others are members served by another supervisor (on
   * another machine, from a copy of the cluster folder). Absent: all of them.
   */
  only?: string[];
  /** Also run the KMS endpoint as a process of this cluster (hsmsim up --kms), listening here. */
  kms?: { host: string; port: number };
}

export interface HsmView {
  hsmId: string;
  origin: number;
  address: string;
  availabilityZone: string;
  state: HsmState;
  pid: number | null;
  restarts: number;
  /** Run by another supervisor (see SupervisorOptions.only): this one only tells its HSMs about it. */
  remote?: boolean;
  /** From the HSM itself (absent when it does not answer). */
  activated?: boolean;
  keyCount?: number;
  userCount?: number;
  /** Requests its process served, and answered busy (queue full), since it started. */
  served?: number;
  busy?: number;
}

export interface ClusterView {
  clusterId: string;
  lineageId: string;
  state: ClusterState;
  running: boolean;
  supervisorPid: number | null;
  mtls: boolean;
  /** Absent: no profile recorded (as fast as the chip). */
  profile?: ProfileView;
  hsms: HsmView[];
  backups: { backupId: string; trigger: string; createdMs: number; sourceHsmId: string }[];
  events: { atMs: number; event: string }[];
  /** The KMS endpoint's process, when the cluster runs one (hsmsim up --kms). */
  kms?: KmsView;
}

interface Live {
  child: HsmChild | null;
  /** Stopped on purpose (remove, restart, down): no automatic restart. */
  intentional: boolean;
  restarts: number;
  crashesInRow: number;
  readyAtMs: number;
  restartTimer: NodeJS.Timeout | null;
  /** Health checks in a row it did not answer. */
  missedChecks: number;
}

const MAX_EVENTS = 200;
const MAX_MISSED_CHECKS = 3;
const STABLE_MS = 60_000;
const MAX_RESTART_DELAY_MS = 30_000;

export class Supervisor {
  private file: ClusterFile;
  private readonly vault: BackupVault;
  private readonly live = new Map<string, Live>();
  private membershipEpoch = 0;
  private readonly events: { atMs: number; event: string }[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private stopping = false;
  /** Changes (add, remove, replace, restart, backup) run one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly kms: KmsProcess | null;

  constructor(private readonly folder: ClusterFolder, private readonly log: Logger, private readonly options: SupervisorOptions = {}) {
    this.file = folder.read();
    for (const id of options.only ?? []) {
      if (!this.file.hsms.some((h) => h.hsmId === id && h.state !== "DELETED")) throw new ProcessError("HSM_NOT_FOUND", `--only names ${id}, no HSM of ${this.file.clusterId}`);
    }
    const { vault, skipped } = openVault(folder, this.file.lineageId);
    this.vault = vault;
    for (const name of skipped) this.event(`backup file ${name} skipped: it does not open under ${this.file.lineageId}`);
    this.kms = options.kms ? new KmsProcess({
      clusterDir: folder.dir, host: options.kms.host, port: options.kms.port, logFile: `${folder.logsDir}/kms.stderr`,
      restartDelayMs: options.restartDelayMs ?? 500, event: (text) => this.event(text),
    }) : null;
  }

  get clusterId(): string {
    return this.file.clusterId;
  }

  /** Starts every HSM that is not deleted and waits (bounded) until each answers. */
  async start(): Promise<void> {
    this.event(`supervisor started for ${this.file.clusterId}`);
    for (const h of this.local()) {
      h.state = "DEGRADED"; // until its process says it is ready
      this.spawn(h);
    }
    this.healthCheck();
    this.kms?.start(); // beside the HSMs: it needs them only for custom key stores, and connects when asked
    await Promise.all(this.local().map((h) => this.waitReady(h.hsmId)));
    const backupMs = this.options.backupIntervalMs ?? DEFAULT_BACKUP_INTERVAL_US / 1000;
    if (backupMs > 0) this.every(backupMs, () => void this.serial(() => this.backup("periodic")).catch(() => {}));
    const checkMs = this.options.healthCheckIntervalMs ?? 5_000;
    this.every(checkMs, () => void this.probe(checkMs));
  }

  // ---- commands (the control socket's) ----
  status(): Promise<ClusterView> {
    return this.view();
  }

  kill(hsmId: string): Promise<void> {
    return this.serial(async () => {
      const { entry, live } = this.lookup(hsmId);
      if (!live.child?.alive) throw new ProcessError("INVALID_STATE", `HSM ${entry.hsmId} is not running`);
      this.event(`HSM ${hsmId} killed (SIGKILL)`);
      live.child.kill("SIGKILL");
      await live.child.whenExited();
    });
  }

  restart(hsmId: string): Promise<void> {
    return this.serial(async () => {
      const { entry, live } = this.lookup(hsmId);
      await this.stopChild(entry, live);
      live.crashesInRow = 0;
      this.spawn(entry);
      await this.waitReady(hsmId);
    });
  }

  add(zone?: string): Promise<HsmView> {
    return this.serial(() => this.addHsm(zone));
  }

  remove(hsmId: string): Promise<void> {
    return this.serial(() => this.removeHsm(hsmId));
  }

  replace(hsmId: string): Promise<HsmView> {
    return this.serial(async () => {
      const zone = this.lookup(hsmId).entry.availabilityZone;
      await this.removeHsm(hsmId);
      return this.addHsm(zone);
    });
  }

  backupNow(): Promise<Backup> {
    return this.serial(() => this.backup("manual"));
  }

  /** Stops every HSM process cleanly and keeps the states in cluster.json. */
  async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    await this.queue.catch(() => {});
    // The KMS first: it is a client of the HSMs (and its trail is flushed and signed as it stops).
    await this.kms?.stop();
    await Promise.all(this.local().map(async (h) => this.stopChild(h, this.liveOf(h.hsmId))));
    this.event("supervisor stopped");
    this.save();
  }

  // ---- HSM processes ----
  private spawn(entry: HsmEntry): void {
    const live = this.liveOf(entry.hsmId);
    live.intentional = false;
    if (live.restartTimer) clearTimeout(live.restartTimer);
    live.restartTimer = null;
    const child = new HsmChild({
      dir: this.folder.abs(entry.folder), clusterId: this.file.clusterId, address: entry.address, availabilityZone: entry.availabilityZone,
      certFile: this.folder.hsmCert(entry.origin), keyFile: this.folder.hsmKey(entry.origin), caFile: this.folder.trustAnchor,
      clientCaFile: this.file.mtls ? this.folder.clientCaCert : undefined, logFile: `${this.folder.logsDir}/${entry.hsmId}.log`,
      profile: this.file.profile,
    }, {
      ready: (info) => {
        live.readyAtMs = Date.now();
        live.missedChecks = 0;
        if (info.hsmId !== entry.hsmId) this.event(`HSM process at ${entry.folder} says it is ${info.hsmId}, not ${entry.hsmId}`);
        if (info.activated) this.noticeActivation();
        this.event(`HSM ${entry.hsmId} process ${child.pid} ready at ${entry.address}`);
        this.publishMembership();
        this.healthCheck();
      },
      activated: () => this.noticeActivation(),
      exit: (code, signal, reason) => this.childExited(entry, live, child, code, signal, reason),
    });
    live.child = child;
  }

  private childExited(entry: HsmEntry, live: Live, child: HsmChild, code: number | null, signal: string | null, reason: string | null): void {
    if (live.child !== child) return;
    live.child = null;
    this.event(`HSM ${entry.hsmId} process exited (${signal ?? `code ${code}`})${reason ? `: ${reason}` : ""}`);
    this.healthCheck();
    if (live.intentional || this.stopping || entry.state === "DELETED") return;
    // A crash: restart after a backoff that grows while it keeps crashing (a damaged folder must not spin).
    if (Date.now() - live.readyAtMs > STABLE_MS) live.crashesInRow = 0;
    const delayMs = Math.min(MAX_RESTART_DELAY_MS, (this.options.restartDelayMs ?? 500) * 2 ** live.crashesInRow);
    live.crashesInRow++;
    this.event(`HSM ${entry.hsmId} restarts in ${delayMs} ms`);
    live.restartTimer = setTimeout(() => {
      live.restartTimer = null;
      if (this.stopping || entry.state === "DELETED" || live.child) return;
      live.restarts++;
      this.spawn(entry);
    }, delayMs);
  }

  private async stopChild(entry: HsmEntry, live: Live): Promise<void> {
    live.intentional = true;
    if (live.restartTimer) clearTimeout(live.restartTimer);
    live.restartTimer = null;
    const child = live.child;
    if (!child?.alive) return;
    try {
      await child.command({ t: "stop" }, 10_000);
    } catch {
      child.kill("SIGKILL");
    }
    const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await child.whenExited();
    clearTimeout(killer);
  }

  private waitReady(hsmId: string): Promise<void> {
    const timeoutMs = this.options.startTimeoutMs ?? 60_000;
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const check = () => {
        const live = this.live.get(hsmId);
        if (live?.child?.ready) return resolve();
        if (Date.now() - started > timeoutMs) return reject(new ProcessError("TIMEOUT", `HSM ${hsmId} did not start within ${timeoutMs} ms (see its log in ${this.folder.logsDir})`));
        setTimeout(check, 20);
      };
      check();
    });
  }

  // ---- membership and states ----
  private members(): HsmEntry[] {
    return this.file.hsms.filter((h) => h.state !== "DELETED");
  }

  /** The members this supervisor runs. */
  private local(): HsmEntry[] {
    return this.members().filter((h) => this.isLocal(h.hsmId));
  }

  private isLocal(hsmId: string): boolean {
    return this.options.only === undefined || this.options.only.includes(hsmId);
  }

  private requireWholeCluster(what: string): void {
    if (this.options.only !== undefined) throw new ProcessError("INVALID_STATE", `cannot ${what}: this supervisor runs only some of the cluster's HSMs (--only); run it with the whole cluster`);
  }

  private publishMembership(): void {
    this.membershipEpoch++;
    const members = this.members().map(({ hsmId, address, availabilityZone, origin }) => ({ hsmId, address, availabilityZone, origin }));
    const command = {
      t: "members" as const, members, epoch: this.membershipEpoch, keyAvailabilityMin: keyAvailabilityMinOf(members.length, undefined),
      initialized: isInitialized(this.file.state), maxOrigin: this.file.nextOrigin - 1,
    };
    for (const h of this.members()) {
      const child = this.live.get(h.hsmId)?.child;
      if (child?.ready) child.command(command, 10_000).catch((e: Error) => this.log.warn({ hsmId: h.hsmId, err: e.message }, "membership not delivered"));
    }
  }

  private healthCheck(): void {
    let changed = false;
    for (const h of this.local()) {
      const next: HsmState = this.live.get(h.hsmId)?.child?.ready ? "ACTIVE" : "DEGRADED";
      if (next !== h.state) {
        h.state = next;
        this.event(`HSM ${h.hsmId} ${next}`);
        changed = true;
      }
    }
    const next = clusterStateAfterHealth(this.file.state, this.members().map((h) => h.state));
    if (next !== this.file.state) {
      this.file.state = next;
      this.event(`cluster ${next}`);
      changed = true;
    }
    if (changed) this.save();
  }

  /** Asks every ready HSM process for its status; one that stays silent (hung) is killed, and so restarted. */
  private async probe(timeoutMs: number): Promise<void> {
    await Promise.all(this.members().map(async (h) => {
      const live = this.live.get(h.hsmId);
      const child = live?.child;
      if (!live || !child?.ready) return;
      try {
        const s = await child.command<HsmStatus>({ t: "status" }, timeoutMs);
        live.missedChecks = 0;
        if (s.activated) this.noticeActivation();
      } catch {
        if (live.child !== child) return;
        live.missedChecks++;
        this.event(`HSM ${h.hsmId} missed a health check (${live.missedChecks} in a row)`);
        if (live.missedChecks >= MAX_MISSED_CHECKS) {
          this.event(`HSM ${h.hsmId} does not answer: killed, to be restarted`);
          live.missedChecks = 0;
          child.kill("SIGKILL");
        }
      }
    }));
    this.healthCheck();
  }

  private noticeActivation(): void {
    if (this.file.state !== "INITIALIZED") return;
    this.file.state = "ACTIVE";
    this.event("cluster ACTIVE (activated)");
    this.healthCheck();
    this.save();
    void this.serial(() => this.backup("activation")).catch((e: Error) => this.event(`activation backup failed: ${e.message}`));
  }

  // ---- add, remove ----
  private async addHsm(zone?: string): Promise<HsmView> {
    requireManageable(this.file.state, "add an HSM");
    this.requireWholeCluster("add an HSM");
    if (this.members().length >= MAX_HSMS) throw new ProcessError("INVALID_STATE", `a cluster holds at most ${MAX_HSMS} HSMs`);
    const chosen = zone ?? leastUsedZone(this.file.zones, this.members().map((h) => h.availabilityZone));
    if (!this.file.zones.includes(chosen)) throw new ProcessError("INVALID_ARGUMENT", `the zone must be one of ${this.file.zones.join(", ")}`);
    const source = this.sourceChild();
    if (this.file.nextOrigin > MAX_ORIGIN) throw new ProcessError("INVALID_STATE", `a cluster creates at most ${MAX_ORIGIN} HSMs over its life`);
    const origin = this.file.nextOrigin++;
    this.save(); // an ordinal is never given twice, even if what follows fails
    const previous = this.file.state;
    this.file.state = "UPDATE_IN_PROGRESS";
    try {
      await this.backupFrom(source, "add-hsm");
      const folder = this.folder.hsmFolder(origin);
      const { hsmId } = await source.child.command<CloneResult>({ t: "clone", dir: this.folder.abs(folder), origin });
      const entry: HsmEntry = { hsmId, origin, address: nthAddress(this.file.baseAddress, this.file.port, origin - 1), availabilityZone: chosen, state: "CREATE_IN_PROGRESS", folder };
      const ca = { certPem: readFileSync(this.folder.trustAnchor, "utf8"), keyPem: readFileSync(this.folder.caKey, "utf8") };
      await issueHsmFiles(this.folder, ca, entry);
      this.file.hsms.push(entry);
      this.event(`HSM ${hsmId} CREATE_IN_PROGRESS in ${chosen} at ${entry.address}`);
      this.save();
      this.spawn(entry);
      await this.waitReady(hsmId);
      return (await this.view()).hsms.find((h) => h.hsmId === hsmId)!;
    } finally {
      if (this.file.state === "UPDATE_IN_PROGRESS") this.file.state = previous;
      this.healthCheck();
      this.save();
    }
  }

  private async removeHsm(hsmId: string): Promise<void> {
    requireManageable(this.file.state, "remove an HSM");
    this.requireWholeCluster("remove an HSM");
    const { entry, live } = this.lookup(hsmId);
    await this.stopChild(entry, live);
    entry.state = "DELETED";
    this.event(`HSM ${hsmId} DELETED`);
    this.save();
    this.publishMembership();
    this.healthCheck();
    if (this.members().some((h) => this.live.get(h.hsmId)?.child?.ready)) await this.backup("remove-hsm");
  }

  // ---- backups ----
  private sourceChild(): { entry: HsmEntry; child: HsmChild } {
    for (const entry of this.members()) {
      const child = this.live.get(entry.hsmId)?.child;
      if (child?.ready) return { entry, child };
    }
    throw new ProcessError("INVALID_STATE", "no live HSM to clone or back up from");
  }

  private backup(trigger: BackupTrigger): Promise<Backup> {
    return this.backupFrom(this.sourceChild(), trigger);
  }

  private async backupFrom(source: { entry: HsmEntry; child: HsmChild }, trigger: BackupTrigger): Promise<Backup> {
    // The masking key travels sealed by the source chip to the lineage's chip: never in clear in JavaScript.
    const snapshot = await source.child.command<BackupResult>({ t: "backup", transportKey: this.vault.transportKey(this.file.lineageId) });
    const nowUs = Date.now() * 1000;
    const backup = this.vault.seal(snapshot, { clusterId: this.file.clusterId, lineageId: this.file.lineageId, sourceHsmId: source.entry.hsmId, trigger, createdUs: nowUs });
    saveBackup(this.folder, backup);
    this.event(`backup ${backup.backupId} (${trigger}) from ${source.entry.hsmId}`);
    const retentionUs = (this.options.backupRetentionMs ?? DEFAULT_BACKUP_RETENTION_US / 1000) * 1000;
    for (const expired of this.vault.expire(this.file.clusterId, nowUs, retentionUs)) {
      deleteBackup(this.folder, expired.backupId);
      this.event(`backup ${expired.backupId} expired`);
    }
    return backup;
  }

  // ---- helpers ----
  private async view(): Promise<ClusterView> {
    const hsms = await Promise.all(this.file.hsms.map(async (h): Promise<HsmView> => {
      const live = this.live.get(h.hsmId);
      const view: HsmView = { hsmId: h.hsmId, origin: h.origin, address: h.address, availabilityZone: h.availabilityZone, state: h.state,
        pid: live?.child?.alive ? live.child.pid ?? null : null, restarts: live?.restarts ?? 0 };
      if (!this.isLocal(h.hsmId)) view.remote = true;
      if (live?.child?.ready) {
        try {
          const s = await live.child.command<HsmStatus>({ t: "status" }, 5_000);
          Object.assign(view, { activated: s.activated, keyCount: s.keyCount, userCount: s.userCount, served: s.served, busy: s.busy });
        } catch {
          // not answering: the view says so by leaving the counts out
        }
      }
      return view;
    }));
    return {
      clusterId: this.file.clusterId, lineageId: this.file.lineageId, state: this.file.state, running: true, supervisorPid: process.pid, mtls: this.file.mtls,
      profile: profileView(this.file.profile), hsms,
      backups: this.vault.list(this.file.clusterId).map((b) => ({ backupId: b.backupId, trigger: b.trigger, createdMs: Math.round(b.createdUs / 1000), sourceHsmId: b.sourceHsmId })),
      events: [...this.events],
      ...(this.kms ? { kms: this.kms.view() } : {}),
    };
  }

  private lookup(hsmId: string): { entry: HsmEntry; live: Live } {
    const entry = this.file.hsms.find((h) => h.hsmId === hsmId);
    if (!entry) throw new ProcessError("HSM_NOT_FOUND", `no HSM ${hsmId} in ${this.file.clusterId}`);
    if (!this.isLocal(hsmId)) throw new ProcessError("INVALID_STATE", `HSM ${hsmId} runs under another supervisor`);
    if (entry.state === "DELETED") throw new ProcessError("INVALID_STATE", `HSM ${hsmId} was removed from the cluster`);
    return { entry, live: this.liveOf(hsmId) };
  }

  private liveOf(hsmId: string): Live {
    let live = this.live.get(hsmId);
    if (!live) {
      live = { child: null, intentional: false, restarts: 0, crashesInRow: 0, readyAtMs: 0, restartTimer: null, missedChecks: 0 };
      this.live.set(hsmId, live);
    }
    return live;
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    if (this.stopping) return Promise.reject(new ProcessError("INVALID_STATE", "the supervisor is stopping"));
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => {});
    return run;
  }

  private every(intervalMs: number, fn: () => void): void {
    const timer = setInterval(fn, intervalMs);
    timer.unref();
    this.timers.push(timer);
  }

  private save(): void {
    this.folder.write(this.file);
  }

  private event(event: string): void {
    this.events.push({ atMs: Date.now(), event });
    if (this.events.length > MAX_EVENTS) this.events.shift();
    this.log.info({ event }, event);
  }
}
