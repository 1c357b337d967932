// A seed sweep, or one shard of it, in process (one worker) or over a pool of worker threads;
// it returns the mergeable record `hsmsim sim --json` prints. Every run depends on its seed
// alone, so a seed's report is the same wherever and in whatever order it runs.
import { defaultWorkers, runInPool, workerModuleUrl } from "./pool.js";
import { type RunOptions, type SimReport, runSimulation } from "./run.js";
import { type Shard, ShardError, type SweepRecord, SWEEP_FORMAT, WHOLE, seedRule, shardSeeds, sweepFailure } from "./shard.js";
import type { SeedTask } from "./sweep-task.js";

export interface SweepPlan {
  /** The whole sweep: `count` seeds from `from`. */
  from: number;
  count: number;
  /** This machine's share (default: all of it). */
  shard?: Shard;
  /** Worker threads (default: every core); 1 runs in this thread. */
  workers?: number;
  options?: RunOptions;
  /** Each run's report, as it completes (in seed order with one worker, completion order with several). */
  onRun?: (report: SimReport) => void;
}

export interface SweepOutcome {
  record: SweepRecord;
  /** The failing runs' whole reports, in seed order. */
  failed: SimReport[];
}

export async function runSweep(plan: SweepPlan): Promise<SweepOutcome> {
  const shard = plan.shard ?? WHOLE;
  const options = plan.options ?? {};
  // Seeds are exact integers: past 2^53 − 1, from + i rounds, and a seed would run twice and another never.
  if (!Number.isSafeInteger(plan.from) || plan.from < 0 || !Number.isSafeInteger(plan.count) || plan.count < 1 || !Number.isSafeInteger(plan.from + plan.count - 1)) {
    throw new ShardError("INVALID_ARGUMENT", `a sweep's seeds must be whole numbers from 0 to ${Number.MAX_SAFE_INTEGER} (from ${plan.from}, ${plan.count} seeds)`);
  }
  const seeds = shardSeeds(plan.from, plan.count, shard);
  const workers = Math.max(1, Math.min(plan.workers ?? defaultWorkers(), seeds.length));
  const failed: SimReport[] = [];
  const onRun = (report: SimReport) => {
    if (!report.ok) failed.push(report);
    plan.onRun?.(report);
  };
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  if (workers === 1) {
    for (const seed of seeds) {
      onRun(runSimulation(seed, options));
      // Let the event loop turn, so the native chips of finished runs are released.
      await new Promise((resolve) => setImmediate(resolve));
    }
  } else {
    await runInPool<SeedTask, SimReport>({
      module: workerModuleUrl("./sweep-task", import.meta.url), exportName: "simulateSeed", workers,
      tasks: seeds.map((seed) => ({ seed, options })), describeTask: (task) => `seed ${task.seed}`,
      onResult: onRun, keepResults: false,
    });
  }
  const wallMs = performance.now() - started;
  // The whole process's CPU time, worker threads included: cpuSeconds / wallSeconds is the cores the sweep actually got.
  const cpu = process.cpuUsage(cpuBefore);
  failed.sort((a, b) => a.seed - b.seed);
  const failures = failed.map(sweepFailure);
  return {
    failed,
    record: {
      format: SWEEP_FORMAT, from: plan.from, count: plan.count, shard: { ...shard }, seeds: seedRule(shard), options: { ...options },
      runs: seeds.length, failedSeeds: failures.map((f) => f.seed), failures, workers,
      wallSeconds: +(wallMs / 1000).toFixed(1), cpuSeconds: +((cpu.user + cpu.system) / 1e6).toFixed(1), runsPerSecond: seeds.length === 0 ? 0 : +(seeds.length / (wallMs / 1000)).toFixed(2),
    },
  };
}
