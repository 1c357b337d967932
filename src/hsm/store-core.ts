// The store's transactional core: one SQLite connection, its prepared statements, and
// transactions that commit each change with its audit entries (chained with the chip's MAC)
// and the sealed head (seal.ts), or roll all of it back (DESIGN invariant 2). store.ts opens
// the folder and adds the row-level accessors on top.
import { freezeClass } from "../primordials.js";

import type BetterSqlite3 from "better-sqlite3";

import { type AuditEntry, type AuditFields, GENESIS_HASH, seal } from "./audit.js";
import { HsmError } from "./errors.js";
import type { FolderLock } from "./folder-lock.js";
import { type DeviceMac, type SealRow, StateDigest, checkValue, item, sealMac, sealProblem } from "./seal.js";
import { type JournalRow, KEY_COLUMNS, type KeyRow, type Tombstone, type UnknownLoginRow, type UserRow } from "./store-schema.js";
import { invalid, storeError } from "./store-errors.js";

/** A statement whose failures are HsmErrors. */
interface Statement {
  run(...params: unknown[]): BetterSqlite3.RunResult;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

export class StoreCore {
  private lastHash = GENESIS_HASH;
  /** The next audit sequence (an unknown name's failure records it as its eviction order). */
  protected nextSeq = 1;
  private readonly rollbackListeners: (() => void)[] = [];
  /** Prepared once per SQL text: preparing is most of a small statement's cost. */
  private readonly statements = new Map<string, Statement>();
  /** One transaction wrapper for every transaction (nested calls become savepoints). */
  private readonly inTransaction: (fn: () => unknown) => unknown;
  /** The chip's MAC and the running state digest, once the HSM's chip holds the masking key. */
  private mac?: DeviceMac;
  protected digest?: StateDigest;
  private closed = false;
  /** A read-only store's schema that is not exactly hsmsim's (a writer refuses such a folder at open). */
  schemaProblem?: string;
  /** How many transaction() calls are running (nested ones are savepoints). */
  private depth = 0;
  private checkValue?: string;

  protected constructor(readonly dir: string, private readonly db: BetterSqlite3.Database, private readonly lock: FolderLock | null) {
    this.inTransaction = db.transaction((fn: () => unknown) => {
      const result = fn();
      // The outermost transaction seals once, after every change in it.
      if (this.depth === 1 && this.mac && !this.readOnly) this.writeSeal();
      return result;
    });
    const last = db.prepare("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").get() as { seq: number; hash: string } | undefined;
    if (last) {
      this.lastHash = last.hash;
      this.nextSeq = last.seq + 1;
    }
  }

  private get readOnly(): boolean {
    return this.lock === null;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.statements.clear();
    try {
      this.db.close();
    } finally {
      this.lock?.release();
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private checkOpen(): void {

    if (this.closed) throw new HsmError("CLOSED", "the HSM was closed");
  }

  protected stmt(sql: string, pluck = false): Statement {
    this.checkOpen();
    let statement = this.statements.get(sql);
    if (!statement) {
      let raw: BetterSqlite3.Statement;
      try {
        raw = this.db.prepare(sql);
      } catch (e) {
        throw storeError(this.dir, e);
      }
      if (pluck) raw.pluck();
      const guard = <T>(fn: () => T): T => {
        try {
          return fn();
        } catch (e) {
          throw storeError(this.dir, e);
        }
      };
      statement = {
        run: (...params) => guard(() => raw.run(...params)),
        get: (...params) => guard(() => raw.get(...params)),
        all: (...params) => guard(() => raw.all(...params)),
      };
      this.statements.set(sql, statement);

    }
    return statement;
  }

  protected scalar(sql: string, ...params: unknown[]): unknown {
    return this.stmt(sql, true).get(...params);
  }

  /** Runs `fn` as one transaction: all of it commits, or none of it. */
  transaction<T>(fn: () => T): T {
    this.checkOpen();
    const seq = this.nextSeq, hash = this.lastHash, digest = this.digest?.hex;
    this.depth++;
    try {
      return this.inTransaction(fn) as T;
    } catch (e) {
      this.nextSeq = seq; // the audit entries of a rolled-back transaction never happened
      this.lastHash = hash;
      if (digest !== undefined) this.digest!.hex = digest;
      for (const listener of this.rollbackListeners) listener();
      throw storeError(this.dir, e);
    } finally {
      this.depth--;

    }
  }

  /** A change outside a caller's transaction still commits with its seal. */
  protected write(fn: () => void): void {
    if (this.db.inTransaction) fn();
    else this.transaction(fn);
  }

  /** `listener` runs after a transaction rolls back, to drop state cached from it. */
  onRollback(listener: () => void): void {

    this.rollbackListeners.push(listener);
  }

  // ---- the seal ----
  /**
   * Gives the store the chip's MAC once the chip holds the folder's masking key. A new folder
   * ("new") is sealed now; an existing one ("existing") must match its seal: the masking key's
   * check value, the head's MAC, the digest of every item recomputed, and the audit log's
   * last entry. A folder that does not is DATA_FOLDER_INVALID.
   */
  attachChip(mac: DeviceMac, mode: "new" | "existing"): void {
    this.checkOpen();
    this.mac = mac;
    const digest = this.recomputeDigest(mac);
    if (mode === "existing") {
      const problem = this.sealProblem(mac, digest.hex);
      if (problem) {
        this.mac = undefined;
        throw invalid(this.dir, `${problem}; run "hsmsim audit ${this.dir}" for details`);
      }
    }
    this.digest = digest;
    if (mode === "new") this.transaction(() => undefined);
  }

  private sealRow(): SealRow | undefined {
    return this.stmt("SELECT audit_seq AS auditSeq, audit_hash AS auditHash, state, check_value AS checkValue, mac FROM seal WHERE id = 1").get() as SealRow | undefined;
  }

  /** Why the folder's seal does not hold, or undefined; reads consistently even while another process writes. */
  private sealProblem(mac: DeviceMac, state: string): string | undefined {
    const seal = this.sealRow();
    const problem = sealProblem(mac, seal, state);
    if (problem) return problem;
    if (seal!.auditSeq !== this.nextSeq - 1 || seal!.auditHash !== this.lastHash) {
      return `its audit log ends at entry ${this.nextSeq - 1} but the sealed head is entry ${seal!.auditSeq} (entries were removed, added or edited)`;
    }
    return undefined;
  }

  /** Checks the folder against its seal with `mac` (a reader's chip): the problem, or the sealed audit head. */
  verifySeal(mac: DeviceMac): { problem?: string; head?: { seq: number; hash: string } } {
    const seal = this.sealRow();
    const problem = sealProblem(mac, seal, this.recomputeDigest(mac).hex);
    return { problem, head: seal && !problem ? { seq: seal.auditSeq, hash: seal.auditHash } : undefined };
  }

  /** Runs `fn` on one consistent snapshot of the folder (a reader, while the HSM may be writing). */
  snapshotRead<T>(fn: () => T): T {
    this.checkOpen();
    try {
      return this.db.transaction(fn)() as T;
    } catch (e) {
      throw storeError(this.dir, e);
    }
  }

  /** The audit head the HSM sealed, once the seal itself verified at attach. */
  sealedHead(): { seq: number; hash: string } | undefined {
    const seal = this.sealRow();
    return seal ? { seq: seal.auditSeq, hash: seal.auditHash } : undefined;
  }

  private recomputeDigest(mac: DeviceMac): StateDigest {
    const digest = new StateDigest(mac);
    for (const u of this.stmt("SELECT * FROM users").all() as UserRow[]) digest.toggle(item.user(u));
    for (const k of this.stmt(`SELECT ${KEY_COLUMNS} FROM keys`).all() as KeyRow[]) digest.toggle(item.key(k));
    for (const t of this.stmt("SELECT kind, name, version FROM tombstones").all() as Tombstone[]) digest.toggle(item.tombstone(t));
    for (const m of this.stmt("SELECT name, value FROM meta").all() as { name: string; value: string }[]) digest.toggle(item.meta(m.name, m.value));
    for (const j of this.stmt("SELECT origin, seq, change FROM journal").all() as JournalRow[]) digest.toggle(item.journal(j.origin, j.seq, j.change));
    for (const h of this.stmt("SELECT origin, seq FROM heads").all() as { origin: number; seq: number }[]) digest.toggle(item.head(h.origin, h.seq));
    if (this.hasUnknownLogins()) {
      for (const n of this.stmt("SELECT name_mac AS nameMac, failures, last FROM unknown_logins").all() as UnknownLoginRow[]) digest.toggle(item.unknownLogin(n));
    }
    return digest;
  }

  private writeSeal(): void {
    const mac = this.mac!;
    const auditSeq = this.nextSeq - 1, state = this.digest!.hex;
    this.stmt(`INSERT OR REPLACE INTO seal (id, audit_seq, audit_hash, state, check_value, mac) VALUES (1, ?, ?, ?, ?, ?)`)
      .run(auditSeq, this.lastHash, state, this.checkValue ??= checkValue(mac), sealMac(mac, auditSeq, this.lastHash, state));
  }

  protected toggle(fields: unknown[] | undefined): void {
    if (fields && this.digest) this.digest.toggle(fields);
  }

  /** The digest covers unknown_logins where it exists: a reader of a folder from before the table existed finds none. */
  private hasUnknownLogins(): boolean {
    return this.scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'unknown_logins'") === 1;
  }

  // ---- audit ----
  /** Appends an entry, chained to the last one with the chip's MAC; call inside the change's transaction. */
  appendAudit(fields: Omit<AuditFields, "seq">): AuditEntry {
    this.checkOpen();
    if (!this.mac) throw new HsmError("DATA_FOLDER_INVALID", `${this.dir}: the audit log is written only once the chip holds the masking key`);
    let entry!: AuditEntry;
    this.write(() => {
      entry = seal(this.mac!, { seq: this.nextSeq, ...fields }, this.lastHash);
      this.stmt(`INSERT INTO audit (seq, time_us, reboot, operation, actor, session, keys, result, detail, prev_hash, hash)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(entry.seq, entry.timeUs, entry.reboot, entry.operation, entry.actor,
        entry.session, JSON.stringify(entry.keys), entry.result, entry.detail, entry.prevHash, entry.hash);
      this.nextSeq++;
      this.lastHash = entry.hash;
    });
    return entry;
  }

  *auditEntries(fromSeq = 1): Generator<AuditEntry> {
    this.checkOpen();
    let rows: Iterable<Record<string, unknown>>;
    try {
      rows = this.db.prepare("SELECT * FROM audit WHERE seq >= ? ORDER BY seq").iterate(fromSeq) as Iterable<Record<string, unknown>>;
    } catch (e) {
      throw storeError(this.dir, e);
    }
    for (const r of rows) {
      let keys: number[];
      try {
        keys = JSON.parse(r.keys as string) as number[];
      } catch {
        keys = []; // an edited entry: its MAC no longer matches, and verification says so
      }
      yield {
        seq: r.seq as number, timeUs: r.time_us as number, reboot: r.reboot as number, operation: r.operation as string,
        actor: (r.actor as string | null) ?? null, session: (r.session as number | null) ?? null,
        keys, result: r.result as string, detail: r.detail as string,
        prevHash: r.prev_hash as string, hash: r.hash as string,
      };
    }
  }

  auditCount(): number {
    return this.scalar("SELECT COUNT(*) FROM audit") as number;
  }
}

// Frozen like every exported class (Store's freezeClass also reaches it through the prototype chain).
freezeClass(StoreCore);
