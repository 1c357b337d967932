// The KMS endpoint's access keys in a data folder: <data>/kms/credentials.json (0600, in the
// 0700 kms folder). Written once, at the first start, from defaultCredentials (O_EXCL: two
// starts racing cannot both write it, nor write through a planted file or symlink); read and
// checked at every later start, so the keys an application configured keep working.
import { randomBytes as osRandomBytes } from "node:crypto";
import { chmodSync, closeSync, constants, fstatSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";

import { openDataFile } from "./data-file.js";
import { KmsError } from "./errors.js";
import { defaultCredentials } from "./identity.js";
import type { KmsCredential } from "./types.js";

export const CREDENTIALS_FILE = "credentials.json";
/** Far more than any list of access keys: a bigger file is not one. */
const MAX_CREDENTIALS_BYTES = 1 << 20;

/** Creates the kms folder (0700) if absent; refuses one that others may write into or that is not this user's. */
export function makeKmsFolder(kmsDir: string): void {
  mkdirSync(kmsDir, { recursive: true, mode: 0o700 });
  const stat = lstatSync(kmsDir);
  if (!stat.isDirectory()) throw new KmsError("ValidationException", `${kmsDir} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) throw new KmsError("ValidationException", `${kmsDir} belongs to user ${stat.uid}, not to this user (${uid})`);
  if ((stat.mode & 0o077) !== 0) chmodSync(kmsDir, 0o700); // ours: tightened (it holds the fleet's token and the secrets)
}

/**
 * The credentials in `kmsDir`, written from `make()` (default: defaultCredentials with the OS's
 * randomness) if there are none yet. Returns them and whether they were created now.
 */
export function loadOrCreateCredentials(kmsDir: string, make: () => KmsCredential[] = () => defaultCredentials(osRandomBytes)): { credentials: KmsCredential[]; created: boolean; path: string } {
  makeKmsFolder(kmsDir);
  const path = join(kmsDir, CREDENTIALS_FILE);
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).code;
    if (errno !== "EEXIST") throw new KmsError("ValidationException", `${path} cannot be created (${errno ?? String(e)})`);
    return { credentials: readCredentials(path), created: false, path };
  }
  try {
    const credentials = make();
    writeSync(fd, `${JSON.stringify({ credentials }, null, 2)}\n`);
    fsyncSync(fd);
    return { credentials, created: true, path };
  } finally {
    closeSync(fd);
  }
}

/** Reads and checks a credentials file: its shape, and that only its owner can read it. */
export function readCredentials(path: string): KmsCredential[] {
  // Never followed through a symlink, never blocked on a planted FIFO: refused unless a regular file.
  const fd = openDataFile(path, constants.O_RDONLY, { code: "ValidationException" });
  let text: string;
  try {
    const stat = fstatSync(fd);
    if ((stat.mode & 0o077) !== 0) throw new KmsError("ValidationException", `${path} is readable by others (mode ${(stat.mode & 0o777).toString(8)}): chmod 600 it`);
    if (stat.size > MAX_CREDENTIALS_BYTES) throw new KmsError("ValidationException", `${path} is ${stat.size} bytes: not a credentials file`);
    text = readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new KmsError("ValidationException", `${path} is not JSON`);
  }
  const list = (value as { credentials?: unknown } | null)?.credentials;
  if (!Array.isArray(list) || list.length === 0) throw new KmsError("ValidationException", `${path}: credentials must be a non-empty list`);
  return list.map((c: unknown, i) => {
    const item = c as Record<string, unknown> | null;
    for (const field of ["accessKeyId", "secretAccessKey", "accountId", "arn"] as const) {
      if (typeof item?.[field] !== "string") throw new KmsError("ValidationException", `${path}: credentials[${i}].${field} must be a string`);
    }
    const { accessKeyId, secretAccessKey, accountId, arn } = item as unknown as KmsCredential;
    if (!/^\d{12}$/.test(accountId)) throw new KmsError("ValidationException", `${path}: credentials[${i}].accountId must be 12 digits`);
    if (!arn.startsWith(`arn:aws:iam::${accountId}:`)) throw new KmsError("ValidationException", `${path}: credentials[${i}].arn must be of account ${accountId}`);
    // The rest of the rules (lengths, characters) are the CredentialSet's, checked when the endpoint starts.
    return { accessKeyId, secretAccessKey, accountId, arn };
  });
}
