// KMS's durable state in the data folder: keys, aliases, grants, tags (in the key record) and
// custom key stores, in SQLite (better-sqlite3, as the HSMs keep theirs). Every acknowledged
// change is durable before the call returns (WAL, synchronous FULL). Every row carries a MAC
// from KMS's fleet (a key only the chip holds), and the store keeps a MAC'ed head over all rows,
// so an edited, planted, dropped or replayed row is found when the store opens.
//
// Tamper evidence (DESIGN invariant 8), precisely. Each row's `mac` = mac(canonical bytes of
// table ‖ primary key ‖ every column) (store-schema.ts). The head row holds a change counter,
// the row count and mac("head" ‖ X ‖ counter ‖ count), where X is the XOR over all rows of a
// per-row item mac("head item" ‖ row mac). X is never written to the file: an editor sees
// row MACs but not the items, so the XOR's linearity gives them nothing to solve with. Every
// write transaction rewrites the head. At open every row and the head are verified.
// Detected (STORE_TAMPERED): a column edited in any row; a row's body moved under another
// primary key or into another table (two rows swapped, a row copied to plant it under a new
// id); a row dropped; a row planted (copied from an older copy of the file, e.g. a revoked
// grant); an older version of a row put back (replay); the head edited, dropped or taken from
// another copy; rows or head written under another record key (another fleet's store).
// Not detected: the whole file (rows and head together) put back to an older copy, or deleted
// (a fresh empty store): nothing outside the file remembers the head. `head()` exposes the
// change counter so a caller can anchor it elsewhere. Also outside the MACs: the meta rows
// (a wrong format is refused, not trusted) and the schema (checked to be exactly ours).
import { freezeClass } from "../primordials.js";
import { timingSafeEqual } from "node:crypto";

import type BetterSqlite3 from "better-sqlite3";

import type { FolderLock } from "../hsm/folder-lock.js";
import { Cache, Index, aliasesByName, grantsOldestFirst, keysOldestFirst, storesOldestFirst } from "./store-cache.js";
import { KmsStoreError, mapError } from "./store-errors.js";
import { prepareFile } from "./store-file.js";
import {
  ALIASES, CUSTOM_KEY_STORES, Database, FORMAT, FORMAT_VERSION, GRANTS, KEYS, SCHEMA, type SqlValue, TABLES,
  type TableSpec, canonicalRow, joinKey, schemaProblem,
} from "./store-schema.js";
import type { AliasRecord, CustomKeyStoreRecord, GrantRecord, KeyRecord } from "./types.js";

export { KmsStoreError, type KmsStoreErrorCode } from "./store-errors.js";

export interface KmsStoreOptions {
  /** The database file, or null for a store that lives in memory only. */
  path: string | null;
  /** HMAC-SHA-256 under KMS's record key (fleet.recordMac): rows and the head. */
  mac: (data: Buffer) => Buffer;
}

const MAC_LENGTH = 32;
const HEAD_TAG = Buffer.from("hsmsim-kms-head\u0000v1\u0000", "latin1");
const HEAD_ITEM_TAG = Buffer.from("hsmsim-kms-head-item\u0000v1\u0000", "latin1");

function xorInto(target: Buffer, item: Buffer): void {
  for (let i = 0; i < MAC_LENGTH; i++) target[i] ^= item[i];
}

export class KmsStore {
  readonly #where: string;
  readonly #db: BetterSqlite3.Database;
  readonly #lock: FolderLock | null;
  readonly #mac: (data: Buffer) => Buffer;
  readonly #statements = new Map<string, BetterSqlite3.Statement>();
  #closed = false;

  // The head's state: XOR of every row's item, how many rows, how many write transactions.
  readonly #xor = Buffer.alloc(MAC_LENGTH);
  #rowCount = 0;
  #changeCount = 0;

  // Transactions: the cache changes to undo when one rolls back (nested ones are savepoints).
  #depth = 0;
  #dirty = false;
  readonly #undo: (() => void)[] = [];
  readonly #runTransaction: (fn: () => unknown) => unknown;

  readonly #keysByAccount = new Index();
  readonly #aliasesByAccount = new Index();
  readonly #aliasesByTarget = new Index();
  readonly #grantsByKey = new Index();
  readonly #grantsByToken = new Index();
  readonly #grantsByRetiring = new Index();
  readonly #storesByAccount = new Index();
  readonly #keys = new Cache(KEYS, [{ of: (r) => r.accountId, index: this.#keysByAccount }]);
  readonly #aliases = new Cache(ALIASES, [{ of: (r) => r.accountId, index: this.#aliasesByAccount }, { of: (r) => r.targetKeyId, index: this.#aliasesByTarget }]);
  readonly #grants = new Cache(GRANTS, [{ of: (r) => r.keyId, index: this.#grantsByKey }, { of: (r) => r.grantToken, index: this.#grantsByToken },
    { of: (r) => r.retiringPrincipal, index: this.#grantsByRetiring }]);
  readonly #stores = new Cache(CUSTOM_KEY_STORES, [{ of: (r) => r.accountId, index: this.#storesByAccount }]);

  private constructor(where: string, db: BetterSqlite3.Database, lock: FolderLock | null, mac: (data: Buffer) => Buffer) {
    this.#where = where;
    this.#db = db;
    this.#lock = lock;
    this.#mac = mac;
    this.#runTransaction = db.transaction((fn: () => unknown) => {
      const result = fn();
      // The outermost transaction rewrites the head once, after every change in it.
      if (this.#depth === 1 && this.#dirty) this.#writeHead(this.#changeCount + 1);
      return result;
    });
  }

  /** Opens (creating if absent) and verifies every row; a tampered store fails with KmsStoreError("STORE_TAMPERED"). */
  static open(options: KmsStoreOptions): KmsStore {
    if (typeof options?.mac !== "function") throw new KmsStoreError("STORE_INVALID", "options.mac must be a function");
    const path = options.path;
    if (path !== null && (typeof path !== "string" || path === "")) throw new KmsStoreError("STORE_INVALID", "options.path must be a file path or null");
    const where = path ?? "the in-memory KMS store";
    const lock = path === null ? null : prepareFile(path);
    let db: BetterSqlite3.Database | undefined;
    try {
      db = new Database(path ?? ":memory:", { timeout: 5000 });
      db.defaultSafeIntegers(true); // integers read exactly, as BigInt, whatever an editor put there
      if (path !== null) {
        db.pragma("journal_mode = WAL");
        db.pragma("synchronous = FULL"); // a commit survives power loss, not only a process kill
      }
      const fresh = (db.prepare("SELECT COUNT(*) FROM sqlite_master").pluck().get() as bigint) === 0n;
      const store = new KmsStore(where, db, lock, options.mac);
      if (fresh) store.#initialize();
      else store.#verifyAndLoad();
      return store;
    } catch (e) {
      db?.close();
      lock?.release();
      const mapped = mapError(where, e);
      if (mapped instanceof KmsStoreError) throw mapped;
      throw new KmsStoreError("STORE_INVALID", `${where}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  #initialize(): void {
    this.#db.transaction(() => {
      this.#db.exec(SCHEMA);
      const put = this.#db.prepare("INSERT INTO meta (name, value) VALUES (?, ?)");
      put.run("format", FORMAT);
      put.run("version", FORMAT_VERSION);
      this.#writeHead(0);
    })();
  }

  #verifyAndLoad(): void {
    const db = this.#db;
    const check = db.prepare("PRAGMA quick_check").pluck().get();
    if (check !== "ok") throw new KmsStoreError("STORE_INVALID", `${this.#where}: the database is damaged (${String(check)})`);
    // Before any statement runs on its tables: a planted trigger or view would change what they do.
    const problem = schemaProblem(db);
    if (problem) throw new KmsStoreError("STORE_TAMPERED", `${this.#where}: ${problem}`);
    const meta = new Map((db.prepare("SELECT name, value FROM meta").all() as { name: string; value: string }[]).map((r) => [r.name, r.value]));
    if (meta.get("format") !== FORMAT) throw new KmsStoreError("STORE_INVALID", `${this.#where} is not a KMS store`);
    if (meta.get("version") !== FORMAT_VERSION) throw new KmsStoreError("STORE_INVALID", `${this.#where}: its format version ${meta.get("version")} is not ${FORMAT_VERSION}`);
    for (const spec of TABLES) this.#loadTable(spec as TableSpec<unknown>);
    const head = db.prepare("SELECT change_count AS changeCount, row_count AS rowCount, mac FROM head WHERE id = 1").get() as
      { changeCount: bigint; rowCount: bigint; mac: Buffer } | undefined;
    if (!head) throw new KmsStoreError("STORE_TAMPERED", `${this.#where}: the head row is missing (it was deleted)`, { table: "head" });
    const changeCount = Number(head.changeCount), sealed = Number(head.rowCount);
    if (!Number.isSafeInteger(changeCount) || changeCount < 0 || sealed !== this.#rowCount || !Buffer.isBuffer(head.mac)
      || !this.#macMatches(head.mac, this.#headMac(changeCount, this.#rowCount))) {
      const why = sealed > this.#rowCount ? `${sealed - this.#rowCount} row(s) were dropped`
        : sealed < this.#rowCount ? `${this.#rowCount - sealed} row(s) were planted`
        : "a row was replayed from an older version of the store, or the head was edited or taken from another copy, or it was written under another record key";
      throw new KmsStoreError("STORE_TAMPERED", `${this.#where}: the rows do not match the store's head: ${why}`, { table: "head" });
    }
    this.#changeCount = changeCount;
  }

  #loadTable<R>(spec: TableSpec<R>): void {
    const cache = this.#cacheOf(spec);
    const pk = spec.columns.slice(0, spec.primaryKeyColumns).join(", ");
    const rows = this.#db.prepare(`SELECT ${spec.columns.join(", ")}, mac FROM ${spec.name} ORDER BY ${pk}`).raw().all() as SqlValue[][];
    for (const row of rows) {
      const values = row.slice(0, -1), stored = row[row.length - 1];
      const rowKey = values.slice(0, spec.primaryKeyColumns).map(String).join(", ");
      const rowMac = this.#macOf(canonicalRow(spec.name, values));
      if (!Buffer.isBuffer(stored) || !this.#macMatches(stored, rowMac)) {
        throw new KmsStoreError("STORE_TAMPERED",
          `${this.#where}: the ${spec.name} row (${rowKey}) does not verify: it was edited, moved under another key, or written under another record key`,
          { table: spec.name, rowKey });
      }
      let record: R;
      try {
        record = spec.decode(values);
      } catch {
        throw new KmsStoreError("STORE_INVALID", `${this.#where}: the ${spec.name} row (${rowKey}) verifies but cannot be read`, { table: spec.name, rowKey });
      }
      const item = this.#itemOf(rowMac);
      cache.set(spec.cacheKey(record), { record, item });
      xorInto(this.#xor, item);
      this.#rowCount++;
    }
  }

  #macOf(data: Buffer): Buffer {
    const mac: unknown = this.#mac(data);
    if (!(mac instanceof Uint8Array) || mac.length !== MAC_LENGTH) throw new KmsStoreError("STORE_INVALID", `options.mac must return ${MAC_LENGTH} bytes`);
    return Buffer.isBuffer(mac) ? mac : Buffer.from(mac.buffer, mac.byteOffset, mac.length);
  }
  #macMatches(stored: Buffer, expected: Buffer): boolean {
    return stored.length === expected.length && timingSafeEqual(stored, expected);
  }
  #itemOf(rowMac: Buffer): Buffer {
    return this.#macOf(Buffer.concat([HEAD_ITEM_TAG, rowMac]));
  }
  #headMac(changeCount: number, rowCount: number): Buffer {
    const counts = Buffer.alloc(16);
    counts.writeBigUInt64BE(BigInt(changeCount), 0);
    counts.writeBigUInt64BE(BigInt(rowCount), 8);
    return this.#macOf(Buffer.concat([HEAD_TAG, this.#xor, counts]));
  }
  #writeHead(changeCount: number): void {
    this.#stmt("INSERT OR REPLACE INTO head (id, change_count, row_count, mac) VALUES (1, ?, ?, ?)")
      .run(BigInt(changeCount), BigInt(this.#rowCount), this.#headMac(changeCount, this.#rowCount));
    this.#changeCount = changeCount;
  }

  #cacheOf<R>(spec: TableSpec<R>): Cache<R> {
    const caches = { keys: this.#keys, aliases: this.#aliases, grants: this.#grants, custom_key_stores: this.#stores } as const;
    return caches[spec.name] as unknown as Cache<R>;
  }

  #checkOpen(): void {
    if (this.#closed) throw new KmsStoreError("STORE_CLOSED", "the KMS store was closed");
  }

  #stmt(sql: string): BetterSqlite3.Statement {
    let statement = this.#statements.get(sql);
    if (!statement) this.#statements.set(sql, (statement = this.#db.prepare(sql)));
    return statement;
  }

  // ---- writes: SQLite first, then the cache (undone if the transaction rolls back) ----
  #put<R>(spec: TableSpec<R>, record: R): void {
    this.#checkOpen();
    let values: SqlValue[], decoded: R;
    if (typeof record !== "object" || record === null) throw new KmsStoreError("INVALID_RECORD", `the record is not valid: ${spec.name} takes an object`);
    try {
      values = spec.encode(record);
      decoded = spec.decode(values); // the cache holds exactly what a reopen would read
    } catch (e) {
      throw mapError(this.#where, e);
    }
    this.transaction(() => {
      const rowMac = this.#macOf(canonicalRow(spec.name, values));
      const placeholders = spec.columns.map(() => "?").join(", ");
      this.#stmt(`INSERT OR REPLACE INTO ${spec.name} (${spec.columns.join(", ")}, mac) VALUES (${placeholders}, ?)`).run(...values, rowMac);
      const id = spec.cacheKey(decoded);
      this.#replaceCached(this.#cacheOf(spec), id, { record: decoded, item: this.#itemOf(rowMac) });
    });
  }

  #delete<R>(spec: TableSpec<R>, id: string, primaryKey: string[]): void {
    this.#checkOpen();
    const cache = this.#cacheOf(spec);
    if (!cache.rows.has(id)) return;
    this.transaction(() => {
      const where = spec.columns.slice(0, spec.primaryKeyColumns).map((c) => `${c} = ?`).join(" AND ");
      this.#stmt(`DELETE FROM ${spec.name} WHERE ${where}`).run(...primaryKey);
      this.#replaceCached(cache, id, null);
    });
  }

  /** Swaps one cached row (null: removes it), keeping the head's XOR and count, and how to undo it. */
  #replaceCached<R>(cache: Cache<R>, id: string, entry: { record: R; item: Buffer } | null): void {
    const old = cache.rows.get(id) ?? null;
    const apply = (from: typeof old, to: typeof old): void => {
      if (from) {
        xorInto(this.#xor, from.item);
        this.#rowCount--;
        cache.remove(id);
      }
      if (to) {
        xorInto(this.#xor, to.item);
        this.#rowCount++;
        cache.set(id, to);
      }
    };
    apply(old, entry);
    this.#dirty = true;
    this.#undo.push(() => apply(entry, old));
  }

  /** Runs `fn` in one transaction (all its writes land, or none). */
  transaction<T>(fn: () => T): T {
    this.#checkOpen();
    if (typeof fn !== "function") throw new KmsStoreError("INVALID_ARGUMENT", "transaction(fn): fn must be a function");
    const mark = this.#undo.length, changeCount = this.#changeCount, outermost = this.#depth === 0;
    this.#depth++;
    try {
      return this.#runTransaction(fn) as T;
    } catch (e) {
      while (this.#undo.length > mark) this.#undo.pop()!();
      if (outermost) this.#changeCount = changeCount;
      throw mapError(this.#where, e);
    } finally {
      this.#depth--;
      if (this.#depth === 0) {
        this.#undo.length = 0;
        this.#dirty = false;
      }
    }
  }

  /** The head's counters: `changeCount` grows with every write transaction (anchor it elsewhere to detect a rollback of the whole file). */
  head(): { changeCount: number; rowCount: number } {
    this.#checkOpen();
    return { changeCount: this.#changeCount, rowCount: this.#rowCount };
  }

  // ---- keys ----
  getKey(keyId: string): KeyRecord | null {
    this.#checkOpen();
    const entry = this.#keys.rows.get(keyId);
    return entry ? KEYS.copy(entry.record) : null;
  }
  /** The account's keys, oldest first. */
  listKeys(accountId: string): KeyRecord[] {
    this.#checkOpen();
    return this.#keys.records(this.#keysByAccount.get(accountId)).sort(keysOldestFirst).map(KEYS.copy);
  }
  /** Inserts or replaces. */
  putKey(record: KeyRecord): void {
    this.#put(KEYS, record);
  }
  /** Removes the key with its aliases and grants. */
  deleteKey(keyId: string): void {
    this.#checkOpen();
    this.transaction(() => {
      for (const id of [...this.#aliasesByTarget.get(keyId)]) {
        const alias = this.#aliases.rows.get(id)!.record;
        this.#delete(ALIASES, id, [alias.accountId, alias.aliasName]);
      }
      for (const id of [...this.#grantsByKey.get(keyId)]) this.#delete(GRANTS, id, [id]);
      this.#delete(KEYS, keyId, [keyId]);
    });
  }

  // ---- aliases ----
  getAlias(accountId: string, aliasName: string): AliasRecord | null {
    this.#checkOpen();
    const entry = this.#aliases.rows.get(joinKey(accountId, aliasName));
    return entry ? ALIASES.copy(entry.record) : null;
  }
  /** The account's aliases (of one key when keyId is given), by name. */
  listAliases(accountId: string, keyId?: string): AliasRecord[] {
    this.#checkOpen();
    let aliases = this.#aliases.records(this.#aliasesByAccount.get(accountId));
    if (keyId !== undefined) aliases = aliases.filter((a) => a.targetKeyId === keyId);
    return aliases.sort(aliasesByName).map(ALIASES.copy);
  }
  putAlias(record: AliasRecord): void {
    this.#put(ALIASES, record);
  }
  deleteAlias(accountId: string, aliasName: string): void {
    this.#delete(ALIASES, joinKey(accountId, aliasName), [accountId, aliasName]);
  }

  // ---- grants ----
  getGrant(grantId: string): GrantRecord | null {
    this.#checkOpen();
    const entry = this.#grants.rows.get(grantId);
    return entry ? GRANTS.copy(entry.record) : null;
  }
  grantByToken(grantToken: string): GrantRecord | null {
    this.#checkOpen();
    for (const id of this.#grantsByToken.get(grantToken)) return GRANTS.copy(this.#grants.rows.get(id)!.record);
    return null;
  }
  /** A key's grants, oldest first. */
  listGrants(keyId: string): GrantRecord[] {
    this.#checkOpen();
    return this.#grants.records(this.#grantsByKey.get(keyId)).sort(grantsOldestFirst).map(GRANTS.copy);
  }
  /** Grants whose retiring principal is `principal` (ListRetirableGrants), oldest first. */
  listRetirableGrants(principal: string): GrantRecord[] {
    this.#checkOpen();
    return this.#grants.records(this.#grantsByRetiring.get(principal)).sort(grantsOldestFirst).map(GRANTS.copy);
  }
  /** Inserts or replaces; a grant token already naming another grant is INVALID_RECORD. */
  putGrant(record: GrantRecord): void {
    this.#checkOpen();
    for (const id of this.#grantsByToken.get(typeof record?.grantToken === "string" ? record.grantToken : "")) {
      if (id !== record.grantId) throw new KmsStoreError("INVALID_RECORD", "the record is not valid: grantToken already names another grant");
    }
    this.#put(GRANTS, record);
  }
  deleteGrant(grantId: string): void {
    this.#delete(GRANTS, grantId, [grantId]);
  }

  // ---- custom key stores ----
  getCustomKeyStore(customKeyStoreId: string): CustomKeyStoreRecord | null {
    this.#checkOpen();
    const entry = this.#stores.rows.get(customKeyStoreId);
    return entry ? CUSTOM_KEY_STORES.copy(entry.record) : null;
  }
  /** The account's stores, oldest first. */
  listCustomKeyStores(accountId: string): CustomKeyStoreRecord[] {
    this.#checkOpen();
    return this.#stores.records(this.#storesByAccount.get(accountId)).sort(storesOldestFirst).map(CUSTOM_KEY_STORES.copy);
  }
  /** Every account's stores (to reconnect them at start), oldest first. */
  allCustomKeyStores(): CustomKeyStoreRecord[] {
    this.#checkOpen();
    return [...this.#stores.rows.values()].map((e) => e.record).sort(storesOldestFirst).map(CUSTOM_KEY_STORES.copy);
  }
  putCustomKeyStore(record: CustomKeyStoreRecord): void {
    this.#put(CUSTOM_KEY_STORES, record);
  }
  deleteCustomKeyStore(customKeyStoreId: string): void {
    this.#delete(CUSTOM_KEY_STORES, customKeyStoreId, [customKeyStoreId]);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#statements.clear();
    try {
      this.#db.close();
    } finally {
      this.#lock?.release();
    }
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(KmsStore);
