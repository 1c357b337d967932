// `hsmsim sim`: one deterministic run (--seed N) or a seed sweep (--seeds COUNT [--from N]).
// A failing run prints its seed and the command that replays it; the exit code is 1.
import { type SimReport, runSimulation, sweep } from "../sim/run.js";
import { type TextStream, defineCommand, shared, wholeNumber } from "./command.js";
import { type Output, textOutput } from "./format.js";
import { progressLine } from "./progress.js";

export interface SimCommand {
  seed?: number;
  seeds?: number;
  from?: number;
  json: boolean;
  workloadUs?: number;
}

export const simCommand = defineCommand({
  name: "sim",
  summary: "deterministic cluster simulation with faults: one seed, or a sweep of seeds",
  description: "One run (--seed N, default 1) checks every invariant and prints the run; a failure exits 1 with the seed to replay.\n" +
    "A sweep (--seeds COUNT [--from N]) runs COUNT seeds from N (default 1), shows a live progress line on a terminal, and\n" +
    "prints each failing seed with its replay command.",
  options: {
    ...shared.json,
    seed: { type: "string", valueName: "N", parse: wholeNumber(0), description: "the one seed to run (default 1)" },
    seeds: { type: "string", valueName: "COUNT", parse: wholeNumber(1), description: "run a sweep of COUNT seeds" },
    from: { type: "string", valueName: "N", parse: wholeNumber(0), description: "the sweep's first seed (default 1; only with --seeds)" },
  },
  conflicts: [["seed", "seeds"]],
  requires: { from: "seeds" },
  examples: ["hsmsim sim --seed 42", "hsmsim sim --seeds 1000 --from 1 --json"],
  run({ values, io }) {
    return runSimCommand({ seed: values.seed, seeds: values.seeds, from: values.from, json: values.json ?? false }, textOutput((t) => io.stdout.write(t)),
      (t) => io.stdout.write(t), io.stderr);
  },
});

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
  // Live only on a terminal and without --json; piped output holds the results alone.
  const progress = progressLine({ total: command.seeds, unit: "runs", label: "sweep", stream: progressTo, quiet: command.json });
  const result = await sweep(from, command.seeds, options, (report) => {
    if (!report.ok) progress.interrupt(() => write(`seed ${report.seed} FAILED: ${report.violations[0].invariant}: ${report.violations[0].detail}\n  replay: hsmsim sim --seed ${report.seed}\n`));
    progress.tick(report.ok);
  });
  progress.finish();
  const summary = { from, runs: result.runs, failedSeeds: result.failed.map((r) => r.seed), wallSeconds: +(result.wallMs / 1000).toFixed(1),
    runsPerSecond: +result.runsPerSecond.toFixed(2) };
  if (command.json) write(`${JSON.stringify(summary, null, 2)}\n`);
  else out.line(`${result.runs} runs (seeds ${from}–${from + result.runs - 1}): ${result.failed.length} failed; ${summary.wallSeconds} s, ${summary.runsPerSecond} runs/s`);
  return result.failed.length === 0 ? 0 : 1;
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
