// The sizing tool: the fewest HSMs that serve a peak load within a p99 target with `spare` HSMs
// down, and what that cluster looks like (utilisation, latency, one HSM down, headroom, cost).
//
// Decisions where the issue is silent:
// - N ranges over 2 (AWS's minimum for high availability) to 28 (a cluster's limit).
// - The HSMs that are down still count as members for the USL factor (their peers keep trying to
//   reach and replicate to them until they are replaced), as in the simulator.
// - The p99 target holds for every operation of the mix (the slowest one's p99), not only for
//   the mix as a whole, where a fast majority would hide a slow minority.
// - Without --p99-ms the target is only stability (utilisation < 1 with the spares down).
// - Headroom is measured where the answer is guaranteed: with the spares down.
import type { ServiceProfile } from "../cluster/service-profile.js";
import { SizingError } from "./errors.js";
import { parseOperation } from "./operations.js";
import { ESTIMATES, PROFILE_TYPES, checkProfileType, isEstimate, profileFor } from "./profiles.js";
import { HOURS_PER_MONTH, hourlyPrice, monthlyCostUsd } from "./prices.js";
import { DEFAULT_SPREADING, type LatencyMs, type LoadItem, type ModelResult, type Spreading, kneePerSec, modelCluster } from "./queueing.js";

export const MIN_HSMS = 2;
export const MAX_HSMS = 28;
/** Client ↔ HSM round trip when none is given: HSMs spread over a region's AZs (an estimate). */
export const DEFAULT_NETWORK_RTT_US = 500;
const MAX_OPS = 64;
const MAX_RATE_PER_SEC = 1e9;

export interface SizeInput {
  ops: readonly { operation: string; ratePerSec: number }[];
  /** The p99 latency target (ms); without it, only stability is required. */
  p99Ms?: number;
  /** HSMs that may be down at peak (default 1: AWS's guidance). */
  spare?: number;
  type?: string;
  pricePerHour?: number;
  networkRttUs?: number;
  spreading?: Spreading;
}

export interface ClusterState {
  liveHsms: number;
  utilisation: number;
  stable: boolean;
  latency: LatencyMs | null;
}

export interface SizeAnswer {
  type: string;
  hsmCount: number;
  spare: number;
  p99TargetMs: number | null;
  offeredPerSec: number;
  networkRttUs: number;
  spreading: Spreading;
  allUp: ClusterState;
  /** The condition the answer is sized for: `spare` HSMs down. */
  withSpareDown: ClusterState;
  /** What happens with one HSM down at peak. */
  oneDown: ClusterState;
  /** More load (the same mix scaled) before the target breaks with the spares down. */
  headroom: { percent: number; opsPerSec: number };
  /** The rate of this mix at which the p99 of the time at the HSMs doubles, all HSMs up. */
  kneePerSec: number;
  cost: { usdPerHour: number; hsmCount: number; monthlyUsd: number; hoursPerMonth: number; source: string; confirmed: boolean };
  operations: {
    operation: string;
    opClass: string;
    ratePerSec: number;
    serviceMs: number;
    /** This operation alone: the rate the cluster saturates at, all up and with the spares down. */
    capacityAllUpPerSec: number;
    capacityWithSpareDownPerSec: number;
    p99WithSpareDownMs: number | null;
    estimate: boolean;
    reasoning: string | null;
  }[];
}

function checkInput(input: SizeInput): { load: LoadItem[]; p99Ms: number | undefined; spare: number; type: string; rttUs: number } {
  if (input === null || typeof input !== "object") throw new SizingError("INVALID_ARGUMENT", "size: give { ops, p99Ms?, spare?, type? }");
  const type = checkProfileType(input.type ?? "hsm2m.medium");
  const spare = input.spare ?? 1;
  if (!Number.isInteger(spare) || spare < 0 || spare > MAX_HSMS - 1) throw new SizingError("INVALID_ARGUMENT", `spare must be a whole number from 0 to ${MAX_HSMS - 1} (got ${String(spare)})`);
  const p99Ms = input.p99Ms;
  if (p99Ms !== undefined && (typeof p99Ms !== "number" || !Number.isFinite(p99Ms) || p99Ms <= 0))
    throw new SizingError("INVALID_ARGUMENT", `the p99 target must be a finite number of ms > 0 (got ${String(p99Ms)})`);
  const rttUs = input.networkRttUs ?? DEFAULT_NETWORK_RTT_US;
  if (typeof rttUs !== "number" || !(rttUs >= 0 && rttUs <= 60e6)) throw new SizingError("INVALID_ARGUMENT", `network round trip must be a number of µs from 0 to 60000000 (got ${String(rttUs)})`);
  if (!Array.isArray(input.ops) || input.ops.length === 0) throw new SizingError("INVALID_ARGUMENT", "give at least one operation and its peak rate (e.g. ecdsa-p256-sign=5000)");
  if (input.ops.length > MAX_OPS) throw new SizingError("INVALID_ARGUMENT", `at most ${MAX_OPS} operations`);
  const seen = new Set<string>();
  const load = input.ops.map(({ operation, ratePerSec }) => {
    const op = parseOperation(operation);
    if (seen.has(op.name)) throw new SizingError("DUPLICATE_OPERATION", `operation ${op.name} is given twice: give its total rate once`);
    seen.add(op.name);
    if (typeof ratePerSec !== "number" || !Number.isFinite(ratePerSec) || ratePerSec <= 0 || ratePerSec > MAX_RATE_PER_SEC)
      throw new SizingError("INVALID_RATE", `rate of ${op.name} must be a number of ops/s > 0 and ≤ ${MAX_RATE_PER_SEC} (got ${String(ratePerSec)})`);
    return { operation: op.name, opClass: op.opClass, inputBytes: op.inputBytes, ratePerSec };
  });
  return { load, p99Ms, spare, type, rttUs };
}

function stateOf(result: ModelResult): ClusterState {
  return { liveHsms: result.hsmCount, utilisation: result.utilisation, stable: result.stable, latency: result.latency };
}

/** The slowest operation's p99 (ms): the target holds for every operation, not only for the mix. */
function worstP99Ms(result: ModelResult): number {
  return Math.max(...result.operations.map((op) => op.latency?.p99Ms ?? Infinity));
}

function meets(result: ModelResult, p99Ms: number | undefined): boolean {
  return result.stable && (p99Ms === undefined || worstP99Ms(result) <= p99Ms);
}

/** The largest factor ≥ 1 by which the mix can grow with `live` HSMs up before the target breaks. */
function headroomFactor(profile: ServiceProfile, load: LoadItem[], live: number, members: number, p99Ms: number | undefined, rttUs: number, spreading?: Spreading): number {
  const at = (factor: number) => modelCluster({ profile, hsmCount: live, memberCount: members, networkRttUs: rttUs, spreading, load: load.map((l) => ({ ...l, ratePerSec: l.ratePerSec * factor })) });
  const base = at(1);
  if (!Number.isFinite(base.capacityPerSec)) return Infinity;
  let lo = 1;
  let hi = base.capacityPerSec / base.offeredPerSec; // utilisation 1: never meets
  for (let i = 0; i < 60 && hi - lo > 1e-9 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (meets(at(mid), p99Ms)) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** Sizes a cluster for a peak load (see the file's comment). */
export function size(input: SizeInput): SizeAnswer {
  const { load, p99Ms, spare, type, rttUs } = checkInput(input);
  const profile = profileFor(type);
  const price = hourlyPrice(type, input.pricePerHour);
  const spreading = input.spreading;
  const model = (live: number, members: number) => modelCluster({ profile, hsmCount: live, memberCount: members, load, networkRttUs: rttUs, spreading });

  // The p99 of an idle cluster (the operations' own service times and the round trips): no
  // cluster beats it, so a target below it is impossible whatever the HSM count.
  const idle = modelCluster({ profile, hsmCount: MIN_HSMS, load: load.map((l) => ({ ...l, ratePerSec: l.ratePerSec * 1e-9 })), networkRttUs: rttUs, spreading });
  if (p99Ms !== undefined && worstP99Ms(idle) > p99Ms) {
    const slowest = idle.operations.reduce((a, b) => ((a.latency?.p99Ms ?? 0) >= (b.latency?.p99Ms ?? 0) ? a : b));
    throw new SizingError("IMPOSSIBLE_TARGET", `a p99 of ${p99Ms} ms is below what even an idle cluster gives: ${slowest.operation} has a p99 of ` +
      `${worstP99Ms(idle).toFixed(2)} ms with no queue at all (its own service time, ${slowest.serviceMs.toFixed(2)} ms on average, plus 2 network round trips of ${rttUs} µs)`);
  }

  let hsmCount = 0;
  let best: { n: number; result: ModelResult } | undefined;
  for (let n = Math.max(MIN_HSMS, spare + 1); n <= MAX_HSMS; n++) {
    const result = model(n - spare, n);
    if (best === undefined || result.utilisation < best.result.utilisation) best = { n, result };
    if (meets(result, p99Ms)) {
      hsmCount = n;
      break;
    }
  }
  if (hsmCount === 0) {
    const b = best!;
    const why = b.result.stable
      ? `its slowest p99 with ${spare} down is ${worstP99Ms(b.result).toFixed(2)} ms at best (${b.n} HSMs), above ${p99Ms} ms`
      : `with ${spare} HSM(s) down even the best cluster (${b.n} HSMs) would be ${(b.result.utilisation * 100).toFixed(0)}% busy`;
    throw new SizingError("IMPOSSIBLE_TARGET", `no ${type} cluster of ${MIN_HSMS}–${MAX_HSMS} HSMs serves this load: ${why}. ` +
      "Adding HSMs stops helping once each pair's coherency cost (the USL's κ) outweighs the new HSM; split the load over several clusters");
  }

  const live = hsmCount - spare;
  const allUp = model(hsmCount, hsmCount);
  const withSpareDown = model(live, hsmCount);
  const oneDown = model(hsmCount - 1, hsmCount);
  const factor = headroomFactor(profile, load, live, hsmCount, p99Ms, rttUs, spreading);
  const offeredPerSec = allUp.offeredPerSec;
  const reasoningOf = new Map(ESTIMATES.map((e) => [e.opClass, e.reasoning]));
  return {
    type,
    hsmCount,
    spare,
    p99TargetMs: p99Ms ?? null,
    offeredPerSec,
    networkRttUs: rttUs,
    spreading: spreading ?? DEFAULT_SPREADING,
    allUp: stateOf(allUp),
    withSpareDown: stateOf(withSpareDown),
    oneDown: stateOf(oneDown),
    headroom: { percent: (factor - 1) * 100, opsPerSec: (factor - 1) * offeredPerSec },
    kneePerSec: kneePerSec({ profile, hsmCount, load, networkRttUs: rttUs, spreading }),
    cost: { usdPerHour: price.usdPerHour, hsmCount, monthlyUsd: monthlyCostUsd(hsmCount, price.usdPerHour), hoursPerMonth: HOURS_PER_MONTH, source: price.source, confirmed: price.confirmed },
    operations: load.map((l, i) => ({
      operation: l.operation,
      opClass: l.opClass,
      ratePerSec: l.ratePerSec,
      serviceMs: allUp.operations[i].serviceMs,
      capacityAllUpPerSec: allUp.operations[i].saturationPerSec,
      capacityWithSpareDownPerSec: withSpareDown.operations[i].saturationPerSec,
      p99WithSpareDownMs: withSpareDown.operations[i].latency?.p99Ms ?? null,
      estimate: isEstimate(type, l.opClass),
      reasoning: isEstimate(type, l.opClass) ? (reasoningOf.get(l.opClass) ?? null) : null,
    })),
  };
}

export { PROFILE_TYPES };
