// The checks around a durable KMS store's file, before SQLite opens it: its folder is the
// owner's alone, neither the file nor its side files is a symlink (SQLite would follow it out
// of the folder), the file is 0600, and one KmsStore holds it at a time (the HSM's folder lock,
// on FILE.lock beside it: the kernel drops it when the process dies, kill -9 included).
import { chmodSync, lstatSync, statSync } from "node:fs";
import { basename, dirname } from "node:path";

import { FolderLock, createOwnerOnly } from "../hsm/folder-lock.js";
import { HsmError } from "../hsm/errors.js";
import { KmsStoreError } from "./store-errors.js";

const SIDE_FILES = ["-wal", "-shm", "-journal"];

/** The folder and file checks of a durable store; returns the lock, which the store holds until close. */
export function prepareFile(path: string): FolderLock {
  const dir = dirname(path);
  let folder: ReturnType<typeof statSync>;
  try {
    folder = statSync(dir);
  } catch {
    throw new KmsStoreError("STORE_INVALID", `${dir}: the KMS store's folder does not exist`);
  }
  if (!folder.isDirectory()) throw new KmsStoreError("STORE_INVALID", `${dir}: the KMS store's folder is not a folder`);
  // The folder is the owner's alone: anyone else able to enter it could swap the files under us.
  if ((folder.mode & 0o077) !== 0) throw new KmsStoreError("STORE_INVALID", `${dir}: the KMS store's folder must be 0700 (it is ${(folder.mode & 0o777).toString(8)})`);
  for (const suffix of SIDE_FILES) {
    try {
      if (!lstatSync(path + suffix).isFile()) throw new KmsStoreError("STORE_INVALID", `${path + suffix} is not a regular file (a symlink?)`);
    } catch (e) {
      if (e instanceof KmsStoreError) throw e; // missing: fine
    }
  }
  let lock: FolderLock;
  try {
    lock = FolderLock.acquire(dir, `${basename(path)}.lock`);
  } catch (e) {
    if (e instanceof HsmError && e.code === "DATA_FOLDER_IN_USE") throw new KmsStoreError("STORE_IN_USE", `${path} is open in another KMS store (this process or another): close it first`);
    throw new KmsStoreError("STORE_INVALID", `${path}: cannot lock the KMS store (${e instanceof Error ? e.message : String(e)})`);
  }
  try {
    // Never through a planted symlink (SQLite would follow it out of the folder); 0600 before SQLite opens it.
    createOwnerOnly(path, false);
    chmodSync(path, 0o600);
    for (const suffix of SIDE_FILES) {
      try {
        chmodSync(path + suffix, 0o600);
      } catch {
        // missing
      }
    }
  } catch (e) {
    lock.release();
    throw new KmsStoreError("STORE_INVALID", `${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return lock;
}

