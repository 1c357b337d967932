// The data folder's database layout: the format marker, the tables, the shapes of their rows,
// and the check that an existing folder's schema is exactly this one (store.ts refuses
// anything else before running a statement on it).
import { createRequire } from "node:module";

import type BetterSqlite3 from "better-sqlite3";

import type { PasswordHash } from "./passwords.js";
import { type SchemaEntry, schemaDifferences, schemaEntriesOf } from "./schema-check.js";
import type { Role } from "./types.js";

const require = createRequire(typeof __filename === "string" ? __filename : import.meta.url);
export const Database = require("better-sqlite3") as typeof BetterSqlite3;

export const FORMAT = "hsmsim-hsm";
export const FORMAT_VERSION = "3"; // 3: chip-MAC audit chain, sealed head, records bound to (id, version, owner)
export const KEY_COLUMNS = "id, record, owner, version, created_seq AS createdSeq";

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

export const SCHEMA = `
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

/**
 * The schema an hsmsim folder holds, exactly: SQLite runs whatever a database's schema says
 * (a trigger fires inside the HSM's own transactions, a view or index changes what a query
 * sees), and the seal covers rows, not sqlite_schema. So an existing folder must hold these
 * tables and their automatic indexes, each with this SQL, and nothing else — no trigger,
 * view, index, other table, or sqlite_stat* / sqlite_sequence table (the HSM never creates
 * them). PRAGMA user_version and application_id are not read by the HSM: no check.
 */
let expectedSchema: Map<string, SchemaEntry> | undefined;

function expectedSchemaEntries(): Map<string, SchemaEntry> {
  expectedSchema ??= schemaEntriesOf(Database, SCHEMA);
  return expectedSchema;
}

/** Added to format 3 later: a folder from before holds everything else, and gets it (empty) when an HSM opens it. */
const LATER_TABLE = "unknown_logins";
export const LATER_TABLE_SQL = SCHEMA.slice(SCHEMA.indexOf(`CREATE TABLE ${LATER_TABLE}`), SCHEMA.indexOf(";", SCHEMA.indexOf(`CREATE TABLE ${LATER_TABLE}`)) + 1);

/** What in `db`'s schema is extra, missing or different from hsmsim's, or undefined when it is exactly hsmsim's. */
export function schemaProblem(db: BetterSqlite3.Database): string | undefined {
  const expected = new Map(expectedSchemaEntries());
  if (!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(LATER_TABLE)) {
    for (const [key, entry] of expected) if (entry.tbl_name === LATER_TABLE) expected.delete(key);
  }
  const parts = schemaDifferences(db, expected);
  return parts.length ? `its database schema is not hsmsim's (${parts.join("; ")}): it was edited` : undefined;
}
