// A folder of persistent plain tokens (the `file:` target), as SoftHSMv2 keeps its tokendir:
//
//   DIR/            0700 when hsmsim creates it
//     masking.key   the folder's masking key, 0600, written and read by the chip only
//     tokens.lock   an exclusive lock: one process has the folder open at a time
//     <id>.token    one initialized token, 0600: "HSMSTOK1" | u32 header length (BE) |
//                   header (UTF-8 JSON: id, slot, label, serial, flags, …) | sealed record
//
// The sealed record is the chip's (exportToken): label, serial, PIN verifiers and counters and
// every token object, AES-256-GCM under the masking key, bound to the exact header bytes, so an
// edited header or record, a record moved to another file, or a file from another folder fails
// to load with TokenFolderError TOKEN_RECORD_INVALID. Every write is temp file, fsync, rename,
// fsync of the folder: a change is on disk before the call that made it returns.
import { closeSync, constants, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";

import type BetterSqlite3 from "better-sqlite3";

import { CodedError } from "../coded-error.js";
import { freezeClass } from "../primordials.js";

export type TokenFolderErrorCode =
  | "TOKEN_FOLDER_IN_USE" | "TOKEN_FOLDER_INVALID" | "TOKEN_RECORD_INVALID" | "TOKEN_FOLDER_OPTIONS" | "TOKEN_NOT_FOUND" | "TOKEN_AMBIGUOUS"
  | "TOKEN_INIT_FAILED";

/** A token folder that cannot be used as asked: the code says why. */
export class TokenFolderError extends CodedError<TokenFolderErrorCode> {
  constructor(code: TokenFolderErrorCode, message: string) {
    super("TokenFolderError", code, message);
  }
}

export const MASKING_KEY_FILE = "masking.key";
export const LOCK_FILE = "tokens.lock";
const TOKEN_SUFFIX = ".token";
const MAGIC = Buffer.from("HSMSTOK1", "latin1");
const MAX_HEADER_BYTES = 4096;
const ID_PATTERN = /^[0-9a-f]{16}$/;

/** What a token file says about its token in clear (authenticated by the sealed record, checked when loaded). */
export interface TokenHeader {
  format: 1;
  /** The file's name without `.token`: stays the same when the token is initialized again. */
  id: string;
  /** The slot it had when last written (slots are given again in this order at each load). */
  slot: number;
  /** 32 characters, space padded, as C_GetTokenInfo gives it. */
  label: string;
  serial: string;
  /** CKF_ token flags when last written (initialized, user PIN set, PIN counters). */
  flags: number;
  /** PBKDF2 iterations of the token's PIN verifiers: every load must use the same. */
  pinHashIterations: number;
}

/** `$HSMSIM_TOKEN_DIR`, else `~/.hsmsim/tokens`. */
export function defaultTokenFolder(env: Record<string, string | undefined> = process.env): string {
  const fromEnv = env.HSMSIM_TOKEN_DIR;
  return resolve(fromEnv !== undefined && fromEnv !== "" ? fromEnv : join(homedir(), ".hsmsim", "tokens"));
}

/** Creates `dir` (0700) if missing; refuses a path that is not a directory. */
export function ensureFolder(dir: string): void {
  try {
    const created = mkdirSync(dir, { recursive: true, mode: 0o700 });
    // New folders' entries made durable too: the first acknowledged change must not vanish with its folder.
    if (created !== undefined) {
      for (let d = dir; ; d = dirname(d)) {
        fsyncFolder(dirname(d));
        if (d === created || dirname(d) === d) break;
      }
    }
  } catch (e) {
    throw new TokenFolderError("TOKEN_FOLDER_INVALID", `${dir}: cannot create the token folder (${(e as Error).message})`);
  }
  const stat = lstatSync(dir);
  if (!stat.isDirectory()) throw new TokenFolderError("TOKEN_FOLDER_INVALID", `${dir} is not a directory`);
  // Whoever may write into the folder could plant masking.key (sealing every new token under a key
  // they hold), swap or delete token files, or plant a write's temp name: only its owner may.
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) throw new TokenFolderError("TOKEN_FOLDER_INVALID", `${dir} belongs to user ${stat.uid}, not to this user (${uid})`);
  if ((stat.mode & 0o022) !== 0) throw new TokenFolderError("TOKEN_FOLDER_INVALID", `${dir} is writable by others (mode ${(stat.mode & 0o777).toString(8)}): chmod go-w it`);
}

const require = createRequire(typeof __filename === "string" ? __filename : import.meta.url);

/**
 * The folder's lock: an exclusive SQLite lock on `tokens.lock` (a POSIX advisory lock the kernel
 * drops when the process ends, kill -9 included, so none is ever left stale). Returns its release.
 */
export function lockFolder(dir: string): () => void {
  const path = join(dir, LOCK_FILE);
  let db: BetterSqlite3.Database | undefined;
  try {
    // Created owner-only if missing, never through a planted symlink. An existing lock file is not
    // opened here: closing any descriptor of a file drops every POSIX lock this process holds on
    // it, so a refused second attempt would free the first holder's lock for other processes.
    let exists = true;
    try {
      if (!lstatSync(path).isFile()) throw new Error(`${path} is not a regular file`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      exists = false;
    }
    if (!exists) {
      try {
        closeSync(openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e; // another process made it meanwhile
      }
    }
    const Database = require("better-sqlite3") as typeof BetterSqlite3;
    db = new Database(path, { timeout: 0 });
    db.pragma("journal_mode = MEMORY");
    db.pragma("locking_mode = EXCLUSIVE");
    db.exec("BEGIN EXCLUSIVE"); // never committed: held until released or the process ends
  } catch (e) {
    db?.close();
    const code = (e as { code?: unknown }).code;
    if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED") {
      throw new TokenFolderError("TOKEN_FOLDER_IN_USE", `${dir} is open in another program (or another PKCS11 of this one): close it first`);
    }
    throw new TokenFolderError("TOKEN_FOLDER_INVALID", `${dir}: cannot lock the token folder (${(e as Error).message})`);
  }
  let held: BetterSqlite3.Database | undefined = db;
  return () => {
    held?.close();
    held = undefined;
  };
}

/** The header bytes as written: the binding the sealed record is bound to. */
export function encodeHeader(header: TokenHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length);
  return Buffer.concat([MAGIC, length, json]);
}

export interface TokenFile {
  path: string;
  header: TokenHeader;
  /** MAGIC | length | header: what the record must be bound to. */
  binding: Buffer;
  record: Buffer;
}

function invalid(path: string, why: string): TokenFolderError {
  return new TokenFolderError("TOKEN_RECORD_INVALID", `${path}: ${why}; the token file was altered, truncated or is not hsmsim's`);
}

function checkHeader(value: unknown, path: string, id: string): TokenHeader {
  const h = value as Partial<TokenHeader> | null;
  if (h === null || typeof h !== "object" || h.format !== 1) throw invalid(path, "unknown header format");
  const ok = h.id === id && typeof h.label === "string" && Buffer.byteLength(h.label) <= 128 && typeof h.serial === "string" &&
    /^[0-9a-f]{16}$/.test(h.serial) && Number.isSafeInteger(h.slot) && (h.slot as number) >= 0 &&
    Number.isSafeInteger(h.flags) && Number.isSafeInteger(h.pinHashIterations) && (h.pinHashIterations as number) >= 1;
  if (!ok) throw invalid(path, h.id !== id ? "the header names another token file" : "a malformed header");
  return h as TokenHeader;
}

/** Parses one token file (the record is checked later, by the chip). */
export function readTokenFile(dir: string, name: string): TokenFile {
  const path = join(dir, name);
  const id = name.slice(0, -TOKEN_SUFFIX.length);
  let bytes: Buffer;
  try {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      bytes = readFileSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw new TokenFolderError("TOKEN_FOLDER_INVALID", `${path}: cannot read (${(e as Error).message})`);
  }
  if (bytes.length < MAGIC.length + 4 || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) throw invalid(path, "no token file signature");
  const headerLength = bytes.readUInt32BE(MAGIC.length);
  const headerEnd = MAGIC.length + 4 + headerLength;
  if (headerLength > MAX_HEADER_BYTES || headerEnd > bytes.length) throw invalid(path, "a truncated header");
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.subarray(MAGIC.length + 4, headerEnd).toString("utf8"));
  } catch {
    throw invalid(path, "a header that is not JSON");
  }
  return { path, header: checkHeader(parsed, path, id), binding: bytes.subarray(0, headerEnd), record: bytes.subarray(headerEnd) };
}

/** Every token file of `dir`, in slot order; leftover temporary files of a crashed write are skipped. */
export function readTokenFiles(dir: string): TokenFile[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new TokenFolderError("TOKEN_FOLDER_INVALID", `${dir}: cannot read the token folder (${(e as Error).message})`);
  }
  const files: TokenFile[] = [];
  for (const name of names.sort()) {
    if (!name.endsWith(TOKEN_SUFFIX)) continue;
    if (!ID_PATTERN.test(name.slice(0, -TOKEN_SUFFIX.length))) throw invalid(join(dir, name), "a token file name hsmsim never writes");
    files.push(readTokenFile(dir, name));
  }
  return files.sort((a, b) => a.header.slot - b.header.slot || a.header.id.localeCompare(b.header.id));
}

/** Removes temporary files a write killed half-way left (call with the lock held). */
export function removeLeftovers(dir: string): void {
  for (const name of readdirSync(dir)) {
    if (/^[0-9a-f]{16}\.token\.tmp-\d+$/.test(name)) unlinkSync(join(dir, name));
  }
}

function fsyncFolder(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes `<id>.token` atomically and durably: temp file, fsync, rename, fsync of the folder. */
export function writeTokenFile(dir: string, binding: Buffer, record: Buffer, id: string): void {
  const target = join(dir, `${id}${TOKEN_SUFFIX}`);
  const temp = `${target}.tmp-${process.pid}`;
  const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
  try {
    for (const part of [binding, record]) {
      for (let at = 0; at < part.length;) at += writeSync(fd, part, at, part.length - at);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, target);
  fsyncFolder(dir);
}

/** Deletes one token's file durably. */
export function deleteTokenFile(dir: string, id: string): void {
  unlinkSync(join(dir, `${id}${TOKEN_SUFFIX}`));
  fsyncFolder(dir);
}

freezeClass(TokenFolderError);
