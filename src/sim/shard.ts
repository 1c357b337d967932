// A huge seed sweep split across machines (a CI matrix, a batch scheduler): `--shard I/N` runs
// the seeds whose index in the sweep is I−1 modulo N, so the N shards cover every seed exactly
// once and each shard's share is spread over the whole range (no shard gets all the slow seeds
// of one region). Each shard prints a SweepRecord; mergeSweeps checks that the records are the
// shards of one sweep — same seeds and options, no shard twice, none missing — and sums them.
import { CodedError } from "../coded-error.js";
import type { RunOptions, SimReport } from "./run.js";

export type ShardErrorCode = "INVALID_ARGUMENT" | "NOT_A_SWEEP" | "OTHER_SWEEP" | "DUPLICATE_SHARD" | "MISSING_SHARD" | "INCOMPLETE_SHARD";

export class ShardError extends CodedError<ShardErrorCode> {
  constructor(code: ShardErrorCode, message: string) {
    super("ShardError", code, message);
  }
}

/** Shard `index` of `total`, counted from 1. */
export interface Shard {
  index: number;
  total: number;
}

/** The whole sweep as one shard. */
export const WHOLE: Shard = Object.freeze({ index: 1, total: 1 });

/** `"2/4"` → `{ index: 2, total: 4 }`; anything else (0/2, 3/2, x/y, 1/0, 1.5/2) → ShardError INVALID_ARGUMENT. */
export function parseShard(text: string): Shard {
  const match = /^(\d{1,9})\/(\d{1,9})$/.exec(text);
  const index = match ? Number(match[1]) : NaN, total = match ? Number(match[2]) : NaN;
  if (!match || total < 1 || index < 1 || index > total) {
    throw new ShardError("INVALID_ARGUMENT", `a shard is I/N with 1 ≤ I ≤ N (e.g. 2/4), not '${text}'`);
  }
  return { index, total };
}

/** This shard's items: those whose position in `list` is index−1 modulo total. */
export function shardOf<T>(list: readonly T[], shard: Shard): T[] {
  return list.filter((_, i) => i % shard.total === shard.index - 1);
}

/** The seeds shard `shard` runs of the sweep of `count` seeds from `from`. */
export function shardSeeds(from: number, count: number, shard: Shard): number[] {
  const seeds: number[] = [];
  for (let i = shard.index - 1; i < count; i += shard.total) seeds.push(from + i);
  return seeds;
}

/** How many seeds shard `shard` runs of a sweep of `count` seeds (without listing them). */
export function shardSize(count: number, shard: Shard): number {
  return Math.ceil(Math.max(0, count - (shard.index - 1)) / shard.total);
}

/** Whether `seed` is one of shard `shard`'s seeds in the sweep of `count` seeds from `from`. */
export function inShard(seed: number, from: number, count: number, shard: Shard): boolean {
  const i = seed - from;
  return Number.isSafeInteger(i) && i >= 0 && i < count && i % shard.total === shard.index - 1;
}

/** The identifier of the record format; a change that breaks merging bumps its number. */
export const SWEEP_FORMAT = "hsmsim-sim-sweep/1";

export interface SweepFailure {
  seed: number;
  invariant: string;
  detail: string;
  /** The command that replays the failing run. */
  replay: string;
}

/** What one sweep (or one shard of it) prints with --json: enough to merge it with its sibling shards. */
export interface SweepRecord {
  format: typeof SWEEP_FORMAT;
  /** The whole sweep: `count` seeds from `from`. */
  from: number;
  count: number;
  /** Which share of it ran here (1/1: all of it). */
  shard: Shard;
  /** How the shard's seeds were chosen (the seeds are `shardSeeds(from, count, shard)`). */
  seeds: string;
  /** Run options other than the seed (a shard run with other options belongs to another sweep). */
  options: RunOptions;
  /** Runs done here. */
  runs: number;
  failedSeeds: number[];
  failures: SweepFailure[];
  workers: number;
  wallSeconds: number;
  /** CPU time of the whole process, worker threads included (cpuSeconds / wallSeconds: the cores the sweep got). */
  cpuSeconds: number;
  runsPerSecond: number;
}

/** The merged summary of every shard of one sweep. */
export interface MergedSweep {
  format: typeof SWEEP_FORMAT;
  from: number;
  count: number;
  shards: number;
  options: RunOptions;
  runs: number;
  failedSeeds: number[];
  failures: SweepFailure[];
  /** The slowest shard's wall time (the sweep's elapsed time when the shards ran at once). */
  wallSeconds: number;
  /** Every shard's wall time added up (the work, whatever the parallelism). */
  shardSeconds: number;
  /** Every shard's CPU time added up. */
  cpuSeconds: number;
  /** runs / wallSeconds. */
  runsPerSecond: number;
}

const MAX_DETAIL_CHARS = 2_000;

/** Text from a file, without control characters (C0, DEL, C1), at most MAX_DETAIL_CHARS long. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\t\n\r]/g, " ").replace(/[\u0000-\u001f\u007f-\u009f]/g, "\uFFFD");
  return clean.length > MAX_DETAIL_CHARS ? `${clean.slice(0, MAX_DETAIL_CHARS)}…` : clean;
}

export function sweepFailure(report: SimReport): SweepFailure {
  const first = report.violations[0] ?? { invariant: "unknown", detail: "the run failed without a violation" };
  const detail = first.detail.length > MAX_DETAIL_CHARS ? `${first.detail.slice(0, MAX_DETAIL_CHARS)}…` : first.detail;
  return { seed: report.seed, invariant: first.invariant, detail, replay: `hsmsim sim --seed ${report.seed}` };
}

export function seedRule(shard: Shard): string {
  return shard.total === 1 ? "every seed" : `the seeds whose index in the sweep is ${shard.index - 1} modulo ${shard.total}`;
}

const range = (r: { from: number; count: number }) => `seeds ${r.from}–${r.from + r.count - 1}`;
const isWhole = (n: unknown, min: number): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= min;

/** Checks that `value` (parsed JSON, from `source`) is a sweep record, field by field. */
export function checkSweepRecord(value: unknown, source: string): SweepRecord {
  const r = value as Partial<SweepRecord> | null;
  if (typeof r !== "object" || r === null || Array.isArray(r)) throw new ShardError("NOT_A_SWEEP", `${source} is not an hsmsim sim sweep result (expected a JSON object from hsmsim sim --seeds … --json)`);
  if (r.format !== SWEEP_FORMAT) {
    throw new ShardError("NOT_A_SWEEP", `${source} is not an hsmsim sim sweep result of format ${SWEEP_FORMAT} (its format: ${JSON.stringify(r.format) ?? "none"})`);
  }
  const bad = (field: string) => new ShardError("NOT_A_SWEEP", `${source}: the field '${field}' is missing or malformed`);
  if (!isWhole(r.from, 0)) throw bad("from");
  if (!isWhole(r.count, 1)) throw bad("count");
  if (!Number.isSafeInteger(r.from + r.count - 1)) throw bad("from' and 'count"); // the last seed must be exact
  if (typeof r.shard !== "object" || r.shard === null || !isWhole(r.shard.total, 1) || !isWhole(r.shard.index, 1) || r.shard.index > r.shard.total) throw bad("shard");
  if (typeof r.options !== "object" || r.options === null || Array.isArray(r.options)) throw bad("options");
  if (!isWhole(r.runs, 0)) throw bad("runs");
  if (!Array.isArray(r.failures) || r.failures.some((f) => typeof f !== "object" || f === null || !isWhole(f.seed, 0) || typeof f.invariant !== "string" || typeof f.detail !== "string")) throw bad("failures");
  if (typeof r.wallSeconds !== "number" || !(r.wallSeconds >= 0)) throw bad("wallSeconds");
  if (typeof r.cpuSeconds !== "number" || !(r.cpuSeconds >= 0)) throw bad("cpuSeconds");
  return r as SweepRecord;
}

/**
 * Merges the shard records of one sweep (each named by its source, a file name, in messages):
 * refuses records of different sweeps, a shard given twice, a shard missing, a shard that did
 * not run all its seeds, a failure outside its shard.
 */
export function mergeSweeps(records: readonly { source: string; record: SweepRecord }[]): MergedSweep {
  if (records.length === 0) throw new ShardError("MISSING_SHARD", "no sweep results to merge");
  const first = records[0];
  const sweepOf = (r: SweepRecord) => `${range(r)} in ${r.shard.total} shard(s), options ${JSON.stringify(r.options)}`;
  const byIndex = new Map<number, string>();
  for (const { source, record } of records) {
    if (record.from !== first.record.from || record.count !== first.record.count || record.shard.total !== first.record.shard.total ||
      JSON.stringify(record.options) !== JSON.stringify(first.record.options)) {
      throw new ShardError("OTHER_SWEEP", `${source} is from another sweep (${sweepOf(record)}) than ${first.source} (${sweepOf(first.record)})`);
    }
    const name = `shard ${record.shard.index}/${record.shard.total}`;
    const twice = byIndex.get(record.shard.index);
    if (twice !== undefined) throw new ShardError("DUPLICATE_SHARD", `${name} is given twice (${twice} and ${source})`);
    byIndex.set(record.shard.index, source);
    // Counted, not listed: a record may describe a sweep far too big to list.
    const expected = shardSize(record.count, record.shard);
    if (record.runs !== expected) throw new ShardError("INCOMPLETE_SHARD", `${source}: ${name} ran ${record.runs} seeds of its ${expected}`);
    const stray = record.failures.find((f) => !inShard(f.seed, record.from, record.count, record.shard));
    if (stray) throw new ShardError("NOT_A_SWEEP", `${source}: ${name} reports seed ${stray.seed}, which is not one of its seeds`);
    const seen = new Set<number>();
    for (const f of record.failures) {
      if (seen.has(f.seed)) throw new ShardError("NOT_A_SWEEP", `${source}: ${name} reports seed ${f.seed} twice`);
      seen.add(f.seed);
    }
  }
  const total = first.record.shard.total;
  // Counted, not listed: a crafted record may claim 2^53 − 1 shards. The first 20 missing are
  // found among the first byIndex.size + 20 indices.
  const missingCount = total - byIndex.size;
  if (missingCount > 0) {
    const missing: string[] = [];
    for (let i = 1; i <= total && missing.length < 20; i++) if (!byIndex.has(i)) missing.push(`${i}/${total}`);
    const shown = missingCount > 20 ? `${missing.join(", ")} and ${missingCount - 20} more` : missing.join(", ");
    throw new ShardError("MISSING_SHARD", `the sweep (${range(first.record)}) is incomplete: shard${missingCount > 1 ? "s" : ""} ${shown} missing`);
  }
  // A failure is rebuilt from its checked fields: the replay command is ours, and the file's text
  // loses its control characters (a terminal escape in a shard file must not reach the terminal).
  const failures = records.flatMap(({ record }) => record.failures)
    .map((f) => ({ seed: f.seed, invariant: printable(f.invariant), detail: printable(f.detail), replay: `hsmsim sim --seed ${f.seed}` }))
    .sort((a, b) => a.seed - b.seed);
  const runs = records.reduce((sum, { record }) => sum + record.runs, 0);
  const wallSeconds = Math.max(...records.map(({ record }) => record.wallSeconds));
  const shardSeconds = +records.reduce((sum, { record }) => sum + record.wallSeconds, 0).toFixed(1);
  const cpuSeconds = +records.reduce((sum, { record }) => sum + record.cpuSeconds, 0).toFixed(1);
  return {
    format: SWEEP_FORMAT, from: first.record.from, count: first.record.count, shards: total, options: first.record.options, runs,
    failedSeeds: failures.map((f) => f.seed), failures, wallSeconds, shardSeconds, cpuSeconds, runsPerSecond: wallSeconds > 0 ? +(runs / wallSeconds).toFixed(2) : 0,
  };
}
