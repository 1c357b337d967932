// The KMS store's database layout: the tables (STRICT, so SQLite itself refuses a value of the
// wrong type), how each record becomes a row and back, the canonical bytes a row's MAC covers,
// and the check that an existing database's schema is exactly this one (store.ts refuses
// anything else before running a statement on it: a planted trigger would run inside the
// store's own transactions).
import { createRequire } from "node:module";

import type BetterSqlite3 from "better-sqlite3";

import { type SchemaEntry, schemaDifferences, schemaEntriesOf } from "../hsm/schema-check.js";
import type { AliasRecord, CustomKeyStoreRecord, GrantConstraints, GrantRecord, KeyRecord, Tag } from "./types.js";

const require = createRequire(typeof __filename === "string" ? __filename : import.meta.url);
export const Database = require("better-sqlite3") as typeof BetterSqlite3;

export const FORMAT = "hsmsim-kms-store";
export const FORMAT_VERSION = "1";

export const SCHEMA = `
  CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
  CREATE TABLE keys (key_id TEXT PRIMARY KEY, arn TEXT NOT NULL, account_id TEXT NOT NULL, key_spec TEXT NOT NULL,
                     key_usage TEXT NOT NULL, origin TEXT NOT NULL, custom_key_store_id TEXT, material_ref TEXT NOT NULL,
                     description TEXT NOT NULL, creation_date_ms INTEGER NOT NULL, state TEXT NOT NULL,
                     deletion_date_ms INTEGER, pending_window_in_days INTEGER, policy TEXT NOT NULL, tags TEXT NOT NULL,
                     mac BLOB NOT NULL) STRICT;
  CREATE TABLE aliases (account_id TEXT NOT NULL, alias_name TEXT NOT NULL, target_key_id TEXT NOT NULL,
                        creation_date_ms INTEGER NOT NULL, last_updated_date_ms INTEGER NOT NULL, mac BLOB NOT NULL,
                        PRIMARY KEY (account_id, alias_name)) STRICT;
  CREATE TABLE grants (grant_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, key_arn TEXT NOT NULL, account_id TEXT NOT NULL,
                       name TEXT, grantee_principal TEXT NOT NULL, retiring_principal TEXT, operations TEXT NOT NULL,
                       constraints TEXT, issuing_account TEXT NOT NULL, creation_date_ms INTEGER NOT NULL,
                       grant_token TEXT NOT NULL, mac BLOB NOT NULL) STRICT;
  CREATE TABLE custom_key_stores (custom_key_store_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, name TEXT NOT NULL,
                                  cloud_hsm_cluster_id TEXT NOT NULL, trust_anchor_pem TEXT NOT NULL,
                                  sealed_password BLOB NOT NULL, connection_state TEXT NOT NULL,
                                  connection_error_code TEXT, creation_date_ms INTEGER NOT NULL, mac BLOB NOT NULL) STRICT;
  -- The MAC'ed head over every row (store.ts): one row, rewritten by every write transaction.
  CREATE TABLE head (id INTEGER PRIMARY KEY CHECK (id = 1), change_count INTEGER NOT NULL, row_count INTEGER NOT NULL,
                     mac BLOB NOT NULL) STRICT;
`;

/** A column's value as the store binds and reads it (integers as BigInt: exact, whatever an editor wrote). */
export type SqlValue = string | bigint | Buffer | null;

/** A record that does not fit its table (a caller's bug): store.ts turns it into KmsStoreError INVALID_RECORD. */
export class RecordShapeError extends Error {}

function text(value: unknown, member: string): string {
  if (typeof value !== "string") throw new RecordShapeError(`${member} must be a string`);
  return value;
}
/** A primary-key member: non-empty, and without NUL (the cache joins key parts with it). */
function keyText(value: unknown, member: string): string {
  const t = text(value, member);
  if (t === "" || t.includes("\u0000")) throw new RecordShapeError(`${member} must be non-empty and without NUL`);
  return t;
}
function optionalText(value: unknown, member: string): string | null {
  return value === null ? null : text(value, member);
}
function integer(value: unknown, member: string): bigint {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) throw new RecordShapeError(`${member} must be a safe integer`);
  return BigInt(value);
}
function optionalInteger(value: unknown, member: string): bigint | null {
  return value === null ? null : integer(value, member);
}
function oneOf<T extends string>(value: unknown, allowed: readonly T[], member: string): T {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) throw new RecordShapeError(`${member} must be one of ${allowed.join(", ")}`);
  return value as T;
}
function stringMap(value: unknown, member: string): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new RecordShapeError(`${member} must be an object of strings`);
  // fromEntries defines each member as data: a context key "__proto__" stays a key, not a prototype.
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, text(v, `${member}.${k}`)]));
}
function tags(value: unknown): Tag[] {
  if (!Array.isArray(value)) throw new RecordShapeError("tags must be an array");
  return value.map((t, i) => {
    if (typeof t !== "object" || t === null) throw new RecordShapeError(`tags[${i}] must be a Tag`);
    return { TagKey: text((t as Tag).TagKey, `tags[${i}].TagKey`), TagValue: text((t as Tag).TagValue, `tags[${i}].TagValue`) };
  });
}
function constraints(value: unknown): GrantConstraints | null {
  if (value === null) return null;
  if (typeof value !== "object" || Array.isArray(value)) throw new RecordShapeError("constraints must be an object or null");
  const c = value as GrantConstraints, out: GrantConstraints = {};
  if (c.EncryptionContextSubset !== undefined) out.EncryptionContextSubset = stringMap(c.EncryptionContextSubset, "constraints.EncryptionContextSubset");
  if (c.EncryptionContextEquals !== undefined) out.EncryptionContextEquals = stringMap(c.EncryptionContextEquals, "constraints.EncryptionContextEquals");
  return out;
}
function operations(value: unknown): string[] {
  if (!Array.isArray(value)) throw new RecordShapeError("operations must be an array of strings");
  return value.map((op, i) => text(op, `operations[${i}]`));
}

// Reading back: only rows whose MAC verified are decoded, so a failure here means the store
// wrote something it cannot read (a bug), or the record key is not the writer's.
function readText(v: SqlValue): string {
  if (typeof v !== "string") throw new RecordShapeError("a text column holds something else");
  return v;
}
function readOptionalText(v: SqlValue): string | null {
  return v === null ? null : readText(v);
}
function readInteger(v: SqlValue): number {
  if (typeof v !== "bigint") throw new RecordShapeError("an integer column holds something else");
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new RecordShapeError("an integer column holds an unsafe integer");
  return n;
}
function readOptionalInteger(v: SqlValue): number | null {
  return v === null ? null : readInteger(v);
}
function readBlob(v: SqlValue): Buffer {
  if (!Buffer.isBuffer(v)) throw new RecordShapeError("a blob column holds something else");
  return Buffer.from(v);
}

/** One table: its columns (primary key first), and a record's row both ways. */
export interface TableSpec<R> {
  name: "keys" | "aliases" | "grants" | "custom_key_stores";
  columns: readonly string[];
  primaryKeyColumns: number;
  /** Validates and encodes (RecordShapeError for a record that does not fit). */
  encode(record: R): SqlValue[];
  decode(values: readonly SqlValue[]): R;
  /** The record's identity in the cache (the primary key's values, joined). */
  cacheKey(record: R): string;
  copy(record: R): R;
}

const KEY_SPECS = ["SYMMETRIC_DEFAULT", "ECC_NIST_P256", "ECC_NIST_P384", "RSA_2048", "RSA_3072", "RSA_4096", "HMAC_256", "HMAC_384", "HMAC_512"] as const;
const KEY_USAGES = ["ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC"] as const;
const ORIGINS = ["AWS_KMS", "AWS_CLOUDHSM"] as const;
const STORED_KEY_STATES = ["Enabled", "Disabled", "PendingDeletion"] as const;
const CONNECTION_STATES = ["CONNECTED", "CONNECTING", "DISCONNECTED", "DISCONNECTING", "FAILED"] as const;
const CONNECTION_ERROR_CODES = ["INVALID_CREDENTIALS", "CLUSTER_NOT_FOUND", "NETWORK_ERRORS", "INTERNAL_ERROR", "INSUFFICIENT_CLOUDHSM_HSMS",
  "USER_LOCKED_OUT", "USER_NOT_FOUND", "USER_LOGGED_IN", "SUBNET_NOT_FOUND"] as const;

/** Primary-key parts joined for a cache key: NUL never appears in the ids KMS makes. */
export const joinKey = (...parts: string[]): string => parts.join("\u0000");

export const KEYS: TableSpec<KeyRecord> = {
  name: "keys",
  columns: ["key_id", "arn", "account_id", "key_spec", "key_usage", "origin", "custom_key_store_id", "material_ref", "description",
    "creation_date_ms", "state", "deletion_date_ms", "pending_window_in_days", "policy", "tags"],
  primaryKeyColumns: 1,
  encode: (r) => [keyText(r.keyId, "keyId"), text(r.arn, "arn"), text(r.accountId, "accountId"), oneOf(r.keySpec, KEY_SPECS, "keySpec"),
    oneOf(r.keyUsage, KEY_USAGES, "keyUsage"), oneOf(r.origin, ORIGINS, "origin"), optionalText(r.customKeyStoreId, "customKeyStoreId"),
    text(r.materialRef, "materialRef"), text(r.description, "description"), integer(r.creationDateMs, "creationDateMs"),
    oneOf(r.state, STORED_KEY_STATES, "state"), optionalInteger(r.deletionDateMs, "deletionDateMs"),
    optionalInteger(r.pendingWindowInDays, "pendingWindowInDays"), text(r.policy, "policy"), JSON.stringify(tags(r.tags))],
  decode: (v) => ({
    keyId: readText(v[0]), arn: readText(v[1]), accountId: readText(v[2]), keySpec: readText(v[3]) as KeyRecord["keySpec"],
    keyUsage: readText(v[4]) as KeyRecord["keyUsage"], origin: readText(v[5]) as KeyRecord["origin"], customKeyStoreId: readOptionalText(v[6]),
    materialRef: readText(v[7]), description: readText(v[8]), creationDateMs: readInteger(v[9]), state: readText(v[10]) as KeyRecord["state"],
    deletionDateMs: readOptionalInteger(v[11]), pendingWindowInDays: readOptionalInteger(v[12]), policy: readText(v[13]),
    tags: tags(JSON.parse(readText(v[14]))),
  }),
  cacheKey: (r) => r.keyId,
  copy: (r) => ({ ...r, tags: r.tags.map((t) => ({ ...t })) }),
};

export const ALIASES: TableSpec<AliasRecord> = {
  name: "aliases",
  columns: ["account_id", "alias_name", "target_key_id", "creation_date_ms", "last_updated_date_ms"],
  primaryKeyColumns: 2,
  encode: (r) => [keyText(r.accountId, "accountId"), keyText(r.aliasName, "aliasName"), text(r.targetKeyId, "targetKeyId"),
    integer(r.creationDateMs, "creationDateMs"), integer(r.lastUpdatedDateMs, "lastUpdatedDateMs")],
  decode: (v) => ({ accountId: readText(v[0]), aliasName: readText(v[1]), targetKeyId: readText(v[2]), creationDateMs: readInteger(v[3]),
    lastUpdatedDateMs: readInteger(v[4]) }),
  cacheKey: (r) => joinKey(r.accountId, r.aliasName),
  copy: (r) => ({ ...r }),
};

function copyConstraints(c: GrantConstraints | null): GrantConstraints | null {
  if (c === null) return null;
  const out: GrantConstraints = {};
  if (c.EncryptionContextSubset) out.EncryptionContextSubset = { ...c.EncryptionContextSubset };
  if (c.EncryptionContextEquals) out.EncryptionContextEquals = { ...c.EncryptionContextEquals };
  return out;
}

export const GRANTS: TableSpec<GrantRecord> = {
  name: "grants",
  columns: ["grant_id", "key_id", "key_arn", "account_id", "name", "grantee_principal", "retiring_principal", "operations", "constraints",
    "issuing_account", "creation_date_ms", "grant_token"],
  primaryKeyColumns: 1,
  encode: (r) => {
    const c = constraints(r.constraints);
    return [keyText(r.grantId, "grantId"), text(r.keyId, "keyId"), text(r.keyArn, "keyArn"), text(r.accountId, "accountId"),
      optionalText(r.name, "name"), text(r.granteePrincipal, "granteePrincipal"), optionalText(r.retiringPrincipal, "retiringPrincipal"),
      JSON.stringify(operations(r.operations)), c === null ? null : JSON.stringify(c), text(r.issuingAccount, "issuingAccount"),
      integer(r.creationDateMs, "creationDateMs"), text(r.grantToken, "grantToken")];
  },
  decode: (v) => {
    const c = readOptionalText(v[8]);
    return {
      grantId: readText(v[0]), keyId: readText(v[1]), keyArn: readText(v[2]), accountId: readText(v[3]), name: readOptionalText(v[4]),
      granteePrincipal: readText(v[5]), retiringPrincipal: readOptionalText(v[6]), operations: operations(JSON.parse(readText(v[7]))),
      constraints: c === null ? null : constraints(JSON.parse(c)), issuingAccount: readText(v[9]), creationDateMs: readInteger(v[10]),
      grantToken: readText(v[11]),
    };
  },
  cacheKey: (r) => r.grantId,
  copy: (r) => ({ ...r, operations: [...r.operations], constraints: copyConstraints(r.constraints) }),
};

export const CUSTOM_KEY_STORES: TableSpec<CustomKeyStoreRecord> = {
  name: "custom_key_stores",
  columns: ["custom_key_store_id", "account_id", "name", "cloud_hsm_cluster_id", "trust_anchor_pem", "sealed_password", "connection_state",
    "connection_error_code", "creation_date_ms"],
  primaryKeyColumns: 1,
  encode: (r) => {
    if (!Buffer.isBuffer(r.sealedPassword)) throw new RecordShapeError("sealedPassword must be a Buffer");
    return [keyText(r.customKeyStoreId, "customKeyStoreId"), text(r.accountId, "accountId"), text(r.name, "name"),
      text(r.cloudHsmClusterId, "cloudHsmClusterId"), text(r.trustAnchorPem, "trustAnchorPem"), Buffer.from(r.sealedPassword),
      oneOf(r.connectionState, CONNECTION_STATES, "connectionState"),
      r.connectionErrorCode === null ? null : oneOf(r.connectionErrorCode, CONNECTION_ERROR_CODES, "connectionErrorCode"),
      integer(r.creationDateMs, "creationDateMs")];
  },
  decode: (v) => ({
    customKeyStoreId: readText(v[0]), accountId: readText(v[1]), name: readText(v[2]), cloudHsmClusterId: readText(v[3]),
    trustAnchorPem: readText(v[4]), sealedPassword: readBlob(v[5]), connectionState: readText(v[6]) as CustomKeyStoreRecord["connectionState"],
    connectionErrorCode: readOptionalText(v[7]) as CustomKeyStoreRecord["connectionErrorCode"], creationDateMs: readInteger(v[8]),
  }),
  cacheKey: (r) => r.customKeyStoreId,
  copy: (r) => ({ ...r, sealedPassword: Buffer.from(r.sealedPassword) }),
};

export const TABLES = [KEYS, ALIASES, GRANTS, CUSTOM_KEY_STORES] as const;

const ROW_TAG = Buffer.from("hsmsim-kms-row\u0000v1\u0000", "latin1");

/**
 * What a row's MAC covers: a domain tag, the table's name, then every column (primary key
 * first) as a type tag and its bytes (length-prefixed where they vary). Binding the table and
 * the primary key makes a row's body valid only under its own key in its own table. Written
 * into one buffer: this runs for every row at open and for every write.
 */
export function canonicalRow(table: string, values: readonly SqlValue[]): Buffer {
  let size = ROW_TAG.length + 4 + Buffer.byteLength(table, "utf8");
  for (const value of values) {
    if (value === null) size += 1;
    else if (typeof value === "bigint") size += 9;
    else if (typeof value === "string") size += 5 + Buffer.byteLength(value, "utf8");
    else size += 5 + value.length;
  }
  const out = Buffer.allocUnsafe(size);
  let at = ROW_TAG.copy(out, 0);
  const tableLength = out.write(table, at + 4, "utf8");
  out.writeUInt32BE(tableLength, at);
  at += 4 + tableLength;
  for (const value of values) {
    if (value === null) out[at++] = 0;
    else if (typeof value === "bigint") {
      out[at] = 1;
      out.writeBigInt64BE(value, at + 1);
      at += 9;
    } else if (typeof value === "string") {
      out[at] = 2;
      const length = out.write(value, at + 5, "utf8");
      out.writeUInt32BE(length, at + 1);
      at += 5 + length;
    } else {
      out[at] = 3;
      out.writeUInt32BE(value.length, at + 1);
      value.copy(out, at + 5);
      at += 5 + value.length;
    }
  }
  return out;
}

let expectedSchema: Map<string, SchemaEntry> | undefined;

/**
 * What in `db`'s schema is extra, missing or different from the store's (no trigger, view,
 * index or other table may be there: the MACs cover rows, not the schema), or undefined.
 */
export function schemaProblem(db: BetterSqlite3.Database): string | undefined {
  expectedSchema ??= schemaEntriesOf(Database, SCHEMA);
  const parts = schemaDifferences(db, expectedSchema);
  return parts.length ? `its schema is not the KMS store's (${parts.join("; ")})` : undefined;
}
