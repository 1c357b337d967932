// One owner per data folder: an exclusive SQLite lock on a separate lock database, held for
// as long as the HSM is open. SQLite's locks are POSIX advisory locks: the kernel drops them
// when the process ends (kill -9 included), so no stale lock is ever left behind, and SQLite
// also refuses a second connection of the same process. hsm.db itself stays readable, so
// `hsmsim audit` can read the folder of a running HSM.
import { freezeClass } from "../primordials.js";
import { closeSync, constants, fchmodSync, fstatSync, lstatSync, openSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

import type BetterSqlite3 from "better-sqlite3";

import { HsmError } from "./errors.js";

const require = createRequire(typeof __filename === "string" ? __filename : import.meta.url);
const Database = require("better-sqlite3") as typeof BetterSqlite3;

export const LOCK_FILE = "hsm.lock";

/**
 * Creates `path` owner-only (whatever the umask) if missing, before SQLite opens it. An existing
 * file is never opened here: closing any descriptor of a file drops every POSIX lock this process
 * holds on it, so opening the lock file of a folder this process has locked would hand the lock to
 * other processes.
 */
export function createOwnerOnly(path: string, exclusive: boolean): void {
  if (!exclusive) {
    let existing: ReturnType<typeof lstatSync> | undefined;
    try {
      existing = lstatSync(path);
    } catch {
      // missing: create it below
    }
    if (existing) {
      // Never through a planted symlink: SQLite would lock a file outside the folder.
      if (!existing.isFile()) throw new Error(`${path} is not a regular file`);
      return;
    }
  }
  // Never through a planted symlink: it would chmod, or lock, a file outside the folder.
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_APPEND | constants.O_NOFOLLOW;
  let fd: number;
  try {
    fd = openSync(path, flags, 0o600);
  } catch (e) {
    // Made between our look and our create (another opener): check it as an existing file.
    if (!exclusive && (e as { code?: unknown }).code === "EEXIST") return createOwnerOnly(path, false);
    throw e;
  }
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
