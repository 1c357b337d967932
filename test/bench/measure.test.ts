// The benchmark harness measures what it says: N calls really are in flight at once (not the
// 64-iteration cap tinybench applies by default in task concurrency), every completed call is
// counted, and a server's CPU is accounted with the processes it forks.
import { spawn } from "node:child_process";

import { describe, expect, it } from "vitest";

import { measure, processCpuSeconds, processTree } from "../../bench/measure.js";

describe("bench harness", () => {
  it("keeps exactly N calls in flight and counts them all", async () => {
    let inFlight = 0, most = 0, calls = 0;
    const m = await measure("in flight", async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setImmediate(r));
      inFlight--;
      calls++;
    }, { timeMs: 100, warmupMs: 10, inFlight: 8 });
    expect(most).toBe(8);
    expect(m.samples).toBeGreaterThan(64);
    expect(m.opsPerSecond).toBeGreaterThan(0);
    expect(calls).toBeGreaterThanOrEqual(m.samples);
  });

  it("runs sequentially without inFlight", async () => {
    let inFlight = 0, most = 0;
    await measure("sequential", () => {
      inFlight++;
      most = Math.max(most, inFlight);
      inFlight--;
    }, { timeMs: 50, warmupMs: 10 });
    expect(most).toBe(1);
  });

  it("finds a server's forked children, and reads CPU time only of live processes", async () => {
    const parent = spawn("sh", ["-c", "sleep 30 & wait"], { stdio: "ignore" });
    try {
      const deadline = Date.now() + 10_000;
      let tree: number[] = [];
      while (tree.length < 2 && Date.now() < deadline) {
        tree = processTree([parent.pid!]);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(tree[0]).toBe(parent.pid);
      expect(tree.length, "the sleep child under sh").toBe(2);
      expect(processCpuSeconds(parent.pid!)).toBeGreaterThanOrEqual(0);
    } finally {
      for (const pid of processTree([parent.pid!]).reverse()) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone already
        }
      }
    }
    expect(processCpuSeconds(2 ** 22 + 12345)).toBe(0);
  });
});
