// `hsmsim size` through the command table, with captured streams.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, describe, expect, it } from "vitest";

import { main } from "../../src/cli/main.js";

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io = { stdout: { write: (t: string) => (out += t) }, stderr: { write: (t: string) => (err += t) }, env: {} };
  const code = await main(["size", ...args], io);
  return { code, out, err };
}

const EXAMPLE = ["--op", "ecdsa-p256-sign=5000", "--op", "aes-gcm-4k=20000", "--p99-ms", "50", "--spare", "1", "--type", "hsm2m.medium"];

describe("hsmsim size", () => {
  it("answers the issue's example: HSMs, utilisation, percentiles, one down, headroom, cost, estimates marked", async () => {
    const r = await cli(...EXAMPLE);
    expect(r.code, r.err).toBe(0);
    const n = Number(/^hsm2m\.medium: (\d+) HSMs for 25,000 ops\/s at peak, p99 ≤ 50 ms for every operation, with 1 HSM down/m.exec(r.out)![1]);
    expect(n).toBeGreaterThanOrEqual(2);
    expect(r.out).toMatch(new RegExp(`all up\\s+${n}\\s+\\d+\\.\\d%`));
    expect(r.out).toMatch(new RegExp(`1 HSM down \\(sized for\\)\\s+${n - 1}\\s+\\d+\\.\\d%`));
    for (const header of ["p50 ms", "p95 ms", "p99 ms", "headroom: +", "knee:", "monthly cost: $", "not confirmed"]) expect(r.out).toContain(header);
    expect(r.out).toContain(`730 h × ${n} HSMs × $1.45/h`);
    expect(r.out).toMatch(/aes-gcm-4k \*/);
    expect(r.out).toMatch(/\* aes-gcm-4k: ESTIMATE/);
    expect(r.out).not.toMatch(/ecdsa-p256-sign \*/);
  });

  it("--json parses and holds the fields, the same answer as the text", async () => {
    const text = await cli(...EXAMPLE);
    const r = await cli(...EXAMPLE, "--json", "--price-per-hour", "2");
    expect(r.code, r.err).toBe(0);
    const a = JSON.parse(r.out);
    expect(a.hsmCount).toBe(Number(/: (\d+) HSMs/.exec(text.out)![1]));
    expect(a).toMatchObject({ type: "hsm2m.medium", spare: 1, p99TargetMs: 50, offeredPerSec: 25000 });
    for (const state of [a.allUp, a.withSpareDown, a.oneDown]) {
      expect(state.utilisation).toBeGreaterThan(0);
      for (const k of ["meanMs", "p50Ms", "p95Ms", "p99Ms"]) expect(typeof state.latency[k]).toBe("number");
    }
    expect(a.withSpareDown.liveHsms).toBe(a.hsmCount - 1);
    expect(a.headroom.percent).toBeGreaterThanOrEqual(0);
    expect(a.cost).toMatchObject({ usdPerHour: 2, hsmCount: a.hsmCount, monthlyUsd: 730 * a.hsmCount * 2 });
    expect(a.operations.map((o: { operation: string; estimate: boolean }) => [o.operation, o.estimate])).toEqual([["ecdsa-p256-sign", false], ["aes-gcm-4k", true]]);
  });

  it("an unlimited cluster has no capacity limit: JSON writes it as null, the text as unbounded", async () => {
    const json = JSON.parse((await cli("--op", "rsa-2048-sign=100000", "--type", "unlimited", "--json")).out);
    expect(json.hsmCount).toBe(2);
    expect(json.operations[0].capacityAllUpPerSec).toBeNull();
    expect((await cli("--op", "rsa-2048-sign=100000", "--type", "unlimited")).out).toContain("unbounded");
  });

  it.each([
    [["--op", "rsa-4096-sign=10"], /unknown operation "rsa-4096-sign": valid operations are/],
    [["--op", "aes-gcm=10"], /needs a size/],
    [["--op", "aes-gcm-4q=10"], /bad size/],
    [["--op", "ecdsa-p256-sign=-5"], /the rate must be a number of ops\/s above 0/],
    [["--op", "ecdsa-p256-sign=0"], /above 0/],
    [["--op", "ecdsa-p256-sign=NaN"], /above 0/],
    [["--op", "ecdsa-p256-sign=1e999"], /above 0/],
    [["--op", "ecdsa-p256-sign"], /NAME=RATE/],
    [["--op", "=5"], /NAME=RATE/],
    [["--op", "constructor=5"], /unknown operation "constructor"/],
    [["--op", "__proto__=5"], /unknown operation "__proto__"/],
    [[], /give at least one --op/],
    [["--op", "hmac-1k=5", "--p99-ms", "0"], /--p99-ms takes a number of ms above 0/],
    [["--op", "hmac-1k=5", "--p99-ms", "-3"], /--p99-ms/],
    [["--op", "hmac-1k=5", "--spare", "-1"], /--spare is missing its value/],
    [["--op", "hmac-1k=5", "--spare=-1"], /--spare takes a whole number/],
    [["--op", "hmac-1k=5", "--spare", "1.5"], /--spare takes a whole number/],
    [["--op", "hmac-1k=5", "--spare", "28"], /--spare takes a whole number from 0 to 27/],
    [["--op", "hmac-1k=5", "--type", "hsm3.large"], /--type takes one of hsm1\.medium, hsm2m\.medium, unlimited/],
    [["--op", "hmac-1k=5", "--price-per-hour", "free"], /--price-per-hour/],
    [["--op", "hmac-1k=5", "--spreading", "random"], /--spreading takes one of pooled, independent/],
    [["--op", "hmac-1k=5", "--bogus"], /bogus/],
  ])("refuses %j with a usage error (exit 2)", async (args, message) => {
    const r = await cli(...args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err).toContain("usage: hsmsim size");
    expect(r.out).toBe("");
  });

  it.each([
    [["--op", "hmac-1k=5", "--op", "hmac-1k=7"], /hmac-1k is given twice: give its total rate once \(DUPLICATE_OPERATION\)/],
    [["--op", "ecdsa-p256-sign=5000", "--p99-ms", "1"], /below what even an idle cluster gives.*\(IMPOSSIBLE_TARGET\)/],
    [["--op", "ecdsa-p256-sign=2000000"], /no hsm2m\.medium cluster of 2–28 HSMs serves this load.*\(IMPOSSIBLE_TARGET\)/],
  ])("refuses %j with a typed error (exit 1)", async (args, message) => {
    const r = await cli(...args);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(message);
    expect(r.out).toBe("");
  });

  describe("--report and --charts", () => {
    const dir = mkdtempSync(join(tmpdir(), "hsmsim-size-"));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it("write one self-contained HTML report and the SVG charts", async () => {
      const report = join(dir, "out", "sizing.html");
      const r = await cli(...EXAMPLE, "--report", report, "--charts", join(dir, "charts"));
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain(`wrote ${report}`);
      const html = readFileSync(report, "utf8");
      expect(html).toMatch(/^<!doctype html>/i);
      expect(html.match(/<svg[\s>]/g)).toHaveLength(2);
      expect(html).not.toMatch(/<script|https?:\/\/(?!docs\.aws\.amazon\.com|aws\.amazon\.com|www\.w3\.org)/i);
      for (const text of ["HSMs needed", "aes-gcm-4k (estimate)", "ESTIMATE", "extrapolation", "p99 target"]) expect(html).toContain(text);
      for (const name of ["throughput.svg", "latency.svg"]) {
        const svg = readFileSync(join(dir, "charts", name), "utf8");
        expect(svg).toMatch(/^<svg[\s>]/);
        expect(svg).toMatch(/<\/svg>\s*$/);
      }
      expect(readFileSync(join(dir, "charts", "latency.svg"), "utf8")).toContain("p99 target 50 ms");
    }, 60_000);

    it("a path that cannot be written is a typed error naming it, nothing half-done on stdout", async () => {
      const file = join(dir, "a-file");
      writeFileSync(file, "x");
      const r = await cli("--op", "rsa-2048-sign=1000", "--report", join(file, "r.html"));
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/cannot write .*a-file\/r\.html.*\(OUTPUT_FAILED\)/);
      expect(r.out).toBe("");
      expect(existsSync(join(file, "r.html"))).toBe(false);
    }, 60_000);
  });

  it("is listed in the help", async () => {
    let out = "";
    const io = { stdout: { write: (t: string) => (out += t) }, stderr: { write: () => true }, env: {} };
    expect(await main(["help"], io)).toBe(0);
    expect(out).toMatch(/size\s+how many HSMs a peak load needs/);
  });
});
