// How long an HSM's crypto engines take over a request, from a performance profile given as
// plain data (so it crosses to an HSM process in its configuration). The calibrated profiles
// themselves, and why their numbers are what they are, live in src/sizing/profiles.ts; this
// file only prices a request: its operation class, its input size, the cluster's size (the
// Universal Scalability Law's contention and coherency terms) and the time dilation.
import { ObjectFreeze, SetHas } from "../primordials.js";
import {
  CKM_AES_CBC, CKM_AES_CBC_PAD, CKM_AES_GCM, CKM_AES_KEY_GEN, CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_KWP, CKM_AES_KEY_WRAP_PAD, CKM_CLOUDHSM_AES_GCM,
  CKM_ECDH1_COFACTOR_DERIVE, CKM_ECDH1_DERIVE, CKM_ECDSA, CKM_ECDSA_SHA1, CKM_ECDSA_SHA224, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512,
  CKM_EC_KEY_PAIR_GEN, CKM_RSA_PKCS, CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_RSA_PKCS_OAEP, CKM_RSA_PKCS_PSS, CKM_SHA1_RSA_PKCS, CKM_SHA1_RSA_PKCS_PSS,
  CKM_SHA224_RSA_PKCS, CKM_SHA224_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS, 
  CKM_SHA384_RSA_PKCS, CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS, CKM_SHA512_RSA_PKCS_PSS,
} from "../pkcs11/constants.js";
import type { Random } from "../runtime/random.js";
import { ClusterError } from "./errors.js";
import { OPERATION_FAMILY, OPERATION_INIT } from "./calls.js";
import { MAX_CALL_BUFFER_BYTES, type RequestOp } from "./protocol.js";

/** What a profile prices. An RSA operation is priced as RSA-2048 scaled to its key's size, an EC one (ECDSA, ECDH, key generation) as P-256 scaled to its curve (rsaKeyScale). */
export const OPERATION_CLASSES = [
  "rsa-2048-sign", "rsa-2048-verify", "rsa-2048-encrypt", "rsa-2048-decrypt",
  "ecdsa-p256-sign", "ecdsa-p256-verify", "ecdh-p256-derive",
  "aes-gcm", "aes-cbc", "aes-wrap", "hmac", "digest", "random",
  "aes-keygen", "ec-p256-keygen", "rsa-2048-keygen",
  "key-write", "login", "manage", "control",
] as const;
export type OperationClass = (typeof OPERATION_CLASSES)[number];

export interface OperationCost {
  /** Mean engine time of one operation in a one-HSM cluster, in µs (0: the HSM's control path serves it at once, no engine). */
  serviceUs: number;
  /** Extra engine time per KiB of input, in µs (bulk ciphers, MACs, digests, random). */
  perKiBUs: number;
  /** USL contention σ: the serialized share; an N-HSM cluster's service time is × (1 + σ(N−1) + κN(N−1)). */
  contention: number;
  /** USL coherency κ: the cost each pair of HSMs adds (crosstalk that grows with N(N−1)). */
  coherency: number;
}

export interface ServiceProfile {
  /** "hsm1.medium", "hsm2m.medium", "unlimited", or a user's own. */
  type: string;
  /** Parallel crypto engines per HSM. */
  engines: number;
  /** Requests waiting or in service before the HSM answers busy. */
  queueCapacity: number;
  /** Every service time × this (≥ 1): a profile run slower than life where the machine cannot reach its rate; measured rates × this afterwards. */
  timeDilation: number;
  /** "exponential": service times drawn with the cost as mean (the queueing model's M/M/c); "fixed": always the mean. */
  distribution: "exponential" | "fixed";
  costs: Record<OperationClass, OperationCost>;
}

/** What the node knows of a request when it prices it. */
export interface ServiceDemand {
  /** The mechanism of the call (an Init's own) or of the operation it continues; undefined when none. */
  mechanism: number | undefined;
  /** Bytes of input the request carries. */
  inputBytes: number;
  /** HSMs in the cluster, as the HSM knows it. */
  memberCount: number;
  /** The operation key's size in bits (RSA modulus, EC curve), when the HSM knows it (undefined: priced as the class's RSA-2048 or P-256). */
  keyBits?: number;
}

export type ServiceTimeFn = (op: RequestOp, demand: ServiceDemand) => number;

const MAX_ENGINES = 1024;
const MAX_QUEUE = 1_000_000;
const MAX_DILATION = 1_000_000;
const MAX_COST_US = 3_600_000_000;

/** Checks a profile given as plain data (a JSON file, a process's configuration); the message names the field. */
export function checkServiceProfile(value: unknown): ServiceProfile {
  const bad = (field: string, rule: string): never => {
    throw new ClusterError("INVALID_ARGUMENT", `service profile: ${field} must be ${rule}`);
  };
  if (value === null || typeof value !== "object" || Array.isArray(value)) bad("the profile", "an object");
  const p = value as Record<string, unknown>;
  if (typeof p.type !== "string" || !/^[\w.-]{1,64}$/.test(p.type)) bad("type", "a name of 1–64 letters, digits, '.', '_' or '-'");
  if (!Number.isInteger(p.engines) || (p.engines as number) < 1 || (p.engines as number) > MAX_ENGINES) bad("engines", `an integer from 1 to ${MAX_ENGINES}`);
  if (!Number.isInteger(p.queueCapacity) || (p.queueCapacity as number) < 1 || (p.queueCapacity as number) > MAX_QUEUE) bad("queueCapacity", `an integer from 1 to ${MAX_QUEUE}`);
  if (typeof p.timeDilation !== "number" || !(p.timeDilation >= 1 && p.timeDilation <= MAX_DILATION)) bad("timeDilation", `a number from 1 to ${MAX_DILATION}`);
  if (p.distribution !== "exponential" && p.distribution !== "fixed") bad("distribution", "\"exponential\" or \"fixed\"");
  const costs = p.costs as Record<string, unknown> | undefined;
  if (costs === null || typeof costs !== "object" || Array.isArray(costs)) bad("costs", "an object with one entry per operation class");
  const known = new Set<string>(OPERATION_CLASSES);
  for (const name of Object.keys(costs!)) if (!SetHas(known, name)) bad(`costs.${name}`, `one of the operation classes (${OPERATION_CLASSES.join(", ")})`);
  const checked = {} as Record<OperationClass, OperationCost>;
  for (const name of OPERATION_CLASSES) {
    const cost = costs![name] as Record<string, unknown> | undefined;
    if (cost === null || typeof cost !== "object") bad(`costs.${name}`, "an object { serviceUs, perKiBUs, contention, coherency }");
    for (const field of ["serviceUs", "perKiBUs"] as const) {
      const v = cost![field];
      if (typeof v !== "number" || !(v >= 0 && v <= MAX_COST_US)) bad(`costs.${name}.${field}`, `a number of µs from 0 to ${MAX_COST_US}`);
    }
    for (const field of ["contention", "coherency"] as const) {
      const v = cost![field];
      if (typeof v !== "number" || !(v >= 0 && v <= 1)) bad(`costs.${name}.${field}`, "a number from 0 to 1");
    }
    checked[name] = ObjectFreeze({ serviceUs: cost!.serviceUs as number, perKiBUs: cost!.perKiBUs as number, contention: cost!.contention as number, coherency: cost!.coherency as number });
  }
  return ObjectFreeze({
    type: p.type as string, engines: p.engines as number, queueCapacity: p.queueCapacity as number, timeDilation: p.timeDilation as number,
    distribution: p.distribution as ServiceProfile["distribution"], costs: ObjectFreeze(checked),
  });
}

/** The USL's factor for an N-HSM cluster: 1 + σ(N−1) + κN(N−1). */
export function scalingFactor(cost: OperationCost, memberCount: number): number {
  const n = Math.max(1, memberCount);
  return 1 + cost.contention * (n - 1) + cost.coherency * n * (n - 1);
}

/** Mean engine time of one request of `opClass` with `inputBytes` of input in an N-HSM cluster, dilation included (µs). */
export function meanServiceUs(profile: ServiceProfile, opClass: OperationClass, inputBytes: number, memberCount: number): number {
  const cost = profile.costs[opClass];
  if (cost.serviceUs === 0 && cost.perKiBUs === 0) return 0;
  return (cost.serviceUs + (cost.perKiBUs * inputBytes) / 1024) * scalingFactor(cost, memberCount) * profile.timeDilation;
}

/** RSA PKCS#1 v1.5 and PSS signatures, bare and with a hash. */
const RSA_SIGN = new Set([CKM_RSA_PKCS, CKM_RSA_PKCS_PSS, CKM_SHA1_RSA_PKCS, CKM_SHA224_RSA_PKCS, CKM_SHA256_RSA_PKCS, CKM_SHA384_RSA_PKCS, CKM_SHA512_RSA_PKCS,
  CKM_SHA1_RSA_PKCS_PSS, CKM_SHA224_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS]);
const ECDSA = new Set([CKM_ECDSA, CKM_ECDSA_SHA1, CKM_ECDSA_SHA224, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512]);
const GCM = new Set([CKM_AES_GCM, CKM_CLOUDHSM_AES_GCM]);
const CBC = new Set([CKM_AES_CBC, CKM_AES_CBC_PAD]);
const KEY_WRAP = new Set([CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD, CKM_AES_KEY_WRAP_KWP]);
const KEY_WRITES = new Set(["createObject", "copyObject", "destroyObject", "setAttributeValue", "setPin"]);
/** Where a call's mechanism (its Mech3 numbers, type first) sits in its arguments. */
const MECHANISM_ARG: Record<string, number> = {
  encryptInit: 2, decryptInit: 2, signInit: 2, verifyInit: 2, digestInit: 1, generateKey: 2, generateKeyPair: 3, wrapKey: 4, unwrapKey: 4, deriveKey: 3,
};

/** The mechanism type a call names itself (an Init, a key generation, a wrap), or undefined. */
export function ownMechanism(op: RequestOp): number | undefined {
  if (op.kind !== "call") return undefined;
  const at = MECHANISM_ARG[op.method];
  if (at === undefined) return undefined;
  const numbers = op.args[at] as ArrayLike<number> | undefined;
  const type = numbers !== null && typeof numbers === "object" ? numbers[0] : undefined;
  return typeof type === "number" && Number.isSafeInteger(type) ? type : undefined;
}

/**
 * Bytes a request holds while it waits (what MAX_QUEUED_BYTES bounds): every typed array's bytes
 * (a Float64Array of mechanism numbers too), strings, and arrays' slots, nested ones included (the
 * codec bounds the depth). Counting only top-level byte buffers let a client queue 16 MiB
 * Float64Arrays, or Buffers inside an array, uncounted.
 */
export function heldBytesOf(op: RequestOp): number {
  if (op.kind !== "call") return 0;
  let bytes = 0;
  const values: unknown[] = [op.args];
  while (values.length > 0) {
    const value = values.pop();
    if (typeof value === "string") bytes += value.length * 2;
    else if (ArrayBuffer.isView(value)) bytes += value.byteLength;
    else if (Array.isArray(value)) {
      bytes += 8 * value.length;
      for (const item of value) if (item !== null && typeof item === "object") values.push(item); else if (typeof item === "string") bytes += item.length * 2;
    } else if (value !== null && typeof value === "object") {
      for (const item of Object.values(value)) {
        bytes += 8;
        if (item !== null && typeof item === "object") values.push(item); else if (typeof item === "string") bytes += item.length * 2;
      }
    }
  }
  return bytes;
}

/** Bytes of input a request carries (its top-level Buffer and byte-array arguments; random's requested output). */
export function inputBytesOf(op: RequestOp): number {
  if (op.kind !== "call") return 0;
  let bytes = 0;
  for (const a of op.args) if (a instanceof Uint8Array) bytes += a.length;
  // Random's work is its output, asked for by length: 16 MiB of it is not priced as 16 bytes.
  if (op.method === "generateRandom") {
    const length = op.args[1];
    if (typeof length === "number" && Number.isFinite(length) && length > 0) bytes += Math.min(length, MAX_CALL_BUFFER_BYTES);
  }
  return bytes;
}

/** Sign and verify mechanisms that hash their input on the HSM (the caller passes the message, not its digest). */
const HASHING_SIGNATURES = new Set([CKM_SHA1_RSA_PKCS, CKM_SHA224_RSA_PKCS, CKM_SHA256_RSA_PKCS, CKM_SHA384_RSA_PKCS, CKM_SHA512_RSA_PKCS,
  CKM_SHA1_RSA_PKCS_PSS, CKM_SHA224_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS,
  CKM_ECDSA_SHA1, CKM_ECDSA_SHA224, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512]);

/** Message bytes a signature class's own cost includes hashing (one SHA-512 block; AWS's figures sign short messages). */
const HASHED_IN_CLASS_BYTES = 128;
/**
 * The single-part calls that carry a message to sign or verify, in their argument 1 (an Update is
 * priced as a digest of its bytes by classifyRequest; C_VerifyFinal's argument is the signature).
 */
const MESSAGE_CALLS = new Set(["sign", "verify"]);

/**
 * Engine time a hashing signature spends on its message beyond what its class's cost includes
 * (µs), at the profile's digest rate per KiB: the RSA and ECDSA classes price one signature of a
 * short message, and a message of 16 MiB signed with SHA256-RSA-PKCS is 16 MiB of hashing first.
 */
export function hashingUs(profile: ServiceProfile, op: RequestOp, demand: ServiceDemand): number {
  if (op.kind !== "call" || demand.mechanism === undefined || !SetHas(HASHING_SIGNATURES, demand.mechanism) || !SetHas(MESSAGE_CALLS, op.method)) return 0;
  const message = op.args[1];
  const beyond = message instanceof Uint8Array ? message.length - HASHED_IN_CLASS_BYTES : 0;
  if (beyond <= 0) return 0;
  const digest = profile.costs.digest;
  return ((digest.perKiBUs * beyond) / 1024) * scalingFactor(digest, demand.memberCount) * profile.timeDilation;
}

/**
 * The operation class of a request. The crypto of an operation is priced on the call that does it
 * (C_Sign, C_Encrypt, an Update or Final), not on its Init, as on a real HSM: an Init only finds
 * the key and is served by the control path.
 */
export function classifyRequest(op: RequestOp, mechanism: number | undefined): OperationClass {
  if (op.kind === "manage") return op.method === "listUsers" || op.method === "describeKey" ? "control" : "manage";
  if (op.kind !== "call") return "control";
  const { method } = op;
  if (method === "login") return "login";
  if (method === "generateRandom" || method === "seedRandom") return "random";
  if (KEY_WRITES.has(method)) return "key-write";
  if (method === "generateKey") return "aes-keygen";
  if (method === "generateKeyPair") return mechanism === CKM_RSA_PKCS_KEY_PAIR_GEN ? "rsa-2048-keygen" : "ec-p256-keygen";
  // RSA-OAEP wraps with the public key (an encrypt) and unwraps with the private key (a decrypt, ~13× dearer).
  if (method === "wrapKey") return mechanism === CKM_RSA_PKCS_OAEP ? "rsa-2048-encrypt" : "aes-wrap";
  if (method === "unwrapKey") return mechanism === CKM_RSA_PKCS_OAEP ? "rsa-2048-decrypt" : "aes-wrap";
  if (method === "deriveKey") return mechanism === CKM_ECDH1_DERIVE || mechanism === CKM_ECDH1_COFACTOR_DERIVE ? "ecdh-p256-derive" : "key-write";
  const family = OPERATION_FAMILY[method];
  if (family === undefined || OPERATION_INIT.has(method) || family === "findObjects") return "control";
  if (family === "digest") return "digest";
  if (mechanism === undefined) return "control";
  if (family === "sign" || family === "verify") {
    const verify = family === "verify";
    // A multi-part signature's Updates only hash their bytes; the Final makes (or checks) the signature.
    if ((method === "signUpdate" || method === "verifyUpdate") && (ECDSA.has(mechanism) || RSA_SIGN.has(mechanism))) return "digest";
    if (ECDSA.has(mechanism)) return verify ? "ecdsa-p256-verify" : "ecdsa-p256-sign";
    if (RSA_SIGN.has(mechanism)) return verify ? "rsa-2048-verify" : "rsa-2048-sign";
    return "hmac"; // HMAC, and CMAC and the other MACs priced as one
  }
  // encrypt / decrypt
  if (GCM.has(mechanism)) return "aes-gcm";
  if (CBC.has(mechanism)) return "aes-cbc";
  if (mechanism === CKM_RSA_PKCS || mechanism === CKM_RSA_PKCS_OAEP) return family === "encrypt" ? "rsa-2048-encrypt" : "rsa-2048-decrypt";
  if (KEY_WRAP.has(mechanism)) return "aes-wrap";
  if (mechanism === CKM_AES_KEY_GEN || mechanism === CKM_EC_KEY_PAIR_GEN) return "control";
  return "aes-cbc"; // the other block modes (ECB, CTR): priced as CBC
}

/**
 * How much dearer an operation is with a `keyBits` key than with its class's size (RSA-2048,
 * P-256): an RSA private-key operation (sign, decrypt) grows as the cube of the modulus size, a
 * public-key one (verify, encrypt, exponent 65537) as its square (OpenSSL's speed: RSA-4096 signs
 * ~7× slower than RSA-2048, verifies ~4×); an EC scalar multiplication as the cube of the curve
 * size (field products quadratic, the scalar's length linear). Without it a client signing with
 * RSA-8192 keys got about 64× the engine work a profile charged.
 */
export function rsaKeyScale(opClass: OperationClass, keyBits: number | undefined): number {
  if (keyBits === undefined || !Number.isFinite(keyBits) || keyBits <= 0) return 1;
  const rsa = Math.min(keyBits, 16_384) / 2048;
  if (opClass === "rsa-2048-sign" || opClass === "rsa-2048-decrypt") return rsa ** 3;
  if (opClass === "rsa-2048-verify" || opClass === "rsa-2048-encrypt") return rsa ** 2;
  if (opClass === "ecdsa-p256-sign" || opClass === "ecdsa-p256-verify" || opClass === "ec-p256-keygen" || opClass === "ecdh-p256-derive") return (Math.min(keyBits, 1024) / 256) ** 3;
  // The prime search: candidates to test grow with the size, each test as its cube.
  if (opClass === "rsa-2048-keygen") return rsa ** 4;
  return 1;
}

const CKA_MODULUS_BITS = 0x121;
const CKA_EC_PARAMS = 0x180;
const ECDH_PEER_BITS: Record<number, number> = { 33: 256, 35: 256, 65: 256, 67: 256, 59: 256, 91: 256, 49: 384, 51: 384, 97: 384, 99: 384, 72: 384, 120: 384 };
const CURVE_BITS: Record<string, number> = { "06082a8648ce3d030107": 256, "06052b81040022": 384 };

/**
 * The key size a key-pair generation asks for, from its public template (the wire's encoding: u32
 * count, then u32 type, u32 length and the bytes): CKA_MODULUS_BITS, or CKA_EC_PARAMS' curve.
 */
export function requestedKeyBits(op: RequestOp): number | undefined {
  if (op.kind !== "call") return undefined;
  // An RSA-OAEP unwrap's input is exactly one modulus long (the chip refuses any other length).
  if (op.method === "unwrapKey") return op.args[2] instanceof Uint8Array && op.args[2].length > 0 ? op.args[2].length * 8 : undefined;
  // An ECDH derive's peer public key is on the base key's curve (the chip refuses any other): its length, in any
  // of the forms the chip takes (point compressed or not, in an OCTET STRING or not, SubjectPublicKeyInfo), sizes it.
  if (op.method === "deriveKey") return op.args[4] instanceof Uint8Array ? ECDH_PEER_BITS[op.args[4].length] : undefined;
  if (op.method !== "generateKeyPair") return undefined;
  const template = op.args[1];
  if (!(template instanceof Uint8Array) || template.length < 4) return undefined;
  const view = new DataView(template.buffer, template.byteOffset, template.byteLength);
  const count = view.getUint32(0, true);
  let offset = 4;
  for (let i = 0; i < count && offset + 8 <= template.length; i++) {
    const type = view.getUint32(offset, true), length = view.getUint32(offset + 4, true);
    offset += 8;
    if (length > template.length - offset) return undefined;
    if (type === CKA_MODULUS_BITS && length >= 4) return view.getUint32(offset, true);
    if (type === CKA_EC_PARAMS) return CURVE_BITS[Buffer.from(template.subarray(offset, offset + length)).toString("hex")];
    offset += length;
  }
  return undefined;
}

/** A uniform draw in (0, 1) with 52 bits, from the injected randomness (a seed replays it). */
function uniform(random: Random): number {
  return (random.int(2 ** 26) * 2 ** 26 + random.int(2 ** 26) + 0.5) / 2 ** 52;
}

/** The node's service-time function for a profile; `random` draws the exponential service times. */
export function profileServiceTime(profile: ServiceProfile, random: Random): ServiceTimeFn {
  const checked = checkServiceProfile(profile);
  return (op, demand) => {
    const opClass = classifyRequest(op, demand.mechanism);
    const base = meanServiceUs(checked, opClass, demand.inputBytes, demand.memberCount) * rsaKeyScale(opClass, demand.keyBits ?? requestedKeyBits(op));
    if (base === 0) return 0;
    const mean = base + hashingUs(checked, op, demand);
    return checked.distribution === "fixed" ? mean : -mean * Math.log(uniform(random));
  };
}
