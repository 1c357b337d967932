// The `file:` target: tokens kept in a folder across processes (token-folder.ts), served by a
// chip of this process. What `PKCS11` gets is one application of that chip, wrapped so that
// every change the caller is told about — a token initialized, a PIN set or changed, a wrong PIN
// counted, a token object created, changed or destroyed — is sealed by the chip and written to
// the folder before the call returns. The chip, the folder's lock and the write path live in
// this closure; the application reaches none of them.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";

import { APPLICATION_CALLS, type ChipOptions, type NativeApplication, type NativeChip, createChip } from "./addon.js";
import * as C from "./constants.js";
import { Pkcs11Error } from "./errors.js";
import { ObjectFreeze } from "../primordials.js";
import {
  MASKING_KEY_FILE, type TokenFile, TokenFolderError, type TokenHeader, encodeHeader, ensureFolder, lockFolder,
  readTokenFiles, removeLeftovers, writeTokenFile,
} from "./token-folder.js";

export interface FileTargetOptions extends Omit<ChipOptions, "seed" | "deviceProfile" | "maxKeys" | "maxAsymmetricKeys"> {
  folder: string;
}

type AnyCall = (...args: unknown[]) => unknown;
type Callback = (error: Error | null, result?: unknown) => void;

const DEFAULT_PIN_HASH_ITERATIONS = 4096;

/** The PIN hashing cost the folder's tokens were made with (all of them agree), or the caller's. */
function pinHashIterationsOf(files: TokenFile[], asked: number | undefined, dir: string): number {
  const found = new Set(files.map((f) => f.header.pinHashIterations));
  if (found.size > 1) throw new TokenFolderError("TOKEN_FOLDER_INVALID", `${dir}: its tokens disagree on pinHashIterations`);
  const stored = found.values().next().value as number | undefined;
  if (stored !== undefined && asked !== undefined && asked !== stored) {
    throw new TokenFolderError("TOKEN_FOLDER_OPTIONS", `${dir}: its tokens' PINs are hashed with pinHashIterations=${stored}, not ${asked}`);
  }
  return stored ?? asked ?? DEFAULT_PIN_HASH_ITERATIONS;
}

function deviceError(method: string, cause: unknown): Pkcs11Error {
  return new Pkcs11Error(C.CKR_DEVICE_ERROR, method, `the token folder could not be written: ${cause instanceof Error ? cause.message : String(cause)}`);
}

/**
 * Opens the folder (creating it if missing), takes its lock, loads every token into a fresh chip
 * and returns the backend for `PKCS11`, whose unload() releases the lock. Throws TokenFolderError.
 */
export function openFileTarget(options: FileTargetOptions): NativeChip {
  const dir = options.folder;
  ensureFolder(dir);
  const release = lockFolder(dir);
  try {
    const backend = loadFolder(dir, options, release);
    // A PKCS11 collected without close() frees the folder too.
    collected.register(backend, release);
    return backend;
  } catch (e) {
    release();
    throw e;
  }
}

const collected = new FinalizationRegistry<() => void>((release) => release());

function loadFolder(dir: string, options: FileTargetOptions, release: () => void): NativeChip {
  removeLeftovers(dir);
  const files = readTokenFiles(dir);
  const keyPath = join(dir, MASKING_KEY_FILE);
  const hasKey = existsSync(keyPath);
  if (files.length > 0 && !hasKey) throw new TokenFolderError("TOKEN_FOLDER_INVALID", `${dir}: token files but no ${MASKING_KEY_FILE}: the tokens cannot be opened`);
  const fixedSlots = options.slotCount ?? 0;
  if (fixedSlots > 0 && files.length > fixedSlots) {
    throw new TokenFolderError("TOKEN_FOLDER_OPTIONS", `${dir} holds ${files.length} tokens: slots=${fixedSlots} cannot hold them`);
  }
  const pinHashIterations = pinHashIterationsOf(files, options.pinHashIterations, dir);
  const chip = createChip({
    slotCount: fixedSlots, pinHashIterations,
    ...(options.maxPinFailures !== undefined ? { maxPinFailures: options.maxPinFailures } : {}),
    ...(options.maxSessionsPerApplication !== undefined ? { maxSessionsPerApplication: options.maxSessionsPerApplication } : {}),
  });

  // Slot → the id of its token file; tokens take slots 0, 1, … in the order they last had.
  const idOfSlot = new Map<number, string>();
  files.forEach((file, slot) => {
    // A throwaway SO PIN: the import replaces every PIN verifier with the record's.
    chip.initToken(slot, randomBytes(16), Buffer.from(file.header.label, "utf8"));
    chip.loadMaskingKey(slot, keyPath);
    try {
      chip.importToken(slot, file.record, file.binding);
    } catch (e) {
      if (e instanceof Pkcs11Error && e.code === C.CKR_DATA_INVALID) {
        throw new TokenFolderError("TOKEN_RECORD_INVALID", `${file.path}: the sealed record does not open under this folder's masking key and header (altered, truncated, swapped or from another folder)`);
      }
      throw e;
    }
    const info = chip.getTokenInfo(slot);
    if (info.serialNumber !== file.header.serial || info.label !== file.header.label) {
      throw new TokenFolderError("TOKEN_RECORD_INVALID", `${file.path}: the header does not match the sealed token`);
    }
    idOfSlot.set(slot, file.header.id);
  });
  return persistentApplication(chip, dir, keyPath, idOfSlot, pinHashIterations, release);
}

function persistentApplication(chip: NativeChip, dir: string, keyPath: string, idOfSlot: Map<number, string>, pinHashIterations: number, release: () => void): NativeChip {
  const app: NativeApplication = chip.openApplication();
  const call = (name: keyof NativeApplication) => (app[name] as unknown as AnyCall).bind(app);

  /** Seals slot `slot`'s token and writes it; CKR_DEVICE_ERROR if the folder cannot take it. */
  function persist(slot: number, method: string): void {
    try {
      const info = chip.getTokenInfo(slot);
      if ((info.flags & C.CKF_TOKEN_INITIALIZED) === 0) return;
      let id = idOfSlot.get(slot);
      if (id === undefined) {
        id = randomBytes(8).toString("hex");
        idOfSlot.set(slot, id);
      }
      const header: TokenHeader = { format: 1, id, slot, label: info.label, serial: info.serialNumber, flags: info.flags, pinHashIterations };
      const binding = encodeHeader(header);
      writeTokenFile(dir, binding, chip.exportToken(slot, binding), id);
    } catch (e) {
      throw deviceError(method, e);
    }
  }
  const slotOfSession = (session: number): number | undefined => {
    try {
      return app.getSessionInfo(session).slotID;
    } catch {
      return undefined;
    }
  };
  /** Whether `object` is a token object; undefined when the session can no longer tell. */
  const tokenness = (session: number, object: number): boolean | undefined => {
    try {
      const { values } = app.getAttributeValue(session, object, [C.CKA_TOKEN]);
      return values[0] !== null && values[0].length === 1 && values[0][0] === 1;
    } catch {
      return undefined;
    }
  };
  const isTokenObject = (session: number, object: number): boolean => tokenness(session, object) === true;
  /**
   * After new objects on `slot` (taken when the call began: an asynchronous call's session may be
   * gone by its callback): writes the token unless every new object is known to be a session
   * object; if the write fails the new token objects are removed.
   */
  function persistNew(session: number, slot: number | undefined, handles: number[], method: string): void {
    if (slot === undefined || handles.every((h) => tokenness(session, h) === false)) return;
    try {
      persist(slot, method);
    } catch (e) {
      for (const h of handles) {
        try { chip.removeObject(slot, h); } catch { /* a session object: the session keeps it */ }
      }
      throw e;
    }
  }
  /** A call creating objects, sync or with a callback as its last argument. */
  function creating(name: "createObject" | "copyObject" | "generateKey" | "generateKeyPair" | "unwrapKey" | "deriveKey", method: string): AnyCall {
    const inner = call(name);
    const handlesOf = (result: unknown) => (Array.isArray(result) ? (result as number[]) : [result as number]);
    return (...args: unknown[]) => {
      const session = args[0] as number;
      const slot = slotOfSession(session);
      const last = args.at(-1);
      if (typeof last === "function") {
        const cb = last as Callback;
        args[args.length - 1] = (error: Error | null, result?: unknown) => {
          if (error === null) {
            try {
              persistNew(session, slot, handlesOf(result), method);
            } catch (e) {
              cb(e as Error);
              return;
            }
          }
          cb(error, result);
        };
        return inner(...args);
      }
      const result = inner(...args);
      persistNew(session, slot, handlesOf(result), method);
      return result;
    };
  }
  /** A PIN check: a wrong PIN is counted in the chip, so the count is written before the error is thrown. */
  function counting(inner: AnyCall, slotOf: (args: unknown[]) => number | undefined, method: string, always: boolean): AnyCall {
    return (...args: unknown[]) => {
      const slot = slotOf(args);
      let before = 0;
      if (slot !== undefined) before = chip.getTokenInfo(slot).flags;
      let result: unknown;
      try {
        result = inner(...args);
      } catch (e) {
        if (slot !== undefined && e instanceof Pkcs11Error && e.code === C.CKR_PIN_INCORRECT) persist(slot, method);
        throw e;
      }
      // A success resets a counter only if one was running; a change of PIN always writes.
      if (slot !== undefined && (always || (before & (C.CKF_USER_PIN_COUNT_LOW | C.CKF_SO_PIN_COUNT_LOW)) !== 0)) persist(slot, method);
      return result;
    };
  }

  const backend: Record<string, AnyCall> = {};
  for (const name of APPLICATION_CALLS) backend[name] = call(name);
  const sessionSlot = (args: unknown[]) => slotOfSession(args[0] as number);

  backend.initToken = (...args: unknown[]) => {
    const slot = args[0] as number;
    const inner = call("initToken");
    const wasInitialized = (() => {
      try { return (chip.getTokenInfo(slot).flags & C.CKF_TOKEN_INITIALIZED) !== 0; } catch { return false; }
    })();
    try {
      inner(...args);
    } catch (e) {
      if (wasInitialized && e instanceof Pkcs11Error && e.code === C.CKR_PIN_INCORRECT) persist(slot, "C_InitToken");
      throw e;
    }
    try {
      // Every token of the folder is sealed under the folder's one masking key, made by the chip.
      if (existsSync(keyPath)) chip.loadMaskingKey(slot, keyPath);
      else chip.saveMaskingKey(slot, keyPath);
    } catch (e) {
      throw deviceError("C_InitToken", e);
    }
    persist(slot, "C_InitToken");
  };
  backend.initPin = counting(call("initPin"), sessionSlot, "C_InitPIN", true);
  backend.setPin = counting(call("setPin"), sessionSlot, "C_SetPIN", true);
  backend.login = counting(call("login"), sessionSlot, "C_Login", false);
  backend.createObject = creating("createObject", "C_CreateObject");
  backend.copyObject = creating("copyObject", "C_CopyObject");
  backend.generateKey = creating("generateKey", "C_GenerateKey");
  backend.generateKeyPair = creating("generateKeyPair", "C_GenerateKeyPair");
  backend.unwrapKey = creating("unwrapKey", "C_UnwrapKey");
  backend.deriveKey = creating("deriveKey", "C_DeriveKey");
  backend.destroyObject = (...args: unknown[]) => {
    const [session, object] = args as [number, number];
    const wasToken = isTokenObject(session, object);
    call("destroyObject")(...args);
    const slot = slotOfSession(session);
    if (wasToken && slot !== undefined) persist(slot, "C_DestroyObject");
  };
  backend.setAttributeValue = (...args: unknown[]) => {
    const [session, object] = args as [number, number];
    call("setAttributeValue")(...args);
    const slot = slotOfSession(session);
    if (slot !== undefined && isTokenObject(session, object)) persist(slot, "C_SetAttributeValue");
  };
  // PKCS11.close() (and a load over this one) calls unload: the folder is free for others from then on.
  backend.unload = () => release();
  return ObjectFreeze(backend) as unknown as NativeChip;
}
