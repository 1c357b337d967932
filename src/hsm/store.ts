// The HSM's durable state: one SQLite database (better-sqlite3, WAL, synchronous=FULL) in the
// data folder. Users, lockout counters, token keys as the chip's masked records, tombstones
// of deleted keys and users, the change journal a cluster replicates, the audit log and the
// reboot counter. Every change commits in one transaction with its audit entry and the
// sealed head (store-core.ts, seal.ts) before the caller hears of it (DESIGN invariant 2).
// The schema and its check are in store-schema.ts. One Hsm owns the folder at a time
// (folder-lock.ts); the folder is the owner's alone (0700, files 0600).
import { freezeClass } from "../primordials.js";
import { chmodSync, existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";

import type BetterSqlite3 from "better-sqlite3";

import { HsmError } from "./errors.js";
import { FolderLock, LOCK_FILE, createOwnerOnly } from "./folder-lock.js";
import { item } from "./seal.js";
import { StoreCore } from "./store-core.js";
import { invalid, storeError } from "./store-errors.js";
import {
  Database, FORMAT, FORMAT_VERSION, type JournalRow, KEY_COLUMNS, type KeyRow, LATER_TABLE_SQL, SCHEMA, type Tombstone,
  type UnknownLoginRow, type UserRow, schemaProblem,
} from "./store-schema.js";
import type { HsmType } from "./types.js";

export type { JournalRow, KeyRow, Tombstone, UnknownLoginRow, UserRow } from "./store-schema.js";

export const DATABASE_FILE = "hsm.db";
export const MASKING_KEY_FILE = "masking.key";
const DB_SIDE_FILES = ["-wal", "-shm", "-journal"];

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

function tune(db: BetterSqlite3.Database): void {
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL"); // a commit survives power loss, not only a process kill
  db.pragma("foreign_keys = ON");
}

export class Store extends StoreCore {
  private constructor(dir: string, db: BetterSqlite3.Database, lock: FolderLock | null) {
    super(dir, db, lock);
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
      tune(db);
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
      if (lock) tune(db);
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
  /** Raises `origin`'s head to `seq` without an entry (a peer's snapshot holds what came before); never lowers it. */
  raiseHead(origin: number, seq: number): void {
    this.write(() => this.putHead(origin, seq, true));
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
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(Store);
