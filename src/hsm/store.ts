// The HSM's durable state: one SQLite database (better-sqlite3, WAL, synchronous=FULL) in the
// data folder. Users, lockout counters, token keys as the chip's masked records, tombstones
// of deleted keys and users, the change journal a cluster replicates, the audit log and the
// reboot counter. Every change commits in one transaction with its audit entry before the
// caller hears of it (DESIGN invariant 2).
import { existsSync, mkdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

import type BetterSqlite3 from "better-sqlite3";

import { type AuditEntry, type AuditFields, GENESIS_HASH, seal } from "./audit.js";
import { HsmError } from "./errors.js";
import type { PasswordHash } from "./passwords.js";
import type { HsmType, Role } from "./types.js";

const require = createRequire(typeof __filename === "string" ? __filename : import.meta.url);
const Database = require("better-sqlite3") as typeof BetterSqlite3;

export const DATABASE_FILE = "hsm.db";
const KEY_COLUMNS = "id, record, owner, version, created_seq AS createdSeq";
export const MASKING_KEY_FILE = "masking.key";
const FORMAT = "hsmsim-hsm";
const FORMAT_VERSION = "2";

export interface UserRow extends PasswordHash {
  name: string;
  role: Role;
  principal: number;
  failures: number;
  /** Last-writer-wins version of the account (see journal.ts). */
  version: number;
}

export interface KeyRow {
  /** Cluster-wide key id: origin HSM ordinal × 2^32 + that HSM's key sequence. */
  id: number;
  record: Buffer;
  owner: number;
  version: number;
  createdSeq: number;
}

export interface JournalRow {
  origin: number;
  seq: number;
  /** The encoded change (journal.ts). */
  change: string;
}

/** What remains of a deleted key or user: enough to refuse older writes forever. */
export interface Tombstone {
  kind: "key" | "user";
  name: string;
  version: number;
}

const SCHEMA = `
  CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, principal INTEGER NOT NULL,
                      salt BLOB NOT NULL, hash BLOB NOT NULL, cost INTEGER NOT NULL, failures INTEGER NOT NULL,
                      version INTEGER NOT NULL);
  -- Ids come from meta next_key_seq, so a deleted key's id is never given to another key.
  -- created_seq: the journal sequence of the key's creation by the HSM that minted its id (0: unknown).
  CREATE TABLE keys (id INTEGER PRIMARY KEY, record BLOB NOT NULL, owner INTEGER NOT NULL, version INTEGER NOT NULL,
                     created_seq INTEGER NOT NULL);
  CREATE TABLE tombstones (kind TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (kind, name));
  -- Every change this HSM made or applied, by origin HSM and that origin's sequence.
  CREATE TABLE journal (origin INTEGER NOT NULL, seq INTEGER NOT NULL, change TEXT NOT NULL, PRIMARY KEY (origin, seq));
  -- The highest sequence applied from each origin; kept when old journal entries are pruned.
  CREATE TABLE heads (origin INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
  CREATE TABLE audit (seq INTEGER PRIMARY KEY, time_us INTEGER NOT NULL, reboot INTEGER NOT NULL,
                      operation TEXT NOT NULL, actor TEXT, session INTEGER, keys TEXT NOT NULL,
                      result TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
`;

function invalid(dir: string, why: string): HsmError {
  return new HsmError("DATA_FOLDER_INVALID", `${dir} is not a usable hsmsim HSM data folder: ${why}`);
}

export class Store {
  private lastHash = GENESIS_HASH;
  private nextSeq = 1;
  private readonly rollbackListeners: (() => void)[] = [];
  /** Prepared once per SQL text: preparing is most of a small statement's cost. */
  private readonly statements = new Map<string, BetterSqlite3.Statement>();
  /** One transaction wrapper for every transaction (nested calls become savepoints). */
  private readonly inTransaction: (fn: () => unknown) => unknown;

  private constructor(readonly dir: string, private readonly db: BetterSqlite3.Database) {
    this.inTransaction = db.transaction((fn: () => unknown) => fn());
    const last = db.prepare("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").get() as { seq: number; hash: string } | undefined;
    if (last) {
      this.lastHash = last.hash;
      this.nextSeq = last.seq + 1;
    }
  }

  /** A new data folder (which must not hold an HSM already). */
  static create(dir: string, meta: { hsmId: string; type: HsmType; origin: number }): Store {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (existsSync(join(dir, DATABASE_FILE))) throw invalid(dir, "it already holds an HSM (open it instead)");
    const db = new Database(join(dir, DATABASE_FILE));
    Store.tune(db);
    db.transaction(() => {
      db.exec(SCHEMA);
      const put = db.prepare("INSERT INTO meta (name, value) VALUES (?, ?)");
      for (const [name, value] of Object.entries({ format: FORMAT, version: FORMAT_VERSION, hsm_id: meta.hsmId, type: meta.type,
        origin: String(meta.origin), activated: "0", reboots: "0", next_principal: "1", next_key_seq: "1", lamport: "0" })) put.run(name, value);
    })();
    return new Store(dir, db);
  }

  /** An existing data folder; anything missing, damaged or foreign is an HsmError. */
  static open(dir: string): Store {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw invalid(dir, "no such folder");
    const file = join(dir, DATABASE_FILE);
    if (!existsSync(file)) throw invalid(dir, `${DATABASE_FILE} is missing`);
    let db: BetterSqlite3.Database | undefined;
    try {
      db = new Database(file, { fileMustExist: true });
      Store.tune(db);
      const check = db.prepare("PRAGMA quick_check").pluck().get();
      if (check !== "ok") throw new Error(String(check));
      const meta = Object.fromEntries((db.prepare("SELECT name, value FROM meta").all() as { name: string; value: string }[]).map((r) => [r.name, r.value]));
      if (meta.format !== FORMAT) throw new Error("it was not written by hsmsim");
      if (meta.version !== FORMAT_VERSION) throw new Error(`format version ${meta.version} is not ${FORMAT_VERSION}`);
      return new Store(dir, db);
    } catch (e) {
      db?.close();
      if (e instanceof HsmError) throw e;
      throw invalid(dir, e instanceof Error ? e.message : String(e));
    }
  }

  private static tune(db: BetterSqlite3.Database): void {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL"); // a commit survives power loss, not only a process kill
    db.pragma("foreign_keys = ON");
  }

  close(): void {
    this.statements.clear();
    this.db.close();
  }

  private stmt(sql: string): BetterSqlite3.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  /** Runs `fn` as one transaction: all of it commits, or none of it. */
  transaction<T>(fn: () => T): T {
    const seq = this.nextSeq, hash = this.lastHash;
    try {
      return this.inTransaction(fn) as T;
    } catch (e) {
      this.nextSeq = seq; // the audit entries of a rolled-back transaction never happened
      this.lastHash = hash;
      for (const listener of this.rollbackListeners) listener();
      throw e;
    }
  }

  /** `listener` runs after a transaction rolls back, to drop state cached from it. */
  onRollback(listener: () => void): void {
    this.rollbackListeners.push(listener);
  }

  // ---- meta ----
  meta(name: string): string {
    const value = this.stmt("SELECT value FROM meta WHERE name = ?").pluck().get(name) as string | undefined;
    if (value === undefined) throw invalid(this.dir, `meta value ${name} is missing`);
    return value;
  }
  setMeta(name: string, value: string): void {
    this.stmt("UPDATE meta SET value = ? WHERE name = ?").run(value, name);
  }
  /** Sets a meta value only if it is missing; answers the value stored. */
  initMeta(name: string, value: string): string {
    this.stmt("INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)").run(name, value);
    return this.meta(name);
  }

  // ---- users ----
  user(name: string): UserRow | undefined {
    return this.stmt("SELECT * FROM users WHERE name = ?").get(name) as UserRow | undefined;
  }
  users(): UserRow[] {
    return this.stmt("SELECT * FROM users ORDER BY name").all() as UserRow[];
  }
  userCount(): number {
    return this.stmt("SELECT COUNT(*) FROM users").pluck().get() as number;
  }
  insertUser(row: UserRow): void {
    this.stmt(`INSERT OR REPLACE INTO users (name, role, principal, salt, hash, cost, failures, version)
      VALUES (@name, @role, @principal, @salt, @hash, @cost, @failures, @version)`).run(row);
  }
  setFailures(name: string, failures: number): void {
    this.stmt("UPDATE users SET failures = ? WHERE name = ?").run(failures, name);
  }
  deleteUser(name: string, version: number): void {
    this.stmt("DELETE FROM users WHERE name = ?").run(name);
    this.putTombstone({ kind: "user", name, version });
  }

  // ---- keys (masked records) ----
  putKey(row: KeyRow): void {
    this.stmt("INSERT OR REPLACE INTO keys (id, record, owner, version, created_seq) VALUES (@id, @record, @owner, @version, @createdSeq)").run(row);
  }
  key(id: number): KeyRow | undefined {
    return this.stmt(`SELECT ${KEY_COLUMNS} FROM keys WHERE id = ?`).get(id) as KeyRow | undefined;
  }
  deleteKey(id: number, version: number): void {
    this.stmt("DELETE FROM keys WHERE id = ?").run(id);
    this.putTombstone({ kind: "key", name: String(id), version });
  }
  keys(): KeyRow[] {
    return this.stmt(`SELECT ${KEY_COLUMNS} FROM keys ORDER BY id`).all() as KeyRow[];
  }

  // ---- tombstones ----
  tombstone(kind: Tombstone["kind"], name: string): Tombstone | undefined {
    return this.stmt("SELECT kind, name, version FROM tombstones WHERE kind = ? AND name = ?").get(kind, name) as Tombstone | undefined;
  }
  tombstones(): Tombstone[] {
    return this.stmt("SELECT kind, name, version FROM tombstones ORDER BY kind, name").all() as Tombstone[];
  }
  putTombstone(t: Tombstone): void {
    this.stmt("INSERT OR REPLACE INTO tombstones (kind, name, version) VALUES (@kind, @name, @version)").run(t);
  }
  clearTombstone(kind: Tombstone["kind"], name: string): void {
    this.stmt("DELETE FROM tombstones WHERE kind = ? AND name = ?").run(kind, name);
  }

  // ---- journal ----
  appendJournal(origin: number, seq: number, change: string): void {
    this.stmt("INSERT INTO journal (origin, seq, change) VALUES (?, ?, ?)").run(origin, seq, change);
    this.stmt("INSERT INTO heads (origin, seq) VALUES (?, ?) ON CONFLICT (origin) DO UPDATE SET seq = MAX(seq, excluded.seq)").run(origin, seq);
  }
  /** The highest sequence applied from each origin (pruning does not lower it). */
  journalHeads(): Map<number, number> {
    const rows = this.stmt("SELECT origin, seq FROM heads").all() as { origin: number; seq: number }[];
    return new Map(rows.map((r) => [r.origin, r.seq]));
  }
  /** Drops `origin`'s entries up to `seq` (every member holds them); returns how many went. */
  pruneJournal(origin: number, seq: number): number {
    return this.stmt("DELETE FROM journal WHERE origin = ? AND seq <= ?").run(origin, seq).changes;
  }
  journalSize(): number {
    return this.stmt("SELECT COUNT(*) FROM journal").pluck().get() as number;
  }
  journalRange(origin: number, afterSeq: number, limit: number): { seq: number; change: string }[] {
    return this.stmt("SELECT seq, change FROM journal WHERE origin = ? AND seq > ? ORDER BY seq LIMIT ?").all(origin, afterSeq, limit) as { seq: number; change: string }[];
  }
  journalAll(): JournalRow[] {
    return this.stmt("SELECT origin, seq, change FROM journal ORDER BY origin, seq").all() as JournalRow[];
  }
  keyCountOwnedBy(owner: number): number {
    return this.stmt("SELECT COUNT(*) FROM keys WHERE owner = ?").pluck().get(owner) as number;
  }

  // ---- audit ----
  /** Appends an entry, chained to the last one; call inside the change's transaction. */
  appendAudit(fields: Omit<AuditFields, "seq">): AuditEntry {
    const entry = seal({ seq: this.nextSeq, ...fields }, this.lastHash);
    this.stmt(`INSERT INTO audit (seq, time_us, reboot, operation, actor, session, keys, result, detail, prev_hash, hash)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(entry.seq, entry.timeUs, entry.reboot, entry.operation, entry.actor,
      entry.session, JSON.stringify(entry.keys), entry.result, entry.detail, entry.prevHash, entry.hash);
    this.nextSeq++;
    this.lastHash = entry.hash;
    return entry;
  }

  *auditEntries(fromSeq = 1): Generator<AuditEntry> {
    const rows = this.db.prepare("SELECT * FROM audit WHERE seq >= ? ORDER BY seq").iterate(fromSeq) as Iterable<Record<string, unknown>>;
    for (const r of rows) {
      yield {
        seq: r.seq as number, timeUs: r.time_us as number, reboot: r.reboot as number, operation: r.operation as string,
        actor: (r.actor as string | null) ?? null, session: (r.session as number | null) ?? null,
        keys: JSON.parse(r.keys as string) as number[], result: r.result as string, detail: r.detail as string,
        prevHash: r.prev_hash as string, hash: r.hash as string,
      };
    }
  }

  /** Copies another HSM's state into this new store (cloning, restoring a backup). */
  load(snapshot: { users: UserRow[]; keys: KeyRow[]; tombstones: Tombstone[]; journal: JournalRow[]; heads: [number, number][];
    activated: boolean; lamport: number }): void {
    this.transaction(() => {
      this.stmt("DELETE FROM users").run();
      for (const user of snapshot.users) this.insertUser(user);
      for (const key of snapshot.keys) this.putKey(key);
      for (const t of snapshot.tombstones) this.putTombstone(t);
      for (const j of snapshot.journal) this.appendJournal(j.origin, j.seq, j.change);
      const head = this.stmt("INSERT OR REPLACE INTO heads (origin, seq) VALUES (?, ?)");
      for (const [origin, seq] of snapshot.heads) head.run(origin, seq);
      this.setMeta("activated", snapshot.activated ? "1" : "0");
      this.setMeta("lamport", String(snapshot.lamport));
    });
  }

  auditCount(): number {
    return this.stmt("SELECT COUNT(*) FROM audit").pluck().get() as number;
  }
}
