// Model versus discrete-event run at one point of a grid (a profile, an HSM count, a share of the
// capacity offered as Poisson arrivals), and the grid itself spread over a worker pool.
//
// The run's latency is compared with a control variate: the run's own engine requests replayed
// through one ideal pooled queue (reference-queue.ts) have the model's expectation and share the
// run's luck, so   estimate = run − reference + model   has the run's expectation with most of
// its noise gone. At 85% load a run of 8 000 operations reads its raw mean latency up to ±14%
// off the model by chance alone (seed to seed), its control-variate estimate within ±1%. The raw
// numbers are kept beside it.
import { type LatencyMs, type Spreading, modelCluster, saturationPerSec } from "./queueing.js";
import { profileFor } from "./profiles.js";
import { runDiscreteEvent } from "./des.js";
import type { LatencySummary } from "./load.js";
import type { OperationClass } from "../cluster/service-profile.js";
import { runInPool, workerModuleUrl } from "../sim/pool.js";

export interface AgreementTask {
  type: string;
  operation: string;
  opClass: OperationClass;
  inputBytes: number;
  hsmCount: number;
  /** Offered load as a share of the model's capacity (0–1). */
  utilisation: number;
  /** Operations offered in the measured window (sets the run's length). */
  operations: number;
  networkLatencyUs: number;
  seed: number;
  spreading?: Spreading;
}

type Stat = "meanMs" | "p50Ms" | "p95Ms" | "p99Ms";
const STATS: readonly Stat[] = ["meanMs", "p50Ms", "p95Ms", "p99Ms"];

export interface AgreementRow {
  task: AgreementTask;
  offeredPerSec: number;
  /** DES throughput ÷ offered rate − 1. */
  throughputError: number;
  model: LatencyMs;
  /** The run's raw latency, the reference queue's on the same draws, and the control-variate estimate. */
  des: LatencyMs;
  reference: LatencyMs;
  estimate: LatencyMs;
  /** estimate ÷ model − 1, and des ÷ model − 1, per statistic. */
  estimateError: Record<Stat, number>;
  rawError: Record<Stat, number>;
  failed: number;
  unfinished: number;
  /** Simulated operations and wall time of the run (speed reports only). */
  completed: number;
  wallMs: number;
}

function pick(l: LatencySummary | LatencyMs): LatencyMs {
  return { meanMs: l.meanMs, p50Ms: l.p50Ms, p95Ms: l.p95Ms, p99Ms: l.p99Ms };
}

/** One grid point: the model and a discrete-event run at the same load (a worker-pool task: plain data in and out). */
export function agreementPoint(task: AgreementTask): AgreementRow {
  const profile = profileFor(task.type);
  const offeredPerSec = saturationPerSec(profile, task.hsmCount, task.opClass, task.inputBytes) * task.utilisation;
  const load = [{ operation: task.operation, opClass: task.opClass, inputBytes: task.inputBytes, ratePerSec: offeredPerSec }];
  const run = runDiscreteEvent({ profile, hsmCount: task.hsmCount, load, seed: task.seed, durationUs: Math.round((task.operations / offeredPerSec) * 1e6),
    networkLatencyUs: task.networkLatencyUs, sampling: "independent" });
  const modelled = modelCluster({ profile, hsmCount: task.hsmCount, load, networkRttUs: 2 * task.networkLatencyUs, spreading: task.spreading }).latency;
  if (modelled === null || run.latency === null || run.reference === null) throw new Error(`grid point ${JSON.stringify(task)}: no latency (unstable, or nothing completed)`);
  const model = pick(modelled);
  const des = pick(run.latency);
  const reference = pick(run.reference);
  const estimate = {} as LatencyMs;
  const estimateError = {} as Record<Stat, number>;
  const rawError = {} as Record<Stat, number>;
  for (const k of STATS) {
    estimate[k] = des[k] - reference[k] + model[k];
    estimateError[k] = estimate[k] / model[k] - 1;
    rawError[k] = des[k] / model[k] - 1;
  }
  return {
    task, offeredPerSec, throughputError: run.throughputPerSec / offeredPerSec - 1, model, des, reference, estimate, estimateError, rawError,
    failed: run.failed, unfinished: run.unfinished, completed: run.completed, wallMs: run.wallMs,
  };
}

export interface SaturationTask {
  type: string;
  opClass: OperationClass;
  hsmCount: number;
  /** Operations in the measured window (sets the run's length from the model's capacity). */
  operations: number;
  seed: number;
}

export interface SaturationRow {
  task: SaturationTask;
  /** The model's capacity and the discrete-event run's throughput when kept saturated (ops/s). */
  modelPerSec: number;
  desPerSec: number;
  failed: number;
  busyAnswers: number;
  completed: number;
  wallMs: number;
}

/** A saturating (closed-loop) run beside the model's capacity (a worker-pool task). */
export function saturationPoint(task: SaturationTask): SaturationRow {
  const profile = profileFor(task.type);
  const modelPerSec = saturationPerSec(profile, task.hsmCount, task.opClass, 32);
  const run = runDiscreteEvent({ profile, hsmCount: task.hsmCount, saturate: [{ operation: task.opClass, opClass: task.opClass, inputBytes: 32 }], seed: task.seed,
    durationUs: Math.round((task.operations / modelPerSec) * 1e6), warmUpUs: 100_000 });
  return { task, modelPerSec, desPerSec: run.throughputPerSec, failed: run.failed, busyAnswers: run.busyAnswers, completed: run.completed, wallMs: run.wallMs };
}

/** Saturating runs over a worker pool (results in task order). */
export function runSaturations(tasks: readonly SaturationTask[], options: { workers?: number } = {}): Promise<SaturationRow[]> {
  return runInPool<SaturationTask, SaturationRow>({
    module: workerModuleUrl("./agreement", import.meta.url), exportName: "saturationPoint", tasks, workers: options.workers,
    describeTask: (t) => `${t.type} ${t.opClass} × ${t.hsmCount} saturated`,
  });
}

/** The grid over a worker pool (results in task order; deterministic per task, wherever it runs). */
export function runAgreementGrid(tasks: readonly AgreementTask[], options: { workers?: number; onResult?: (row: AgreementRow, index: number) => void } = {}): Promise<AgreementRow[]> {
  return runInPool<AgreementTask, AgreementRow>({
    module: workerModuleUrl("./agreement", import.meta.url), exportName: "agreementPoint", tasks, workers: options.workers, onResult: options.onResult,
    describeTask: (t) => `${t.type} ${t.operation} × ${t.hsmCount} at ${Math.round(t.utilisation * 100)}%`,
  });
}
