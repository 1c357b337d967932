// The simulation kit: seeded randomness, the virtual clock and the simulated network, each
// exactly repeatable from its seed.
import { describe, expect, it } from "vitest";

import { Rng, SimNetwork, VirtualClock } from "../../src/sim/index.js";

describe("Rng", () => {
  it("one seed gives one sequence; another seed another", () => {
    const a = new Rng(42), b = new Rng(42), c = new Rng(43);
    const xs = Array.from({ length: 100 }, () => a.nextUint32());
    expect(Array.from({ length: 100 }, () => b.nextUint32())).toEqual(xs);
    expect(Array.from({ length: 100 }, () => c.nextUint32())).not.toEqual(xs);
    expect(new Rng("text seed").nextUint32()).toBe(new Rng("text seed").nextUint32());
  });

  it("a fork depends on the seed and its label, not on how much the parent drew", () => {
    const early = new Rng(7).fork("network").nextUint32();
    const parent = new Rng(7);
    for (let i = 0; i < 1000; i++) parent.next();
    expect(parent.fork("network").nextUint32()).toBe(early);
    expect(parent.fork("hsm-1").nextUint32()).not.toBe(early);
  });

  it("draws stay in range and spread evenly", () => {
    const rng = new Rng(2026);
    const counts = new Array(10).fill(0);
    for (let i = 0; i < 100_000; i++) counts[rng.int(10)]++;
    for (const n of counts) expect(Math.abs(n - 10_000)).toBeLessThan(500); // fixed seed: a fixed outcome
    for (let i = 0; i < 1000; i++) {
      const v = rng.between(-3, 3);
      expect(v).toBeGreaterThanOrEqual(-3);
      expect(v).toBeLessThanOrEqual(3);
    }
    expect(["a", "b"]).toContain(rng.pick(["a", "b"]));
    expect(rng.bytes(16)).toHaveLength(16);
    expect(() => rng.int(0)).toThrow(RangeError);
    expect(() => rng.pick([])).toThrow(RangeError);
  });
});

describe("VirtualClock", () => {
  it("runs events in time order, same-time events in scheduling order, and moves time only by events", () => {
    const clock = new VirtualClock();
    const seen: string[] = [];
    clock.schedule(30, () => seen.push("c@30"));
    clock.schedule(10, () => {
      seen.push("a@10");
      clock.schedule(0, () => seen.push("nested@10"));
    });
    clock.schedule(10, () => seen.push("b@10"));
    const cancelled = clock.schedule(20, () => seen.push("never"));
    clock.cancel(cancelled);
    expect(clock.nowUs()).toBe(0);
    expect(clock.runAll()).toBe(4);
    expect(seen).toEqual(["a@10", "b@10", "nested@10", "c@30"]);
    expect(clock.nowUs()).toBe(30);
  });

  it("runUntil stops at a time and leaves later events waiting", () => {
    const clock = new VirtualClock(1000);
    const seen: number[] = [];
    for (const t of [5, 15, 25]) clock.schedule(t, () => seen.push(clock.nowUs()));
    expect(clock.runUntil(1020)).toBe(2);
    expect(seen).toEqual([1005, 1015]);
    expect(clock.nowUs()).toBe(1020);
    expect(clock.pending).toBe(1);
    expect(() => clock.schedule(-1, () => undefined)).toThrow(RangeError);
  });
});

describe("SimNetwork", () => {
  function setup(seed: number, faults = {}) {
    const clock = new VirtualClock();
    const net = new SimNetwork(clock, new Rng(seed).fork("network"), faults);
    const inbox = new Map<string, { from: string; message: unknown; atUs: number }[]>();
    for (const a of ["hsm1", "hsm2", "hsm3", "client"]) {
      inbox.set(a, []);
      net.attach(a, (from, message) => inbox.get(a)!.push({ from, message, atUs: clock.nowUs() }));
    }
    return { clock, net, inbox };
  }

  it("delivers after the latency, in order when there is no jitter", () => {
    const { clock, net, inbox } = setup(1, { latencyUs: 500 });
    for (let i = 0; i < 5; i++) net.send("client", "hsm1", i);
    clock.runAll();
    expect(inbox.get("hsm1")!.map((m) => m.message)).toEqual([0, 1, 2, 3, 4]);
    expect(inbox.get("hsm1")!.every((m) => m.atUs === 500 && m.from === "client")).toBe(true);
  });

  it("jitter lets messages overtake each other", () => {
    const { clock, net, inbox } = setup(2, { latencyUs: 100, jitterUs: 1000 });
    for (let i = 0; i < 50; i++) net.send("client", "hsm1", i);
    clock.runAll();
    const order = inbox.get("hsm1")!.map((m) => m.message as number);
    expect([...order].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(order).not.toEqual([...order].sort((x, y) => x - y));
  });

  it("loses and duplicates messages at the configured rates", () => {
    const { clock, net, inbox } = setup(3, { lossRate: 0.2, duplicateRate: 0.1 });
    for (let i = 0; i < 10_000; i++) net.send("client", "hsm2", i);
    clock.runAll();
    expect(net.stats.lost).toBeGreaterThan(1800);
    expect(net.stats.lost).toBeLessThan(2200);
    expect(net.stats.duplicated).toBeGreaterThan(650);
    expect(net.stats.duplicated).toBeLessThan(950);
    expect(inbox.get("hsm2")!.length).toBe(10_000 - net.stats.lost + net.stats.duplicated);
  });

  it("partitions both ways, blocks one-way links, drops traffic of nodes that are down, and heals", () => {
    const { clock, net, inbox } = setup(4);
    net.partition(["hsm1"], ["hsm2", "hsm3"]);
    net.blockLink("client", "hsm3");
    net.setDown("hsm2", true);
    const pairs: [string, string][] = [["hsm1", "hsm2"], ["hsm2", "hsm1"], ["hsm1", "hsm3"], ["hsm3", "hsm1"],
      ["client", "hsm3"], ["hsm3", "client"], ["client", "hsm2"], ["client", "hsm1"]];
    for (const [from, to] of pairs) net.send(from, to, `${from}>${to}`);
    clock.runAll();
    const got = [...inbox.values()].flat().map((m) => m.message);
    expect(got.sort()).toEqual(["client>hsm1", "hsm3>client"]);
    expect(net.canReach("hsm3", "client")).toBe(true);
    net.heal();
    net.setDown("hsm2", false);
    expect(net.canReach("hsm1", "hsm2") && net.canReach("client", "hsm3")).toBe(true);
  });

  it("a message in flight is dropped when a partition cuts its path before it arrives", () => {
    const { clock, net, inbox } = setup(5, { latencyUs: 1000 });
    net.send("hsm1", "hsm2", "in flight");
    clock.runUntil(500);
    net.partition(["hsm1"], ["hsm2"]);
    clock.runAll();
    expect(inbox.get("hsm2")).toEqual([]);
    expect(net.stats.undeliverable).toBe(1);
  });

  it("a seed replays the same run exactly", () => {
    const trace = (seed: number) => {
      const { clock, net, inbox } = setup(seed, { latencyUs: 50, jitterUs: 400, lossRate: 0.1, duplicateRate: 0.05 });
      for (let i = 0; i < 300; i++) net.send(i % 2 ? "client" : "hsm3", i % 3 ? "hsm1" : "hsm2", i);
      clock.runAll();
      return JSON.stringify([...inbox.entries()]);
    };
    expect(trace(99)).toBe(trace(99));
    expect(trace(99)).not.toBe(trace(100));
  });

  it("refuses nonsense fault settings", () => {
    const { net } = setup(6);
    expect(() => net.setFaults({ lossRate: 1.5 })).toThrow(RangeError);
    expect(() => net.setFaults({ latencyUs: -1 })).toThrow(RangeError);
    expect(() => net.attach("hsm1", () => undefined)).toThrow(/taken/);
  });
});
