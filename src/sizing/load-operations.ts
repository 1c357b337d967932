// The load generator's operations: their names and classes, and the sessions and keys they need,
// made before the load starts through the synchronous facade (a synchronous call inside a clock
// callback would run the virtual clock from within itself). load.ts runs them.
import { Buffer } from "node:buffer";

import * as C from "../pkcs11/constants.js";
import { handleToNumber, numberToHandle } from "../pkcs11/handles.js";
import type { PKCS11 } from "../pkcs11/pkcs11.js";
import type { OperationClass } from "../cluster/service-profile.js";
import { LoadGeneratorError } from "./load-error.js";

/** The operation classes the generator can run. */
export const LOAD_CLASSES = [
  "ecdsa-p256-sign", "ecdsa-p256-verify", "rsa-2048-sign", "rsa-2048-verify", "aes-gcm", "aes-cbc", "hmac", "digest", "random",
] as const satisfies readonly OperationClass[];
export type LoadClass = (typeof LOAD_CLASSES)[number];

/** One operation of the mix: as model's parseOperation() gives it, plus a weight (default 1). */
export interface LoadOperation {
  /** The name the results are reported under ("aes-gcm-4k"). */
  name: string;
  opClass: OperationClass;
  /** Bytes of input of the data call (signing: the data signed; ECDSA signs a 32-byte hash whatever this says). */
  inputBytes: number;
  /** Relative share of the mix (default 1). */
  weight?: number;
}

const MAX_INPUT_BYTES = 1 << 20;
const MAX_SESSIONS = 1000;
/** The most timeline windows one run may ask for (load.ts checks it). */
export const MAX_WINDOWS = 100_000;

/** Parses the generator's own operation names ("ecdsa-p256-sign", "aes-gcm-4k", "hmac-64b", "random-32b"). */
export function loadOperation(name: string, weight = 1): LoadOperation {
  const sized = /^(aes-gcm|aes-cbc|hmac|digest|random)(?:-(\d+)(b|k|m))?$/.exec(name);
  if (sized) {
    const unit = sized[3] === "k" ? 1024 : sized[3] === "m" ? 1024 * 1024 : 1;
    const inputBytes = sized[2] === undefined ? (sized[1] === "random" ? 32 : 4096) : Number(sized[2]) * unit;
    return checkOperation({ name, opClass: sized[1] as OperationClass, inputBytes, weight });
  }
  if ((LOAD_CLASSES as readonly string[]).includes(name)) return checkOperation({ name, opClass: name as OperationClass, inputBytes: 32, weight });
  throw new LoadGeneratorError(`unknown operation "${name}": one of ${LOAD_CLASSES.join(", ")} (bulk ones with a size: aes-gcm-4k, hmac-64b, random-1k)`);
}

export function checkOperation(op: LoadOperation): LoadOperation {
  if (op === null || typeof op !== "object") throw new LoadGeneratorError("an operation must be { name, opClass, inputBytes, weight? }");
  if (typeof op.name !== "string" || op.name.length === 0 || op.name.length > 64) throw new LoadGeneratorError("an operation's name must be 1–64 characters");
  if (!(LOAD_CLASSES as readonly string[]).includes(op.opClass)) {
    throw new LoadGeneratorError(`operation "${op.name}": the load generator cannot run class ${String(op.opClass)} (it runs ${LOAD_CLASSES.join(", ")})`);
  }
  if (!Number.isInteger(op.inputBytes) || op.inputBytes < 1 || op.inputBytes > MAX_INPUT_BYTES) {
    throw new LoadGeneratorError(`operation "${op.name}": inputBytes must be an integer from 1 to ${MAX_INPUT_BYTES}`);
  }
  const weight = op.weight ?? 1;
  if (typeof weight !== "number" || !(weight > 0 && Number.isFinite(weight))) throw new LoadGeneratorError(`operation "${op.name}": weight must be a positive number`);
  if (op.opClass === "random" && op.inputBytes > 65_536) throw new LoadGeneratorError(`operation "${op.name}": random takes at most 64 KiB`);
  return { name: op.name, opClass: op.opClass, inputBytes: op.inputBytes, weight };
}

// ---- preparation (synchronous, before the load) ----

/** Sessions and keys the load runs on: chip-level numbers (the same chip's sessions as the facade that made them). */
export interface PreparedLoad {
  sessions: number[];
  keys: Partial<Record<"ec" | "ecPublic" | "rsa" | "rsaPublic" | "aes" | "hmac", number>>;
  /** Signatures made in preparation, for the verify operations (by operation name). */
  signatures: Record<string, Buffer>;
}

const P256 = Buffer.from("06082a8648ce3d030107", "hex");

/**
 * Opens `sessions` sessions on `pkcs11` (the facade over the same chip the load will drive),
 * logs `username` in and makes the keys the mix needs (session keys, on the HSM the client
 * picks: token keys would replicate to every HSM before the load, which costs nothing but
 * time). Synchronous: call it before the load, never from a clock callback.
 */
/** `count` sessions of one application, the first logged in as the crypto user (the login is the application's: every session shares it). */
export function openLoadSessions(pkcs11: PKCS11, username: string, password: string, count: number): Buffer[] {
  const flags = C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION;
  const handles = [pkcs11.C_OpenSession(Buffer.alloc(8), flags)];
  pkcs11.C_Login(handles[0], C.CKU_USER, `${username}:${password}`);
  while (handles.length < count) handles.push(pkcs11.C_OpenSession(Buffer.alloc(8), flags));
  return handles;
}

export function prepareLoad(pkcs11: PKCS11, options: { username: string; password: string; sessions: number; operations: LoadOperation[]; tokenKeys?: boolean }): PreparedLoad {
  const count = options.sessions;
  if (!Number.isInteger(count) || count < 1 || count > MAX_SESSIONS) throw new LoadGeneratorError(`sessions must be an integer from 1 to ${MAX_SESSIONS}`);
  const operations = options.operations.map(checkOperation);
  const handles = openLoadSessions(pkcs11, options.username, options.password, count);
  const first = handles[0];
  const token = options.tokenKeys ?? true; // token keys: every HSM holds them, so any HSM serves any operation
  const classes = new Set(operations.map((o) => o.opClass));
  const keys: PreparedLoad["keys"] = {};
  const num = (h: Buffer) => handleToNumber(h, "handle");
  if (classes.has("ecdsa-p256-sign") || classes.has("ecdsa-p256-verify")) {
    const pair = pkcs11.C_GenerateKeyPair(first, { mechanism: C.CKM_EC_KEY_PAIR_GEN },
      [{ type: C.CKA_EC_PARAMS, value: P256 }, { type: C.CKA_VERIFY, value: true }, { type: C.CKA_TOKEN, value: token }, { type: C.CKA_LABEL, value: "load-ec" }],
      [{ type: C.CKA_SIGN, value: true }, { type: C.CKA_TOKEN, value: token }, { type: C.CKA_LABEL, value: "load-ec" }]);
    keys.ec = num(pair.privateKey);
    keys.ecPublic = num(pair.publicKey);
  }
  if (classes.has("rsa-2048-sign") || classes.has("rsa-2048-verify")) {
    const pair = pkcs11.C_GenerateKeyPair(first, { mechanism: C.CKM_RSA_PKCS_KEY_PAIR_GEN },
      [{ type: C.CKA_MODULUS_BITS, value: 2048 }, { type: C.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }, { type: C.CKA_VERIFY, value: true },
        { type: C.CKA_TOKEN, value: token }, { type: C.CKA_LABEL, value: "load-rsa" }],
      [{ type: C.CKA_SIGN, value: true }, { type: C.CKA_TOKEN, value: token }, { type: C.CKA_LABEL, value: "load-rsa" }]);
    keys.rsa = num(pair.privateKey);
    keys.rsaPublic = num(pair.publicKey);
  }
  if (classes.has("aes-gcm") || classes.has("aes-cbc")) {
    keys.aes = num(pkcs11.C_GenerateKey(first, { mechanism: C.CKM_AES_KEY_GEN }, [
      { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }, { type: C.CKA_KEY_TYPE, value: C.CKK_AES }, { type: C.CKA_VALUE_LEN, value: 32 },
      { type: C.CKA_ENCRYPT, value: true }, { type: C.CKA_DECRYPT, value: true }, { type: C.CKA_TOKEN, value: token }, { type: C.CKA_LABEL, value: "load-aes" },
    ]));
  }
  if (classes.has("hmac")) {
    keys.hmac = num(pkcs11.C_GenerateKey(first, { mechanism: C.CKM_GENERIC_SECRET_KEY_GEN }, [
      { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }, { type: C.CKA_KEY_TYPE, value: C.CKK_GENERIC_SECRET }, { type: C.CKA_VALUE_LEN, value: 32 },
      { type: C.CKA_SIGN, value: true }, { type: C.CKA_VERIFY, value: true }, { type: C.CKA_TOKEN, value: token }, { type: C.CKA_LABEL, value: "load-hmac" },
    ]));
  }
  const signatures: Record<string, Buffer> = {};
  for (const op of operations) {
    if (op.opClass !== "ecdsa-p256-verify" && op.opClass !== "rsa-2048-verify") continue;
    const ec = op.opClass === "ecdsa-p256-verify";
    pkcs11.C_SignInit(first, ec ? { mechanism: C.CKM_ECDSA } : { mechanism: C.CKM_SHA256_RSA_PKCS }, numberToHandle(ec ? keys.ec! : keys.rsa!));
    signatures[op.name] = Buffer.from(pkcs11.C_Sign(first, inputFor(op), Buffer.alloc(ec ? 64 : 256)));
  }
  return { sessions: handles.map(num), keys, signatures };
}

/** The data an operation signs or encrypts: ECDSA signs a 32-byte hash (CKM_ECDSA), the others `inputBytes`. */
export function inputFor(op: LoadOperation): Buffer {
  const bytes = op.opClass === "ecdsa-p256-sign" || op.opClass === "ecdsa-p256-verify" ? 32 : op.inputBytes;
  return Buffer.alloc(bytes, 0x5a);
}

// ---- the run ----

