// `hsmsim sim`: one deterministic run (--seed N) or a seed sweep (--seeds COUNT [--from N]) over
// every core (--workers), or this machine's share of it (--shard I/N), whose --json result
// `hsmsim sim merge FILE...` combines with the other shards'. A failing run prints its seed and
// the command that replays it; the exit code is 1.
import { readFileSync } from "node:fs";

import { type SimReport, runSimulation } from "../sim/run.js";
import { defaultWorkers } from "../sim/pool.js";
import { type MergedSweep, type Shard, type SweepRecord, ShardError, checkSweepRecord, mergeSweeps, parseShard } from "../sim/shard.js";
import { runSweep } from "../sim/sweep.js";
import { type TextStream, UsageError, type ValueParser, defineCommand, shared, wholeNumber } from "./command.js";
import { type Output, textOutput } from "./format.js";
import { progressLine } from "./progress.js";

export interface SimCommand {
  seed?: number;
  seeds?: number;
  from?: number;
  json: boolean;
  workloadUs?: number;
  /** Worker threads for a sweep (default: every core; 1 runs in process). */
  workers?: number;
  /** This machine's share of the sweep. */
  shard?: Shard;
}

const shardOption: ValueParser<Shard> = (text, name) => {
  try {
    return parseShard(text);
  } catch (error) {
    if (error instanceof ShardError) throw new UsageError(`${name} ${error.message}`);
    throw error;
  }
};

export const simCommand = defineCommand({
  name: "sim",
  summary: "deterministic cluster simulation with faults: one seed, or a sweep of seeds over every core and across machines",
  description: "One run (--seed N, default 1) checks every invariant and prints the run; a failure exits 1 with the seed to replay.\n" +
    "A sweep (--seeds COUNT [--from N]) runs COUNT seeds from N (default 1) on a pool of worker threads (--workers, default every\n" +
    "core; 1 runs in process), shows a live progress line on a terminal, and prints each failing seed with its replay command.\n" +
    "Each seed's run is the same wherever it runs. --shard I/N runs only this machine's share (the seeds whose index in the\n" +
    "sweep is I-1 modulo N); with --json it prints a result that `hsmsim sim merge FILE...` combines with the other shards'\n" +
    "(it checks they are the shards of one sweep, none twice, none missing), exiting 1 if any seed failed.",
  options: {
    ...shared.json,
    seed: { type: "string", valueName: "N", parse: wholeNumber(0), description: "the one seed to run (default 1)" },
    seeds: { type: "string", valueName: "COUNT", parse: wholeNumber(1), description: "run a sweep of COUNT seeds" },
    from: { type: "string", valueName: "N", parse: wholeNumber(0), description: "the sweep's first seed (default 1; only with --seeds)" },
    workers: { type: "string", valueName: "W", parse: wholeNumber(1, 1024), description: `worker threads for the sweep (default every core: ${defaultWorkers()}; 1: in process)` },
    shard: { type: "string", valueName: "I/N", parse: shardOption, description: "run only shard I of N of the sweep (1 ≤ I ≤ N); --json prints a mergeable result" },
  },
  positionals: [{ name: "merge FILE", optional: true, variadic: true }],
  conflicts: [["seed", "seeds"]],
  requires: { from: "seeds", workers: "seeds", shard: "seeds" },
  examples: ["hsmsim sim --seed 42", "hsmsim sim --seeds 1000 --from 1 --json", "hsmsim sim --seeds 100000 --shard 3/8 --json > shard-3.json",
    "hsmsim sim merge shard-*.json"],
  run({ values, positionals, io }) {
    if (positionals.length > 0) {
      if (positionals[0] !== "merge") throw new UsageError(`unexpected argument '${positionals[0]}' (the one word sim takes is 'merge FILE...')`);
      const given = (["seed", "seeds", "from", "workers", "shard"] as const).filter((name) => values[name] !== undefined);
      if (given.length > 0) throw new UsageError(`sim merge takes only --json, not ${given.map((name) => `--${name}`).join(", ")}`);
      if (positionals.length < 2) throw new UsageError("sim merge takes the shard result files to merge (hsmsim sim --seeds … --shard I/N --json > FILE)");
      return runMergeCommand(positionals.slice(1), values.json ?? false, (t) => io.stdout.write(t));
    }
    return runSimCommand({ seed: values.seed, seeds: values.seeds, from: values.from, json: values.json ?? false, workers: values.workers, shard: values.shard },
      textOutput((t) => io.stdout.write(t)), (t) => io.stdout.write(t), io.stderr);
  },
});

const replayLine = (seed: number, invariant: string, detail: string) => `seed ${seed} FAILED: ${invariant}: ${detail}\n  replay: hsmsim sim --seed ${seed}\n`;

export async function runSimCommand(command: SimCommand, out: Output, write: (text: string) => void, progressTo?: TextStream): Promise<number> {
  const options = command.workloadUs === undefined ? {} : { workloadUs: command.workloadUs };
  if (command.seeds === undefined) {
    const seed = command.seed ?? 1;
    const report = runSimulation(seed, options);
    if (command.json) write(`${JSON.stringify(report, null, 2)}\n`);
    else describe(report, out);
    return report.ok ? 0 : 1;
  }
  const from = command.from ?? 1;
  const shard = command.shard ?? { index: 1, total: 1 };
  const share = Math.ceil(Math.max(0, command.seeds - (shard.index - 1)) / shard.total);
  // Live only on a terminal and without --json; piped output holds the results alone.
  const progress = progressLine({ total: share, unit: "runs", label: "sweep", stream: progressTo, quiet: command.json });
  const { record } = await runSweep({
    from, count: command.seeds, shard, workers: command.workers, options,
    onRun: (report: SimReport) => {
      if (!report.ok) progress.interrupt(() => write(replayLine(report.seed, report.violations[0].invariant, report.violations[0].detail)));
      progress.tick(report.ok);
    },
  });
  progress.finish();
  if (command.json) write(`${JSON.stringify(record, null, 2)}\n`);
  else out.line(`${sweepLine(record)}; ${record.workers} worker${record.workers === 1 ? "" : "s"}`);
  return record.failures.length === 0 ? 0 : 1;
}

function sweepLine(r: SweepRecord): string {
  const seeds = `seeds ${r.from}–${r.from + r.count - 1}`;
  const what = r.shard.total === 1 ? seeds : `shard ${r.shard.index}/${r.shard.total} of ${seeds}`;
  return `${r.runs} runs (${what}): ${r.failures.length} failed; ${r.wallSeconds} s, ${r.runsPerSecond} runs/s`;
}

/** `hsmsim sim merge FILE...`: the shards' records, checked to be one whole sweep, summed. */
export function runMergeCommand(files: string[], json: boolean, write: (text: string) => void): number {
  const records = files.map((file) => {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      throw new UsageError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new UsageError(`${file} is not JSON (expected the output of hsmsim sim --seeds … --json)`);
    }
    return { source: file, record: asUsage(() => checkSweepRecord(value, file)) };
  });
  const merged = asUsage(() => mergeSweeps(records));
  if (json) write(`${JSON.stringify(merged, null, 2)}\n`);
  else describeMerged(merged, write);
  return merged.failures.length === 0 ? 0 : 1;
}

/** Files that do not make one sweep are a bad command line: exit 2 with the reason. */
function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof ShardError) throw new UsageError(error.message);
    throw error;
  }
}

function describeMerged(m: MergedSweep, write: (text: string) => void): void {
  for (const f of m.failures) write(replayLine(f.seed, f.invariant, f.detail));
  write(`${m.runs} runs (seeds ${m.from}–${m.from + m.count - 1}, ${m.shards} shard${m.shards === 1 ? "" : "s"}): ${m.failures.length} failed; ` +
    `slowest shard ${m.wallSeconds} s, all shards ${m.shardSeconds} s; ${m.runsPerSecond} runs/s\n`);
}

function describe(r: SimReport, out: Output): void {
  const p = r.profile;
  out.step(`seed ${r.seed}: ${r.ok ? "every invariant holds" : `${r.violations.length} violation(s)`}`);
  out.line(`cluster: ${p.hsmCount} HSMs, ${p.cryptoUsers} crypto users; network latency ${p.network.latencyUs} µs, jitter ${p.network.jitterUs} µs, ` +
    `loss ${p.network.lossRate * 100}%, duplicates ${p.network.duplicateRate * 100}%`);
  out.line(`faults: ${r.faults.crashes} crashes (${r.faults.restarts} restarts, ${r.faults.replacements} replacements), ` +
    `${r.faults.partitions} partitions, ${r.faults.added} HSM added`);
  out.line(`operations: ${r.counts.attempted} attempted, ${r.counts.acknowledged} acknowledged, ${r.counts.failed} failed, ${r.counts.unknown} outcome unknown; ` +
    `${r.counts.uses} key uses, ${r.counts.refusedUses} refused; ${r.counts.lockedRefusals} logins refused for a locked account`);
  const allowed = Object.entries(r.liveness.allowed).map(([why, n]) => `${n} ${why}`).join(", ") || "none";
  out.line(`availability: ${r.liveness.calls} idempotent calls (${r.liveness.clean} in clean windows); failures the retry table allows: ${allowed}; ` +
    `${r.counts.sessionObjectFinds} own session-object searches, ${r.counts.foreignFinds} by another application`);
  out.line(`converged ${r.convergenceUs < 0 ? "never" : `${(r.convergenceUs / 1000).toFixed(0)} ms`} after faults stopped; ` +
    `${(r.simulatedUs / 1e6).toFixed(1)} s simulated in ${r.wallMs.toFixed(0)} ms`);
  for (const v of r.violations.slice(0, 20)) out.line(`VIOLATION ${v.invariant}: ${v.detail}`);
  if (!r.ok) out.line(`replay: hsmsim sim --seed ${r.seed}`);
}
