// The HSM's durable state: one SQLite database (better-sqlite3, WAL, synchronous=FULL) in the
// data folder. Users, lockout counters, token keys as the chip's masked records, the audit
// log and the reboot counter. Every change commits in one transaction with its audit entry
// before the caller hears of it (DESIGN invariant 2).
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
export const MASKING_KEY_FILE = "masking.key";
const FORMAT = "hsmsim-hsm";
const FORMAT_VERSION = "1";

export interface UserRow extends PasswordHash {
  name: string;
  role: Role;
  principal: number;
  failures: number;
}

export interface KeyRow {
  id: number;
  record: Buffer;
  owner: number;
}

const SCHEMA = `
  CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, principal INTEGER NOT NULL UNIQUE,
                      salt BLOB NOT NULL, hash BLOB NOT NULL, cost INTEGER NOT NULL, failures INTEGER NOT NULL);
  -- AUTOINCREMENT: a deleted key's id is never given to another key.
  CREATE TABLE keys (id INTEGER PRIMARY KEY AUTOINCREMENT, record BLOB NOT NULL, owner INTEGER NOT NULL);
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

  private constructor(readonly dir: string, private readonly db: BetterSqlite3.Database) {
    const last = db.prepare("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").get() as { seq: number; hash: string } | undefined;
    if (last) {
      this.lastHash = last.hash;
      this.nextSeq = last.seq + 1;
    }
  }

  /** A new data folder (which must not hold an HSM already). */
  static create(dir: string, meta: { hsmId: string; type: HsmType }): Store {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (existsSync(join(dir, DATABASE_FILE))) throw invalid(dir, "it already holds an HSM (open it instead)");
    const db = new Database(join(dir, DATABASE_FILE));
    Store.tune(db);
    db.transaction(() => {
      db.exec(SCHEMA);
      const put = db.prepare("INSERT INTO meta (name, value) VALUES (?, ?)");
      for (const [name, value] of Object.entries({ format: FORMAT, version: FORMAT_VERSION, hsm_id: meta.hsmId, type: meta.type,
        activated: "0", reboots: "0", next_principal: "1" })) put.run(name, value);
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
    this.db.close();
  }

  /** Runs `fn` as one transaction: all of it commits, or none of it. */
  transaction<T>(fn: () => T): T {
    const seq = this.nextSeq, hash = this.lastHash;
    try {
      return this.db.transaction(fn)();
    } catch (e) {
      this.nextSeq = seq; // the audit entries of a rolled-back transaction never happened
      this.lastHash = hash;
      throw e;
    }
  }

  // ---- meta ----
  meta(name: string): string {
    const value = this.db.prepare("SELECT value FROM meta WHERE name = ?").pluck().get(name) as string | undefined;
    if (value === undefined) throw invalid(this.dir, `meta value ${name} is missing`);
    return value;
  }
  setMeta(name: string, value: string): void {
    this.db.prepare("UPDATE meta SET value = ? WHERE name = ?").run(value, name);
  }

  // ---- users ----
  user(name: string): UserRow | undefined {
    return this.db.prepare("SELECT * FROM users WHERE name = ?").get(name) as UserRow | undefined;
  }
  users(): UserRow[] {
    return this.db.prepare("SELECT * FROM users ORDER BY name").all() as UserRow[];
  }
  userCount(): number {
    return this.db.prepare("SELECT COUNT(*) FROM users").pluck().get() as number;
  }
  insertUser(row: UserRow): void {
    this.db.prepare("INSERT INTO users (name, role, principal, salt, hash, cost, failures) VALUES (@name, @role, @principal, @salt, @hash, @cost, @failures)").run(row);
  }
  setPassword(name: string, password: PasswordHash): void {
    this.db.prepare("UPDATE users SET salt = ?, hash = ?, cost = ?, failures = 0 WHERE name = ?").run(password.salt, password.hash, password.cost, name);
  }
  setRole(name: string, role: Role): void {
    this.db.prepare("UPDATE users SET role = ? WHERE name = ?").run(role, name);
  }
  setFailures(name: string, failures: number): void {
    this.db.prepare("UPDATE users SET failures = ? WHERE name = ?").run(failures, name);
  }
  deleteUser(name: string): void {
    this.db.prepare("DELETE FROM users WHERE name = ?").run(name);
  }

  // ---- keys (masked records) ----
  insertKey(record: Buffer, owner: number): number {
    return Number(this.db.prepare("INSERT INTO keys (record, owner) VALUES (?, ?)").run(record, owner).lastInsertRowid);
  }
  updateKey(id: number, record: Buffer): void {
    this.db.prepare("UPDATE keys SET record = ? WHERE id = ?").run(record, id);
  }
  deleteKey(id: number): void {
    this.db.prepare("DELETE FROM keys WHERE id = ?").run(id);
  }
  keys(): KeyRow[] {
    return this.db.prepare("SELECT id, record, owner FROM keys ORDER BY id").all() as KeyRow[];
  }
  keyCountOwnedBy(owner: number): number {
    return this.db.prepare("SELECT COUNT(*) FROM keys WHERE owner = ?").pluck().get(owner) as number;
  }

  // ---- audit ----
  /** Appends an entry, chained to the last one; call inside the change's transaction. */
  appendAudit(fields: Omit<AuditFields, "seq">): AuditEntry {
    const entry = seal({ seq: this.nextSeq, ...fields }, this.lastHash);
    this.db.prepare(`INSERT INTO audit (seq, time_us, reboot, operation, actor, session, keys, result, detail, prev_hash, hash)
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

  auditCount(): number {
    return this.db.prepare("SELECT COUNT(*) FROM audit").pluck().get() as number;
  }
}
