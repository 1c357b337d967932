// KMS's durable state in the data folder: keys, aliases, grants, tags (in the key record) and
// custom key stores, in SQLite (better-sqlite3, as the HSMs keep theirs). Every acknowledged
// change is durable before the call returns (WAL, synchronous FULL). Every row carries a MAC
// from KMS's fleet (a key only the chip holds), and the store keeps a MAC'ed head over all rows,
// so an edited, planted, dropped or replayed row is found when the store opens. [helper: store]
import type { AliasRecord, CustomKeyStoreRecord, GrantRecord, KeyRecord } from "./types.js";

export interface KmsStoreOptions {
  /** The database file, or null for a store that lives in memory only. */
  path: string | null;
  /** HMAC-SHA-256 under KMS's record key (fleet.recordMac): rows and the head. */
  mac: (data: Buffer) => Buffer;
}

export class KmsStore {
  /** Opens (creating if absent) and verifies every row; a tampered store fails with KmsStoreError("STORE_TAMPERED"). */
  static open(options: KmsStoreOptions): KmsStore {
    void options;
    throw new Error("not built yet");
  }

  getKey(keyId: string): KeyRecord | null { void keyId; throw new Error("not built yet"); }
  /** The account's keys, oldest first. */
  listKeys(accountId: string): KeyRecord[] { void accountId; throw new Error("not built yet"); }
  /** Inserts or replaces. */
  putKey(record: KeyRecord): void { void record; throw new Error("not built yet"); }
  /** Removes the key with its aliases and grants. */
  deleteKey(keyId: string): void { void keyId; throw new Error("not built yet"); }

  getAlias(accountId: string, aliasName: string): AliasRecord | null { void accountId, aliasName; throw new Error("not built yet"); }
  /** The account's aliases (of one key when keyId is given), by name. */
  listAliases(accountId: string, keyId?: string): AliasRecord[] { void accountId, keyId; throw new Error("not built yet"); }
  putAlias(record: AliasRecord): void { void record; throw new Error("not built yet"); }
  deleteAlias(accountId: string, aliasName: string): void { void accountId, aliasName; throw new Error("not built yet"); }

  getGrant(grantId: string): GrantRecord | null { void grantId; throw new Error("not built yet"); }
  grantByToken(grantToken: string): GrantRecord | null { void grantToken; throw new Error("not built yet"); }
  /** A key's grants, oldest first. */
  listGrants(keyId: string): GrantRecord[] { void keyId; throw new Error("not built yet"); }
  /** Grants whose retiring principal is `principal` (ListRetirableGrants). */
  listRetirableGrants(principal: string): GrantRecord[] { void principal; throw new Error("not built yet"); }
  putGrant(record: GrantRecord): void { void record; throw new Error("not built yet"); }
  deleteGrant(grantId: string): void { void grantId; throw new Error("not built yet"); }

  getCustomKeyStore(customKeyStoreId: string): CustomKeyStoreRecord | null { void customKeyStoreId; throw new Error("not built yet"); }
  listCustomKeyStores(accountId: string): CustomKeyStoreRecord[] { void accountId; throw new Error("not built yet"); }
  /** Every account's stores (to reconnect them at start). */
  allCustomKeyStores(): CustomKeyStoreRecord[] { throw new Error("not built yet"); }
  putCustomKeyStore(record: CustomKeyStoreRecord): void { void record; throw new Error("not built yet"); }
  deleteCustomKeyStore(customKeyStoreId: string): void { void customKeyStoreId; throw new Error("not built yet"); }

  /** Runs `fn` in one transaction (all its writes land, or none). */
  transaction<T>(fn: () => T): T { void fn; throw new Error("not built yet"); }
  close(): void { throw new Error("not built yet"); }
}
