// Loads the native chip (build/Release/hsmsim.node) and registers Pkcs11Error with it.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { Pkcs11Error } from "./errors.js";

type Bytes = Buffer | null;
/** An encoded mechanism: [type, hasParameter, numberA, numberB, numberC], bytesA, bytesB. */
type Mech3 = [Float64Array, Bytes, Bytes];
type Callback<T> = (error: Error | null, result?: T) => void;

/** The native chip's methods: numeric handles, encoded templates, flattened mechanisms. */
export interface NativeChip {
  getSlotList(): number[];
  getTokenInfo(slot: number): NativeTokenInfo;
  getMechanismList(slot: number): number[];
  getMechanismInfo(slot: number, type: number): { minKeySize: number; maxKeySize: number; flags: number };
  initToken(slot: number, pin: Buffer, label: Buffer): void;
  /** On the device's chip, application is 0 by default; an Application opens its own sessions only. */
  openSession(slot: number, flags: number, application?: number): number;
  closeSession(session: number): void;
  closeAllSessions(slot: number, application?: number): void;
  getSessionInfo(session: number): { slotID: number; state: number; flags: number; deviceError: number };
  login(session: number, userType: number, pin: Buffer): void;
  logout(session: number): void;
  initPin(session: number, pin: Buffer): void;
  setPin(session: number, oldPin: Buffer, newPin: Buffer): void;
  seedRandom(session: number, seed: Buffer): void;
  generateRandom(session: number, out: Buffer): void;
  createObject(session: number, template: Buffer): number;
  copyObject(session: number, object: number, template: Buffer): number;
  destroyObject(session: number, object: number): void;
  getObjectSize(session: number, object: number): number;
  getAttributeValue(session: number, object: number, types: number[]): { rv: number; values: (Buffer | null)[] };
  setAttributeValue(session: number, object: number, template: Buffer): void;
  findObjectsInit(session: number, template: Buffer): void;
  findObjects(session: number, max: number): number[];
  findObjectsFinal(session: number): void;
  exportMasked(slot: number, object: number, algorithm: number): Buffer;
  importMasked(slot: number, record: Buffer): number;
  shareMaskingKey(slot: number, target: NativeChip, targetSlot: number): void;
  // Device profile (see README): principals, ownership and sharing, the masking key file.
  loginPrincipal(session: number, principal: number): void;
  shareObject(slot: number, object: number, actingPrincipal: number, principal: number, share: boolean): void;
  ownership(slot: number, object: number): { owner: number; sharedWith: number[] };
  setTrusted(slot: number, object: number, trusted: boolean): void;
  /** Drops a token object whatever its owner (a replicated delete or replacement). */
  removeObject(slot: number, object: number): void;
  saveMaskingKey(slot: number, path: string): void;
  loadMaskingKey(slot: number, path: string): void;
  /** Chip-to-chip masking key transfer: the receiver's transport key, the sender's sealed key, the receiver's import. */
  transportPublicKey(slot: number): Buffer;
  exportMaskingKeyFor(slot: number, recipientPublicKey: Buffer): Buffer;
  importMaskingKey(slot: number, sealed: Buffer): void;
  /**
   * A new application on this chip: a frozen object of the PKCS#11 calls only, bound natively to
   * the application's number. Its calls reach only the sessions it opened (others answer
   * CKR_SESSION_HANDLE_INVALID); its sessions close when it is collected.
   */
  openApplication(): NativeApplication;
  /** Masked records bound to an identity (key id, version, owner): import under another binding fails CKR_DATA_INVALID. */
  exportMasked(slot: number, object: number, algorithm: number, binding: Buffer): Buffer;
  importMasked(slot: number, record: Buffer, binding: Buffer): number;
  /** Logs every application logged in as `principal` out, ends their operations, destroys its session objects. */
  revokePrincipal(principal: number): void;
  /** HMAC-SHA-256 under a key derived from the masking key for `purpose` (1-255); the key stays in the chip. */
  deviceMac(slot: number, purpose: number, data: Buffer): Buffer;
  /** The whole token sealed under its masking key, bound to `binding` (see native/src/token/token_record.cc). */
  exportToken(slot: number, binding: Buffer): Buffer;
  /** Replaces an initialized token's state and token objects with a sealed record's (no session open on the slot). */
  importToken(slot: number, record: Buffer, binding: Buffer): void;
  /**
   * True when the Inits (encryptInit, decryptInit) also take a trailing callback and answer
   * through it: a cluster's, where each is a round trip to an HSM. The chip's are local.
   */
  readonly asyncInits?: boolean;
  encryptInit(session: number, key: number, ...m: Mech3): void;
  decryptInit(session: number, key: number, ...m: Mech3): void;
  signInit(session: number, key: number, ...m: Mech3): void;
  verifyInit(session: number, key: number, ...m: Mech3): void;
  digestInit(session: number, ...m: Mech3): void;
  encrypt(session: number, input: Buffer, out: Buffer, cb?: Callback<number>): number;
  encryptUpdate(session: number, input: Buffer, out: Buffer): number;
  encryptFinal(session: number, out: Buffer, cb?: Callback<number>): number;
  decrypt(session: number, input: Buffer, out: Buffer, cb?: Callback<number>): number;
  decryptUpdate(session: number, input: Buffer, out: Buffer): number;
  decryptFinal(session: number, out: Buffer, cb?: Callback<number>): number;
  digest(session: number, input: Buffer, out: Buffer, cb?: Callback<number>): number;
  digestUpdate(session: number, input: Buffer): void;
  digestKey(session: number, key: number): void;
  digestFinal(session: number, out: Buffer, cb?: Callback<number>): number;
  sign(session: number, input: Buffer, out: Buffer, cb?: Callback<number>): number;
  signUpdate(session: number, input: Buffer): void;
  signFinal(session: number, out: Buffer, cb?: Callback<number>): number;
  verify(session: number, input: Buffer, signature: Buffer, cb?: Callback<boolean>): boolean;
  verifyUpdate(session: number, input: Buffer): void;
  verifyFinal(session: number, signature: Buffer, cb?: Callback<boolean>): boolean;
  generateKey(session: number, template: Buffer, ...rest: [...Mech3, Callback<number>?]): number;
  generateKeyPair(session: number, pub: Buffer, priv: Buffer, ...rest: [...Mech3, Callback<[number, number]>?]): [number, number];
  wrapKey(session: number, wrapping: number, key: number, out: Buffer, ...rest: [...Mech3, Callback<number>?]): number;
  unwrapKey(session: number, unwrapping: number, wrapped: Buffer, template: Buffer, ...rest: [...Mech3, Callback<number>?]): number;
  deriveKey(session: number, base: number, template: Buffer, ...rest: [...Mech3, Callback<number>?]): number;
}

/** The calls an application object has: PKCS#11 and nothing else. */
export const APPLICATION_CALLS = [
  "getSlotList", "getTokenInfo", "getMechanismList", "getMechanismInfo", "initToken", "openSession", "closeSession",
  "closeAllSessions", "getSessionInfo", "login", "logout", "initPin", "setPin", "seedRandom", "generateRandom",
  "createObject", "copyObject", "destroyObject", "getObjectSize", "getAttributeValue", "setAttributeValue",
  "findObjectsInit", "findObjects", "findObjectsFinal", "encryptInit", "decryptInit", "signInit", "verifyInit",
  "encrypt", "encryptUpdate", "decrypt", "decryptUpdate", "digest", "sign", "encryptFinal", "decryptFinal",
  "digestFinal", "signFinal", "digestUpdate", "signUpdate", "verifyUpdate", "verifyFinal", "digestInit", "digestKey",
  "verify", "generateKey", "generateKeyPair", "wrapKey", "unwrapKey", "deriveKey",
] as const;
export type ApplicationCallName = (typeof APPLICATION_CALLS)[number];
/** One application's PKCS#11 calls (from NativeChip.openApplication()). */
export type NativeApplication = Pick<NativeChip, ApplicationCallName>;

export interface NativeTokenInfo {
  label: string;
  serialNumber: string;
  flags: number;
  sessionCount: number;
  rwSessionCount: number;
  minPinLen: number;
  maxPinLen: number;
  totalMemory: number;
  freeMemory: number;
}

export interface ChipOptions {
  /** Fixed number of slots; 0 (default): one free slot always, as SoftHSMv2. */
  slotCount?: number;
  /** Consecutive wrong PINs that lock the user or SO PIN (default 5). */
  maxPinFailures?: number;
  /** PBKDF2 iterations of stored PINs (default 4096). */
  pinHashIterations?: number;
  /** Deterministic mode: the seed fixes every token's random generator. */
  seed?: Buffer;
  /** Key quota per token (0: none); exceeding it fails with CKR_DEVICE_MEMORY and stores nothing. */
  maxKeys?: number;
  /** Quota of public plus private keys per token (0: none). */
  maxAsymmetricKeys?: number;
  /** Sessions one application may have open (default 1024, as CloudHSM); CKR_SESSION_COUNT beyond. */
  maxSessionsPerApplication?: number;
  /**
   * The HSM's profile: creating, finding and using keys need a principal logged in through
   * loginPrincipal; PIN logins on applications are refused; CKA_EXTRACTABLE is fixed at creation.
   */
  deviceProfile?: boolean;
}

interface Addon {
  Chip: new (options: ChipOptions) => NativeChip;
  setErrorClass(constructor: new (code: number, method: string) => Error): void;
  /** Benchmark reference: AES-GCM straight through OpenSSL, `iterations` times. */
  rawGcmEncryptLoop(key: Buffer, iv: Buffer, input: Buffer, output: Buffer, iterations: number): boolean;
}

function findAddon(): string {
  const here = typeof __filename === "string" ? dirname(__filename) : dirname(fileURLToPath(import.meta.url));
  for (let dir = here, i = 0; i < 6; i++, dir = dirname(dir)) {
    const candidate = join(dir, "build", "Release", "hsmsim.node");
    if (existsSync(candidate)) return candidate;
  }
  throw new Error("hsmsim native addon not found: run `npm install` (or `npm run build:native`) first");
}

let addon: Addon | undefined;

export function nativeAddon(): Addon {
  if (addon === undefined) {
    const require = createRequire(typeof __filename === "string" ? __filename : import.meta.url);
    addon = require(findAddon()) as Addon;
    addon.setErrorClass(Pkcs11Error);
  }
  return addon;
}

const OPTION_LIMITS: Record<Exclude<keyof ChipOptions, "seed" | "deviceProfile">, [number, number]> = {
  slotCount: [0, 64],
  maxPinFailures: [1, 1000],
  pinHashIterations: [1, 10_000_000],
  maxKeys: [0, 10_000_000],
  maxAsymmetricKeys: [0, 10_000_000],
  maxSessionsPerApplication: [1, 1_000_000],
};

export function createChip(options: ChipOptions = {}): NativeChip {
  if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
  for (const [name, [min, max]] of Object.entries(OPTION_LIMITS)) {
    const value = (options as Record<string, unknown>)[name];
    if (value !== undefined && (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max)) {
      throw new TypeError(`options.${name} must be an integer from ${min} to ${max}`);
    }
  }
  if (options.seed !== undefined && !Buffer.isBuffer(options.seed)) throw new TypeError("options.seed must be a Buffer");
  if (options.deviceProfile !== undefined && typeof options.deviceProfile !== "boolean") throw new TypeError("options.deviceProfile must be a boolean");
  return new (nativeAddon().Chip)(options);
}
