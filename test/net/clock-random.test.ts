import { describe, expect, it } from "vitest";

import { OsRandom } from "../../src/net/os-random.js";
import { RealClock } from "../../src/net/real-clock.js";

describe("RealClock", () => {
  it("counts microseconds forward and runs timers in delay order; cancel stops one", async () => {
    const clock = new RealClock();
    const start = clock.nowUs();
    expect(Math.abs(start - Date.now() * 1000)).toBeLessThan(60_000_000); // the Unix epoch, give or take a slow machine
    const order: string[] = [];
    await new Promise<void>((resolve) => {
      clock.schedule(20_000, () => order.push("late"));
      const cancelled = clock.schedule(5_000, () => order.push("cancelled"));
      clock.schedule(1_000, () => order.push("early"));
      const cancelledNow = clock.schedule(0, () => order.push("cancelled now"));
      clock.schedule(0, () => order.push("now"));
      clock.cancel(cancelledNow);
      clock.cancel(cancelled);
      clock.schedule(40_000, resolve);
    });
    expect(order).toEqual(["now", "early", "late"]);
    expect(clock.nowUs()).toBeGreaterThanOrEqual(start + 40_000);
    expect(clock.pending).toBe(0);
    expect(() => clock.schedule(-1, () => {})).toThrow(RangeError);
    expect(() => clock.schedule(Number.NaN, () => {})).toThrow(RangeError);
  });

  it("a delay beyond setTimeout's range does not fire early", async () => {
    const clock = new RealClock();
    let fired = false;
    const id = clock.schedule(30 * 24 * 3600 * 1e6, () => { fired = true; });
    await new Promise((r) => setTimeout(r, 50));
    expect(fired).toBe(false);
    clock.cancel(id);
    expect(clock.pending).toBe(0);
  });

  it("originUs moves the epoch", () => {
    const origin = new RealClock({ originUs: Date.now() * 1000 }).nowUs();
    expect(Math.abs(origin)).toBeLessThan(60_000_000);
  });
});

describe("OsRandom", () => {
  it("draws in range, fresh bytes, independent forks; refuses bad bounds", () => {
    const random = new OsRandom();
    const draws = Array.from({ length: 200 }, () => random.int(10));
    expect(draws.every((d) => Number.isInteger(d) && d >= 0 && d < 10)).toBe(true);
    expect(new Set(draws).size).toBeGreaterThan(1);
    expect(random.int(1)).toBe(0);
    expect(random.bytes(32).equals(random.bytes(32))).toBe(false);
    expect(random.fork("a").bytes(16).equals(random.fork("a").bytes(16))).toBe(false);
    for (const n of [0, -1, 1.5, 2 ** 48, Number.NaN]) expect(() => random.int(n)).toThrow(RangeError);
    expect(() => random.bytes(-1)).toThrow(RangeError);
  });
});
