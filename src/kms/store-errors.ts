// What the KMS store throws: every failure of its database, its file or a record given to it
// is a KmsStoreError (store.ts re-exports it). Callers in the endpoint turn it into
// KMSInternalException (asKmsError); the CLI prints its message.
import { CodedError } from "../coded-error.js";
import { freezeClass } from "../primordials.js";
import { RecordShapeError } from "./store-schema.js";

export type KmsStoreErrorCode =
  /** A row or the head does not verify (see the top of store.ts for what is detected). */
  | "STORE_TAMPERED"
  /** Not a usable store file: not ours, damaged, a symlink, in a folder others can reach, or unwritable. */
  | "STORE_INVALID"
  /** Another KmsStore (this process or another) has the file open. */
  | "STORE_IN_USE"
  | "STORE_CLOSED"
  /** A record that does not fit its table (a caller's bug): names the member. */
  | "INVALID_RECORD"
  /** A transaction() given something other than a synchronous function (a caller's bug). */
  | "INVALID_ARGUMENT";

/** Every failure of the store. `table` and `rowKey` name the first bad row when there is one. */
export class KmsStoreError extends CodedError<KmsStoreErrorCode> {
  readonly table: string | null;
  readonly rowKey: string | null;
  constructor(code: KmsStoreErrorCode, message: string, where: { table?: string; rowKey?: string } = {}) {
    super("KmsStoreError", code, message);
    this.table = where.table ?? null;
    this.rowKey = where.rowKey ?? null;
  }
}

/** better-sqlite3's errors as KmsStoreErrors; anything else (a caller's own error in transaction()) as it is. */
export function mapError(where: string, e: unknown): unknown {
  if (e instanceof KmsStoreError) return e;
  if (e instanceof RecordShapeError) return new KmsStoreError("INVALID_RECORD", `the record is not valid: ${e.message}`);
  const code = (e as { code?: unknown })?.code;
  if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED") return new KmsStoreError("STORE_IN_USE", `${where}: the database is locked by another process`);
  if (typeof code === "string" && code.startsWith("SQLITE_")) return new KmsStoreError("STORE_INVALID", `${where}: ${code}: ${(e as Error).message}`);
  if (e instanceof TypeError && /database connection is not open/.test(e.message)) return new KmsStoreError("STORE_CLOSED", "the KMS store was closed");
  if (e instanceof TypeError && /cannot return a promise/.test(e.message)) {
    return new KmsStoreError("INVALID_ARGUMENT", "transaction(fn): fn must be synchronous (its writes were rolled back)");
  }
  return e;
}


// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(KmsStoreError);
