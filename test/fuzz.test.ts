// A sample of the fuzz run (the full 100,000-call run is `npm run fuzz`).
import { describe, expect, it } from "vitest";

import { fuzzChip } from "./fuzz/chip-fuzzer.js";
import { fuzz, prng } from "./fuzz/fuzzer.js";

describe("fuzz sample", () => {
  it.each([1, 2, 3])("seed %i: 4,000 random calls give only TypeError or Pkcs11Error and never the locked key", async (seed) => {
    const report = await fuzz(4000, seed);
    expect(report.findings).toEqual([]);
    expect(report.calls).toBe(4000);
    // The run reaches past argument checks into the token, and some calls succeed.
    expect(report.pkcs11Errors).toBeGreaterThan(1000);
    expect(report.returned).toBeGreaterThan(100);
  });

  it.each([11, 12])("seed %i: 4,000 random calls straight at the native chip fail safe", async (seed) => {
    const report = await fuzzChip(4000, seed);
    expect(report.findings).toEqual([]);
    expect(report.calls).toBe(4000);
  });

  it("a seed replays the same run", async () => {
    const a = await fuzz(500, 99), b = await fuzz(500, 99);
    expect(a).toEqual(b);
    expect(prng(5)()).toBe(prng(5)());
  });
});
