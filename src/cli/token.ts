// `hsmsim token init|list|delete`: persistent plain tokens in a folder, in the spirit of
// SoftHSMv2's softhsm2-util (--init-token, --show-slots, --delete-token). A program then loads
// the same folder with `load("file:DIR")`. The folder is $HSMSIM_TOKEN_DIR, else ~/.hsmsim/tokens.
import { existsSync } from "node:fs";
import { pathToFileURL } from "node:url";

import * as C from "../pkcs11/constants.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import { PKCS11 } from "../pkcs11/pkcs11.js";
import {
  type TokenFile, TokenFolderError, defaultTokenFolder, deleteTokenFile, ensureFolder, lockFolder, readTokenFiles,
} from "../pkcs11/token-folder.js";
import { type CommandIo, UsageError, defineCommand, defineGroup, shared, wholeNumber } from "./command.js";
import { textOutput } from "./format.js";

const FOLDER_NOTE = "The folder is --folder DIR, else $HSMSIM_TOKEN_DIR, else ~/.hsmsim/tokens; programs load it with load(\"file:DIR\").";

const folderOption = {
  folder: { type: "string", valueName: "DIR", description: "the token folder (default $HSMSIM_TOKEN_DIR, else ~/.hsmsim/tokens)" },
} as const;

function folderOf(values: { folder?: string }, io: CommandIo): string {
  return values.folder ?? defaultTokenFolder(io.env);
}

/** A PKCS11 on the folder (file URL form, so any path works). */
function openFolder(folder: string): PKCS11 {
  const pkcs11 = new PKCS11(pathToFileURL(folder).href);
  pkcs11.C_Initialize();
  return pkcs11;
}

/** PKCS#11 failures of a command, said as the command's own typed error. */
function pkcs11Failure(e: unknown, what: string): never {
  if (e instanceof Pkcs11Error) {
    throw new TokenFolderError("TOKEN_INIT_FAILED", `${what}: ${e.message}${e.detail ? ` (${e.detail})` : ""}`);
  }
  throw e;
}

const initCommand = defineCommand({
  name: "init",
  summary: "initialize a token in the folder: label, SO PIN, user PIN (softhsm2-util --init-token)",
  description: `Takes the folder's free slot unless --slot names one; initializing a slot that holds a token
erases it (its SO PIN is then --so-pin). ${FOLDER_NOTE}
PINs given on a command line are visible to other users of the machine (ps): use a test PIN.`,
  options: {
    label: { type: "string", valueName: "LABEL", description: "the token label (up to 32 bytes)" },
    "so-pin": { type: "string", valueName: "PIN", description: "the Security Officer's PIN (4-255 bytes)" },
    pin: { type: "string", valueName: "PIN", description: "the user's PIN (4-255 bytes)" },
    ...folderOption,
    slot: { type: "string", valueName: "N", parse: wholeNumber(0, 1000), description: "the slot to initialize (default: the free slot)" },
  },
  examples: ["hsmsim token init --label app --so-pin 12345678 --pin 87654321 --folder ./tokens"],
  run({ values, io }) {
    const { label, "so-pin": soPin, pin } = values;
    if (label === undefined || soPin === undefined || pin === undefined) throw new UsageError("--label, --so-pin and --pin are required");
    if (Buffer.byteLength(label) > 32) throw new UsageError("--label takes at most 32 bytes");
    for (const [name, value] of [["--so-pin", soPin], ["--pin", pin]] as const) {
      const bytes = Buffer.byteLength(value);
      if (bytes < 4 || bytes > 255) throw new UsageError(`${name} takes 4 to 255 bytes`);
    }
    const folder = folderOf(values, io);
    const pkcs11 = openFolder(folder);
    try {
      const slots = pkcs11.C_GetSlotList(true);
      let slot: Buffer | undefined;
      if (values.slot !== undefined) {
        slot = slots.find((s) => s.readUInt32LE(0) === values.slot);
        if (slot === undefined) throw new UsageError(`--slot ${values.slot}: the folder has slots 0 to ${slots.length - 1}`);
      } else {
        slot = slots.find((s) => (pkcs11.C_GetTokenInfo(s).flags & C.CKF_TOKEN_INITIALIZED) === 0);
        if (slot === undefined) throw new UsageError("no free slot: name one with --slot N (it is erased)");
      }
      try {
        pkcs11.C_InitToken(slot, soPin, label);
        const session = pkcs11.C_OpenSession(slot, C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION);
        pkcs11.C_Login(session, C.CKU_SO, soPin);
        pkcs11.C_InitPIN(session, pin);
        pkcs11.C_Logout(session);
      } catch (e) {
        pkcs11Failure(e, "the token could not be initialized");
      }
      const info = pkcs11.C_GetTokenInfo(slot);
      io.stdout.write(`The token has been initialized in slot ${slot.readUInt32LE(0)} of ${folder}: label '${info.label.trimEnd()}', serial ${info.serialNumber}\n`);
      return 0;
    } finally {
      pkcs11.close();
    }
  },
});

interface TokenRow {
  slot: number;
  label: string;
  serial: string;
  userPinInitialized: boolean;
  userPinLocked: boolean;
  soPinLocked: boolean;
  /** Whether the chip opened the token's sealed record (false: read from the header, the folder being in use). */
  verified: boolean;
  file: string;
}

function rowOf(file: TokenFile, slot: number, flags: number, verified: boolean): TokenRow {
  return {
    slot, label: file.header.label.trimEnd(), serial: file.header.serial,
    userPinInitialized: (flags & C.CKF_USER_PIN_INITIALIZED) !== 0, userPinLocked: (flags & C.CKF_USER_PIN_LOCKED) !== 0,
    soPinLocked: (flags & C.CKF_SO_PIN_LOCKED) !== 0, verified, file: file.path,
  };
}

/** Every token of the folder, verified by loading it when no program holds the folder. */
function listTokens(folder: string): TokenRow[] {
  if (!existsSync(folder)) return []; // listing makes no folder
  ensureFolder(folder);
  let pkcs11: PKCS11;
  try {
    pkcs11 = openFolder(folder);
  } catch (e) {
    if (e instanceof TokenFolderError && e.code === "TOKEN_FOLDER_IN_USE") {
      return readTokenFiles(folder).map((file, slot) => rowOf(file, slot, file.header.flags, false));
    }
    throw e;
  }
  try {
    // Loaded in the files' slot order (the lock is held: no one changes them meanwhile).
    return readTokenFiles(folder).map((file, slot) => rowOf(file, slot, pkcs11.C_GetTokenInfo(pkcs11.C_GetSlotList(true)[slot]).flags, true));
  } finally {
    pkcs11.close();
  }
}

const listCommand = defineCommand({
  name: "list",
  summary: "the folder's tokens: slot, label, serial, PIN state (softhsm2-util --show-slots)",
  description: `Each token is opened and checked when no program holds the folder; while one does, the
tokens' headers are shown, marked unverified. ${FOLDER_NOTE}`,
  options: { ...folderOption, ...shared.json },
  run({ values, io }) {
    const folder = folderOf(values, io);
    const rows = listTokens(folder);
    if (values.json) {
      io.stdout.write(`${JSON.stringify({ folder, tokens: rows }, null, 2)}\n`);
      return 0;
    }
    if (rows.length === 0) {
      io.stdout.write(`no tokens in ${folder} (make one with: hsmsim token init --label L --so-pin P --pin P)\n`);
      return 0;
    }
    io.stdout.write(`${folder}\n`);
    textOutput((t) => void io.stdout.write(t)).table(["slot", "label", "serial", "user PIN", "SO PIN", "checked"], rows.map((r) => [
      String(r.slot), r.label, r.serial, r.userPinLocked ? "locked" : r.userPinInitialized ? "set" : "not set",
      r.soPinLocked ? "locked" : "set", r.verified ? "yes" : "no (folder in use)",
    ]));
    return 0;
  },
});

const deleteCommand = defineCommand({
  name: "delete",
  summary: "delete a token by label or serial (softhsm2-util --delete-token)",
  description: `Removes the token's file: its keys are gone for good. Refused while a program holds the
folder. ${FOLDER_NOTE}`,
  options: {
    label: { type: "string", valueName: "LABEL", description: "the token's label" },
    serial: { type: "string", valueName: "SERIAL", description: "the token's serial number (16 hex digits)" },
    ...folderOption,
  },
  conflicts: [["label", "serial"]],
  examples: ["hsmsim token delete --serial 4e96bdd260856e65 --folder ./tokens"],
  run({ values, io }) {
    if (values.label === undefined && values.serial === undefined) throw new UsageError("name the token with --label or --serial");
    const folder = folderOf(values, io);
    if (!existsSync(folder)) throw new TokenFolderError("TOKEN_NOT_FOUND", `${folder} does not exist`);
    ensureFolder(folder);
    const release = lockFolder(folder);
    try {
      const files = readTokenFiles(folder);
      const matches = files.filter((f) => (values.serial !== undefined ? f.header.serial === values.serial : f.header.label.trimEnd() === values.label));
      const named = values.serial !== undefined ? `serial ${values.serial}` : `label '${values.label}'`;
      if (matches.length === 0) throw new TokenFolderError("TOKEN_NOT_FOUND", `no token with ${named} in ${folder}`);
      if (matches.length > 1) {
        throw new TokenFolderError("TOKEN_AMBIGUOUS", `${matches.length} tokens have ${named} (serials ${matches.map((m) => m.header.serial).join(", ")}): delete one with --serial`);
      }
      deleteTokenFile(folder, matches[0].header.id);
      io.stdout.write(`The token with serial ${matches[0].header.serial} (label '${matches[0].header.label.trimEnd()}') has been deleted from ${folder}\n`);
      return 0;
    } finally {
      release();
    }
  },
});

export const tokenCommand = defineGroup({
  name: "token",
  summary: "persistent plain tokens in a folder: init, list, delete (as softhsm2-util)",
  description: FOLDER_NOTE,
  subcommands: [initCommand, listCommand, deleteCommand],
});
