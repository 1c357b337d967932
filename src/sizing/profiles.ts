// The HSM performance profiles, calibrated to AWS's published per-cluster figures.
//
// Source: AWS CloudHSM User Guide, "AWS CloudHSM performance information"
// (https://docs.aws.amazon.com/cloudhsm/latest/userguide/performance.html), read 2026-12-02.
// Approximate figures for a Java multi-threaded client on EC2; AWS says to load-test.
//
// Calibration: each published row (an operation on a type, at 2, 3 and 6 HSMs) is fitted with
// the Universal Scalability Law (usl.ts). The fit gives λ (one HSM's rate) and the σ, κ that
// bend the curve. An HSM has ENGINES parallel engines, so one operation's engine time is
// ENGINES / λ, and the cluster's saturation rate is λN / (1 + σ(N−1) + κN(N−1)) — the law —
// because service-profile.ts multiplies every service time by that factor.
//
// Operations without a published figure get ESTIMATES, each with its reasoning; they are
// marked as estimates wherever the sizing tool shows them.
import {
  OPERATION_CLASSES, type OperationClass, type OperationCost, type ServiceProfile, checkServiceProfile,
} from "../cluster/service-profile.js";
import { SizingError } from "./errors.js";
import { type UslFit, fitUsl, peakHsmCount } from "./usl.js";

export const PROFILE_TYPES = ["hsm1.medium", "hsm2m.medium", "unlimited"] as const;
export type ProfileType = (typeof PROFILE_TYPES)[number];

export const PUBLISHED_SOURCE = {
  title: "AWS CloudHSM User Guide: AWS CloudHSM performance information",
  url: "https://docs.aws.amazon.com/cloudhsm/latest/userguide/performance.html",
  readOn: "2026-12-02",
} as const;

export type PublishedOperation = "rsa-2048-sign" | "ecdsa-p256-sign";
export interface PublishedPoint {
  type: "hsm1.medium" | "hsm2m.medium";
  operation: PublishedOperation;
  hsmCount: 2 | 3 | 6;
  opsPerSec: number;
}

function row(type: PublishedPoint["type"], operation: PublishedOperation, [two, three, six]: [number, number, number]): PublishedPoint[] {
  return [
    { type, operation, hsmCount: 2, opsPerSec: two },
    { type, operation, hsmCount: 3, opsPerSec: three },
    { type, operation, hsmCount: 6, opsPerSec: six },
  ];
}

/** AWS's table, row by row (cluster-wide ops/s). */
export const PUBLISHED: readonly PublishedPoint[] = Object.freeze([
  ...row("hsm1.medium", "rsa-2048-sign", [2000, 3000, 5000]),
  ...row("hsm1.medium", "ecdsa-p256-sign", [500, 750, 1500]),
  ...row("hsm2m.medium", "rsa-2048-sign", [2000, 3000, 5000]),
  ...row("hsm2m.medium", "ecdsa-p256-sign", [3000, 4500, 7000]),
].map((p) => Object.freeze(p)));

/**
 * Parallel crypto engines per HSM: an ESTIMATE. AWS does not publish it. CloudHSM runs on
 * multi-core crypto accelerators (a partition of a card with tens of cores); 8 is a modest share.
 * It does not change any capacity (the engine time is ENGINES / λ, so ENGINES engines still give λ),
 * only the latency's shape: more engines mean a longer single operation and a later knee.
 */
export const ENGINES = 8;
/** Requests waiting or in service per engine before an HSM answers busy: an ESTIMATE (32 × 8 = 256 per HSM). */
export const QUEUE_PER_ENGINE = 32;

/** The USL fit of one published row. */
export function publishedFit(type: PublishedPoint["type"], operation: PublishedOperation): UslFit {
  const key = `${type}/${operation}`;
  let fit = fits.get(key);
  if (fit === undefined) {
    fit = fitUsl(PUBLISHED.filter((p) => p.type === type && p.operation === operation));
    fits.set(key, fit);
  }
  return fit;
}
const fits = new Map<string, UslFit>();

export interface Estimate {
  opClass: OperationClass;
  /** Why the cost is what it is; shown beside every figure derived from it. */
  reasoning: string;
}

// The estimates' building blocks, relative to the fitted RSA-2048 sign (the same on both types).
/** An HSM command's fixed engine time (parse, key lookup, policy check, DMA), as a share of an RSA-2048 sign's. */
const COMMAND_SHARE_OF_RSA_SIGN = 1 / 25;
/** Bulk AES per KiB on one engine (µs): 8 engines → 128 MiB/s per HSM. */
const AES_PER_KIB_US = 64;
/** SHA-256 (HMAC, digest) per KiB ÷ AES-GCM per KiB, as this machine's chip measured it (README "Performance"). */
const SHA_OVER_AES_PER_KIB = 2.4;
/** Random bytes per KiB ÷ AES-GCM per KiB, as the chip measured it. */
const RANDOM_OVER_AES_PER_KIB = 1.3;

/** Every class without a published figure, with its reasoning (the sizing tool shows these as estimates). */
export const ESTIMATES: readonly Estimate[] = Object.freeze([
  { opClass: "rsa-2048-decrypt", reasoning: "the same private-key exponentiation as an RSA-2048 sign: priced as the fitted sign" },
  { opClass: "rsa-2048-verify", reasoning: "public exponent 65537: about 1/30 of a sign's arithmetic (OpenSSL's ratio), plus the command's fixed cost (1/25 of a sign), which dominates on an HSM" },
  { opClass: "rsa-2048-encrypt", reasoning: "a public-key operation like verify: 1/30 of a sign plus the command's fixed cost" },
  { opClass: "ecdsa-p256-verify", reasoning: "two scalar multiplications against the sign's one fixed-base multiplication: 2× the fitted sign (the software chip measures 3×, its sign having precomputed tables)" },
  { opClass: "ecdh-p256-derive", reasoning: "one variable-base scalar multiplication: 1.5× the fitted sign, between a sign and a verify" },
  { opClass: "aes-gcm", reasoning: "the command's fixed cost (1/25 of an RSA-2048 sign, about 310 µs of an engine, 25k small commands/s per HSM: key lookup, policy checks and the message path dominate small symmetric calls on an HSM) plus 64 µs per KiB per engine (128 MiB/s per HSM of 8 engines)" },
  { opClass: "aes-cbc", reasoning: "as AES-GCM: the command's fixed cost plus 64 µs per KiB per engine" },
  { opClass: "aes-wrap", reasoning: "two keys looked up and checked (2× the command's fixed cost) plus RFC 3394's rounds at the AES rate per KiB" },
  { opClass: "hmac", reasoning: "the command's fixed cost plus SHA-256 at 2.4× AES-GCM's per-KiB cost (the ratio this machine's chip measured: HMAC-SHA256 and GCM at 64 B and 4 KiB)" },
  { opClass: "digest", reasoning: "as HMAC: the command's fixed cost plus SHA-256 per KiB" },
  { opClass: "random", reasoning: "the command's fixed cost plus the DRBG at 1.3× AES-GCM's per-KiB cost (the chip's measured ratio)" },
  { opClass: "aes-keygen", reasoning: "32 random bytes and a key object written: the command's fixed cost plus a key write" },
  { opClass: "ec-p256-keygen", reasoning: "one fixed-base scalar multiplication (a sign's cost) plus two key objects written" },
  { opClass: "rsa-2048-keygen", reasoning: "the prime search: about 100 RSA-2048 signs (OpenSSL's keygen-to-sign ratio is 50–200×, random by nature)" },
  { opClass: "key-write", reasoning: "an object written to the HSM's store: 2× the command's fixed cost" },
  { opClass: "login", reasoning: "a password check and a session set up: 10× the command's fixed cost" },
  { opClass: "manage", reasoning: "user and quorum management, rare: 10× the command's fixed cost" },
].map((e) => Object.freeze(e as Estimate)));

/** The published classes: their costs come from the fit, not an estimate. */
export const CALIBRATED: readonly OperationClass[] = Object.freeze(["rsa-2048-sign", "ecdsa-p256-sign"]);

/** True when a class's cost is an estimate (not fitted to AWS's table) on a calibrated type. */
export function isEstimate(type: string, opClass: OperationClass): boolean {
  return type !== "unlimited" && opClass !== "control" && !CALIBRATED.includes(opClass);
}

const EC_FAMILY = new Set<OperationClass>(["ecdsa-p256-sign", "ecdsa-p256-verify", "ecdh-p256-derive", "ec-p256-keygen"]);

function calibratedCosts(type: PublishedPoint["type"]): Record<OperationClass, OperationCost> {
  const rsa = publishedFit(type, "rsa-2048-sign");
  const ec = publishedFit(type, "ecdsa-p256-sign");
  const rsaSignUs = (ENGINES * 1e6) / rsa.lambdaPerSec;
  const ecSignUs = (ENGINES * 1e6) / ec.lambdaPerSec;
  const commandUs = rsaSignUs * COMMAND_SHARE_OF_RSA_SIGN;
  const keyWriteUs = 2 * commandUs;
  const shaPerKiBUs = AES_PER_KIB_US * SHA_OVER_AES_PER_KIB;
  // The EC classes bend as the fitted EC sign does; every other class as the fitted RSA sign
  // (the larger bend of the two on hsm1.medium: the conservative choice).
  const cost = (opClass: OperationClass, serviceUs: number, perKiBUs = 0): OperationCost => {
    const scaling = EC_FAMILY.has(opClass) ? ec : rsa;
    return { serviceUs, perKiBUs, contention: scaling.contention, coherency: scaling.coherency };
  };
  return {
    "rsa-2048-sign": cost("rsa-2048-sign", rsaSignUs),
    "rsa-2048-decrypt": cost("rsa-2048-decrypt", rsaSignUs),
    "rsa-2048-verify": cost("rsa-2048-verify", commandUs + rsaSignUs / 30),
    "rsa-2048-encrypt": cost("rsa-2048-encrypt", commandUs + rsaSignUs / 30),
    "ecdsa-p256-sign": cost("ecdsa-p256-sign", ecSignUs),
    "ecdsa-p256-verify": cost("ecdsa-p256-verify", 2 * ecSignUs),
    "ecdh-p256-derive": cost("ecdh-p256-derive", 1.5 * ecSignUs),
    "aes-gcm": cost("aes-gcm", commandUs, AES_PER_KIB_US),
    "aes-cbc": cost("aes-cbc", commandUs, AES_PER_KIB_US),
    "aes-wrap": cost("aes-wrap", 2 * commandUs, AES_PER_KIB_US),
    hmac: cost("hmac", commandUs, shaPerKiBUs),
    digest: cost("digest", commandUs, shaPerKiBUs),
    random: cost("random", commandUs, AES_PER_KIB_US * RANDOM_OVER_AES_PER_KIB),
    "aes-keygen": cost("aes-keygen", commandUs + keyWriteUs),
    "ec-p256-keygen": cost("ec-p256-keygen", ecSignUs + 2 * keyWriteUs),
    "rsa-2048-keygen": cost("rsa-2048-keygen", 100 * rsaSignUs + 2 * keyWriteUs),
    "key-write": cost("key-write", keyWriteUs),
    login: cost("login", 10 * commandUs),
    manage: cost("manage", 10 * commandUs),
    control: { serviceUs: 0, perKiBUs: 0, contention: 0, coherency: 0 },
  };
}

function unlimitedCosts(): Record<OperationClass, OperationCost> {
  const costs = {} as Record<OperationClass, OperationCost>;
  for (const opClass of OPERATION_CLASSES) costs[opClass] = { serviceUs: 0, perKiBUs: 0, contention: 0, coherency: 0 };
  return costs;
}

/** Checks a profile type name; the error lists the valid ones. */
export function checkProfileType(type: unknown): ProfileType {
  if (typeof type !== "string" || !(PROFILE_TYPES as readonly string[]).includes(type))
    throw new SizingError("INVALID_ARGUMENT", `unknown HSM type ${JSON.stringify(type)}: valid types are ${PROFILE_TYPES.join(", ")}`);
  return type as ProfileType;
}

/**
 * The profile of an HSM type. `timeDilation` k ≥ 1 runs every service time × k (for a machine
 * that cannot reach the real rate: the measured rate × k afterwards).
 */
export function profileFor(type: string, options: { timeDilation?: number } = {}): ServiceProfile {
  const checked = checkProfileType(type);
  const timeDilation = options.timeDilation ?? 1;
  if (typeof timeDilation !== "number" || !(timeDilation >= 1 && timeDilation <= 1_000_000))
    throw new SizingError("INVALID_ARGUMENT", `time dilation must be a number from 1 to 1000000 (got ${String(timeDilation)})`);
  return checkServiceProfile({
    type: checked,
    engines: ENGINES,
    queueCapacity: ENGINES * QUEUE_PER_ENGINE,
    timeDilation,
    // Exponential: the engines serve a mix and share the device with background work, so service
    // times vary; it is the conservative assumption for latency, and the one M/M/c assumes.
    distribution: "exponential",
    costs: checked === "unlimited" ? unlimitedCosts() : calibratedCosts(checked),
  });
}

export interface CalibrationRow {
  type: PublishedPoint["type"];
  operation: PublishedOperation;
  lambdaPerSec: number;
  contention: number;
  coherency: number;
  /** Where the fitted law peaks (Infinity: it never does); beyond 6 HSMs an extrapolation. */
  peakHsmCount: number;
  /** One operation's engine time on a one-HSM cluster (µs): ENGINES / λ. */
  serviceUs: number;
  maxRelativeError: number;
  points: UslFit["points"];
}

/** The fit of every published row, for the README and the published-table check. */
export function calibrationTable(): CalibrationRow[] {
  const rows: CalibrationRow[] = [];
  for (const type of ["hsm1.medium", "hsm2m.medium"] as const) {
    for (const operation of ["rsa-2048-sign", "ecdsa-p256-sign"] as const) {
      const fit = publishedFit(type, operation);
      rows.push({ type, operation, lambdaPerSec: fit.lambdaPerSec, contention: fit.contention, coherency: fit.coherency, peakHsmCount: peakHsmCount(fit),
        serviceUs: (ENGINES * 1e6) / fit.lambdaPerSec, maxRelativeError: fit.maxRelativeError, points: fit.points });
    }
  }
  return rows;
}
