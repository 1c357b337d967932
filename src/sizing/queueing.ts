// The analytical model of a cluster under load: each HSM a queue of c parallel engines with
// exponential service (M/M/c), the cluster's arrivals spread over its N HSMs.
//
// An operation is an Init (the HSM's control path: no engine time, never queued) and the data
// call (the engine), so 2 network round trips and one engine service. The client sends each
// Init to the HSM with the most spare capacity, so the cluster sits between
//   "independent": N separate M/M/c queues, each with 1/N of the arrivals (a random split), and
//   "pooled":      one M/M/(N·c) queue (a perfect join-shortest-queue: no engine idles while a
//                  request waits elsewhere).
// Both give the same capacity; they differ in the wait. The queue is taken as unbounded (an HSM's
// bounded queue only answers busy near saturation, where the model says "unstable" anyway).
//
// Latency: Erlang C gives the probability C of waiting; the wait W is 0 with probability 1 − C,
// else Exp(cμ − λ); the response is T = W + S with S ~ Exp(μ_i) for the operation's own class.
// For a mix, μ (and so the wait) comes from the mix's mean service time; each operation then
// keeps its own service time, and the cluster's latency is the mixture of the operations'.
import { type OperationClass, type ServiceProfile, meanServiceUs } from "../cluster/service-profile.js";
import { SizingError } from "./errors.js";

export type Spreading = "pooled" | "independent";
/** The model's default spreading (engineer "des" compares it with the discrete-event runs). */
export const DEFAULT_SPREADING: Spreading = "pooled";

export interface LoadItem {
  operation: string;
  opClass: OperationClass;
  inputBytes: number;
  ratePerSec: number;
}

export interface ModelInput {
  profile: ServiceProfile;
  hsmCount: number;
  load: readonly LoadItem[];
  /** One network round trip between the client and an HSM (µs); an operation makes 2. Default 0. */
  networkRttUs?: number;
  spreading?: Spreading;
  /** HSMs in the cluster as the HSMs count them (the USL factor's N); default hsmCount. */
  memberCount?: number;
}

export interface LatencyMs {
  meanMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
}

export interface OperationResult {
  operation: string;
  opClass: OperationClass;
  ratePerSec: number;
  /** Mean engine time of one call in this cluster (USL and dilation included), ms. */
  serviceMs: number;
  /** This operation's saturation rate alone on this cluster (Infinity when it costs no engine time). */
  saturationPerSec: number;
  latency: LatencyMs | null;
}

export interface ModelResult {
  hsmCount: number;
  offeredPerSec: number;
  /** The rate of this mix at which the engines are fully busy (Infinity when nothing costs engine time). */
  capacityPerSec: number;
  /** Busy share of the engines, offered ÷ capacity. */
  utilisation: number;
  stable: boolean;
  latency: LatencyMs | null;
  operations: OperationResult[];
  spreading: Spreading;
}

const MAX_HSMS = 1000;

function checkInput(input: ModelInput): void {
  if (input === null || typeof input !== "object") throw new SizingError("INVALID_ARGUMENT", "modelCluster: give { profile, hsmCount, load }");
  const { hsmCount, load, networkRttUs, spreading, memberCount } = input;
  if (!Number.isInteger(hsmCount) || hsmCount < 1 || hsmCount > MAX_HSMS) throw new SizingError("INVALID_ARGUMENT", `hsmCount must be an integer from 1 to ${MAX_HSMS} (got ${String(hsmCount)})`);
  if (memberCount !== undefined && (!Number.isInteger(memberCount) || memberCount < 1 || memberCount > MAX_HSMS))
    throw new SizingError("INVALID_ARGUMENT", `memberCount must be an integer from 1 to ${MAX_HSMS} (got ${String(memberCount)})`);
  if (networkRttUs !== undefined && !(typeof networkRttUs === "number" && networkRttUs >= 0 && networkRttUs <= 60e6))
    throw new SizingError("INVALID_ARGUMENT", `networkRttUs must be a number of µs from 0 to 60000000 (got ${String(networkRttUs)})`);
  if (spreading !== undefined && spreading !== "pooled" && spreading !== "independent")
    throw new SizingError("INVALID_ARGUMENT", `spreading must be "pooled" or "independent" (got ${String(spreading)})`);
  if (!Array.isArray(load) || load.length === 0) throw new SizingError("INVALID_ARGUMENT", "load must list at least one operation");
  const names = new Set<string>();
  for (const item of load) {
    if (typeof item.ratePerSec !== "number" || !Number.isFinite(item.ratePerSec) || item.ratePerSec <= 0)
      throw new SizingError("INVALID_RATE", `rate of ${String(item.operation)} must be a finite number of ops/s > 0 (got ${String(item.ratePerSec)})`);
    if (!Object.hasOwn(input.profile.costs, item.opClass)) throw new SizingError("INVALID_OPERATION", `unknown operation class ${String(item.opClass)}`);
    if (!Number.isFinite(item.inputBytes) || item.inputBytes < 0) throw new SizingError("INVALID_ARGUMENT", `inputBytes of ${String(item.operation)} must be ≥ 0`);
    if (names.has(item.operation)) throw new SizingError("DUPLICATE_OPERATION", `operation ${item.operation} appears twice in the load`);
    names.add(item.operation);
  }
}

/**
 * Erlang C: the probability that an arrival waits in an M/M/c queue with offered load a = λ/μ
 * (in engines) and c servers; requires a < c. Through the iterative Erlang B recursion
 * B(k) = a·B(k−1) / (k + a·B(k−1)), stable for large c (no factorials or powers).
 */
export function erlangC(servers: number, offeredLoad: number): number {
  if (!Number.isInteger(servers) || servers < 1) throw new SizingError("INVALID_ARGUMENT", `servers must be an integer ≥ 1 (got ${String(servers)})`);
  if (!(offeredLoad >= 0)) throw new SizingError("INVALID_ARGUMENT", `offered load must be ≥ 0 (got ${String(offeredLoad)})`);
  if (offeredLoad >= servers) return 1;
  if (offeredLoad === 0) return 0;
  let b = 1;
  for (let k = 1; k <= servers; k++) b = (offeredLoad * b) / (k + offeredLoad * b);
  const rho = offeredLoad / servers;
  return b / (1 - rho * (1 - b));
}

/** A queue's wait: 0 with probability 1 − waitProbability, else Exp(waitRatePerUs). */
interface Wait {
  waitProbability: number;
  /** cμ − λ in 1/µs. */
  waitRatePerUs: number;
}

/**
 * P(E_θ + E_μ > t) for independent exponentials of rates θ, μ: (μe^{−θt} − θe^{−μt}) / (μ − θ).
 * Where (μ − θ)t is small that difference cancels, so it is written e^{−θt}(1 + θ(1 − e^{−(μ−θ)t})/(μ−θ))
 * with expm1; elsewhere that form would overflow (e^{−(μ−θ)t} for θ ≫ μ), so the direct one is used.
 */
export function hypoexponentialTail(theta: number, mu: number, t: number): number {
  const d = mu - theta;
  if (Math.abs(d * t) < 1) {
    const ratio = d === 0 ? t : -Math.expm1(-d * t) / d;
    return Math.exp(-theta * t) * (1 + theta * ratio);
  }
  return (mu * Math.exp(-theta * t) - theta * Math.exp(-mu * t)) / d;
}

/** P(T > t) for one class: T = W + S, S ~ Exp(1/serviceUs); serviceUs 0 means T = 0 (served at once). */
function tailOf(wait: Wait, serviceUs: number, t: number): number {
  if (serviceUs === 0) return t < 0 ? 1 : 0;
  const mu = 1 / serviceUs;
  const noWait = Math.exp(-mu * t);
  if (wait.waitProbability === 0) return noWait;
  return (1 - wait.waitProbability) * noWait + wait.waitProbability * hypoexponentialTail(wait.waitRatePerUs, mu, t);
}

interface Component {
  weight: number;
  serviceUs: number;
}

/** Mean and percentiles (µs, network excluded) of a mixture of W + S_i. */
function mixtureLatencyUs(wait: Wait, parts: readonly Component[]): { meanUs: number; p50Us: number; p95Us: number; p99Us: number } {
  const meanWaitUs = wait.waitProbability === 0 ? 0 : wait.waitProbability / wait.waitRatePerUs;
  let meanUs = 0;
  for (const p of parts) meanUs += p.weight * (p.serviceUs === 0 ? 0 : meanWaitUs + p.serviceUs);
  const tail = (t: number): number => {
    let s = 0;
    for (const p of parts) s += p.weight * tailOf(wait, p.serviceUs, t);
    return s;
  };
  const percentile = (q: number): number => {
    const target = 1 - q;
    if (tail(0) <= target) return 0; // q of the operations take no engine time
    let hi = Math.max(1, meanUs);
    while (tail(hi) > target) hi *= 2;
    let lo = 0;
    for (let i = 0; i < 200 && hi - lo > 1e-9 * hi; i++) {
      const mid = (lo + hi) / 2;
      if (tail(mid) > target) lo = mid;
      else hi = mid;
    }
    return (lo + hi) / 2;
  };
  return { meanUs, p50Us: percentile(0.5), p95Us: percentile(0.95), p99Us: percentile(0.99) };
}

function toMs(latencyUs: { meanUs: number; p50Us: number; p95Us: number; p99Us: number }, networkUs: number): LatencyMs {
  return {
    meanMs: (latencyUs.meanUs + networkUs) / 1000,
    p50Ms: (latencyUs.p50Us + networkUs) / 1000,
    p95Ms: (latencyUs.p95Us + networkUs) / 1000,
    p99Ms: (latencyUs.p99Us + networkUs) / 1000,
  };
}

/** The wait of one queue of `servers` engines with arrivals `ratePerUs` and mean service `meanUs`. */
function waitOf(servers: number, ratePerUs: number, meanUs: number): Wait {
  if (ratePerUs === 0 || meanUs === 0) return { waitProbability: 0, waitRatePerUs: Infinity };
  const mu = 1 / meanUs;
  const offered = ratePerUs * meanUs;
  return { waitProbability: erlangC(servers, offered), waitRatePerUs: servers * mu - ratePerUs };
}

/** The model of a cluster of `hsmCount` HSMs serving `load` (see the file's comment). */
export function modelCluster(input: ModelInput): ModelResult {
  checkInput(input);
  const { profile, hsmCount, load } = input;
  const spreading = input.spreading ?? DEFAULT_SPREADING;
  const members = input.memberCount ?? hsmCount;
  const networkUs = 2 * (input.networkRttUs ?? 0);
  const engines = profile.engines;

  const services = load.map((item) => meanServiceUs(profile, item.opClass, item.inputBytes, members));
  const offeredPerSec = load.reduce((s, item) => s + item.ratePerSec, 0);
  // Engine-µs of work per second offered, and the mix's mean service time over every operation.
  const workUsPerSec = load.reduce((s, item, i) => s + item.ratePerSec * services[i], 0);
  const utilisation = workUsPerSec / (hsmCount * engines * 1e6);
  const capacityPerSec = workUsPerSec === 0 ? Infinity : offeredPerSec / utilisation;
  const stable = utilisation < 1;

  const operations: OperationResult[] = load.map((item, i) => ({
    operation: item.operation,
    opClass: item.opClass,
    ratePerSec: item.ratePerSec,
    serviceMs: services[i] / 1000,
    saturationPerSec: services[i] === 0 ? Infinity : (hsmCount * engines * 1e6) / services[i],
    latency: null,
  }));
  if (!stable) return { hsmCount, offeredPerSec, capacityPerSec, utilisation, stable, latency: null, operations, spreading };

  // Only engine work queues: the rate and mean service of the operations that take engine time.
  const engineRatePerSec = load.reduce((s, item, i) => s + (services[i] > 0 ? item.ratePerSec : 0), 0);
  const engineMeanUs = engineRatePerSec === 0 ? 0 : workUsPerSec / engineRatePerSec;
  const wait = spreading === "pooled"
    ? waitOf(hsmCount * engines, engineRatePerSec / 1e6, engineMeanUs)
    : waitOf(engines, engineRatePerSec / hsmCount / 1e6, engineMeanUs);

  const parts = load.map((item, i) => ({ weight: item.ratePerSec / offeredPerSec, serviceUs: services[i] }));
  for (const [i, op] of operations.entries()) op.latency = toMs(mixtureLatencyUs(wait, [{ weight: 1, serviceUs: services[i] }]), networkUs);
  return { hsmCount, offeredPerSec, capacityPerSec, utilisation, stable, latency: toMs(mixtureLatencyUs(wait, parts), networkUs), operations, spreading };
}

/** The rate at which `hsmCount` HSMs serving only `opClass` calls of `inputBytes` are fully busy (Infinity when it takes no engine time). */
export function saturationPerSec(profile: ServiceProfile, hsmCount: number, opClass: OperationClass, inputBytes = 0, memberCount = hsmCount): number {
  if (!Number.isInteger(hsmCount) || hsmCount < 1 || hsmCount > MAX_HSMS) throw new SizingError("INVALID_ARGUMENT", `hsmCount must be an integer from 1 to ${MAX_HSMS} (got ${String(hsmCount)})`);
  if (!Object.hasOwn(profile.costs, opClass)) throw new SizingError("INVALID_OPERATION", `unknown operation class ${String(opClass)}`);
  const serviceUs = meanServiceUs(profile, opClass, inputBytes, memberCount);
  return serviceUs === 0 ? Infinity : (hsmCount * profile.engines * 1e6) / serviceUs;
}

function scaled(input: ModelInput, factor: number): ModelInput {
  return { ...input, load: input.load.map((item) => ({ ...item, ratePerSec: item.ratePerSec * factor })) };
}

/** p99 of the time at the HSMs (queue + engine, network excluded) for the mix scaled to a utilisation. */
function engineP99Ms(input: ModelInput, utilisation: number, base: ModelResult): number {
  const result = modelCluster({ ...scaled(input, (utilisation * base.capacityPerSec) / base.offeredPerSec), networkRttUs: 0 });
  return result.latency!.p99Ms;
}

/**
 * The knee: the offered rate (of this mix, scaled) at which the p99 of the time spent at the HSMs
 * (queue + engine; the network excluded, it does not grow with load) reaches twice its value on
 * an idle cluster. Infinity when the mix takes no engine time.
 */
export function kneePerSec(input: ModelInput): number {
  const base = modelCluster(input);
  if (!Number.isFinite(base.capacityPerSec)) return Infinity;
  const idle = engineP99Ms(input, 1e-9, base);
  let lo = 1e-9, hi = 1 - 1e-9;
  if (engineP99Ms(input, hi, base) < 2 * idle) return base.capacityPerSec * hi;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (engineP99Ms(input, mid, base) < 2 * idle) lo = mid;
    else hi = mid;
  }
  return base.capacityPerSec * ((lo + hi) / 2);
}

export interface LatencyPoint extends LatencyMs {
  offeredPerSec: number;
  utilisation: number;
}

/**
 * Latency against offered load for charts: the mix scaled from `fromUtilisation` to
 * `toUtilisation` of its capacity in `points` steps (unstable points are left out).
 */
export function latencyCurve(input: ModelInput, options: { points?: number; fromUtilisation?: number; toUtilisation?: number } = {}): LatencyPoint[] {
  const points = options.points ?? 40;
  const from = options.fromUtilisation ?? 0.02;
  const to = options.toUtilisation ?? 0.98;
  if (!Number.isInteger(points) || points < 2 || points > 10_000) throw new SizingError("INVALID_ARGUMENT", `points must be an integer from 2 to 10000 (got ${String(points)})`);
  if (!(from > 0 && to < 1 && from < to)) throw new SizingError("INVALID_ARGUMENT", "utilisations must satisfy 0 < from < to < 1");
  const base = modelCluster(input);
  if (!Number.isFinite(base.capacityPerSec)) throw new SizingError("INVALID_ARGUMENT", "this load takes no engine time: it has no latency curve");
  const curve: LatencyPoint[] = [];
  for (let i = 0; i < points; i++) {
    const u = from + ((to - from) * i) / (points - 1);
    const result = modelCluster(scaled(input, (u * base.capacityPerSec) / base.offeredPerSec));
    if (result.latency !== null) curve.push({ offeredPerSec: result.offeredPerSec, utilisation: result.utilisation, ...result.latency });
  }
  return curve;
}
