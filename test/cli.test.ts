// The hsmsim command: the demo `npm start` runs, the mechanism list, errors.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

const main = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.ts");
const run = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", main, ...args], { encoding: "utf8" });

describe("hsmsim command", () => {
  it("demo walks through the chip, the HSM device, a 3-HSM cluster with a failure, cloning and NAT, and a real cluster", () => {
    const result = run("demo");
    expect(result.status, result.stderr).toBe(0);
    for (const text of ['decrypted: "Attack at dawn"', "one flipped bit: CKR_ENCRYPTED_DATA_INVALID", "verify original: true",
      "CKR_SIGNATURE_INVALID", "original and unwrapped key encrypt alike: true", "CKR_KEY_UNEXTRACTABLE",
      "wrong PIN #5: CKR_PIN_INCORRECT; token flags: USER_PIN_LOCKED", "right PIN now: CKR_PIN_LOCKED", "AES-256-GCM encrypt 4 KiB",
      "before activation, PRECO creating a user: NOT_ACTIVATED", "C_Login as admin → CKR_USER_TYPE_INVALID",
      'key 1 "payments": owner alice, shared with bob', "bob deletes it: CKR_ACTION_PROHIBITED",
      "bob with the right password now: ACCOUNT_LOCKED", "chain verified",
      "cluster ACTIVE; every HSM activated: true", "300/300 round trips correct", "DEGRADED, cluster DEGRADED",
      "alice's key still works: true", "cannot fail over to them", "crashed → CKR_DEVICE_ERROR", "the directly connected client carries on",
      "every invariant holds", "The cluster in real time", "activated the cluster, created alice, logged in", " after it, 0 errors",
      "the app's bootstrap address) mid-run"]) {
      expect(result.stdout).toContain(text);
    }
    // The real cluster's part: round trips succeeded after the kill; its processes and folder are gone.
    expect(Number(/ (\d+) in the 1\.5 s after it, 0 errors/.exec(result.stdout)![1])).toBeGreaterThan(0);
    const root = /processes gone \(supervisor, HSMs, app\); (\S+) removed/.exec(result.stdout)![1];
    expect(existsSync(root)).toBe(false);
  }, 240_000);

  it("the demo sizes a cluster for the SaaS provider's peak and checks it with one HSM killed at peak", () => {
    const result = run("demo", "--simulated-only");
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/model: 3 hsm2m\.medium HSMs, \$3,176 a month/);
    const run1 = /discrete-event run \(3 HSMs, seed 1, 1 s at peak, HSM \S+ killed at 0\.5 s\): ([\d,]+) operations, (\d+) failed; ([\d,]+) ops\/s served after the kill/.exec(result.stdout);
    expect(run1, result.stdout).not.toBeNull();
    expect(Number(run1![2])).toBe(0);
    // The survivors carry the whole 12,500 ops/s peak (the one spare's promise), within 5%.
    expect(Math.abs(Number(run1![3].replace(/,/g, "")) / 12_500 - 1)).toBeLessThan(0.05);
    // KMS over the simulated cluster, through the real SDK: a key in the HSMs, a grant, its revocation, a disconnect.
    expect(result.stdout).toMatch(/key store cks-[0-9a-f]{17} over cluster \S+ \(3 HSMs, 3 zones\): CONNECTED/);
    expect(result.stdout).toContain(`with the grant: Encrypt and Decrypt in the HSMs → "a customer's record"`);
    expect(result.stdout).toContain("without the grant's context: AccessDeniedException");
    expect(result.stdout).toContain("the provider's next Decrypt: AccessDeniedException");
    expect(result.stdout).toContain("key Unavailable; its own Decrypt: KMSInvalidStateException");
  }, 120_000);

  it("audit prints, filters and verifies a data folder's log, and refuses a missing folder", () => {
    const demo = run("demo", "--simulated-only");
    expect(demo.stdout).not.toContain("The cluster in real time");
    const dir = /hsmsim audit (\S+)/.exec(demo.stdout)![1];
    const all = run("audit", dir);
    expect(all.status).toBe(0);
    expect(all.stdout).toContain("CREATE_USER");
    const logins = JSON.parse(run("audit", dir, "--json", "--op", "login", "--user", "bob").stdout) as { verified: { ok: boolean }; entries: { operation: string; actor: string }[] };
    expect(logins.verified.ok).toBe(true);
    expect(logins.entries.length).toBeGreaterThan(5);
    expect(logins.entries.every((e) => e.operation === "LOGIN" && e.actor === "bob")).toBe(true);
    const missing = run("audit", join(dir, "nope"));
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain("not a usable hsmsim HSM data folder");
  });

  it("lists mechanisms as JSON", () => {
    const result = run("mechanisms", "--json");
    expect(result.status).toBe(0);
    const list = JSON.parse(result.stdout) as { mechanism: string }[];
    expect(list.map((m) => m.mechanism)).toContain("CKM_AES_GCM");
  });

  it("answers an unknown command with usage and exit code 2", () => {
    const result = run("launch-missiles");
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("unknown command 'launch-missiles'");
    expect(run("bench", "--ms", "fast").status).toBe(2);
  });

  it("is strict from the real entry point: a typo is exit code 2 with the command's usage; --version is the package's", () => {
    const typo = run("sim", "--sed", "7");
    expect(typo.status).toBe(2);
    expect(typo.stdout).toBe("");
    expect(typo.stderr).toContain("hsmsim sim: unknown option '--sed' (did you mean '--seed'?)");
    expect(typo.stderr).toContain("usage: hsmsim sim [<merge FILE>...] [options]");
    const both = run("sim", "--seed", "1", "--seeds", "2");
    expect(both.status).toBe(2);
    expect(both.stderr).toContain("--seed and --seeds cannot be given together");
    const version = run("--version");
    expect(version.status).toBe(0);
    const pkg = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), "..", "package.json"), "utf8")) as { version: string };
    expect(version.stdout).toBe(`${pkg.version}\n`);
  });

  it("a piped seed sweep prints its results and no progress line", () => {
    const sweep = run("sim", "--seeds", "2", "--from", "3");
    expect(sweep.status).toBe(0);
    expect(sweep.stdout).toContain("2 runs (seeds 3–4): 0 failed");
    expect(sweep.stdout + sweep.stderr).not.toContain("\r");
  });
});
