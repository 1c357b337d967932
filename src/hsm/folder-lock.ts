// One owner per data folder: an exclusive SQLite lock on a separate lock database, held for
// as long as the HSM is open. SQLite's locks are POSIX advisory locks: the kernel drops them
// when the process ends (kill -9 included), so no stale lock is ever left behind, and SQLite
// also refuses a second connection of the same process. hsm.db itself stays readable, so
// `hsmsim audit` can read the folder of a running HSM.
import { freezeClass } from "../primordials.js";
import { closeSync, constants, fchmodSync, fstatSync, openSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

import type BetterSqlite3 from "better-sqlite3";

import { HsmError } from "./errors.js";

const require = createRequire(typeof __filename === "string" ? __filename : import.meta.url);
const Database = require("better-sqlite3") as typeof BetterSqlite3;

export const LOCK_FILE = "hsm.lock";

/** Creates `path` owner-only (whatever the umask) if missing, before SQLite opens it. */
export function createOwnerOnly(path: string, exclusive: boolean): void {
  // Never through a planted symlink: it would chmod, or lock, a file outside the folder.
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW | (exclusive ? constants.O_EXCL : 0);
  const fd = openSync(path, flags, 0o600);
  try {
    if (!fstatSync(fd).isFile()) throw new Error(`${path} is not a regular file`);
    fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
}

export class FolderLock {
  private constructor(private db: BetterSqlite3.Database | null) {}

  /** Takes `dir`'s lock, or throws DATA_FOLDER_IN_USE while another Hsm holds it (`fileName`: the real-time supervisor's own lock). */
  static acquire(dir: string, fileName = LOCK_FILE): FolderLock {
    const path = join(dir, fileName);
    let db: BetterSqlite3.Database | undefined;
    try {
      createOwnerOnly(path, false);
      db = new Database(path, { timeout: 0 });
      db.pragma("journal_mode = MEMORY"); // no journal file next to the lock
      db.pragma("locking_mode = EXCLUSIVE");
      db.exec("BEGIN EXCLUSIVE"); // never committed: the lock lasts until release() or the process's end
      return new FolderLock(db);
    } catch (e) {
      db?.close();
      const code = (e as { code?: unknown }).code;
      if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED") {
        throw new HsmError("DATA_FOLDER_IN_USE", `${dir} is open in another Hsm (this process or another): close it first`);
      }
      throw new HsmError("DATA_FOLDER_INVALID", `${dir}: cannot lock the data folder (${e instanceof Error ? e.message : String(e)})`);
    }
  }

  release(): void {
    this.db?.close();
    this.db = null;
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(FolderLock);
