// The simulator over every core and across machines: the worker pool (task order, typed errors,
// workers ended), a sweep giving the same per-seed reports in a pool as in process, shards that
// cover every seed once, merging that refuses anything but one whole sweep, and the CLI's errors.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, describe, expect, it } from "vitest";

import { main } from "../../src/cli/main.js";
import { PoolError, runInPool, workerModuleUrl } from "../../src/sim/pool.js";
import type { SimReport } from "../../src/sim/run.js";
import { type SweepRecord, ShardError, mergeSweeps, parseShard, shardOf, shardSeeds } from "../../src/sim/shard.js";
import { runSweep } from "../../src/sim/sweep.js";

const fixture = workerModuleUrl("./fixtures/pool-task", import.meta.url);
const activeResources = () => process.getActiveResourcesInfo().filter((r) => r !== "Timeout" && r !== "TTYWrap").sort();

describe("runInPool", () => {
  it("runs every task on worker threads and returns the results in task order, whatever order they finish in", async () => {
    const before = activeResources();
    // Later tasks finish first: the order of the results is the tasks', not the completions'.
    const tasks = Array.from({ length: 8 }, (_, n) => ({ n, delayMs: (8 - n) * 15 }));
    const completions: number[] = [];
    const results = await runInPool<{ n: number; delayMs: number }, number>({
      module: fixture, exportName: "squareLater", tasks, workers: 2, onResult: (result, index) => {
        expect(result).toBe(index * index);
        completions.push(index);
      },
    });
    expect(results).toEqual(tasks.map((t) => t.n * t.n));
    expect([...completions].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const threads = await runInPool<object, number>({ module: fixture, exportName: "whichThread", tasks: [{}, {}, {}, {}], workers: 2 });
    expect(threads.every((id) => id > 0)).toBe(true); // worker threads, not this one (thread 0)
    expect(new Set(threads).size).toBeLessThanOrEqual(2);
    // The workers are ended: nothing of the pool is left holding the process open.
    expect(activeResources()).toEqual(before);
    expect(await runInPool({ module: fixture, exportName: "square", tasks: [] })).toEqual([]);
  });

  it("a task that throws, a worker that exits, a missing export: a PoolError naming the task, and the workers ended", async () => {
    const before = activeResources();
    const tasks = Array.from({ length: 6 }, (_, n) => ({ n, bad: 3 }));
    const describeTask = (t: { n: number }) => `number ${t.n}`;
    const failure = (exportName: string) => runInPool({ module: fixture, exportName, tasks, workers: 2, describeTask }).then(() => undefined, (e: unknown) => e);

    const thrown = await failure("failOn");
    expect(thrown).toBeInstanceOf(PoolError);
    expect(thrown).toMatchObject({ code: "TASK_FAILED", taskIndex: 3 });
    expect((thrown as Error).message).toBe("number 3 failed: cannot take 3");
    expect(((thrown as Error).cause as Error).stack).toContain("failOn"); // the worker's stack, for the defect hunt

    const exited = await failure("exitOn");
    expect(exited).toMatchObject({ name: "PoolError", code: "WORKER_EXITED", taskIndex: 3 });
    expect((exited as Error).message).toMatch(/^number 3: its worker thread died \(.*code: 7/);

    const missing = await failure("noSuchExport");
    expect(missing).toMatchObject({ name: "PoolError", code: "INVALID_ARGUMENT" });
    expect((missing as Error).message).toContain("has no function export 'noSuchExport'");
    expect(activeResources()).toEqual(before);
  });

  it("an error in onResult stops the run with that error", async () => {
    const stop = new Error("enough");
    await expect(runInPool({ module: fixture, exportName: "square", tasks: [{ n: 1 }, { n: 2 }, { n: 3 }], workers: 1, onResult: () => {
      throw stop;
    } })).rejects.toBe(stop);
  });

  it("refuses bad arguments before starting any worker", async () => {
    const bad = [
      { module: new URL("https://example.com/task.js"), exportName: "square", tasks: [] },
      { module: new URL("file:///no/such/module.js"), exportName: "square", tasks: [] },
      { module: fixture, exportName: "not a name", tasks: [] },
      { module: fixture, exportName: "square", tasks: [{ n: 1 }], workers: 0 },
      { module: fixture, exportName: "square", tasks: [{ n: 1 }], workers: 1.5 },
      { module: "file:///x.js" as unknown as URL, exportName: "square", tasks: [] },
    ];
    for (const options of bad) await expect(runInPool(options), JSON.stringify(options)).rejects.toMatchObject({ name: "PoolError", code: "INVALID_ARGUMENT" });
  });
});

describe("shards", () => {
  it("parses I/N and refuses anything else", () => {
    expect(parseShard("1/1")).toEqual({ index: 1, total: 1 });
    expect(parseShard("3/8")).toEqual({ index: 3, total: 8 });
    for (const text of ["0/2", "3/2", "x/y", "1/0", "0/0", "1.5/2", "-1/2", "1/2/3", "2", "", " 1/2", "1/", "/2", "1e3/2000"]) {
      expect(() => parseShard(text), text).toThrow(ShardError);
    }
  });

  it("the shards of a sweep cover every seed exactly once", () => {
    for (const count of [1, 2, 7, 100, 101]) {
      for (const total of [1, 2, 3, 8, 150]) {
        const seen = new Map<number, number>();
        for (let index = 1; index <= total; index++) {
          const seeds = shardSeeds(40, count, { index, total });
          expect(seeds).toEqual(shardOf(Array.from({ length: count }, (_, i) => 40 + i), { index, total }));
          for (const seed of seeds) seen.set(seed, (seen.get(seed) ?? 0) + 1);
        }
        expect([...seen.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: count }, (_, i) => 40 + i));
        expect([...seen.values()].every((n) => n === 1)).toBe(true);
      }
    }
  });
});

describe("sweeps in a pool and in shards", () => {
  const options = { workloadUs: 1_000_000 };
  const withoutWallTime = (r: SimReport) => ({ ...r, wallMs: 0 });

  it("gives each seed the same report in a pool of workers as in process", async () => {
    const inProcess: SimReport[] = [], pooled: SimReport[] = [];
    const local = await runSweep({ from: 21, count: 4, workers: 1, options, onRun: (r) => inProcess.push(r) });
    const pool = await runSweep({ from: 21, count: 4, workers: 2, options, onRun: (r) => pooled.push(r) });
    expect(local.record.workers).toBe(1);
    expect(pool.record.workers).toBe(2);
    expect(inProcess.map((r) => r.seed)).toEqual([21, 22, 23, 24]);
    const bySeed = (list: SimReport[]) => [...list].sort((a, b) => a.seed - b.seed).map(withoutWallTime);
    expect(bySeed(pooled)).toEqual(bySeed(inProcess));
    expect(inProcess.some((r) => r.counts.attempted > 0)).toBe(true); // the runs did work: the comparison is not of empty reports
    const { wallSeconds: _a, runsPerSecond: _b, workers: _c, ...sameRecord } = local.record;
    expect(pool.record).toMatchObject(sameRecord);
  });

  it("shard records merge into the whole sweep", async () => {
    const shards = [];
    for (const index of [2, 1]) shards.push((await runSweep({ from: 5, count: 3, shard: { index, total: 2 }, workers: 1, options })).record);
    expect(shards.map((r) => r.runs)).toEqual([1, 2]);
    const merged = mergeSweeps(shards.map((record, i) => ({ source: `shard-${i}.json`, record })));
    expect(merged).toMatchObject({ from: 5, count: 3, shards: 2, runs: 3, failedSeeds: [], options });
  });
});

describe("merging shard records", () => {
  const record = (index: number, total: number, changes: Partial<SweepRecord> = {}): SweepRecord => {
    const seeds = shardSeeds(1, 10, { index, total });
    return {
      format: "hsmsim-sim-sweep/1", from: 1, count: 10, shard: { index, total }, seeds: "", options: {}, runs: seeds.length, failedSeeds: [],
      failures: [], workers: 2, wallSeconds: index, runsPerSecond: 1, ...changes,
    };
  };
  const named = (...records: SweepRecord[]) => records.map((r, i) => ({ source: `f${i}.json`, record: r }));
  const failure = (seed: number) => ({ seed, invariant: "acknowledged-lost", detail: "lost", replay: `hsmsim sim --seed ${seed}` });

  it("sums the shards: runs, failures in seed order, the slowest shard's wall time", () => {
    const merged = mergeSweeps(named(record(3, 3, { failures: [failure(6)] }), record(1, 3, { failures: [failure(7), failure(1)] }), record(2, 3)));
    expect(merged).toMatchObject({ runs: 10, shards: 3, failedSeeds: [1, 6, 7], wallSeconds: 3, shardSeconds: 6, runsPerSecond: 3.33 });
  });

  it("refuses a missing shard, a shard twice, another sweep's shard, an incomplete shard, a stray seed", () => {
    const refusal = (...records: SweepRecord[]) => {
      try {
        mergeSweeps(named(...records));
      } catch (error) {
        expect(error).toBeInstanceOf(ShardError);
        return { code: (error as ShardError).code, message: (error as Error).message };
      }
      throw new Error("merged");
    };
    expect(refusal(record(1, 4), record(3, 4))).toEqual({ code: "MISSING_SHARD", message: "the sweep (seeds 1–10) is incomplete: shards 2/4, 4/4 missing" });
    expect(refusal(record(1, 2), record(2, 2), record(2, 2))).toEqual({ code: "DUPLICATE_SHARD", message: "shard 2/2 is given twice (f1.json and f2.json)" });
    expect(refusal(record(1, 2), record(2, 3)).code).toBe("OTHER_SWEEP");
    expect(refusal(record(1, 2), record(2, 2, { from: 2 })).code).toBe("OTHER_SWEEP");
    expect(refusal(record(1, 2), record(2, 2, { options: { workloadUs: 5 } })).message).toMatch(/^f1\.json is from another sweep \(seeds 1–10 in 2 shard\(s\), options \{"workloadUs":5\}\)/);
    expect(refusal(record(1, 2), record(2, 2, { runs: 4 })).code).toBe("INCOMPLETE_SHARD");
    expect(refusal(record(1, 2, { failures: [failure(2)] }), record(2, 2)).code).toBe("NOT_A_SWEEP");
    expect(() => mergeSweeps([])).toThrow(ShardError);
  });
});

describe("hsmsim sim: workers, shards, merge", () => {
  const dir = mkdtempSync(join(tmpdir(), "hsmsim-pool-test-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const run = async (...args: string[]) => {
    let stdout = "", stderr = "";
    const code = await main(args, { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) }, env: {} });
    return { code, stdout, stderr };
  };
  const file = (name: string, value: unknown) => {
    const path = join(dir, name);
    writeFileSync(path, typeof value === "string" ? value : JSON.stringify(value));
    return path;
  };

  it("refuses bad --shard and --workers values and misplaced options with exit code 2", async () => {
    for (const shard of ["0/2", "3/2", "x/y", "1/0"]) {
      const result = await run("sim", "--seeds", "4", "--shard", shard);
      expect(result.code, shard).toBe(2);
      expect(result.stderr).toContain(`--shard a shard is I/N with 1 ≤ I ≤ N (e.g. 2/4), not '${shard}'`);
      expect(result.stdout).toBe("");
    }
    for (const args of [["--seeds", "2", "--workers", "0"], ["--seeds", "2", "--workers", "many"], ["--shard", "1/2"], ["--workers", "2"],
      ["--seed", "1", "--shard", "1/2"], ["replay"], ["merge"], ["merge", "--seeds", "3", "x.json"]]) {
      expect((await run("sim", ...args)).code, args.join(" ")).toBe(2);
    }
  });

  it("merge: exit 0 for a whole clean sweep, 1 when a seed failed (with its replay), 2 for files that are not one sweep", async () => {
    const base = { format: "hsmsim-sim-sweep/1", from: 1, count: 3, seeds: "", options: {}, failedSeeds: [], workers: 1, wallSeconds: 1, runsPerSecond: 1 };
    const one = file("one.json", { ...base, shard: { index: 1, total: 2 }, runs: 2, failures: [] });
    const two = file("two.json", { ...base, shard: { index: 2, total: 2 }, runs: 1, failures: [] });
    const twoFailed = file("two-failed.json", { ...base, shard: { index: 2, total: 2 }, runs: 1, failedSeeds: [2],
      failures: [{ seed: 2, invariant: "no-convergence", detail: "still differ", replay: "hsmsim sim --seed 2" }] });
    const clean = await run("sim", "merge", one, two);
    expect(clean).toMatchObject({ code: 0, stderr: "" });
    expect(clean.stdout).toContain("3 runs (seeds 1–3, 2 shards): 0 failed");
    const failed = await run("sim", "merge", "--json", two, twoFailed, one);
    expect(failed.code).toBe(2); // shard 2/2 twice
    expect(failed.stderr).toContain("shard 2/2 is given twice");
    const withFailure = await run("sim", "merge", one, twoFailed);
    expect(withFailure.code).toBe(1);
    expect(withFailure.stdout).toContain("seed 2 FAILED: no-convergence: still differ\n  replay: hsmsim sim --seed 2");
    const json = await run("sim", "merge", "--json", twoFailed, one);
    expect(JSON.parse(json.stdout)).toMatchObject({ runs: 3, failedSeeds: [2], shards: 2 });
    const missing = await run("sim", "merge", one);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("shard 2/2 missing");
    for (const bad of [file("garbage.json", "{not json"), file("array.json", [1, 2]), file("other.json", { format: "something-else/1" }),
      file("broken.json", { ...base, shard: { index: 3, total: 2 }, runs: 1, failures: [] }), join(dir, "absent.json")]) {
      const result = await run("sim", "merge", one, bad);
      expect(result.code, bad).toBe(2);
      expect(result.stderr).toContain(bad);
    }
  });

  it("a shard's --json result is mergeable with its siblings'", async () => {
    const outputs: string[] = [];
    for (const shard of ["1/2", "2/2"]) {
      const result = await run("sim", "--seeds", "2", "--from", "31", "--shard", shard, "--workers", "1", "--json");
      expect(result.code, result.stderr).toBe(0);
      const record = JSON.parse(result.stdout) as SweepRecord;
      expect(record).toMatchObject({ format: "hsmsim-sim-sweep/1", from: 31, count: 2, runs: 1, failedSeeds: [], workers: 1 });
      outputs.push(file(`cli-${shard.replace("/", "-")}.json`, result.stdout));
    }
    const merged = await run("sim", "merge", ...outputs);
    expect(merged.code, merged.stderr).toBe(0);
    expect(merged.stdout).toContain("2 runs (seeds 31–32, 2 shards): 0 failed");
  });
});
