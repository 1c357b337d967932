// Measuring one task with tinybench: sequential (one call at a time, the caller blocked) or with
// N calls in flight (tinybench's task concurrency, threshold N). Reports p50 latency and the
// rate over wall time, plus the CPU the client and the named server processes used meanwhile.
import { readFileSync, readdirSync } from "node:fs";

import { Bench } from "tinybench";

export interface Measured {
  /** Median latency of one call (or one Init+call pair), in microseconds. */
  p50Us: number;
  /** Calls per second: 1 / mean latency when sequential, completed calls over wall time when in flight. */
  opsPerSecond: number;
  samples: number;
  /** CPU seconds per wall second (1.0 = one core busy) of this process and of each server pid. */
  clientCores: number;
  serverCores: number[];
}

const CLOCK_TICKS_PER_SECOND = 100; // Linux USER_HZ

/** CPU time (user + system) of another process, in seconds, from /proc; 0 when it is gone. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND; // utime, stime (fields 14, 15)
  } catch {
    return 0;
  }
}

/** `roots` and all their descendants (p11-kit server forks one process per connection). */
export function processTree(roots: number[]): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent)!.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const stack = [...roots];
  while (stack.length) {
    const pid = stack.pop()!;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

export interface MeasureOptions {
  timeMs: number;
  warmupMs?: number;
  /** Calls in flight; 0 or absent = sequential. */
  inFlight?: number;
  /** Server processes whose CPU to account (with their descendants, one figure per root). */
  serverPids?: number[];
}

export async function measure(name: string, fn: () => unknown, options: MeasureOptions): Promise<Measured> {
  const inFlight = options.inFlight ?? 0;
  const roots = options.serverPids ?? [];
  let trees: number[][] = [];
  const treeCpuSeconds = () => trees.map((tree) => tree.reduce((sum, pid) => sum + processCpuSeconds(pid), 0));
  let calls = 0;
  let startNs = 0n, endNs = 0n;
  let cpuStart = process.cpuUsage();
  let serverStart: number[] = [];
  let clientCores = 0, serverCores: number[] = [];
  const counted = inFlight > 0
    ? async () => {
      await fn();
      calls++;
    }
    : () => {
      fn();
      calls++;
    };
  const bench = new Bench({
    time: options.timeMs,
    warmupTime: options.warmupMs ?? 100,
    // In task concurrency a positive `iterations` caps the run: 0 leaves only the time budget.
    ...(inFlight > 0 ? { concurrency: "task" as const, threshold: inFlight, iterations: 0, warmupIterations: 0 } : {}),
    setup: (_task, mode) => {
      if (mode !== "run") return;
      calls = 0;
      cpuStart = process.cpuUsage();
      trees = roots.map((root) => processTree([root]));
      serverStart = treeCpuSeconds();
      startNs = process.hrtime.bigint();
    },
    teardown: (_task, mode) => {
      if (mode !== "run") return;
      endNs = process.hrtime.bigint();
      const wallSeconds = Number(endNs - startNs) / 1e9;
      const cpu = process.cpuUsage(cpuStart);
      clientCores = (cpu.user + cpu.system) / 1e6 / wallSeconds;
      serverCores = treeCpuSeconds().map((seconds, i) => (seconds - serverStart[i]) / wallSeconds);
    },
  });
  bench.add(name, counted);
  await bench.run();
  const task = bench.tasks[0];
  const result = task.result as { state: string; latency?: { p50: number; samplesCount: number }; period?: number; error?: unknown };
  if (result.state !== "completed" || !result.latency) throw new Error(`${name}: ${errorText(result.error)}`);
  const wallSeconds = Number(endNs - startNs) / 1e9;
  return {
    p50Us: result.latency.p50 * 1000,
    // Sequential: one over the mean latency (the harness's own per-sample bookkeeping left out);
    // in flight: completed calls over wall time.
    opsPerSecond: inFlight > 0 ? calls / wallSeconds : 1000 / result.period!,
    samples: result.latency.samplesCount,
    clientCores,
    serverCores,
  };
}

/** An error's name, message and detail; for tinybench's AggregateError, its distinct inner errors. */
export function errorText(error: unknown): string {
  if (error instanceof AggregateError) {
    const inner = [...new Set(error.errors.map(errorText))];
    return `${error.errors.length} calls failed: ${inner.slice(0, 3).join("; ")}`;
  }
  if (!(error instanceof Error)) return String(error);
  const detail = (error as { detail?: unknown }).detail;
  return `${error.name}: ${error.message}${detail ? ` (${String(detail)})` : ""}`;
}
