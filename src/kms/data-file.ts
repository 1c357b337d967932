// Opening a file of the KMS data folder (credentials.json, trail.jsonl, trail-digests.jsonl,
// trail-public.pem), which an editor of the folder may have replaced. A FIFO would hang the open
// or the first read (and swallow what is appended), a device or a socket is no file either, and a
// symlink points elsewhere: every open is non-blocking and never follows a symlink, and what it
// opened is refused unless fstat says it is a regular file, before anything is read or written.
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";

import { KmsError, type KmsExceptionName } from "./errors.js";

export interface OpenDataFileOptions {
  /** The KmsError code of a refusal (ValidationException for a file the operator writes, KMSInternalException for the KMS's own). */
  code: KmsExceptionName;
  /** With O_CREAT: the new file's mode. */
  mode?: number;
}

/**
 * Opens `path` with `flags` | O_NONBLOCK | O_NOFOLLOW; refuses (closed again) anything but a regular
 * file. Errors: KmsError(code) naming the path and why; a missing file too, unless `ifExists`
 * (then null). O_NONBLOCK stays on the descriptor: on a regular file it changes nothing.
 */
export function openDataFile(path: string, flags: number, options: OpenDataFileOptions & { ifExists: true }): number | null;
export function openDataFile(path: string, flags: number, options: OpenDataFileOptions): number;
export function openDataFile(path: string, flags: number, options: OpenDataFileOptions & { ifExists?: boolean }): number | null {
  let fd: number;
  try {
    fd = openSync(path, flags | constants.O_NONBLOCK | constants.O_NOFOLLOW, options.mode);
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).code;
    if (errno === "ENOENT" && options.ifExists) return null;
    // ELOOP: a symlink planted in its place; ENXIO: a FIFO opened for writing with no reader; EISDIR.
    throw new KmsError(options.code, `${path} cannot be opened (${errno ?? String(e)}): it must be a regular file${errno === "ELOOP" ? ", not a symlink" : ""}`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new KmsError(options.code, `${path} is ${kindOf(stat)}, not a regular file: refused`);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

/** The whole text of a small data file (a PEM, the credentials), or null when it does not exist. */
export function readDataFileText(path: string, options: OpenDataFileOptions & { ifExists: true; maxBytes?: number }): string | null;
export function readDataFileText(path: string, options: OpenDataFileOptions & { maxBytes?: number }): string;
export function readDataFileText(path: string, options: OpenDataFileOptions & { ifExists?: boolean; maxBytes?: number }): string | null {
  const fd = options.ifExists ? openDataFile(path, constants.O_RDONLY, { ...options, ifExists: true }) : openDataFile(path, constants.O_RDONLY, options);
  if (fd === null) return null;
  try {
    const maxBytes = options.maxBytes ?? 1 << 20;
    const size = fstatSync(fd).size;
    if (size > maxBytes) throw new KmsError(options.code, `${path} is ${size} bytes, more than such a file ever holds (${maxBytes})`);
    const bytes = Buffer.alloc(size);
    let at = 0;
    while (at < size) {
      const n = readSync(fd, bytes, at, size - at, at);
      if (n === 0) break; // shrunk since the fstat
      at += n;
    }
    return bytes.subarray(0, at).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

function kindOf(stat: Stats): string {
  if (stat.isFIFO()) return "a FIFO";
  if (stat.isDirectory()) return "a directory";
  if (stat.isSocket()) return "a socket";
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return "a device";
  return "not a file";
}
