// Second red team, issue 10: hsmsim bench --against --kill-at-s with a --data folder of another cluster.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, describe, expect, it } from "vitest";

import { main } from "../../src/cli/main.js";
import { createClusterCa } from "../../src/net/pki.js";

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "", stderr = "";
  const code = await main(args, { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) }, env: {} });
  return { code, stdout, stderr };
}

describe("bench --against --kill-at-s --data", () => {
  const dir = mkdtempSync(join(tmpdir(), "red2-bench-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("refuses a --data folder whose cluster is not the one --ca trusts (it would kill -9 another cluster's HSM)", async () => {
    const measured = await createClusterCa({ commonName: "measured" });
    const other = await createClusterCa({ commonName: "other" });
    const folder = join(dir, "other-cluster");
    mkdirSync(join(folder, "pki"), { recursive: true, mode: 0o700 });
    writeFileSync(join(folder, "pki", "customerCA.crt"), other.certPem);
    writeFileSync(join(folder, "cluster.json"), "{}");
    const ca = join(dir, "measured-ca.crt");
    writeFileSync(ca, measured.certPem);
    const ran = await cli("bench", "--against", "127.0.0.1:9", "--ca", ca, "--user", "bench:pw", "--saturate", "--duration-s", "2",
      "--kill-at-s", "1", "--data", folder);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toMatch(/another cluster than the one --ca trusts/);
  });
});

describe("charts written into a folder (bench --charts DIR, size --chart)", () => {
  const dir = mkdtempSync(join(tmpdir(), "red2-charts-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("are never written through a symlink planted at a chart's name (another user's link in a shared folder)", async () => {
    const { writeChart } = await import("../../src/sizing/charts.js");
    const victim = join(dir, "victim.rc");
    writeFileSync(victim, "export PATH=/usr/bin\n");
    symlinkSync(victim, join(dir, "report.html"));
    expect(() => writeChart(join(dir, "report.html"), "<!doctype html><p>report</p>")).toThrow(/symlink/);
    expect(readFileSync(victim, "utf8")).toBe("export PATH=/usr/bin\n");
    // An ordinary file is still written (and replaced).
    writeChart(join(dir, "latency.svg"), "<svg></svg>");
    writeChart(join(dir, "latency.svg"), "<svg>2</svg>");
    expect(readFileSync(join(dir, "latency.svg"), "utf8")).toBe("<svg>2</svg>");
  });
});
