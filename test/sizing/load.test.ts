// The load generator on its own: a fake asynchronous chip answering after known delays on a
// virtual clock, so every number (arrivals, latency percentiles, failures, timeline) is exact.
import { describe, expect, it } from "vitest";

import { VirtualClock } from "../../src/sim/clock.js";
import { Rng } from "../../src/sim/random.js";
import { Pkcs11Error } from "../../src/pkcs11/errors.js";
import { CKR_FUNCTION_FAILED, CKR_KEY_HANDLE_INVALID } from "../../src/pkcs11/constants.js";
import {
  type AsyncChip, type ChipCallback, type LoadOptions, type LoadResult, LoadGeneratorError, type PreparedLoad, asyncChipOf, loadOperation, percentile,
  startLoad,
} from "../../src/sizing/load.js";
import type { NativeChip } from "../../src/pkcs11/addon.js";

const PREPARED: PreparedLoad = { sessions: Array.from({ length: 64 }, (_, i) => i + 1), keys: { ec: 100, rsa: 101, aes: 102, hmac: 103 }, signatures: {} };

/** A chip whose data calls take `delayUs` (Inits 0), failing the n-th data call when `fail(n)` says so; it records calls. */
function fakeChip(clock: VirtualClock, delayUs: number, fail: (n: number) => Error | null = () => null) {
  const calls: { method: string; args: unknown[]; atUs: number }[] = [];
  let dataCalls = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const chip: AsyncChip = {
    start(method: string, args: unknown[], callback: ChipCallback) {
      calls.push({ method, args, atUs: clock.nowUs() });
      if (method.endsWith("Init") || method === "openSession" || method === "closeSession") {
        clock.schedule(0, () => callback(null, method === "openSession" ? 1000 + calls.length : undefined));
        return;
      }
      const error = fail(++dataCalls);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      clock.schedule(delayUs, () => {
        inFlight--;
        callback(error, error ? undefined : 64);
      });
    },
  };
  return { chip, calls, maxInFlight: () => maxInFlight };
}

function run(options: Partial<LoadOptions> & { chip: AsyncChip; clock: VirtualClock }): LoadResult {
  let result: LoadResult | null = null;
  const handle = startLoad({ random: new Rng(1), prepared: PREPARED, operations: [loadOperation("ecdsa-p256-sign")], mode: { kind: "open", ratePerSec: 1000 },
    durationUs: 1_000_000, ...options }, (r) => (result = r));
  options.clock.runUntil(options.clock.nowUs() + 100_000_000);
  expect(handle.finished).toBe(true);
  expect(handle.result).toBe(result);
  return result!;
}

describe("load generator", () => {
  it("open loop: Poisson arrivals at the rate, an Init then the data call per operation, latency as the chip answered", () => {
    const clock = new VirtualClock();
    const fake = fakeChip(clock, 2_000);
    const r = run({ chip: fake.chip, clock, mode: { kind: "open", ratePerSec: 5000 }, durationUs: 2_000_000, warmUpUs: 200_000 });
    expect(Math.abs(r.offeredPerSec / 5000 - 1)).toBeLessThan(0.05);
    expect(r.completed).toBeGreaterThan(9000);
    expect(r.failed).toBe(0);
    expect(r.latency).toMatchObject({ meanMs: 2, p50Ms: 2, p99Ms: 2, maxMs: 2 });
    const inits = fake.calls.filter((c) => c.method === "signInit");
    const signs = fake.calls.filter((c) => c.method === "sign");
    expect(inits.length).toBe(signs.length);
    // Each sign follows its Init on the same session, with the token key and CKM_ECDSA.
    expect(inits[0].args[1]).toBe(100);
    expect((inits[0].args[2] as Float64Array)[0]).toBe(0x1041);
    expect(signs[0].args[0]).toBe(inits[0].args[0]);
    // Throughput: completions within the measured window.
    expect(Math.abs(r.throughputPerSec / 5000 - 1)).toBeLessThan(0.05);
    // Gaps are exponential: their coefficient of variation is about 1.
    const gaps = inits.slice(1).map((c, i) => c.atUs - inits[i].atUs);
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    const sd = Math.sqrt(gaps.reduce((a, b) => a + (b - mean) ** 2, 0) / gaps.length);
    expect(sd / mean).toBeGreaterThan(0.9);
    expect(sd / mean).toBeLessThan(1.1);
  });

  it("closed loop: exactly `concurrency` operations in flight, throughput = concurrency ÷ latency", () => {
    const clock = new VirtualClock();
    const fake = fakeChip(clock, 4_000);
    const r = run({ chip: fake.chip, clock, mode: { kind: "closed", concurrency: 8 }, durationUs: 1_000_000 });
    expect(fake.maxInFlight()).toBe(8);
    expect(r.throughputPerSec).toBe(2000);
    expect(r.unfinished).toBe(0);
  });

  it("failures by reason; a failed operation's session is replaced; the timeline counts them per window", () => {
    const clock = new VirtualClock();
    const fake = fakeChip(clock, 1_000, (n) => (n % 10 === 0 ? new Pkcs11Error(CKR_FUNCTION_FAILED, "C_Sign") : n % 25 === 0 ? new Pkcs11Error(CKR_KEY_HANDLE_INVALID, "C_Sign") : null));
    const r = run({ chip: fake.chip, clock, mode: { kind: "closed", concurrency: 4 }, durationUs: 500_000, windowUs: 100_000 });
    expect(Object.keys(r.failedByReason).sort()).toEqual(["CKR_FUNCTION_FAILED", "CKR_KEY_HANDLE_INVALID"]);
    expect(r.failedByReason.CKR_FUNCTION_FAILED).toBeGreaterThan(r.failedByReason.CKR_KEY_HANDLE_INVALID);
    expect(r.failed).toBe(r.failedByReason.CKR_FUNCTION_FAILED + r.failedByReason.CKR_KEY_HANDLE_INVALID);
    expect(fake.calls.filter((c) => c.method === "openSession").length).toBe(r.failed);
    expect(r.timeline).toHaveLength(5);
    // The timeline counts failures by when they happened; the run's totals by when the operation started (one started before the end may fail after it).
    const inTimeline = r.timeline.reduce((s, w) => s + w.failed, 0);
    expect(inTimeline).toBeLessThanOrEqual(r.failed);
    expect(inTimeline).toBeGreaterThanOrEqual(r.failed - 4);
    for (const w of r.timeline) expect(w.p99Ms).toBe(1);
  });

  it("a mix by weight, each operation's calls and sizes", () => {
    const clock = new VirtualClock();
    const fake = fakeChip(clock, 500);
    const operations = [loadOperation("aes-gcm-4k", 3), loadOperation("hmac-64b", 1)];
    const r = run({ chip: fake.chip, clock, operations, mode: { kind: "open", ratePerSec: 2000 } });
    const share = r.byOperation["aes-gcm-4k"].completed / r.completed;
    expect(share).toBeGreaterThan(0.7);
    expect(share).toBeLessThan(0.8);
    const encrypt = fake.calls.find((c) => c.method === "encrypt")!;
    expect((encrypt.args[1] as Buffer).length).toBe(4096);
    expect((encrypt.args[2] as Buffer).length).toBe(4096 + 16);
    const hmac = fake.calls.find((c) => c.method === "sign")!;
    expect((hmac.args[1] as Buffer).length).toBe(64);
    // Each GCM operation gets its own IV.
    const ivs = fake.calls.filter((c) => c.method === "encryptInit").slice(0, 50).map((c) => Buffer.from(c.args[3] as Buffer).toString("hex"));
    expect(new Set(ivs).size).toBe(50);
  });

  it("open loop past the sessions it has: arrivals without a free session are failures, not a hang", () => {
    const clock = new VirtualClock();
    const fake = fakeChip(clock, 50_000);
    const prepared = { ...PREPARED, sessions: [1, 2, 3, 4] };
    const r = run({ chip: fake.chip, clock, prepared, mode: { kind: "open", ratePerSec: 1000 }, durationUs: 500_000 });
    expect(r.noFreeSession).toBeGreaterThan(0);
    expect(r.failedByReason.NO_FREE_SESSION).toBe(r.noFreeSession);
  });

  it("progress at every window; stop() ends the load early", () => {
    const clock = new VirtualClock();
    const fake = fakeChip(clock, 1_000);
    const seen: number[] = [];
    let result: LoadResult | null = null;
    const handle = startLoad({ chip: fake.chip, clock, random: new Rng(2), prepared: PREPARED, operations: [loadOperation("random-32b")],
      mode: { kind: "closed", concurrency: 2 }, durationUs: 1_000_000, windowUs: 250_000, onProgress: (p) => seen.push(p.window.opsPerSec) }, (r) => (result = r));
    clock.runUntil(600_000);
    // Window [0, 250 ms): each of the 2 sessions completes at 1, 2 … 249 ms (the one at 250 ms is the next window's).
    expect(seen).toEqual([1992, 2000]);
    handle.stop();
    clock.runUntil(700_000);
    expect(result).not.toBeNull();
    expect(fake.calls.every((c) => c.method === "generateRandom")).toBe(true);
  });

  it("refuses bad input with a typed error", () => {
    const clock = new VirtualClock();
    const { chip } = fakeChip(clock, 1);
    const base = { chip, clock, random: new Rng(1), prepared: PREPARED, operations: [loadOperation("hmac-1k")], mode: { kind: "open" as const, ratePerSec: 10 }, durationUs: 1000 };
    const bad: [() => unknown, RegExp][] = [
      [() => loadOperation("rsa-4096-sign"), /unknown operation/],
      [() => loadOperation("aes-gcm-0b"), /inputBytes/],
      [() => loadOperation("aes-gcm-2m"), /inputBytes/],
      [() => loadOperation("hmac-1k", -1), /weight/],
      [() => startLoad({ ...base, durationUs: 0 }), /durationUs/],
      [() => startLoad({ ...base, durationUs: Number.POSITIVE_INFINITY }), /durationUs/],
      [() => startLoad({ ...base, mode: { kind: "open", ratePerSec: -5 } }), /ratePerSec/],
      [() => startLoad({ ...base, mode: { kind: "closed", concurrency: 1.5 } }), /concurrency/],
      [() => startLoad({ ...base, mode: { kind: "closed", concurrency: 65 } }), /65.*sessions/],
      [() => startLoad({ ...base, mode: { kind: "burst" } as never }), /mode must be/],
      [() => startLoad({ ...base, operations: [] }), /at least one/],
      [() => startLoad({ ...base, prepared: null as never }), /prepared.sessions/],
      [() => startLoad({ ...base, prepared: { ...PREPARED, sessions: [0] } }), /prepared.sessions/],
      [() => startLoad({ ...base, chip: {} as never }), /chip must have start/],
      [() => startLoad({ ...base, windowUs: 0.0001 }), /windowUs/],
      [() => startLoad(null as never), /options must be/],
      [() => startLoad({ ...base, prepared: { ...PREPARED, keys: {} } }), /needs a key/],
      [() => startLoad({ ...base, prepared: { ...PREPARED, keys: { ecPublic: 9 } }, operations: [loadOperation("ecdsa-p256-verify")] }), /needs a signature/],
      [() => startLoad({ ...base, operations: [{ name: "x", opClass: "login", inputBytes: 1 }] }), /cannot run class login/],
    ];
    for (const [call, message] of bad) {
      let error: unknown;
      try {
        call();
      } catch (e) {
        error = e;
      }
      expect(error, String(message)).toBeInstanceOf(LoadGeneratorError);
      expect((error as Error).message).toMatch(message);
    }
  });

  it("asyncChipOf drives a NativeChip's callback forms; a missing method or a throw reaches the callback", () => {
    const seen: unknown[][] = [];
    const native = {
      sign: (...args: unknown[]) => {
        seen.push(args);
        (args.at(-1) as ChipCallback)(null, 64);
      },
      verify: () => {
        throw new Error("boom");
      },
    } as unknown as NativeChip;
    const chip = asyncChipOf(native);
    const answers: [Error | null, unknown][] = [];
    chip.start("sign", [1, Buffer.alloc(1), Buffer.alloc(64)], (e, v) => answers.push([e, v]));
    chip.start("verify", [], (e, v) => answers.push([e, v]));
    chip.start("nope", [], (e, v) => answers.push([e, v]));
    expect(seen[0]).toHaveLength(4);
    expect(answers[0]).toEqual([null, 64]);
    expect(answers[1][0]?.message).toBe("boom");
    expect(answers[2][0]).toBeInstanceOf(Pkcs11Error);
  });

  it("percentile is nearest-rank", () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(sorted, 0.5)).toBe(50);
    expect(percentile(sorted, 0.99)).toBe(99);
    expect(percentile([7], 0.99)).toBe(7);
    expect(percentile([], 0.5)).toBeNaN();
  });
});
