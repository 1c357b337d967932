// A performance profile in real HSM processes: `hsmsim up --profile FILE` makes every HSM serve
// at the profile's rate on its engines with a bounded queue. Under the queue every call
// succeeds and no HSM answers busy; a burst beyond it gets busy answers, which the client
// retries (on the pinned HSM) and, with its retries exhausted, reports as CKR_FUNCTION_FAILED.
// The profile survives a crash restart and down/up; bad profiles are refused before anything
// starts. No timing thresholds: outcomes and counters only.
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import * as P from "../../src/index.js";
import { main } from "../../src/cli/main.js";
import { OPERATION_CLASSES, type OperationCost } from "../../src/cluster/service-profile.js";
import { type Status, cli, cliJson, members, placement, status, until } from "./helpers.js";

const where = placement();
const dir = where.dir;
const profileFile = join(dir, "..", "slow.json");
const CU = { username: "loadtest", password: "loadtest-password-1" };
/** Per HSM: one engine, 4 requests held; an ECDSA sign takes 40 ms of engine time, everything else none. */
const ENGINE_MS = 40;
const QUEUE = 4;

function slowProfile(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const costs: Record<string, OperationCost> = {};
  for (const c of OPERATION_CLASSES) costs[c] = { serviceUs: 0, perKiBUs: 0, contention: 0, coherency: 0 };
  costs["ecdsa-p256-sign"] = { serviceUs: ENGINE_MS * 1000, perKiBUs: 0, contention: 0, coherency: 0 };
  return { type: "slow-test", engines: 1, queueCapacity: QUEUE, timeDilation: 1, distribution: "fixed", costs, ...overrides };
}

const upArgs = () => ["up", "--data", dir, "--hsms", "2", "--base-address", where.baseAddress, "--port", String(where.port), "--password-cost", "4",
  "--restart-delay-ms", "200", "--profile", profileFile];
const busyOf = (s: Status) => members(s).reduce((sum, h) => sum + (h.busy ?? Number.NaN), 0);

let connection: P.RemoteConnection | undefined;
let pkcs11: P.PKCS11;
let privateKey: Buffer;
let publicKey: Buffer;
const digest = Buffer.alloc(32, 9);

function openSession(): Buffer {
  return pkcs11.C_OpenSession(pkcs11.C_GetSlotList(true)[0], P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
}

/** One sign: the Init (the HSMs' control path, sync: one round trip), then C_Sign async (engine time). */
function sign(session: Buffer): Promise<Buffer> {
  pkcs11.C_SignInit(session, { mechanism: P.CKM_ECDSA }, privateKey);
  return pkcs11.C_SignAsync(session, digest, Buffer.alloc(64));
}

function verifies(signature: Buffer): boolean {
  const session = openSession();
  try {
    pkcs11.C_VerifyInit(session, { mechanism: P.CKM_ECDSA }, publicKey);
    return pkcs11.C_Verify(session, digest, signature);
  } finally {
    pkcs11.C_CloseSession(session);
  }
}

describe("hsmsim up with a performance profile", () => {
  beforeAll(async () => {
    writeFileSync(profileFile, JSON.stringify(slowProfile()));
    const up = await cli(...upArgs(), "--json");
    if (up.code !== 0) throw new Error(`up failed: ${up.stderr}${up.stdout}`);
    const s = await status(dir);
    connection = P.connect({ address: members(s)[0].address, trustAnchor: s.connect.trustAnchor });
    connection.console("admin", "password").changePassword("admin", "admin-password-1");
    connection.console("admin", "admin-password-1").createUser(CU.username, "CU", CU.password);
    pkcs11 = connection.pkcs11();
    const session = openSession();
    pkcs11.C_Login(session, P.CKU_USER, `${CU.username}:${CU.password}`);
    // Token keys: every HSM holds them, so any HSM may serve a sign.
    const pair = pkcs11.C_GenerateKeyPair(session, { mechanism: P.CKM_EC_KEY_PAIR_GEN },
      [{ type: P.CKA_EC_PARAMS, value: Buffer.from("06082a8648ce3d030107", "hex") }, { type: P.CKA_VERIFY, value: true }, { type: P.CKA_TOKEN, value: true }],
      [{ type: P.CKA_SIGN, value: true }, { type: P.CKA_TOKEN, value: true }]);
    privateKey = pair.privateKey;
    publicKey = pair.publicKey;
    await until(dir, (x) => members(x).every((h) => h.keyCount === 2), "the key pair on both HSMs");
  }, 180_000);

  afterAll(async () => {
    connection?.close();
    await cli("down", "--data", dir);
    rmSync(join(dir, ".."), { recursive: true, force: true });
  }, 120_000);

  it("status shows the profile; each HSM process logs the profile it serves", async () => {
    const s = await status(dir);
    expect(s.profile).toEqual({ type: "slow-test", timeDilation: 1, engines: 1, queueCapacity: QUEUE });
    const text = await cli("status", "--data", dir);
    expect(text.stdout).toMatch(/profile slow-test, no time dilation, 1 engine and a queue of 4 per HSM/);
    for (const h of members(s)) expect(readFileSync(join(dir, "logs", `${h.hsmId}.log`), "utf8")).toMatch(/"profile":"slow-test"/);
  });

  it("under the queue every sign succeeds and no HSM answers busy", async () => {
    const before = busyOf(await status(dir));
    expect(before).toBe(0);
    // 4 lanes, one sign each in flight: at most 4 requests held by the two HSMs together.
    const lanes = Array.from({ length: QUEUE }, () => openSession());
    const signatures = (await Promise.all(lanes.map(async (session) => {
      const out: Buffer[] = [];
      for (let i = 0; i < 5; i++) out.push(await sign(session));
      return out;
    }))).flat();
    expect(signatures).toHaveLength(20);
    for (const s of signatures) expect(verifies(s)).toBe(true);
    expect(busyOf(await status(dir))).toBe(before);
    for (const session of lanes) pkcs11.C_CloseSession(session);
  });

  it("hsmsim bench --against drives it: no failure within the queue, the dilation correction exact, the charts written", async () => {
    const s = await status(dir);
    const chartsDir = join(dir, "..", "charts");
    const servedBefore = members(s).reduce((sum, h) => sum + h.served!, 0);
    type Bench = { measured: { completed: number; failed: number; throughputPerSec: number }; dilated: { throughputPerSec: number }; timeDilation: number; charts: string[] };
    const ran = await cliJson<Bench>("bench", "--against", members(s)[0].address, "--ca", s.connect.trustAnchor, "--user", `${CU.username}:${CU.password}`,
      "--op", "ecdsa-p256-sign", "--saturate", "--concurrency", String(QUEUE), "--duration-s", "1", "--warmup-s", "0.2", "--time-dilation", "2", "--charts", chartsDir);
    expect(ran.timeDilation).toBe(2);
    expect(ran.measured.completed).toBeGreaterThan(0);
    expect(ran.measured.failed).toBe(0); // never more in flight than one HSM's queue holds
    expect(ran.dilated.throughputPerSec).toBeCloseTo(ran.measured.throughputPerSec * 2, 9);
    // Every completed sign was an engine's work at an HSM (its Init too, on the control path).
    const servedAfter = members(await status(dir)).reduce((sum, h) => sum + h.served!, 0);
    expect(servedAfter - servedBefore).toBeGreaterThanOrEqual(2 * ran.measured.completed);
    expect(ran.charts.map((f) => f.slice(chartsDir.length + 1)).sort()).toEqual(["latency.svg", "report.html", "timeline.svg"]);
    for (const f of ran.charts) expect(readFileSync(f, "utf8")).toMatch(f.endsWith(".svg") ? /^<svg/ : /^<!doctype html>/i);
  }, 120_000);

  it("hsmsim bench --against shows a live line on a terminal and prints the table with the dilation beside every figure", async () => {
    const s = await status(dir);
    let stdout = "", stderr = "";
    const code = await main(["bench", "--against", members(s)[0].address, "--ca", s.connect.trustAnchor, "--user", `${CU.username}:${CU.password}`,
      "--saturate", "--concurrency", "2", "--duration-s", "1.5", "--warmup-s", "0", "--time-dilation", "3"],
    { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t), isTTY: true, columns: 200 }, env: process.env });
    expect(code).toBe(0);
    expect(stderr).toMatch(/bench {2}.*measuring: \d+ ops\/s, p99 [\d.-]+ ms \(×3 dilation corrected\), \d+ in flight/);
    expect(stdout).toMatch(/ops\/s ×3 +p50 ms ÷3 +p95 ms ÷3 +p99 ms ÷3/);
    expect(stdout).toMatch(/throughput \d+ ops\/s \(×3: time-dilated cluster, rates × 3, latencies ÷ 3\)/);
    expect(stdout).toMatch(/client CPU: \d+% of one core/);
  }, 120_000);

  it("a burst beyond the queue: busy answers, retried by the client, CKR_FUNCTION_FAILED once the retries run out", async () => {
    const before = busyOf(await status(dir));
    const burst = 40;
    const sessions = Array.from({ length: burst }, () => openSession());
    for (const session of sessions) pkcs11.C_SignInit(session, { mechanism: P.CKM_ECDSA }, privateKey);
    // Every C_Sign at once: 2 HSMs hold 4 each; the others are refused busy.
    const outcomes = await Promise.allSettled(sessions.map((session) => pkcs11.C_SignAsync(session, digest, Buffer.alloc(64))));
    const succeeded = outcomes.flatMap((o) => (o.status === "fulfilled" ? [o.value] : []));
    const failed = outcomes.flatMap((o) => (o.status === "rejected" ? [o.reason as Error] : []));
    for (const e of failed) {
      expect(e).toBeInstanceOf(P.Pkcs11Error);
      expect((e as P.Pkcs11Error).code).toBe(P.CKR_FUNCTION_FAILED);
      expect((e as P.Pkcs11Error).detail).toMatch(/busy/);
    }
    for (const s of succeeded) expect(verifies(s)).toBe(true);
    // What the queues held was served; the rest could not all get in within 3 retries.
    expect(succeeded.length).toBeGreaterThanOrEqual(QUEUE);
    expect(failed.length).toBeGreaterThan(0);
    // Each failed sign was refused busy on its first try and on each of its 3 retries.
    expect(busyOf(await status(dir)) - before).toBeGreaterThanOrEqual(4 * failed.length);
    for (const session of sessions) pkcs11.C_CloseSession(session);
  });

  it("a crashed HSM restarts with the same profile", async () => {
    const victim = members(await status(dir))[1];
    expect((await cli("hsm", "kill", victim.hsmId, "--data", dir)).code).toBe(0);
    await until(dir, (x) => { const h = x.hsms.find((m) => m.hsmId === victim.hsmId)!; return h.state === "ACTIVE" && h.pid !== victim.pid && h.busy !== undefined; },
      "the killed HSM back");
    const starts = readFileSync(join(dir, "logs", `${victim.hsmId}.log`), "utf8").split("\n").filter((l) => l.includes('"HSM started"'));
    expect(starts.length).toBe(2);
    for (const line of starts) expect(JSON.parse(line)).toMatchObject({ profile: "slow-test", timeDilation: 1 });
  });

  it("bench --against --kill-at-s kills an HSM at peak through the supervisor and draws the failover chart", async () => {
    const s = await status(dir);
    const chartsDir = join(dir, "..", "failover");
    type Bench = { killed: { hsmId: string; atSec: number } | null; charts: string[]; measured: { completed: number } };
    const ran = await cliJson<Bench>("bench", "--against", members(s)[0].address, "--ca", s.connect.trustAnchor, "--user", `${CU.username}:${CU.password}`,
      "--saturate", "--concurrency", "2", "--duration-s", "2", "--warmup-s", "0.2", "--kill-at-s", "0.5", "--data", dir, "--charts", chartsDir);
    expect(members(s).map((h) => h.hsmId)).toContain(ran.killed?.hsmId);
    expect(ran.killed?.atSec).toBeCloseTo(0.7, 9);
    expect(ran.charts.map((f) => f.slice(chartsDir.length + 1)).sort()).toEqual(["failover.svg", "latency.svg", "report.html"]);
    expect(readFileSync(join(chartsDir, "failover.svg"), "utf8")).toMatch(/HSM killed at 0\.7 s/);
    // The supervisor brings it back, at the same profile.
    await until(dir, (x) => members(x).every((h) => h.state === "ACTIVE" && h.busy !== undefined) && x.hsms.find((h) => h.hsmId === ran.killed!.hsmId)!.pid !== null
      && x.hsms.find((h) => h.hsmId === ran.killed!.hsmId)!.pid !== s.hsms.find((h) => h.hsmId === ran.killed!.hsmId)!.pid, "the killed HSM back");
  }, 120_000);

  it("an added HSM serves at the cluster's profile", async () => {
    const added = await cliJson<{ hsmId: string }>("hsm", "add", "--data", dir);
    await until(dir, (x) => x.hsms.some((h) => h.hsmId === added.hsmId && h.state === "ACTIVE" && h.busy !== undefined), "the added HSM answering");
    const starts = readFileSync(join(dir, "logs", `${added.hsmId}.log`), "utf8").split("\n").filter((l) => l.includes('"HSM started"'));
    expect(starts.length).toBe(1);
    expect(JSON.parse(starts[0])).toMatchObject({ profile: "slow-test", timeDilation: 1 });
  }, 120_000);

  it("the speed is not state: a running cluster refuses a new one; a stopped one takes it at up and keeps it after", async () => {
    const onRunning = await cli("up", "--data", dir, "--time-dilation", "3");
    expect(onRunning.code).toBe(2);
    expect(onRunning.stderr).toMatch(/is running: its speed changes at the next start/);
    connection?.close();
    connection = undefined;
    expect((await cli("down", "--data", dir)).code).toBe(0);
    // Dilation alone keeps the recorded profile and replaces its dilation.
    const up = await cliJson<Status>("up", "--data", dir, "--time-dilation", "3");
    expect(up.profile).toEqual({ type: "slow-test", timeDilation: 3, engines: 1, queueCapacity: QUEUE });
    const recorded = JSON.parse(readFileSync(join(dir, "cluster.json"), "utf8")) as { profile: { costs: Record<string, OperationCost> } };
    expect(recorded.profile.costs["ecdsa-p256-sign"].serviceUs).toBe(ENGINE_MS * 1000);
    for (const h of members(up)) {
      const lines = readFileSync(join(dir, "logs", `${h.hsmId}.log`), "utf8").split("\n").filter((l) => l.includes('"HSM started"'));
      expect(JSON.parse(lines[lines.length - 1])).toMatchObject({ profile: "slow-test", timeDilation: 3 });
    }
    // And a plain up after down keeps it.
    expect((await cli("down", "--data", dir)).code).toBe(0);
    expect((await cliJson<Status>("up", "--data", dir)).profile).toMatchObject({ type: "slow-test", timeDilation: 3 });
  }, 180_000);
});

describe("hsmsim up refuses a bad profile before creating anything", () => {
  const scratch = placement();
  const bad = join(scratch.dir, "..", "bad.json");
  afterAll(() => rmSync(join(scratch.dir, ".."), { recursive: true, force: true }));

  const upWith = (...speed: string[]) => cli("up", "--data", scratch.dir, "--hsms", "2", "--base-address", scratch.baseAddress, "--port", String(scratch.port), ...speed);

  it.each([
    ["a negative service time", slowProfile({ costs: { ...(slowProfile().costs as object), "ecdsa-p256-sign": { serviceUs: -1, perKiBUs: 0, contention: 0, coherency: 0 } } }), /costs\.ecdsa-p256-sign\.serviceUs/],
    ["no engines", slowProfile({ engines: 0 }), /engines must be an integer/],
    ["an unknown operation class", slowProfile({ costs: { ...(slowProfile().costs as object), "rsa-4096-sign": { serviceUs: 1, perKiBUs: 0, contention: 0, coherency: 0 } } }), /costs\.rsa-4096-sign/],
    ["a missing distribution", slowProfile({ distribution: undefined }), /distribution/],
    ["an array", [1, 2], /the profile must be an object/],
  ])("%s: exit 2 naming the field", async (_what, profile, message) => {
    writeFileSync(bad, JSON.stringify(profile));
    const ran = await upWith("--profile", bad);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toMatch(message);
    expect(existsSync(join(scratch.dir, "cluster.json"))).toBe(false);
  });

  it("a file that is not JSON, a missing file, a bad dilation: exit 2", async () => {
    writeFileSync(bad, "{ not json");
    expect((await upWith("--profile", bad)).stderr).toMatch(/not JSON/);
    const missing = await upWith("--profile", join(scratch.dir, "..", "nope.json"));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/hsm1\.medium, hsm2m\.medium, unlimited or a JSON profile file/);
    for (const k of ["0.5", "0", "-2", "x", "1e9", "2000000"]) {
      const ran = await upWith(`--time-dilation=${k}`);
      expect(ran.code).toBe(2);
      expect(ran.stderr).toMatch(/--time-dilation takes a number from 1/);
    }
    expect(existsSync(join(scratch.dir, "cluster.json"))).toBe(false);
  });
});
