// Whether a SQLite database's schema is exactly the one its code created: SQLite runs whatever a
// database's schema says (a trigger fires inside the owner's own transactions, a view or an index
// changes what a query sees), and MACs cover rows, not sqlite_schema. Shared by the HSM's store
// and KMS's store.
import type BetterSqlite3 from "better-sqlite3";

export interface SchemaEntry {
  type: string;
  name: string;
  tbl_name: string;
  sql: string | null;
}

const SCHEMA_QUERY = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name";

export function schemaKey(e: SchemaEntry): string {
  return `${e.type} ${e.name}`;
}

/** The schema `sql` creates, by key ("table name", "index name"…), from a scratch in-memory database. */
export function schemaEntriesOf(Database: typeof BetterSqlite3, sql: string): Map<string, SchemaEntry> {
  const db = new Database(":memory:");
  try {
    db.exec(sql);
    return new Map((db.prepare(SCHEMA_QUERY).all() as SchemaEntry[]).map((e) => [schemaKey(e), e]));
  } finally {
    db.close();
  }
}

/** What in `db`'s schema is extra, changed or missing against `expected` (empty when it is exactly that). */
export function schemaDifferences(db: BetterSqlite3.Database, expected: ReadonlyMap<string, SchemaEntry>): string[] {
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
  return parts;
}
