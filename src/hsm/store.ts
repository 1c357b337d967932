// The HSM's durable state: one SQLite database (better-sqlite3, WAL, synchronous=FULL) in the
// data folder. Users, lockout counters, token keys as the chip's masked records, tombstones
// of deleted keys and users, the change journal a cluster replicates, the audit log and the
// reboot counter. Every change commits in one transaction with its audit entry and the
// sealed head (seal.ts) before the caller hears of it (DESIGN invariant 2). One Hsm owns the
// folder at a time (folder-lock.ts); the folder is the owner's alone (0700, files 0600).
import { freezeClass } from "../primordials.js";
import { chmodSync, existsSync, mkdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

import type BetterSqlite3 from "better-sqlite3";

import { type AuditEntry, type AuditFields, GENESIS_HASH, seal } from "./audit.js";
import { HsmError } from "./errors.js";
import { FolderLock, LOCK_FILE, createOwnerOnly } from "./folder-lock.js";
import { type DeviceMac, type SealRow, StateDigest, checkValue, item, sealMac, sealProblem } from "./seal.js";
import type { PasswordHash } from "./passwords.js";
import type { HsmType, Role } from "./types.js";

const require = createRequire(typeof __filename === "string" ? __filename : import.meta.url);
const Database = require("better-sqlite3") as typeof BetterSqlite3;

export const DATABASE_FILE = "hsm.db";
const KEY_COLUMNS = "id, record, owner, version, created_seq AS createdSeq";
export const MASKING_KEY_FILE = "masking.key";
const FORMAT = "hsmsim-hsm";
const FORMAT_VERSION = "3"; // 3: chip-MAC audit chain, sealed head, records bound to (id, version, owner)

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

/** Failed logins of one unknown name (keyed by the chip's MAC of the folded name). */
export interface UnknownLoginRow {
  nameMac: string;
  failures: number;
  /** The audit sequence of its last failure (eviction order). */
  last: number;
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
  -- Failed logins per unknown name, keyed by the chip's MAC of the folded name (no name in clear),
  -- bounded (MAX_UNKNOWN_NAMES); last: the audit sequence of the last failure, for eviction.
  CREATE TABLE unknown_logins (name_mac TEXT PRIMARY KEY, failures INTEGER NOT NULL, last INTEGER NOT NULL);
  -- The sealed head (seal.ts): one row, rewritten by every transaction.
  CREATE TABLE seal (id INTEGER PRIMARY KEY CHECK (id = 1), audit_seq INTEGER NOT NULL, audit_hash TEXT NOT NULL,
                     state TEXT NOT NULL, check_value TEXT NOT NULL, mac TEXT NOT NULL);
`;
const DB_SIDE_FILES = ["-wal", "-shm", "-journal"];

/**
 * The schema an hsmsim folder holds, exactly: SQLite runs whatever a database's schema says
 * (a trigger fires inside the HSM's own transactions, a view or index changes what a query
 * sees), and the seal covers rows, not sqlite_schema. So an existing folder must hold these
 * tables and their automatic indexes, each with this SQL, and nothing else — no trigger,
 * view, index, other table, or sqlite_stat* / sqlite_sequence table (the HSM never creates
 * them). PRAGMA user_version and application_id are not read by the HSM: no check.
 */
interface SchemaEntry {
  type: string;
  name: string;
  tbl_name: string;
  sql: string | null;
}
const SCHEMA_QUERY = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name";
let expectedSchema: Map<string, SchemaEntry> | undefined;

function schemaKey(e: SchemaEntry): string {
  return `${e.type} ${e.name}`;
}

function expectedSchemaEntries(): Map<string, SchemaEntry> {
  if (!expectedSchema) {
    const db = new Database(":memory:");
    try {
      db.exec(SCHEMA);
      expectedSchema = new Map((db.prepare(SCHEMA_QUERY).all() as SchemaEntry[]).map((e) => [schemaKey(e), e]));
    } finally {
      db.close();
    }
  }
  return expectedSchema;
}

/** Added to format 3 later: a folder from before holds everything else, and gets it (empty) when an HSM opens it. */
const LATER_TABLE = "unknown_logins";
const LATER_TABLE_SQL = SCHEMA.slice(SCHEMA.indexOf(`CREATE TABLE ${LATER_TABLE}`), SCHEMA.indexOf(";", SCHEMA.indexOf(`CREATE TABLE ${LATER_TABLE}`)) + 1);

/** What in `db`'s schema is extra, missing or different from hsmsim's, or undefined when it is exactly hsmsim's. */
function schemaProblem(db: BetterSqlite3.Database): string | undefined {
  const expected = new Map(expectedSchemaEntries());
  if (!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(LATER_TABLE)) {
    for (const [key, entry] of expected) if (entry.tbl_name === LATER_TABLE) expected.delete(key);
  }
  const found = db.prepare(SCHEMA_QUERY).all() as SchemaEntry[];
  const extra: string[] = [], different: string[] = [];
  const seen = new Set<string>();
  for (const entry of found) {
    const key = schemaKey(entry);
    seen.add(key);
    const want = expected.get(key);
    if (!want) extra.push(`${key}${entry.type === "table" || entry.type === "view" ? "" : ` on ${entry.tbl_name}`}`);
    else if (want.sql !== entry.sql || want.tbl_name !== entry.tbl_name) different.push(key);
  }
  const missing = [...expected.keys()].filter((key) => !seen.has(key));
  const parts: string[] = [];
  if (extra.length) parts.push(`extra ${extra.join(", ")}`);
  if (different.length) parts.push(`changed ${different.join(", ")}`);
  if (missing.length) parts.push(`missing ${missing.join(", ")}`);
  return parts.length ? `its database schema is not hsmsim's (${parts.join("; ")}): it was edited` : undefined;
}

function invalid(dir: string, why: string): HsmError {
  return new HsmError("DATA_FOLDER_INVALID", `${dir} is not a usable hsmsim HSM data folder: ${why}`);
}

/** Turns whatever better-sqlite3 throws into an HsmError: no raw SqliteError leaves the store. */
function storeError(dir: string, e: unknown): unknown {
  if (e instanceof HsmError) return e;
  const code = (e as { code?: unknown })?.code;
  if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED") return new HsmError("DATA_FOLDER_IN_USE", `${dir}: the database is locked by another process`);
  if (typeof code === "string" && code.startsWith("SQLITE_")) return invalid(dir, `${code}: ${(e as Error).message}`);
  if (e instanceof TypeError && /database connection is not open/.test(e.message)) return new HsmError("CLOSED", "the HSM was closed");
  // better-sqlite3 refusing a value it cannot bind: a caller's bad argument.
  if (e instanceof RangeError || e instanceof TypeError) return new HsmError("INVALID_ARGUMENT", e.message);
  return e;
}

/** A statement whose failures are HsmErrors. */
interface Statement {
  run(...params: unknown[]): BetterSqlite3.RunResult;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

/**
 * The folder 0700 and every database file in it 0600, whatever the umask. (masking.key is
 * written 0600 by the chip, and one readable by others is refused, not quietly repaired.)
 */
function ownerOnly(dir: string): void {
  chmodSync(dir, 0o700);
  for (const name of [DATABASE_FILE, ...DB_SIDE_FILES.map((suffix) => DATABASE_FILE + suffix), LOCK_FILE]) {
    const path = join(dir, name);
    if (existsSync(path)) chmodSync(path, 0o600);
  }
}

export class Store {
  private lastHash = GENESIS_HASH;
  private nextSeq = 1;
  private readonly rollbackListeners: (() => void)[] = [];
  /** Prepared once per SQL text: preparing is most of a small statement's cost. */
  private readonly statements = new Map<string, Statement>();
  /** One transaction wrapper for every transaction (nested calls become savepoints). */
  private readonly inTransaction: (fn: () => unknown) => unknown;
  /** The chip's MAC and the running state digest, once the HSM's chip holds the masking key. */
  private mac?: DeviceMac;
  private digest?: StateDigest;
  private closed = false;
  /** A read-only store's schema that is not exactly hsmsim's (a writer refuses such a folder at open). */
  schemaProblem?: string;
  /** How many transaction() calls are running (nested ones are savepoints). */
  private depth = 0;

  private constructor(readonly dir: string, private readonly db: BetterSqlite3.Database, private readonly lock: FolderLock | null) {
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

  /** A new data folder (which must not hold an HSM already), locked by this store. */
  static create(dir: string, meta: { hsmId: string; type: HsmType; origin: number }): Store {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700);
    } catch (e) {
      throw invalid(dir, `cannot create the folder (${e instanceof Error ? e.message : String(e)})`);
    }
    const lock = FolderLock.acquire(dir);
    let db: BetterSqlite3.Database | undefined;
    try {
      const file = join(dir, DATABASE_FILE);
      if (existsSync(file)) throw invalid(dir, "it already holds an HSM (open it instead)");
      createOwnerOnly(file, true); // 0600 before SQLite opens it; SQLite gives -wal and -shm the same mode
      db = new Database(file);
      Store.tune(db);
      db.transaction(() => {
        db!.exec(SCHEMA);
        const put = db!.prepare("INSERT INTO meta (name, value) VALUES (?, ?)");
        for (const [name, value] of Object.entries({ format: FORMAT, version: FORMAT_VERSION, hsm_id: meta.hsmId, type: meta.type,
          origin: String(meta.origin), activated: "0", reboots: "0", next_principal: "1", next_key_seq: "1", lamport: "0" })) put.run(name, value);
      })();
      ownerOnly(dir);
      return new Store(dir, db, lock);
    } catch (e) {
      db?.close();
      lock.release();
      throw storeError(dir, e);
    }
  }

  /**
   * An existing data folder; anything missing, damaged or foreign is an HsmError. Locked by
   * this store (DATA_FOLDER_IN_USE while another holds it) unless `readOnly`: a reader
   * (`hsmsim audit`) may read the folder of a running HSM, and never writes.
   */
  static open(dir: string, options: { readOnly?: boolean } = {}): Store {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw invalid(dir, "no such folder");
    const file = join(dir, DATABASE_FILE);
    if (!existsSync(file)) throw invalid(dir, `${DATABASE_FILE} is missing`);
    const lock = options.readOnly ? null : FolderLock.acquire(dir);
    let db: BetterSqlite3.Database | undefined;
    try {
      if (lock) ownerOnly(dir);
      db = new Database(file, { fileMustExist: true, readonly: !lock, timeout: lock ? 5000 : 1000 });
      if (lock) Store.tune(db);
      const check = db.prepare("PRAGMA quick_check").pluck().get();
      if (check !== "ok") throw new Error(String(check));
      const meta = Object.fromEntries((db.prepare("SELECT name, value FROM meta").all() as { name: string; value: string }[]).map((r) => [r.name, r.value]));
      if (meta.format !== FORMAT) throw new Error("it was not written by hsmsim");
      if (meta.version !== FORMAT_VERSION) {
        throw new Error(`its format version ${meta.version} is not ${FORMAT_VERSION} (written by an older hsmsim: back it up and restore it into a new folder, or start over)`);
      }
      // Before anything runs on it: a planted trigger would run inside the HSM's first
      // transaction (even a reader's verdict must not rest on a view or an extra index).
      // A reader reports it as tampering (verifyFolder) and never writes.
      const problem = schemaProblem(db);
      if (problem && lock) throw invalid(dir, problem);
      // A folder from before unknown_logins existed gets it, empty (an empty table adds nothing to the sealed digest).
      if (lock) db.exec(LATER_TABLE_SQL.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"));
      const store = new Store(dir, db, lock);
      store.schemaProblem = problem;
      return store;
    } catch (e) {
      db?.close();
      lock?.release();
      const mapped = storeError(dir, e);
      if (mapped instanceof HsmError) throw mapped;
      throw invalid(dir, e instanceof Error ? e.message : String(e));
    }
  }

  private static tune(db: BetterSqlite3.Database): void {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL"); // a commit survives power loss, not only a process kill
    db.pragma("foreign_keys = ON");
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

  private stmt(sql: string, pluck = false): Statement {
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

  private scalar(sql: string, ...params: unknown[]): unknown {
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
  private write(fn: () => void): void {
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
  private checkValue?: string;

  private toggle(fields: unknown[] | undefined): void {
    if (fields && this.digest) this.digest.toggle(fields);
  }

  // ---- meta ----
  meta(name: string): string {
    const value = this.scalar("SELECT value FROM meta WHERE name = ?", name) as string | undefined;
    if (value === undefined) throw invalid(this.dir, `meta value ${name} is missing`);
    return value;
  }
  setMeta(name: string, value: string): void {
    this.write(() => {
      const old = this.scalar("SELECT value FROM meta WHERE name = ?", name) as string | undefined;
      if (old === value) return;
      if (old === undefined) throw invalid(this.dir, `meta value ${name} is missing`);
      this.stmt("UPDATE meta SET value = ? WHERE name = ?").run(value, name);
      this.toggle(item.meta(name, old));
      this.toggle(item.meta(name, value));
    });
  }
  /** Sets a meta value only if it is missing; answers the value stored. */
  initMeta(name: string, value: string): string {
    this.write(() => {
      if (this.scalar("SELECT value FROM meta WHERE name = ?", name) !== undefined) return;
      this.stmt("INSERT INTO meta (name, value) VALUES (?, ?)").run(name, value);
      this.toggle(item.meta(name, value));
    });
    return this.meta(name);
  }

  // ---- failed logins of unknown names ----
  /** A reader of a folder from before the table existed finds none. */
  private hasUnknownLogins(): boolean {
    return this.scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'unknown_logins'") === 1;
  }
  unknownLoginFailures(nameMac: string): number {
    return (this.scalar("SELECT failures FROM unknown_logins WHERE name_mac = ?", nameMac) as number | undefined) ?? 0;
  }
  /**
   * Records an unknown name's failure count. At most `limit` names are kept: a new one evicts
   * the least recently failed name that is not locked (`failures < lockAt`), and only when
   * every kept name is locked, the least recently failed locked one.
   */
  setUnknownLoginFailures(nameMac: string, failures: number, limit: number, lockAt: number): void {
    this.write(() => {
      const old = this.stmt("SELECT name_mac AS nameMac, failures, last FROM unknown_logins WHERE name_mac = ?").get(nameMac) as UnknownLoginRow | undefined;
      if (old) {
        this.stmt("DELETE FROM unknown_logins WHERE name_mac = ?").run(nameMac);
        this.toggle(item.unknownLogin(old));
      } else {
        while ((this.scalar("SELECT COUNT(*) FROM unknown_logins") as number) >= limit) {
          const victim = (this.stmt("SELECT name_mac AS nameMac, failures, last FROM unknown_logins WHERE failures < ? ORDER BY last LIMIT 1").get(lockAt)
            ?? this.stmt("SELECT name_mac AS nameMac, failures, last FROM unknown_logins ORDER BY last LIMIT 1").get()) as UnknownLoginRow;
          this.stmt("DELETE FROM unknown_logins WHERE name_mac = ?").run(victim.nameMac);
          this.toggle(item.unknownLogin(victim));
        }
      }
      const row = { nameMac, failures, last: this.nextSeq };
      this.stmt("INSERT INTO unknown_logins (name_mac, failures, last) VALUES (@nameMac, @failures, @last)").run(row);
      this.toggle(item.unknownLogin(row));
    });
  }

  // ---- users ----
  user(name: string): UserRow | undefined {
    return this.stmt("SELECT * FROM users WHERE name = ?").get(name) as UserRow | undefined;
  }
  users(): UserRow[] {
    return this.stmt("SELECT * FROM users ORDER BY name").all() as UserRow[];
  }
  userCount(): number {
    return this.scalar("SELECT COUNT(*) FROM users") as number;
  }
  insertUser(row: UserRow): void {
    this.write(() => {
      const old = this.user(row.name);
      this.stmt(`INSERT OR REPLACE INTO users (name, role, principal, salt, hash, cost, failures, version)
        VALUES (@name, @role, @principal, @salt, @hash, @cost, @failures, @version)`).run(row);
      if (old) this.toggle(item.user(old));
      this.toggle(item.user(row));
    });
  }
  setFailures(name: string, failures: number): void {
    this.write(() => {
      const old = this.user(name);
      if (!old || old.failures === failures) return;
      this.stmt("UPDATE users SET failures = ? WHERE name = ?").run(failures, name);
      this.toggle(item.user(old));
      this.toggle(item.user({ ...old, failures }));
    });
  }
  deleteUser(name: string, version: number): void {
    this.write(() => {
      const old = this.user(name);
      this.stmt("DELETE FROM users WHERE name = ?").run(name);
      if (old) this.toggle(item.user(old));
      this.putTombstone({ kind: "user", name, version });
    });
  }

  // ---- keys (masked records) ----
  putKey(row: KeyRow): void {
    this.write(() => {
      const old = this.key(row.id);
      this.stmt("INSERT OR REPLACE INTO keys (id, record, owner, version, created_seq) VALUES (@id, @record, @owner, @version, @createdSeq)").run(row);
      if (old) this.toggle(item.key(old));
      this.toggle(item.key(row));
    });
  }
  key(id: number): KeyRow | undefined {
    return this.stmt(`SELECT ${KEY_COLUMNS} FROM keys WHERE id = ?`).get(id) as KeyRow | undefined;
  }
  deleteKey(id: number, version: number): void {
    this.write(() => {
      const old = this.key(id);
      this.stmt("DELETE FROM keys WHERE id = ?").run(id);
      if (old) this.toggle(item.key(old));
      this.putTombstone({ kind: "key", name: String(id), version });
    });
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
    this.write(() => {
      const old = this.tombstone(t.kind, t.name);
      this.stmt("INSERT OR REPLACE INTO tombstones (kind, name, version) VALUES (@kind, @name, @version)").run({ kind: t.kind, name: t.name, version: t.version });
      if (old) this.toggle(item.tombstone(old));
      this.toggle(item.tombstone(t));
    });
  }
  clearTombstone(kind: Tombstone["kind"], name: string): void {
    this.write(() => {
      const old = this.tombstone(kind, name);
      if (!old) return;
      this.stmt("DELETE FROM tombstones WHERE kind = ? AND name = ?").run(kind, name);
      this.toggle(item.tombstone(old));
    });
  }

  // ---- journal ----
  appendJournal(origin: number, seq: number, change: string): void {
    this.write(() => {
      this.stmt("INSERT INTO journal (origin, seq, change) VALUES (?, ?, ?)").run(origin, seq, change);
      this.toggle(item.journal(origin, seq, change));
      this.putHead(origin, seq, true);
    });
  }
  private putHead(origin: number, seq: number, onlyHigher: boolean): void {
    const old = this.scalar("SELECT seq FROM heads WHERE origin = ?", origin) as number | undefined;
    if (old !== undefined && (old === seq || (onlyHigher && old > seq))) return;
    this.stmt("INSERT OR REPLACE INTO heads (origin, seq) VALUES (?, ?)").run(origin, seq);
    if (old !== undefined) this.toggle(item.head(origin, old));
    this.toggle(item.head(origin, seq));
  }
  /** The highest sequence applied from each origin (pruning does not lower it). */
  journalHeads(): Map<number, number> {
    const rows = this.stmt("SELECT origin, seq FROM heads").all() as { origin: number; seq: number }[];
    return new Map(rows.map((r) => [r.origin, r.seq]));
  }
  /** Drops `origin`'s entries up to `seq` (every member holds them); returns how many went. */
  pruneJournal(origin: number, seq: number): number {
    let dropped = 0;
    this.write(() => {
      if (this.digest) {
        for (const j of this.stmt("SELECT origin, seq, change FROM journal WHERE origin = ? AND seq <= ?").all(origin, seq) as JournalRow[]) {
          this.toggle(item.journal(j.origin, j.seq, j.change));
        }
      }
      dropped = this.stmt("DELETE FROM journal WHERE origin = ? AND seq <= ?").run(origin, seq).changes;
    });
    return dropped;
  }
  journalSize(): number {
    return this.scalar("SELECT COUNT(*) FROM journal") as number;
  }
  journalRange(origin: number, afterSeq: number, limit: number): { seq: number; change: string }[] {
    return this.stmt("SELECT seq, change FROM journal WHERE origin = ? AND seq > ? ORDER BY seq LIMIT ?").all(origin, afterSeq, limit) as { seq: number; change: string }[];
  }
  journalAll(): JournalRow[] {
    return this.stmt("SELECT origin, seq, change FROM journal ORDER BY origin, seq").all() as JournalRow[];
  }
  keyCountOwnedBy(owner: number): number {
    return this.scalar("SELECT COUNT(*) FROM keys WHERE owner = ?", owner) as number;
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

  /** Copies another HSM's state into this new store (cloning, restoring a backup). */
  load(snapshot: { users: UserRow[]; keys: KeyRow[]; tombstones: Tombstone[]; journal: JournalRow[]; heads: [number, number][];
    activated: boolean; lamport: number }): void {
    this.transaction(() => {
      for (const user of this.users()) {
        this.stmt("DELETE FROM users WHERE name = ?").run(user.name);
        this.toggle(item.user(user));
      }
      for (const user of snapshot.users) this.insertUser(user);
      for (const key of snapshot.keys) this.putKey(key);
      for (const t of snapshot.tombstones) this.putTombstone(t);
      for (const j of snapshot.journal) this.appendJournal(j.origin, j.seq, j.change);
      for (const [origin, seq] of snapshot.heads) this.putHead(origin, seq, false);
      this.setMeta("activated", snapshot.activated ? "1" : "0");
      this.setMeta("lamport", String(snapshot.lamport));
    });
  }

  auditCount(): number {
    return this.scalar("SELECT COUNT(*) FROM audit") as number;
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(Store);
