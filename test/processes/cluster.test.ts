// The real-time cluster end to end: `hsmsim up` starts a supervisor and one process per HSM
// serving TLS on its own address; a client creates a user and keys; kill -9 of an HSM makes it
// DEGRADED until the supervisor restarts it and it catches up; add/remove/replace; down and up
// bring back the same users and keys, also after kill -9 of everything; a second supervisor on
// the folder is refused; hostile control-socket requests are refused. Every wait is bounded.
import { fork, spawn } from "node:child_process";
import { connect } from "node:net";
import { join } from "node:path";
import { readFileSync, readdirSync, rmSync } from "node:fs";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { entryPoint } from "../../src/net/entry-points.js";
import { EXIT_BAD_CONFIG, EXIT_FATAL, EXIT_IN_USE } from "../../src/net/process-errors.js";
import { ALICE, CO, type TestClient, activate, startClient } from "../net/fixture.js";
import { type Status, alive, cli, cliJson, createKey, members, placement, status, trustAnchorOf, until } from "./helpers.js";

const where = placement();
const dir = where.dir;
let clients: TestClient[] = [];
/** Keys whose creation the cluster acknowledged: every HSM must come to hold them all. */
let keys = 0;

async function newKey(c: TestClient, pinned?: string): Promise<void> {
  try {
    await createKey(c, pinned);
  } catch (e) {
    throw new Error(`${String(e)}\n${await diagnosis(c)}`, { cause: e });
  }
  keys++;
}

/** What a failed write leaves to go on: the client's view and connection failures, and each HSM's log tail. */
async function diagnosis(c: TestClient): Promise<string> {
  const logs = readdirSync(join(dir, "logs")).filter((f) => f.endsWith(".log"))
    .map((f) => `--- ${f}\n${readFileSync(join(dir, "logs", f), "utf8").split("\n").slice(-25).join("\n")}`);
  return [`client: ${JSON.stringify(c.client.health())}`, `transport: ${JSON.stringify(c.transport.stats)}`,
    `connection failures: ${c.errors.map((e) => e.message).join("; ") || "none"}`, ...logs].join("\n");
}

async function client(s: Status): Promise<TestClient> {
  const c = await startClient(members(s)[0].address, trustAnchorOf(dir));
  clients.push(c);
  return c;
}

function closeClients(): void {
  for (const c of clients) c.close();
  clients = [];
}

async function users(c: TestClient): Promise<string[]> {
  const list = (await c.send({ kind: "manage", method: "listUsers", username: CO.username, password: CO.password, args: [] }, { rule: "repeat" })) as { username: string }[];
  return list.map((u) => u.username);
}

const everyHsmHoldsAll = (s: Status) => members(s).every((h) => h.state === "ACTIVE" && h.keyCount === keys);

describe("hsmsim up, status, hsm, down", () => {
  beforeAll(async () => {
    const up = await cli("up", "--data", dir, "--hsms", "3", "--base-address", where.baseAddress, "--port", String(where.port), "--password-cost", "4",
      "--restart-delay-ms", "300", "--json");
    if (up.code !== 0) throw new Error(`up failed: ${up.stderr}${up.stdout}`);
  }, 180_000);

  afterAll(async () => {
    closeClients();
    await cli("down", "--data", dir);
    rmSync(join(dir, ".."), { recursive: true, force: true });
  }, 120_000);

  it("up starts one process per HSM on its own address; status shows states, pids and counts", async () => {
    const s = await status(dir);
    expect(s.running).toBe(true);
    expect(s.state).toBe("INITIALIZED");
    expect(members(s).map((h) => h.address)).toEqual([0, 1, 2].map((i) => `${where.baseAddress.split(".").slice(0, 3).join(".")}.${2 + i}:${where.port}`));
    expect(members(s).map((h) => h.availabilityZone)).toEqual(["az-a", "az-b", "az-c"]);
    for (const h of members(s)) {
      expect(h.state).toBe("ACTIVE");
      expect(alive(h.pid!)).toBe(true);
      expect(h.pid).not.toBe(s.supervisorPid);
      expect(h.userCount).toBe(1); // PRECO only, before activation
    }
    expect(new Set(members(s).map((h) => h.pid)).size).toBe(3);
    expect(s.connect.trustAnchor).toBe(join(dir, "pki", "customerCA.crt"));
  });

  it("a client activates the cluster, creates a user and a key: every HSM holds them; the cluster turns ACTIVE and backs up", async () => {
    const c = await client(await status(dir));
    await activate(c);
    await newKey(c);
    const s = await until(dir, (x) => everyHsmHoldsAll(x) && x.state === "ACTIVE" && x.backups.some((b) => b.trigger === "activation"), "the key on every HSM and an activation backup");
    for (const h of members(s)) expect(h.userCount).toBe(2); // admin (PRECO became the CO) and alice; the appliance user is not counted
    expect(await users(c)).toContain(ALICE.username);
  }, 120_000);

  it("kill -9 of an HSM process: DEGRADED, restarted by the supervisor, and it catches up on what it missed", async () => {
    const before = await status(dir);
    const victim = members(before)[1];
    process.kill(victim.pid!, "SIGKILL");
    // A write while it is down, sent to a survivor (one written to the dead HSM's connection before its close is seen would
    // end OUTCOME_UNKNOWN, by the client's rule for writes): the other two hold it (key availability 2), the victim catches up.
    const c = clients[0];
    await newKey(c, members(before)[0].address);
    const s = await until(dir, (x) => {
      const h = x.hsms.find((m) => m.hsmId === victim.hsmId)!;
      return h.state === "ACTIVE" && h.pid !== victim.pid && h.keyCount === keys;
    }, "the killed HSM restarted with the key it missed");
    const events = s.events.map((e) => e.event);
    const exited = events.findIndex((e) => e.startsWith(`HSM ${victim.hsmId} process exited (SIGKILL)`));
    expect(exited).toBeGreaterThanOrEqual(0);
    expect(events.slice(exited)).toContain(`HSM ${victim.hsmId} DEGRADED`);
    expect(events.slice(exited)).toContain("cluster DEGRADED");
    expect(events.slice(exited).indexOf(`HSM ${victim.hsmId} ACTIVE`)).toBeGreaterThan(events.slice(exited).indexOf(`HSM ${victim.hsmId} DEGRADED`));
    expect(s.state).toBe("ACTIVE");
    expect(s.hsms.find((m) => m.hsmId === victim.hsmId)!.restarts).toBe(1);
    expect(alive(victim.pid!)).toBe(false);
  }, 150_000);

  it("hsm kill through the CLI is a crash too; hsm restart stops and starts it cleanly", async () => {
    const victim = members(await status(dir))[2];
    expect((await cli("hsm", "kill", victim.hsmId, "--data", dir)).code).toBe(0);
    await until(dir, (x) => { const h = x.hsms.find((m) => m.hsmId === victim.hsmId)!; return h.state === "ACTIVE" && h.pid !== victim.pid; }, "the HSM back after hsm kill");
    const again = (await status(dir)).hsms.find((m) => m.hsmId === victim.hsmId)!;
    expect((await cli("hsm", "restart", victim.hsmId, "--data", dir)).code).toBe(0);
    const after = (await status(dir)).hsms.find((m) => m.hsmId === victim.hsmId)!;
    expect(after.state).toBe("ACTIVE");
    expect(after.pid).not.toBe(again.pid);
    expect(after.keyCount).toBe(keys);
  }, 150_000);

  it("hsm add clones a live HSM into a new process and address; remove and replace keep the cluster whole", async () => {
    const added = await cliJson<{ hsmId: string; address: string; availabilityZone: string; keyCount: number }>("hsm", "add", "--data", dir);
    expect(added.address).toBe(`${where.baseAddress.split(".").slice(0, 3).join(".")}.5:${where.port}`);
    await until(dir, everyHsmHoldsAll, "the added HSM holding every key");
    const c = clients[0];
    await newKey(c); // reaches the new HSM too, by replication over TLS
    await until(dir, everyHsmHoldsAll, "the new key on all four HSMs");

    expect((await cli("hsm", "remove", added.hsmId, "--data", dir)).code).toBe(0);
    let s = await status(dir);
    expect(s.hsms.find((h) => h.hsmId === added.hsmId)!.state).toBe("DELETED");
    expect(members(s)).toHaveLength(3);
    expect(s.backups.some((b) => b.trigger === "remove-hsm")).toBe(true);

    const old = members(s)[0];
    const replaced = await cliJson<{ hsmId: string; availabilityZone: string }>("hsm", "replace", old.hsmId, "--data", dir);
    expect(replaced.hsmId).not.toBe(old.hsmId);
    expect(replaced.availabilityZone).toBe(old.availabilityZone);
    s = await until(dir, everyHsmHoldsAll, "the replacement holding every key");
    expect(s.hsms.find((h) => h.hsmId === old.hsmId)!.state).toBe("DELETED");
    expect(alive(old.pid!)).toBe(false);
    // The client follows the membership: it still works with its bootstrap HSM gone.
    await newKey(c);
    await until(dir, everyHsmHoldsAll, "a key made after the replace on every HSM");
    expect((await cli("hsm", "remove", "hsm-0000000000000000", "--data", dir)).code).toBe(1);
  }, 240_000);

  it("a second supervisor on the folder is refused", async () => {
    const { file, execArgv } = entryPoint("supervisor-main");
    const second = spawn(process.execPath, [...execArgv, file, JSON.stringify({ dir })], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    second.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => second.on("exit", (c) => resolve(c)));
    expect(code).toBe(EXIT_IN_USE);
    expect(stderr).toMatch(/another supervisor runs on/);
    expect((await status(dir)).running).toBe(true);
  }, 60_000);

  it("an HSM process on a folder in use exits nonzero with the reason in its log; one given a bad configuration too", async () => {
    const s = await status(dir);
    const running = members(s)[0];
    const { file, execArgv } = entryPoint("hsm-process");
    const logFile = join(dir, "..", "intruder.log");
    const config = {
      dir: join(dir, "hsms", String(running.origin)), clusterId: s.clusterId, address: running.address, availabilityZone: running.availabilityZone,
      certFile: join(dir, "pki", `hsm-${running.origin}.crt`), keyFile: join(dir, "pki", `hsm-${running.origin}.key`), caFile: join(dir, "pki", "customerCA.crt"), logFile,
    };
    const run = (arg: string) => new Promise<number | null>((resolve) => {
      const child = fork(file, [arg], { execArgv, stdio: ["ignore", "ignore", "ignore", "ipc"] });
      child.on("exit", (code) => resolve(code));
    });
    expect(await run(JSON.stringify(config))).toBe(EXIT_FATAL);
    expect(readFileSync(logFile, "utf8")).toMatch(/DATA_FOLDER_IN_USE/);
    expect(await run("{not json")).toBe(EXIT_BAD_CONFIG);
    // The running HSM is untouched.
    const after = (await status(dir)).hsms.find((h) => h.hsmId === running.hsmId)!;
    expect(after.pid).toBe(running.pid);
    expect(after.state).toBe("ACTIVE");
  }, 60_000);

  it("hostile control-socket requests are refused with BAD_REQUEST and the supervisor keeps serving", async () => {
    const lines = [
      "not json", "[]", "null", '{"op":"format-disk"}', '{"op":"kill","hsmId":"../../../etc/passwd"}', '{"op":"status","extra":1}',
      '{"op":"kill"}', '{"op":"add","zone":123}', '{"op":"remove","hsmId":"hsm-0123456789abcdef","__proto__":{"polluted":1}}',
    ];
    const answers = await new Promise<string[]>((resolve, reject) => {
      const socket = connect(join(dir, "control.sock"));
      let got = "";
      const timer = setTimeout(() => reject(new Error(`no answers in time: ${got}`)), 30_000);
      socket.setEncoding("utf8");
      socket.on("data", (d: string) => {
        got += d;
        const all = got.split("\n").filter(Boolean);
        if (all.length >= lines.length) {
          clearTimeout(timer);
          socket.end();
          resolve(all);
        }
      });
      socket.on("error", reject);
      socket.write(lines.map((l) => `${l}\n`).join(""));
    });
    for (const a of answers) expect(JSON.parse(a)).toMatchObject({ ok: false, code: "BAD_REQUEST" });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // A line that never ends past the limit closes that connection only.
    await new Promise<void>((resolve) => {
      const socket = connect(join(dir, "control.sock"));
      socket.on("error", () => {});
      socket.on("data", () => {}); // read the answer, or the end never shows
      socket.on("close", () => resolve());
      socket.write("x".repeat(100_000));
    });
    const s = await status(dir);
    expect(s.running).toBe(true);
    expect(members(s).every((h) => h.state === "ACTIVE")).toBe(true);
  }, 60_000);

  it("down, then up: the same cluster, users and keys; status from cluster.json while down", async () => {
    const before = await status(dir);
    closeClients();
    expect((await cli("down", "--data", dir)).code).toBe(0);
    for (const h of members(before)) expect(alive(h.pid!)).toBe(false);
    expect(alive(before.supervisorPid!)).toBe(false);
    const down = await status(dir);
    expect(down.running).toBe(false);
    expect(down.clusterId).toBe(before.clusterId);
    const text = await cli("status", "--data", dir);
    expect(text.stdout).toMatch(/down: no supervisor runs/);

    expect((await cli("up", "--data", dir, "--json")).code).toBe(0);
    const s = await until(dir, everyHsmHoldsAll, "every HSM back with every key");
    expect(s.clusterId).toBe(before.clusterId);
    expect(members(s).map((h) => h.hsmId)).toEqual(members(before).map((h) => h.hsmId));
    const c = await client(s);
    expect(await users(c)).toContain(ALICE.username);
    await newKey(c);
    await until(dir, everyHsmHoldsAll, "a new key after up");
  }, 240_000);

  it("kill -9 of the supervisor and an HSM: the other HSMs die with the supervisor, and up brings the cluster back", async () => {
    const before = await status(dir);
    closeClients();
    process.kill(members(before)[0].pid!, "SIGKILL");
    process.kill(before.supervisorPid!, "SIGKILL");
    // The other HSM processes are not killed here: they end themselves when their supervisor's channel closes.
    const deadline = Date.now() + 30_000;
    while ([before.supervisorPid!, ...members(before).map((h) => h.pid!)].some(alive)) {
      if (Date.now() > deadline) throw new Error("processes still alive 30 s after kill -9");
      await new Promise((r) => setTimeout(r, 50));
    }
    const up = await cli("up", "--data", dir, "--json");
    expect(up.code, up.stderr).toBe(0);
    const s = await until(dir, everyHsmHoldsAll, "every HSM back with every key");
    expect(s.clusterId).toBe(before.clusterId);
    expect(s.supervisorPid).not.toBe(before.supervisorPid);
    const c = await client(s);
    expect(await users(c)).toContain(ALICE.username);
  }, 240_000);
});
