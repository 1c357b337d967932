// The deterministic simulation: one seed replays a run exactly, a sweep of seeds holds every
// invariant, the checkers catch what they exist to catch, and `hsmsim sim` drives it.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";

import { Hsm } from "../../src/hsm/hsm.js";
import { History, checkAcknowledged, checkAuditChains } from "../../src/sim/invariants.js";
import { runSimulation, sweep } from "../../src/sim/run.js";

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

/** The suite's sweep; the dedicated one (README) runs 1,000 seeds. */
const SUITE_SEEDS = Number(process.env.HSMSIM_SUITE_SEEDS ?? 10);

describe("simulated runs", () => {
  it("one seed replays the same run, event for event", () => {
    const strip = (r: ReturnType<typeof runSimulation>) => JSON.stringify({ ...r, wallMs: 0 });
    const first = runSimulation(7, { workloadUs: 8_000_000 });
    const second = runSimulation(7, { workloadUs: 8_000_000 });
    expect(strip(second)).toBe(strip(first));
    expect(first.counts.attempted).toBeGreaterThan(50);
    expect(strip(runSimulation(8, { workloadUs: 8_000_000 }))).not.toBe(strip(first));
  });

  it(`holds every invariant over a sweep of ${SUITE_SEEDS} seeds with faults`, async () => {
    const result = await sweep(1000, SUITE_SEEDS);
    expect(result.failed.map((r) => ({ seed: r.seed, violations: r.violations.slice(0, 3) }))).toEqual([]);
    expect(result.runsPerSecond).toBeGreaterThan(0);
  });

  it("exercises the faults it claims: crashes, partitions, loss, lockouts, acknowledged writes", () => {
    const totals = { crashes: 0, partitions: 0, lost: 0, acknowledged: 0, lockedRefusals: 0, unknown: 0, cleanCalls: 0, sessionObjectFinds: 0,
      foreignFinds: 0 };
    for (let seed = 2000; seed < 2006; seed++) {
      const r = runSimulation(seed, { workloadUs: 10_000_000 });
      expect(r.ok).toBe(true);
      totals.crashes += r.faults.crashes;
      totals.partitions += r.faults.partitions;
      totals.lost += r.network.lost;
      totals.acknowledged += r.counts.acknowledged;
      totals.lockedRefusals += r.counts.lockedRefusals;
      totals.unknown += r.counts.unknown;
      totals.cleanCalls += r.liveness.clean;
      totals.sessionObjectFinds += r.counts.sessionObjectFinds;
      totals.foreignFinds += r.counts.foreignFinds;
      expect(r.convergenceUs).toBeGreaterThanOrEqual(0);
    }
    for (const [name, value] of Object.entries(totals)) expect(value, name).toBeGreaterThan(0);
  });
});

describe("the checkers catch violations", () => {
  it("a use without ownership or share, and a use after the user's client saw the delete", () => {
    const history = new History();
    history.keyCreated(10, "alice");
    history.used(10, "bob", "bob-app", history.tick(), "test");
    expect(history.violations.map((v) => v.invariant)).toEqual(["unauthorized-use"]);
    history.revoke(10, "alice-app", "delete", history.tick());
    // Another client of alice's had not seen the delete: its use is not a violation; this one's is.
    history.used(10, "alice", "alice-laptop", history.tick(), "test");
    history.used(10, "alice", "alice-app", history.tick(), "test");
    expect(history.violations.map((v) => v.invariant)).toEqual(["unauthorized-use", "deleted-key-used"]);
    // An unshare may lose to a share attempted while it ran (last writer wins); not to one before it.
    history.keyCreated(20, "alice");
    const unshareStarted = history.tick();
    history.grant(20, "bob");
    history.grantSettled(20, "bob");
    history.revoke(20, "bob-app", "unshare", unshareStarted);
    history.used(20, "bob", "bob-app", history.tick(), "test");
    expect(history.violations).toHaveLength(2);
    history.revoke(20, "bob-app", "unshare", history.tick());
    history.used(20, "bob", "bob-app", history.tick(), "test");
    expect(history.violations.map((v) => v.invariant)).toEqual(["unauthorized-use", "deleted-key-used", "deleted-key-used"]);
    history.keyCreated(10, "carol");
    expect(history.violations.at(-1)?.invariant).toBe("key-id-reused");
  });

  it("an acknowledged write missing from an HSM, a login past the lockout, and a broken audit chain", () => {
    const dir = mkdtempSync(join(tmpdir(), "hsmsim-checkers-"));
    dirs.push(dir);
    // This HSM allows 10 failures; the checker holds it to 5.
    const hsm = Hsm.create(join(dir, "h"), { passwordCost: 1, maxLoginFailures: 10 });
    const preco = hsm.login("admin", "password");
    hsm.changePassword(preco, "admin", "officer-pass-1");
    const history = new History();
    history.acknowledge({ origin: 1, seq: 99, version: 5, subject: "user:ghost" }, "a write nobody made");
    expect(checkAcknowledged(history, [hsm]).map((v) => v.invariant)).toEqual(["acknowledged-change-lost"]);
    // Held (the activation's entries are origin 0, seq 1–3) but at a lower version than acknowledged.
    const lower = new History();
    lower.acknowledge({ origin: 0, seq: 1, version: 2 ** 40, subject: "user:admin" }, "a write the HSM lost");
    expect(checkAcknowledged(lower, [hsm]).map((v) => v.detail)).toEqual([expect.stringMatching(/user:admin is at version \d+, below/)]);
    for (let i = 0; i < 6; i++) expect(() => hsm.login("admin", "wrong-password")).toThrow();
    hsm.login("admin", "officer-pass-1");
    hsm.close();
    const folders = [{ hsmId: "h", dir: join(dir, "h") }];
    expect(checkAuditChains(folders).map((v) => v.invariant)).toEqual(["locked-account-logged-in"]);
    const db = new Database(join(dir, "h", "hsm.db"));
    db.prepare("UPDATE audit SET detail = 'edited' WHERE seq = 3").run();
    db.close();
    expect(checkAuditChains(folders, 100).map((v) => v.invariant)).toEqual(["audit-chain-broken"]);
  });
});

describe("hsmsim sim", () => {
  const main = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "src", "cli", "main.ts");
  const run = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", main, "sim", ...args], { encoding: "utf8" });

  it("runs one seed and reports it; runs a sweep with runs per second; refuses bad numbers", () => {
    const one = run("--seed", "5");
    expect(one.status).toBe(0);
    expect(one.stdout).toMatch(/seed 5: every invariant holds/);
    expect(one.stdout).toMatch(/converged/);
    const many = run("--seeds", "2", "--from", "40", "--json");
    expect(many.status).toBe(0);
    const summary = JSON.parse(many.stdout);
    expect(summary).toMatchObject({ from: 40, runs: 2, failedSeeds: [] });
    expect(summary.runsPerSecond).toBeGreaterThan(0);
    expect(run("--seed", "x").status).toBe(2);
    expect(run("--seeds", "0").status).toBe(2);
  });
});
