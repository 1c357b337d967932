// The token bucket behind KMS's request quotas, on an injected clock.
import { describe, expect, it } from "vitest";

import { RateLimiter } from "../../src/kms/throttle.js";

function takes(limiter: RateLimiter, n: number): number {
  let taken = 0;
  for (let i = 0; i < n; i++) if (limiter.tryTake()) taken++;
  return taken;
}

describe("RateLimiter", () => {
  it("serves a second's worth at once, then refills at the rate", () => {
    let now = 10_000;
    const limiter = new RateLimiter(1_800, () => now);
    expect(takes(limiter, 2_000)).toBe(1_800);
    now += 500;
    expect(takes(limiter, 2_000)).toBe(900);
    now += 10_000; // a long idle fills the bucket only to its size
    expect(takes(limiter, 5_000)).toBe(1_800);
  });

  it("a given burst caps the bucket; a fractional refill waits for a whole token", () => {
    let now = 0;
    const limiter = new RateLimiter(10, () => now, 2);
    expect(takes(limiter, 5)).toBe(2);
    now += 50; // half a token
    expect(limiter.tryTake()).toBe(false);
    now += 50;
    expect(limiter.tryTake()).toBe(true);
    expect(limiter.tryTake()).toBe(false);
  });

  it("a clock stepping back refills nothing, and the step forward again is not counted twice", () => {
    let now = 1_000_000;
    const limiter = new RateLimiter(1_000, () => now);
    expect(takes(limiter, 1_000)).toBe(1_000);
    now -= 60_000;
    expect(limiter.tryTake()).toBe(false);
    now += 60_000 + 5;
    expect(takes(limiter, 100)).toBe(5);
  });

  it("refuses a rate or burst that cannot work", () => {
    for (const rate of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => new RateLimiter(rate, () => 0)).toThrow(RangeError);
    expect(() => new RateLimiter(10, () => 0, 0.5)).toThrow(RangeError);
  });
});
