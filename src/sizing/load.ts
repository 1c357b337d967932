// A load generator for a cluster: operations (an Init and its data call, chained through
// callbacks) started on the client's asynchronous chip core, on any Clock (the simulator's
// virtual one, or real time), open loop (Poisson arrivals at a rate) or closed loop (a fixed
// number always in flight). It records each operation's latency, failures by reason, and a
// timeline in fixed windows (ops/s and p99 per window: the failover chart).
//
// Keys and sessions are made before the load starts, through the synchronous facade
// (prepareLoad, load-operations.ts): a synchronous call inside a clock callback would run the virtual clock from
// within itself.
import { Buffer } from "node:buffer";

import type { NativeChip } from "../pkcs11/addon.js";
import * as C from "../pkcs11/constants.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import { type Mechanism, MechanismEncoder } from "../pkcs11/mechanism.js";
import type { Clock } from "../runtime/clock.js";
import type { Random } from "../runtime/random.js";

import { LoadGeneratorError } from "./load-error.js";
import { type LoadClass, type LoadOperation, MAX_WINDOWS, type PreparedLoad, checkOperation, inputFor } from "./load-operations.js";

export { LoadGeneratorError };
export { LOAD_CLASSES, type LoadClass, type LoadOperation, type PreparedLoad, loadOperation, openLoadSessions, prepareLoad } from "./load-operations.js";

export type ChipCallback = (error: Error | null, value?: unknown) => void;

/**
 * The client's asynchronous chip core: ClusterChip has this shape itself (its start()); a
 * NativeChip whose calls take a trailing callback (the remote client's link.chip()) gets it
 * from asyncChipOf().
 */
export interface AsyncChip {
  start(method: string, args: unknown[], callback: ChipCallback): void;
}

/** A NativeChip driven through its callback forms (every call of the remote client's chip takes one). */
export function asyncChipOf(chip: NativeChip): AsyncChip {
  const calls = chip as unknown as Record<string, (...args: unknown[]) => unknown>;
  return {
    start(method, args, callback) {
      const call = calls[method];
      if (typeof call !== "function") return callback(new Pkcs11Error(C.CKR_FUNCTION_NOT_SUPPORTED, method));
      try {
        call(...args, callback);
      } catch (e) {
        callback(e as Error);
      }
    },
  };
}

export type LoadMode = { kind: "open"; ratePerSec: number } | { kind: "closed"; concurrency: number };

export interface LoadOptions {
  chip: AsyncChip;
  clock: Clock;
  /** Draws the arrivals, the mix and the IVs (a seeded stream replays a run). */
  random: Random;
  prepared: PreparedLoad;
  operations: LoadOperation[];
  mode: LoadMode;
  /** Measured window, after the warm-up (µs). */
  durationUs: number;
  /** Load before the measured window, not counted in throughput or latency (default 0). */
  warmUpUs?: number;
  /** Timeline window (default 1 s, or a twentieth of the run when shorter). */
  windowUs?: number;
  /** After the load stops, how long operations still in flight may finish (default 30 s); the rest count as unfinished. */
  drainUs?: number;
  /** Uniforms on (0, 1) for the open loop's exponential gaps (default: from `random`; the discrete-event runs pass stratified ones). */
  arrivalUniforms?: () => number;
  /** Called at every timeline window's end (live displays). */
  onProgress?: (progress: LoadProgress) => void;
}

export interface LatencySummary {
  count: number;
  meanMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface TimelineWindow {
  /** Window start and end, ms since the load started. */
  startMs: number;
  endMs: number;
  /** Operations completed in the window, per second. */
  opsPerSec: number;
  /** Operations that failed in the window. */
  failed: number;
  /** Latency of the operations completed in the window (null: none completed). */
  p50Ms: number | null;
  p99Ms: number | null;
}

export interface LoadProgress {
  elapsedMs: number;
  completed: number;
  failed: number;
  inFlight: number;
  window: TimelineWindow;
}

export interface OperationResult {
  completed: number;
  failed: number;
  latency: LatencySummary | null;
}

export interface LoadResult {
  mode: LoadMode;
  /** The measured window (ms) and the warm-up before it. */
  measuredMs: number;
  warmUpMs: number;
  /** Operations started in the measured window that completed, failed, or had not finished when the drain ran out. */
  completed: number;
  failed: number;
  unfinished: number;
  /** Failures by reason: CKR_FUNCTION_FAILED is the client's "busy after its retries" (or a write of unknown outcome); others by CKR name or error code. */
  failedByReason: Record<string, number>;
  /** Arrivals the open loop could not start for want of a free session (the client side overloaded); counted in failed. */
  noFreeSession: number;
  /** Operations completed within the measured window, per second. */
  throughputPerSec: number;
  /** Open loop: arrivals per second over the measured window. */
  offeredPerSec: number;
  latency: LatencySummary | null;
  byOperation: Record<string, OperationResult>;
  timeline: TimelineWindow[];
}

export interface LoadRun {
  /** Stops starting operations now (the ones in flight drain). */
  stop(): void;
  readonly finished: boolean;
  /** The result, once finished. */
  readonly result: LoadResult | null;
}

/** A uniform draw in (0, 1) from the injected randomness. */
function uniform(random: Random): number {
  return (random.int(2 ** 26) * 2 ** 26 + random.int(2 ** 26) + 0.5) / 2 ** 52;
}

/** Nearest-rank percentile of sorted samples. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

/** Mean and percentiles of latencies given in µs, in ms; null when there are none. */
export function summarizeLatency(samplesUs: number[]): LatencySummary | null {
  if (samplesUs.length === 0) return null;
  const sorted = Float64Array.from(samplesUs).sort();
  const list = Array.from(sorted);
  let sum = 0;
  for (const v of list) sum += v;
  return {
    count: list.length, meanMs: sum / list.length / 1000, p50Ms: percentile(list, 0.5) / 1000, p95Ms: percentile(list, 0.95) / 1000,
    p99Ms: percentile(list, 0.99) / 1000, maxMs: list[list.length - 1] / 1000,
  };
}

function failureReason(error: Error): string {
  if (error instanceof Pkcs11Error) return error.message;
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" ? code : error.name || "Error";
}

function checkLoadOptions(options: LoadOptions): void {
  const positive = (value: unknown, name: string, zero = false) => {
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || (!zero && value === 0)) {
      throw new LoadGeneratorError(`${name} must be a ${zero ? "non-negative" : "positive"} number`);
    }
  };
  if (options === null || typeof options !== "object") throw new LoadGeneratorError("options must be an object");
  if (typeof options.chip?.start !== "function") throw new LoadGeneratorError("chip must have start(method, args, callback)");
  if (typeof options.clock?.schedule !== "function" || typeof options.clock.nowUs !== "function") throw new LoadGeneratorError("clock must be a Clock (nowUs, schedule, cancel)");
  if (typeof options.random?.int !== "function") throw new LoadGeneratorError("random must be a Random");
  const sessions = options.prepared?.sessions;
  if (!Array.isArray(sessions) || sessions.length === 0 || !sessions.every((s) => Number.isSafeInteger(s) && s > 0)) {
    throw new LoadGeneratorError("prepared.sessions must list the sessions prepareLoad opened");
  }
  positive(options.durationUs, "durationUs");
  if (options.warmUpUs !== undefined) positive(options.warmUpUs, "warmUpUs", true);
  if (options.windowUs !== undefined) positive(options.windowUs, "windowUs");
  if (options.drainUs !== undefined) positive(options.drainUs, "drainUs", true);
  const windowUs = options.windowUs ?? 1_000_000;
  if ((options.durationUs + (options.warmUpUs ?? 0)) / windowUs > MAX_WINDOWS) throw new LoadGeneratorError(`windowUs is too small: at most ${MAX_WINDOWS} timeline windows a run`);
  if (!Array.isArray(options.operations) || options.operations.length === 0) throw new LoadGeneratorError("operations must list at least one operation");
  const mode = options.mode;
  if (mode?.kind === "open") {
    positive(mode.ratePerSec, "mode.ratePerSec");
  } else if (mode?.kind === "closed") {
    if (!Number.isInteger(mode.concurrency) || mode.concurrency < 1) throw new LoadGeneratorError("mode.concurrency must be a positive integer");
    if (mode.concurrency > options.prepared.sessions.length) {
      throw new LoadGeneratorError(`mode.concurrency (${mode.concurrency}) needs as many sessions; ${options.prepared.sessions.length} were prepared`);
    }
  } else {
    throw new LoadGeneratorError('mode must be { kind: "open", ratePerSec } or { kind: "closed", concurrency }');
  }
}

/** The prepared key (and signature) each class needs. */
const KEY_OF: Partial<Record<LoadClass, keyof PreparedLoad["keys"]>> = {
  "ecdsa-p256-sign": "ec", "ecdsa-p256-verify": "ecPublic", "rsa-2048-sign": "rsa", "rsa-2048-verify": "rsaPublic", "aes-gcm": "aes", "aes-cbc": "aes", hmac: "hmac",
};

/** Fails now, not from inside a timer later, when the preparation lacks what an operation needs. */
function checkPrepared(operations: readonly LoadOperation[], prepared: PreparedLoad): void {
  for (const op of operations) {
    const key = KEY_OF[op.opClass as LoadClass];
    if (key !== undefined && !Number.isSafeInteger(prepared.keys?.[key])) {
      throw new LoadGeneratorError(`operation "${op.name}" needs a key prepareLoad did not make (prepare with the same operations)`);
    }
    if ((op.opClass === "ecdsa-p256-verify" || op.opClass === "rsa-2048-verify") && !Buffer.isBuffer(prepared.signatures?.[op.name])) {
      throw new LoadGeneratorError(`operation "${op.name}" needs a signature prepareLoad did not make (prepare with the same operations)`);
    }
  }
}

/** One operation's calls on the chip: its Init (none for random) and its data call. */
interface Step {
  method: string;
  args: unknown[];
}

function mech3(mechanism: Mechanism, method: string): unknown[] {
  const m = new MechanismEncoder().encode(mechanism, method);
  return [Float64Array.from(m.numbers), m.bytesA, m.bytesB];
}

function stepsFor(op: LoadOperation, session: number, prepared: PreparedLoad, random: Random): Step[] {
  const data = inputFor(op);
  const key = (k: keyof PreparedLoad["keys"]) => {
    const v = prepared.keys[k];
    if (v === undefined) throw new LoadGeneratorError(`operation "${op.name}" needs a key prepareLoad did not make (prepare with the same operations)`);
    return v;
  };
  switch (op.opClass) {
    case "ecdsa-p256-sign":
      return [{ method: "signInit", args: [session, key("ec"), ...mech3({ mechanism: C.CKM_ECDSA }, "C_SignInit")] },
        { method: "sign", args: [session, data, Buffer.alloc(64)] }];
    case "rsa-2048-sign":
      return [{ method: "signInit", args: [session, key("rsa"), ...mech3({ mechanism: C.CKM_SHA256_RSA_PKCS }, "C_SignInit")] },
        { method: "sign", args: [session, data, Buffer.alloc(256)] }];
    case "ecdsa-p256-verify":
    case "rsa-2048-verify": {
      const ec = op.opClass === "ecdsa-p256-verify";
      const signature = prepared.signatures[op.name];
      if (signature === undefined) throw new LoadGeneratorError(`operation "${op.name}" needs a signature prepareLoad did not make`);
      return [{ method: "verifyInit", args: [session, key(ec ? "ecPublic" : "rsaPublic"), ...mech3({ mechanism: ec ? C.CKM_ECDSA : C.CKM_SHA256_RSA_PKCS }, "C_VerifyInit")] },
        { method: "verify", args: [session, data, signature] }];
    }
    case "aes-gcm": {
      const gcm = { mechanism: C.CKM_AES_GCM, parameter: { type: C.CK_PARAMS_AES_GCM, iv: random.bytes(12), tagBits: 128 } };
      return [{ method: "encryptInit", args: [session, key("aes"), ...mech3(gcm, "C_EncryptInit")] },
        { method: "encrypt", args: [session, data, Buffer.alloc(data.length + 16)] }];
    }
    case "aes-cbc": {
      const cbc = { mechanism: C.CKM_AES_CBC_PAD, parameter: random.bytes(16) };
      return [{ method: "encryptInit", args: [session, key("aes"), ...mech3(cbc, "C_EncryptInit")] },
        { method: "encrypt", args: [session, data, Buffer.alloc(data.length + 16)] }];
    }
    case "hmac":
      return [{ method: "signInit", args: [session, key("hmac"), ...mech3({ mechanism: C.CKM_SHA256_HMAC }, "C_SignInit")] },
        { method: "sign", args: [session, data, Buffer.alloc(32)] }];
    case "digest":
      return [{ method: "digestInit", args: [session, ...mech3({ mechanism: C.CKM_SHA256 }, "C_DigestInit")] },
        { method: "digest", args: [session, data, Buffer.alloc(32)] }];
    case "random":
      return [{ method: "generateRandom", args: [session, Buffer.alloc(op.inputBytes)] }];
    default:
      throw new LoadGeneratorError(`operation "${op.name}": class ${op.opClass} cannot be run`);
  }
}

/**
 * Starts the load; it runs as the clock turns (in the simulator, run the virtual clock past
 * warmUpUs + durationUs + the drain). `onDone` gets the result once the measured window has
 * ended and the operations still in flight have finished (or the drain ran out).
 */
export function startLoad(options: LoadOptions, onDone?: (result: LoadResult) => void): LoadRun {
  checkLoadOptions(options);
  const operations = options.operations.map(checkOperation);
  const { chip, clock, random, prepared, mode } = options;
  checkPrepared(operations, prepared);
  const warmUpUs = options.warmUpUs ?? 0;
  const totalUs = warmUpUs + options.durationUs;
  const windowUs = options.windowUs ?? Math.min(1_000_000, Math.max(1, Math.floor(totalUs / 20)));
  const drainUs = options.drainUs ?? 30_000_000;
  const startUs = clock.nowUs();
  const measureFromUs = startUs + warmUpUs;
  const measureToUs = startUs + totalUs;
  const arrivalUniform = options.arrivalUniforms ?? (() => uniform(random));
  const totalWeight = operations.reduce((s, o) => s + (o.weight ?? 1), 0);

  const freeSessions = [...prepared.sessions];
  let inFlight = 0;
  let stopped = false;
  let finished = false;
  let result: LoadResult | null = null;
  let arrivals = 0;
  let noFreeSession = 0;
  let completedInWindow = 0;
  const samplesUs: number[] = [];
  const failedByReason: Record<string, number> = {};
  let failedCount = 0;
  let unfinishedCount = 0;
  const perOp = new Map<string, { completed: number; failed: number; samplesUs: number[] }>(operations.map((o) => [o.name, { completed: 0, failed: 0, samplesUs: [] }]));
  // The timeline: per window, completions and their latencies; failures.
  const windowCount = Math.ceil(totalUs / windowUs);
  const windowDone = Array.from({ length: windowCount }, () => [] as number[]);
  const windowFailed = new Array<number>(windowCount).fill(0);
  let drainTimer: number | null = null;
  let progressTimer: number | null = null;
  let arrivalTimer: number | null = null;

  const pick = (): LoadOperation => {
    if (operations.length === 1) return operations[0];
    let x = uniform(random) * totalWeight;
    for (const o of operations) {
      x -= o.weight ?? 1;
      if (x < 0) return o;
    }
    return operations[operations.length - 1];
  };

  const windowOf = (atUs: number) => Math.floor((atUs - startUs) / windowUs);

  const record = (op: LoadOperation, startedUs: number, error: Error | null) => {
    const endUs = clock.nowUs();
    const w = windowOf(endUs);
    const counted = startedUs >= measureFromUs && startedUs < measureToUs;
    const stats = perOp.get(op.name)!;
    if (error === null) {
      const latencyUs = endUs - startedUs;
      if (w >= 0 && w < windowCount) windowDone[w].push(latencyUs);
      if (endUs >= measureFromUs && endUs <= measureToUs) completedInWindow++;
      if (counted) {
        samplesUs.push(latencyUs);
        stats.completed++;
        stats.samplesUs.push(latencyUs);
      }
    } else {
      if (w >= 0 && w < windowCount) windowFailed[w]++;
      if (counted) {
        failedCount++;
        stats.failed++;
        const reason = failureReason(error);
        failedByReason[reason] = (failedByReason[reason] ?? 0) + 1;
      }
    }
  };

  /** Replaces a session whose operation failed (a failed data call may leave it with an operation open on some HSM). */
  const renew = (session: number, then: (session: number) => void) => {
    chip.start("openSession", [0, C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION], (error, fresh) => {
      if (error !== null || typeof fresh !== "number") return then(session); // keep the old one: nothing better
      chip.start("closeSession", [session], () => then(fresh));
    });
  };

  const runOne = (session: number, next: (session: number) => void) => {
    const op = pick();
    const startedUs = clock.nowUs();
    if (startedUs >= measureFromUs && startedUs < measureToUs) arrivals++;
    inFlight++;
    let steps: Step[];
    try {
      steps = stepsFor(op, session, prepared, random);
    } catch (e) {
      inFlight--;
      throw e;
    }
    let index = 0;
    const advance = (error: Error | null) => {
      if (finished) return; // answered after the drain ran out: counted as unfinished
      if (error !== null) {
        inFlight--;
        record(op, startedUs, error);
        return renew(session, next);
      }
      if (index === steps.length) {
        inFlight--;
        record(op, startedUs, null);
        return next(session);
      }
      const step = steps[index++];
      chip.start(step.method, step.args, (e) => advance(e));
    };
    advance(null);
  };

  const release = (session: number) => {
    freeSessions.push(session);
    maybeFinish();
  };

  const closedLoopNext = (session: number) => {
    if (stopped) return release(session);
    runOne(session, closedLoopNext);
  };

  const arrive = () => {
    arrivalTimer = null;
    if (stopped) return;
    const session = freeSessions.pop();
    if (session === undefined) {
      const nowUs = clock.nowUs();
      if (nowUs >= measureFromUs && nowUs < measureToUs) {
        arrivals++;
        noFreeSession++;
        failedCount++;
        failedByReason.NO_FREE_SESSION = (failedByReason.NO_FREE_SESSION ?? 0) + 1;
      }
    } else {
      runOne(session, release);
    }
    scheduleArrival();
  };

  const scheduleArrival = () => {
    if (mode.kind !== "open" || stopped) return;
    const gapUs = (-Math.log(arrivalUniform()) * 1e6) / mode.ratePerSec;
    arrivalTimer = clock.schedule(gapUs, arrive);
  };

  const timelineWindow = (w: number): TimelineWindow => {
    const startMs = (w * windowUs) / 1000;
    const endMs = (Math.min(totalUs, (w + 1) * windowUs)) / 1000;
    const sorted = windowDone[w].slice().sort((a, b) => a - b);
    return {
      startMs, endMs, opsPerSec: (sorted.length * 1000) / (endMs - startMs), failed: windowFailed[w],
      p50Ms: sorted.length ? percentile(sorted, 0.5) / 1000 : null, p99Ms: sorted.length ? percentile(sorted, 0.99) / 1000 : null,
    };
  };

  let nextProgress = 0;
  const progress = () => {
    progressTimer = null;
    if (nextProgress < windowCount) {
      const w = nextProgress++;
      options.onProgress?.({ elapsedMs: (clock.nowUs() - startUs) / 1000, completed: samplesUs.length, failed: failedCount, inFlight, window: timelineWindow(w) });
    }
    if (nextProgress < windowCount) progressTimer = clock.schedule(Math.max(0, startUs + (nextProgress + 1) * windowUs - clock.nowUs()), progress);
  };

  const finish = () => {
    if (finished) return;
    finished = true;
    unfinishedCount = inFlight;
    for (const id of [drainTimer, progressTimer, arrivalTimer]) if (id !== null) clock.cancel(id);
    const measuredSec = options.durationUs / 1e6;
    const byOperation: Record<string, OperationResult> = {};
    for (const [name, s] of perOp) byOperation[name] = { completed: s.completed, failed: s.failed, latency: summarizeLatency(s.samplesUs) };
    result = {
      mode, measuredMs: options.durationUs / 1000, warmUpMs: warmUpUs / 1000, completed: samplesUs.length, failed: failedCount, unfinished: unfinishedCount,
      failedByReason, noFreeSession, throughputPerSec: completedInWindow / measuredSec, offeredPerSec: arrivals / measuredSec,
      latency: summarizeLatency(samplesUs), byOperation, timeline: Array.from({ length: windowCount }, (_, w) => timelineWindow(w)),
    };
    onDone?.(result);
  };

  function maybeFinish() {
    if (stopped && inFlight === 0 && !finished) finish();
  }

  const stop = () => {
    if (stopped) return;
    stopped = true;
    if (arrivalTimer !== null) {
      clock.cancel(arrivalTimer);
      arrivalTimer = null;
    }
    drainTimer = clock.schedule(drainUs, finish);
    maybeFinish();
  };

  clock.schedule(totalUs, stop);
  if (options.onProgress !== undefined) progressTimer = clock.schedule(windowUs, progress);
  if (mode.kind === "closed") {
    for (let i = 0; i < mode.concurrency; i++) runOne(freeSessions.pop()!, closedLoopNext);
  } else {
    scheduleArrival();
  }
  return {
    stop,
    get finished() {
      return finished;
    },
    get result() {
      return result;
    },
  };
}
