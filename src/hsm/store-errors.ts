// What the store throws: every failure of the data folder's database is an HsmError.
import { HsmError } from "./errors.js";

export function invalid(dir: string, why: string): HsmError {
  return new HsmError("DATA_FOLDER_INVALID", `${dir} is not a usable hsmsim HSM data folder: ${why}`);
}

/** Turns whatever better-sqlite3 throws into an HsmError: no raw SqliteError leaves the store. */
export function storeError(dir: string, e: unknown): unknown {
  if (e instanceof HsmError) return e;
  const code = (e as { code?: unknown })?.code;
  if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED") return new HsmError("DATA_FOLDER_IN_USE", `${dir}: the database is locked by another process`);
  if (typeof code === "string" && code.startsWith("SQLITE_")) return invalid(dir, `${code}: ${(e as Error).message}`);
  if (e instanceof TypeError && /database connection is not open/.test(e.message)) return new HsmError("CLOSED", "the HSM was closed");
  // better-sqlite3 refusing a value it cannot bind: a caller's bad argument.
  if (e instanceof RangeError || e instanceof TypeError) return new HsmError("INVALID_ARGUMENT", e.message);
  return e;
}
