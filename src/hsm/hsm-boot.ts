// The steps of an HSM's boot (create or open) that need none of the Hsm's private state: the
// checks of HsmOptions, the settings an HSM fixes when it is created and checks at every start
// (the lockout limit and the scrypt cost, stored in meta, so a reopen cannot unlock accounts or
// cheapen the decoy hash), and giving the chip the folder's masking key.
import { existsSync } from "node:fs";
import { join } from "node:path";

import type { NativeChip } from "../pkcs11/addon.js";
import { HsmError } from "./errors.js";
import { DEFAULT_PASSWORD_COST } from "./passwords.js";
import { MASKING_KEY_FILE, type Store } from "./store.js";
import type { HsmType } from "./types.js";

export interface HsmOptions {
  type?: HsmType;
  /** Consecutive failed logins that lock an account on this HSM (default 5). */
  maxLoginFailures?: number;
  /**
   * scrypt cost (log2 N, 1–20) of password hashes (default 15; tests use less). Stored with the
   * HSM at creation: a reopen with another value is INVALID_ARGUMENT.
   */
  passwordCost?: number;
  /** Microseconds since the epoch; injected by the simulator. */
  clockUs?: () => number;
  /** Deterministic chip (see the chip's seed option). */
  seed?: Buffer;
  /** Where the device's own random bytes come from (ids, salts); seeded in the simulator. */
  randomBytes?: (length: number) => Buffer;
  /** The HSM's ordinal in its cluster (0–4095, default 0): it prefixes the key ids and principals it creates. */
  origin?: number;
}

export const DEFAULT_MAX_LOGIN_FAILURES = 5;
const MAX_LOGIN_FAILURES_LIMIT = 1_000_000;
const LOCKOUT_META = "max_login_failures";
const PASSWORD_COST_META = "password_cost";
const MAX_PASSWORD_COST = 20;
export const wallClockUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

/** The lockout limit is the HSM's, fixed at creation: a reopen cannot change it (and so cannot unlock). */
export function checkLockoutLimit(requested: number | undefined): void {
  if (requested !== undefined && (!Number.isInteger(requested) || requested < 1 || requested > MAX_LOGIN_FAILURES_LIMIT)) {
    throw new HsmError("INVALID_ARGUMENT", `maxLoginFailures must be an integer from 1 to ${MAX_LOGIN_FAILURES_LIMIT}`);
  }
}

export function checkPasswordCost(requested: number | undefined): void {
  if (requested !== undefined && (!Number.isInteger(requested) || requested < 1 || requested > MAX_PASSWORD_COST)) {
    throw new HsmError("INVALID_ARGUMENT", `passwordCost must be an integer from 1 to ${MAX_PASSWORD_COST}`);
  }
}

/**
 * The scrypt cost is the HSM's, fixed at creation like the lockout limit: the decoy hash of an
 * unknown name must cost what an account's does, so a reopen with a cheaper cost would tell
 * which names exist. (Existing hashes keep the cost they were made with.) Call inside a transaction.
 */
export function passwordCostOf(store: Store, requested: number | undefined): number {
  // A folder from before the cost was stored (or a restored backup) takes the requested one,
  // or else the highest cost among its accounts' hashes, so the decoy costs what they do.
  const accounts = store.users().filter((u) => u.role !== "AU").map((u) => u.cost);
  const initial = requested ?? (accounts.length ? Math.max(...accounts) : DEFAULT_PASSWORD_COST);
  const stored = Number(store.initMeta(PASSWORD_COST_META, String(initial)));
  if (requested !== undefined && requested !== stored) {
    throw new HsmError("INVALID_ARGUMENT", `this HSM hashes passwords with scrypt cost ${stored}, fixed when it was created; open it without passwordCost or with ${stored}`);
  }
  return stored;
}

/** Call inside a transaction (the stored limit is part of the HSM's state). */
export function lockoutLimit(store: Store, requested: number | undefined): number {
  // A folder from before the limit was stored (or a restored backup) takes the requested one.
  const stored = Number(store.initMeta(LOCKOUT_META, String(requested ?? DEFAULT_MAX_LOGIN_FAILURES)));
  if (requested !== undefined && requested !== stored) {
    throw new HsmError("INVALID_ARGUMENT", `this HSM locks an account after ${stored} failed logins, fixed when it was created; open it without maxLoginFailures or with ${stored}`);
  }
  return stored;
}

/**
 * A new HSM's chip writes a fresh masking key into the folder; a reopened one's chip loads it
 * (the key never passes through JavaScript).
 */
export function bindMaskingKey(chip: NativeChip, slot: number, dir: string, boot: "create" | "open"): void {
  const maskingKey = join(dir, MASKING_KEY_FILE);
  if (boot === "create") {
    try {
      chip.saveMaskingKey(slot, maskingKey);
    } catch {
      throw new HsmError("DATA_FOLDER_INVALID", `${dir}: cannot write ${MASKING_KEY_FILE} (one exists already, or the folder is not writable)`);
    }
  } else {
    if (!existsSync(maskingKey)) throw new HsmError("DATA_FOLDER_INVALID", `${dir}: ${MASKING_KEY_FILE} is missing`);
    try {
      chip.loadMaskingKey(slot, maskingKey);
    } catch {
      throw new HsmError("DATA_FOLDER_INVALID", `${dir}: ${MASKING_KEY_FILE} is unreadable, the wrong size or readable by others`);
    }
  }
}
