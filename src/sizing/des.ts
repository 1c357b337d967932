// The discrete-event way to a sizing number: the real cluster and client code in virtual time
// (a simulated World whose HSMs serve at a performance profile's rates), a load generator on
// the client's asynchronous core, and optionally one HSM killed mid-run. Same seed, same
// numbers: every draw (service times, arrivals, the mix, the client's choices) comes from the
// world's seeded streams.
import { ClusterChip } from "../client/cluster-chip.js";
import { type OperationClass, type ServiceProfile, checkServiceProfile, classifyRequest, meanServiceUs, profileServiceTime } from "../cluster/service-profile.js";
import { PKCS11 } from "../pkcs11/pkcs11.js";
import { clockView } from "../sim/clock.js";
import { Rng } from "../sim/random.js";
import { type EngineRequest, referenceLatency } from "./reference-queue.js";
import { stratifiedServiceTime, stratifiedUniforms } from "./stratified.js";
import { World } from "../sim/world.js";
import { type LatencySummary, LoadGeneratorError, type LoadMode, type LoadOperation, type LoadResult, type TimelineWindow, prepareLoad, startLoad } from "./load.js";

/** One operation of an open-loop load: as the queueing model takes it. */
export interface DesLoadItem {
  operation: string;
  opClass: OperationClass;
  inputBytes: number;
  ratePerSec: number;
}

/** One operation of a saturating (closed-loop) mix; `weight` its share (default 1). */
export interface DesSaturateItem {
  operation: string;
  opClass: OperationClass;
  inputBytes: number;
  weight?: number;
}

export interface DiscreteEventOptions {
  profile: ServiceProfile;
  hsmCount: number;
  /** Open loop: Poisson arrivals of each operation at its rate. */
  load?: DesLoadItem[];
  /** Closed loop to saturation: enough operations in flight to keep every engine busy. */
  saturate?: DesSaturateItem[];
  /** Closed loop: operations in flight (default: enough to cover the network round trips, below the queues' capacity). */
  concurrency?: number;
  seed: number | string;
  /** Measured window (virtual µs), after the warm-up. */
  durationUs: number;
  /** Load before the measured window (default a tenth of durationUs, at most 1 s). */
  warmUpUs?: number;
  /** Timeline window (default a twentieth of the run). */
  windowUs?: number;
  /** One-way network latency between the client and each HSM (default 250 µs, no jitter). */
  networkLatencyUs?: number;
  /** Service times and arrival gaps from stratified uniforms (default, stratified.ts) or independent ones (profileServiceTime's). */
  sampling?: "stratified" | "independent";
  /** Kills one HSM at this time after the load starts (the cluster's crash path) and keeps measuring. */
  killHsmAtUs?: number;
}

export interface DiscreteEventResult {
  hsmCount: number;
  /** Operations completed per second over the measured window. */
  throughputPerSec: number;
  /** Arrivals per second (open loop), or the throughput (closed loop). */
  offeredPerSec: number;
  latency: LatencySummary | null;
  completed: number;
  failed: number;
  failedByReason: Record<string, number>;
  unfinished: number;
  timeline: TimelineWindow[];
  byOperation: LoadResult["byOperation"];
  /** Closed loop: operations kept in flight. */
  concurrency: number | null;
  /** The HSM killed, if any. */
  killedHsm: string | null;
  /** Cost of the run: requests the HSMs served, and wall time (not deterministic: speed reports only). */
  servedRequests: number;
  /** Mean engine time the measured window's requests drew, by class (µs): the run's realized service times, beside the profile's means. */
  drawnServiceUs: Partial<Record<OperationClass, number>>;
  /**
   * The same engine requests (arrival times at the HSMs, service times drawn) through one ideal
   * pooled M/M/(N·c) FCFS queue, plus the two network round trips (reference-queue.ts): the
   * model's assumption on this run's own draws, a control variate for its latency.
   */
  reference: LatencySummary | null;
  /** Busy answers the HSMs gave during the run (queue full): the client retries each elsewhere, up to 3 times. */
  busyAnswers: number;
  /** Requests each live HSM served during the load (by HSM id): how evenly the client spread it. */
  servedByHsm: Record<string, number>;
  wallMs: number;
}

const CROSS_CHECK_USER = { username: "sizing", password: "sizing-pass-1" };
const OFFICER = { username: "admin", password: "officer-pass-1" };
const MAX_HSMS = 32;
/** The client's session limit is 1024; the load keeps one for its own. */
const MAX_CONCURRENCY = 1000;
const MAX_DURATION_US = 3_600_000_000;

function bad(message: string): never {
  throw new LoadGeneratorError(message);
}

/** Operations in flight that keep every engine of `hsmCount` HSMs busy through the network round trips, below the queues' capacity. */
export function saturatingConcurrency(profile: ServiceProfile, hsmCount: number, mix: DesSaturateItem[], networkLatencyUs: number): number {
  // An operation holds its session, not an engine, for its two round trips (Init, then the call).
  let meanUs = 0;
  let weights = 0;
  for (const m of mix) {
    meanUs += (m.weight ?? 1) * meanServiceUs(profile, m.opClass, m.inputBytes, hsmCount);
    weights += m.weight ?? 1;
  }
  meanUs = Math.max(1, meanUs / weights);
  const perEngine = 1 + (4 * networkLatencyUs) / meanUs;
  const perHsm = Math.ceil(2 * profile.engines * perEngine);
  const belowQueue = Math.max(1, Math.floor(profile.queueCapacity * 0.75));
  return hsmCount * Math.max(1, Math.min(perHsm, belowQueue));
}

/** Runs the load on a simulated cluster with `profile`'s service times; deterministic per seed. */
export function runDiscreteEvent(options: DiscreteEventOptions): DiscreteEventResult {
  const wallStartMs = performance.now();
  if (options === null || typeof options !== "object") bad("options must be { profile, hsmCount, load | saturate, seed, durationUs }");
  if (typeof options.seed !== "number" && typeof options.seed !== "string") bad("seed must be a number or a string");
  const profile = checkServiceProfile(options.profile);
  const { hsmCount, durationUs } = options;
  if (!Number.isInteger(hsmCount) || hsmCount < 1 || hsmCount > MAX_HSMS) bad(`hsmCount must be an integer from 1 to ${MAX_HSMS}`);
  if (!(typeof durationUs === "number" && durationUs > 0 && durationUs <= MAX_DURATION_US)) bad(`durationUs must be a number of µs from 1 to ${MAX_DURATION_US}`);
  if ((options.load === undefined) === (options.saturate === undefined)) bad("give either load (open loop) or saturate (closed loop)");
  const networkLatencyUs = options.networkLatencyUs ?? 250;
  if (!(Number.isFinite(networkLatencyUs) && networkLatencyUs >= 0 && networkLatencyUs <= 10_000_000)) bad("networkLatencyUs must be a number of µs from 0 to 10 000 000");
  const warmUpUs = options.warmUpUs ?? Math.min(1_000_000, durationUs / 10);
  if (options.killHsmAtUs !== undefined && !(options.killHsmAtUs >= 0 && options.killHsmAtUs < warmUpUs + durationUs)) bad("killHsmAtUs must fall within the run");
  if (options.killHsmAtUs !== undefined && hsmCount < 2) bad("killHsmAtUs needs at least 2 HSMs");

  let operations: LoadOperation[];
  let mode: LoadMode;
  if (options.load !== undefined) {
    if (!Array.isArray(options.load) || options.load.length === 0) bad("load must list at least one operation");
    for (const l of options.load) if (!(typeof l?.ratePerSec === "number" && l.ratePerSec > 0 && Number.isFinite(l.ratePerSec))) bad(`load: ${l?.operation}'s ratePerSec must be a positive number`);
    operations = options.load.map((l) => ({ name: l.operation, opClass: l.opClass, inputBytes: l.inputBytes, weight: l.ratePerSec }));
    mode = { kind: "open", ratePerSec: options.load.reduce((s, l) => s + l.ratePerSec, 0) };
  } else {
    if (!Array.isArray(options.saturate) || options.saturate.length === 0) bad("saturate must list at least one operation");
    for (const s of options.saturate) if (s === null || typeof s !== "object") bad("saturate: each operation must be { operation, opClass, inputBytes, weight? }");
    // Nothing to saturate: the model's capacity is infinite and a closed loop would only measure the network.
    if (options.saturate.every((s) => s.opClass in profile.costs && meanServiceUs(profile, s.opClass, s.inputBytes, hsmCount) === 0)) {
      bad(`saturate: on profile ${profile.type} these operations take no engine time, so the cluster has no saturation rate (give a load instead)`);
    }
    operations = options.saturate.map((s) => ({ name: s.operation, opClass: s.opClass, inputBytes: s.inputBytes, weight: s.weight ?? 1 }));
    if (options.concurrency !== undefined && !(Number.isInteger(options.concurrency) && options.concurrency >= 1 && options.concurrency <= MAX_CONCURRENCY)) {
      bad(`concurrency must be an integer from 1 to ${MAX_CONCURRENCY}`);
    }
    const concurrency = Math.min(MAX_CONCURRENCY, options.concurrency ?? saturatingConcurrency(profile, hsmCount, options.saturate, networkLatencyUs));
    mode = { kind: "closed", concurrency };
  }

  const stratified = (options.sampling ?? "stratified") === "stratified";
  const serviceRandom = new Rng(options.seed).fork("sizing/service");
  const drawService = stratified ? stratifiedServiceTime(profile, serviceRandom) : profileServiceTime(profile, serviceRandom);
  // Every engine request of the load, in arrival order: the realized service times, and the reference queue's input.
  const requests: (EngineRequest & { opClass: OperationClass })[] = [];
  let loading = false;
  const world = new World({
    seed: options.seed,
    faults: { latencyUs: networkLatencyUs, jitterUs: 0, lossRate: 0, duplicateRate: 0 },
    cluster: { hsmCount, node: { serviceTimeUs: (op, demand) => {
      const us = drawService(op, demand);
      if (loading && us > 0) requests.push({ arrivedUs: world.clock.nowUs(), serviceUs: us, opClass: classifyRequest(op, demand.mechanism) });
      return us;
    }, engines: profile.engines, queueCapacity: profile.queueCapacity } },
  });
  try {
    world.cluster.initialize();
    const setup = world.connect("setup");
    setup.console("admin", "password").changePassword("admin", OFFICER.password);
    setup.console(OFFICER.username, OFFICER.password).createUser(CROSS_CHECK_USER.username, "CU", CROSS_CHECK_USER.password);
    world.run(1_000_000);

    const connection = world.connect("load");
    const chip = new ClusterChip(connection.client, clockView(world.clock));
    const pkcs11 = new PKCS11(chip.asChip());
    pkcs11.C_Initialize();
    // Open loop: enough sessions for a backlog of several seconds' arrivals at saturation is not the point; 1000 covers any sane run.
    const sessions = mode.kind === "closed" ? mode.concurrency : 1000;
    const prepared = prepareLoad(pkcs11, { ...CROSS_CHECK_USER, sessions, operations });
    world.run(1_000_000); // token keys reach every HSM

    const servedBefore = servedByHsm(world);
    const busyBefore = busyAnswers(world);
    let result: LoadResult | null = null;
    const startUs = world.clock.nowUs();
    const run = startLoad({ chip, clock: world.clock, random: world.rng.fork("load"), prepared, operations, mode, durationUs, warmUpUs,
      arrivalUniforms: stratified ? stratifiedUniforms(world.rng.fork("load/arrivals")) : undefined,
      windowUs: options.windowUs ?? Math.max(1, Math.floor((warmUpUs + durationUs) / 20)), drainUs: 30_000_000 }, (r) => (result = r));
    loading = true;
    let killedHsm: string | null = null;
    if (options.killHsmAtUs !== undefined) {
      world.clock.schedule(options.killHsmAtUs, () => {
        const victim = world.cluster.liveNodes().at(-1);
        if (victim === undefined) return;
        killedHsm = victim.hsm.id;
        world.cluster.crashHsm(killedHsm);
      });
    }
    // Run until the load's result is in (its own drain bound ends it), in slices so a finished run stops early.
    const deadlineUs = startUs + warmUpUs + durationUs + 31_000_000;
    while (!run.finished && world.clock.nowUs() < deadlineUs) world.clock.runUntil(Math.min(deadlineUs, world.clock.nowUs() + 100_000));
    if (result === null) bad("the discrete-event run did not finish (its clock ran out)");
    const r = result as LoadResult;
    return {
      hsmCount, throughputPerSec: r.throughputPerSec, offeredPerSec: r.offeredPerSec, latency: r.latency, completed: r.completed, failed: r.failed,
      failedByReason: r.failedByReason, unfinished: r.unfinished, timeline: r.timeline, byOperation: r.byOperation,
      concurrency: mode.kind === "closed" ? mode.concurrency : null, killedHsm, ...servedSince(world, servedBefore), busyAnswers: busyAnswers(world) - busyBefore,
      drawnServiceUs: drawnMeans(requests, startUs + warmUpUs, startUs + warmUpUs + durationUs),
      // An operation's engine call reaches its HSM 3 one-way trips after the operation starts (Init there and back, the call there).
      reference: referenceLatency(requests, hsmCount * profile.engines, startUs + warmUpUs + 3 * networkLatencyUs, startUs + warmUpUs + durationUs + 3 * networkLatencyUs,
        4 * networkLatencyUs),
      wallMs: performance.now() - wallStartMs,
    };
  } finally {
    world.dispose();
  }
}

/** Requests each live HSM has served (its stats). */
function servedByHsm(world: World): Map<string, number> {
  return new Map(world.cluster.liveNodes().map((node) => [node.hsm.id, node.stats.served]));
}

/** Busy answers the live HSMs gave so far (a killed HSM's count ends with it). */
function busyAnswers(world: World): number {
  let n = 0;
  for (const node of world.cluster.liveNodes()) n += node.stats.busy;
  return n;
}

/** Mean service time drawn per class by the requests that arrived in [fromUs, toUs). */
function drawnMeans(requests: readonly (EngineRequest & { opClass: OperationClass })[], fromUs: number, toUs: number): Partial<Record<OperationClass, number>> {
  const sums = new Map<OperationClass, { sumUs: number; count: number }>();
  for (const r of requests) {
    if (r.arrivedUs < fromUs || r.arrivedUs >= toUs) continue;
    const s = sums.get(r.opClass) ?? { sumUs: 0, count: 0 };
    s.sumUs += r.serviceUs;
    s.count++;
    sums.set(r.opClass, s);
  }
  return Object.fromEntries([...sums].map(([opClass, s]) => [opClass, s.sumUs / s.count]));
}

/** Requests served since `before` (a killed HSM's count ends with it). */
function servedSince(world: World, before: Map<string, number>): { servedRequests: number; servedByHsm: Record<string, number> } {
  const byHsm: Record<string, number> = {};
  let total = 0;
  for (const [id, n] of servedByHsm(world)) {
    byHsm[id] = n - (before.get(id) ?? 0);
    total += byHsm[id];
  }
  return { servedRequests: total, servedByHsm: byHsm };
}
