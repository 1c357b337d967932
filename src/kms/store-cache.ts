// The KMS store's memory: each table's verified records with their head items, and the
// secondary indexes reads use (keys and custom key stores by account, aliases by account and
// target, grants by key, token and retiring principal). Reads never touch SQLite or a MAC.
import type { TableSpec } from "./store-schema.js";
import type { AliasRecord, CustomKeyStoreRecord, GrantRecord, KeyRecord } from "./types.js";

const NONE: ReadonlySet<string> = new Set();

/** A secondary index: one value (an account, a key id, a principal) to the cache keys of its rows. */
export class Index {
  readonly #sets = new Map<string, Set<string>>();
  add(value: string | null, id: string): void {
    if (value === null) return;
    let set = this.#sets.get(value);
    if (!set) this.#sets.set(value, (set = new Set()));
    set.add(id);
  }
  remove(value: string | null, id: string): void {
    if (value === null) return;
    const set = this.#sets.get(value);
    if (set?.delete(id) && set.size === 0) this.#sets.delete(value);
  }
  get(value: string): ReadonlySet<string> {
    return this.#sets.get(value) ?? NONE;
  }
}

/** One table's verified rows in memory, with its secondary indexes. */
export class Cache<R> {
  readonly rows = new Map<string, { record: R; item: Buffer }>();
  constructor(readonly spec: TableSpec<R>, readonly indexes: readonly { of: (r: R) => string | null; index: Index }[]) {}
  set(id: string, entry: { record: R; item: Buffer }): void {
    this.remove(id);
    this.rows.set(id, entry);
    for (const { of, index } of this.indexes) index.add(of(entry.record), id);
  }
  remove(id: string): void {
    const old = this.rows.get(id);
    if (!old) return;
    this.rows.delete(id);
    for (const { of, index } of this.indexes) index.remove(of(old.record), id);
  }
  records(ids: ReadonlySet<string>): R[] {
    const out: R[] = [];
    for (const id of ids) out.push(this.rows.get(id)!.record);
    return out;
  }
}

const byCreation = <R extends { creationDateMs: number }>(id: (r: R) => string) => (a: R, b: R): number =>
  a.creationDateMs - b.creationDateMs || (id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0);
export const keysOldestFirst = byCreation<KeyRecord>((r) => r.keyId);
export const grantsOldestFirst = byCreation<GrantRecord>((r) => r.grantId);
export const storesOldestFirst = byCreation<CustomKeyStoreRecord>((r) => r.customKeyStoreId);
export const aliasesByName = (a: AliasRecord, b: AliasRecord): number => (a.aliasName < b.aliasName ? -1 : a.aliasName > b.aliasName ? 1 : 0);

