// Red team 2 of the KMS endpoint (issue 11): custom key stores over a simulated cluster, the data
// folder, `hsmsim audit --kms`. Each test is an attack that succeeds today: it fails until fixed.
import {
  ConnectCustomKeyStoreCommand, CreateCustomKeyStoreCommand, DeleteCustomKeyStoreCommand, DescribeCustomKeyStoresCommand,
  DisconnectCustomKeyStoreCommand, CreateKeyCommand, EncryptCommand, ScheduleKeyDeletionCommand, CreateGrantCommand, RevokeGrantCommand,
} from "@aws-sdk/client-kms";
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

import { runKmsAudit } from "../../src/cli/kms-audit.js";
import { alive, cli, placement, status } from "../processes/helpers.js";
import { TRAIL_DIGESTS_FILE, TRAIL_FILE, verifyTrail } from "../../src/kms/trail.js";
import { simClusterDirectory, simTrustAnchorPem } from "../../src/kms/cluster-directory.js";
import { CustomKeyStores } from "../../src/kms/custom-key-stores.js";
import type { CustomKeyStoreRecord } from "../../src/kms/types.js";
import { CO, activeWorld } from "../cluster/fixture.js";
import { counterBytes, fakeFleet, fakeStore } from "../kms/cks-fakes.js";
import { OWNER, SAAS, STRANGER, failure, startKmsFixture } from "../kms/kms-fixture.js";

const KMSUSER_PASSWORD = "kmsuser-pass-1";

describe("red team 2: custom key stores", () => {
  it("another account cannot attach a key store to the owner's cluster, squat it, or lock out its kmsuser", async () => {
    const world = activeWorld({ seed: "kred2-squat" });
    world.connect("co").console(CO.username, CO.password).createUser("kmsuser", "CU", KMSUSER_PASSWORD);
    const kms = await startKmsFixture({ clusters: simClusterDirectory(world) });
    const owner = kms.client(OWNER);
    const stranger = kms.client(STRANGER);
    const clusterInput = { CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world) };

    // The stranger names the owner's cluster (its id and its public trust anchor are all it needs).
    const attempt = await stranger.send(new CreateCustomKeyStoreCommand({ CustomKeyStoreName: "not-mine", ...clusterInput, KeyStorePassword: "guess-000" }))
      .then((r) => ({ ok: true as const, id: r.CustomKeyStoreId! }), (e: Error) => ({ ok: false as const, name: e.name }));
    if (attempt.ok) {
      // While it exists, the owner cannot create its own store over its own cluster.
      const squatted = await owner.send(new CreateCustomKeyStoreCommand({ CustomKeyStoreName: "mine", ...clusterInput, KeyStorePassword: KMSUSER_PASSWORD }))
        .then(() => "created", (e: Error) => e.name);
      // Each connection with a guessed password is a failed kmsuser login on the HSMs: five lock it.
      // (Counters are per HSM: the stranger keeps going until its store reports the lockout.)
      let locked = 0;
      for (let i = 0; i < 40 && locked < 3; i++) {
        await stranger.send(new ConnectCustomKeyStoreCommand({ CustomKeyStoreId: attempt.id }));
        await kms.endpoint.settled(attempt.id);
        const code = (await stranger.send(new DescribeCustomKeyStoresCommand({ CustomKeyStoreId: attempt.id }))).CustomKeyStores![0].ConnectionErrorCode;
        await stranger.send(new DisconnectCustomKeyStoreCommand({ CustomKeyStoreId: attempt.id }));
        locked = code === "USER_LOCKED_OUT" ? locked + 1 : 0;
      }
      await stranger.send(new DeleteCustomKeyStoreCommand({ CustomKeyStoreId: attempt.id }));
      const mine = (await owner.send(new CreateCustomKeyStoreCommand({ CustomKeyStoreName: "mine", ...clusterInput, KeyStorePassword: KMSUSER_PASSWORD }))).CustomKeyStoreId!;
      await owner.send(new ConnectCustomKeyStoreCommand({ CustomKeyStoreId: mine }));
      await kms.endpoint.settled(mine);
      const state = (await owner.send(new DescribeCustomKeyStoresCommand({ CustomKeyStoreId: mine }))).CustomKeyStores![0];
      // Reported together so the whole attack shows in one failure.
      expect({ strangerCreated: true, ownerCreateWhileSquatted: squatted, ownerStore: [state.ConnectionState, state.ConnectionErrorCode] })
        .toEqual({ strangerCreated: false, ownerCreateWhileSquatted: "created", ownerStore: ["CONNECTED", undefined] });
    }
    // AWS: a cluster of another account is not found for the caller.
    expect(attempt).toEqual({ ok: false, name: "CloudHsmClusterNotFoundException" });
  });
});

describe("red team 2: kmsuser's password rotation", () => {
  it("a crash between the cluster's password change and the store's write does not lose kmsuser's password (write-ahead)", async () => {
    const world = activeWorld({ seed: "kred2-rotation" });
    world.connect("co").console(CO.username, CO.password).createUser("kmsuser", "CU", KMSUSER_PASSWORD);
    const rows = fakeStore();
    const fleet = fakeFleet();
    const directory = simClusterDirectory(world);
    // The first process: it dies (kill -9) at the moment it would record CONNECTED, after the
    // cluster changed kmsuser's password; nothing it writes after that lands.
    let dead = false;
    const dying = Object.create(rows) as typeof rows;
    dying.putCustomKeyStore = (r: CustomKeyStoreRecord) => {
      if (dead) throw new Error("the process is gone");
      if (r.connectionState === "CONNECTED") {
        dead = true;
        throw new Error("kill -9");
      }
      rows.putCustomKeyStore(r);
    };
    const first = new CustomKeyStores({ store: dying, fleet, directory, nowMs: () => 0, randomBytes: counterBytes() });
    const input = { CustomKeyStoreName: "S", CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world), KeyStorePassword: KMSUSER_PASSWORD };
    const { CustomKeyStoreId: id } = first.create(OWNER.accountId, input);
    first.connect(OWNER.accountId, id);
    await first.settled(id);
    expect(dead).toBe(true);

    // The next start resumes the store from what was durable.
    const second = new CustomKeyStores({ store: rows, fleet, directory, nowMs: () => 0, randomBytes: counterBytes() });
    second.resume();
    await second.settled(id);
    const row = rows.rows.get(id)!;
    expect([row.connectionState, row.connectionErrorCode]).toEqual(["CONNECTED", null]);
    await second.close();
  });
});

describe("red team 2: kmsuser's password rotation under an HSM outage", () => {
  it("the HSMs unreachable for a moment while ConnectCustomKeyStore rotates the password: once they are back, the store connects again", async () => {
    // The outage starts at each of these virtual instants (µs) after the connection attempt
    // begins; some fall after the cluster took the new password and before KMS stored it.
    const outcomes: string[] = [];
    for (let atUs = 6_000; atUs <= 16_000; atUs += 1_000) {
      const world = activeWorld({ seed: "kred2-fault" });
      world.connect("co").console(CO.username, CO.password).createUser("kmsuser", "CU", KMSUSER_PASSWORD);
      const rows = fakeStore();
      const stores = new CustomKeyStores({ store: rows, fleet: fakeFleet(), directory: simClusterDirectory(world), nowMs: () => 0, randomBytes: counterBytes() });
      const { CustomKeyStoreId: id } = stores.create(OWNER.accountId, {
        CustomKeyStoreName: "S", CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world), KeyStorePassword: KMSUSER_PASSWORD,
      });
      stores.connect(OWNER.accountId, id);
      const addresses = world.cluster.addresses();
      world.clock.schedule(atUs, () => addresses.forEach((a) => world.network.setDown(a, true)));
      await stores.settled(id);
      addresses.forEach((a) => world.network.setDown(a, false));
      world.run(5_000_000);
      if (stores.connectionState(id) !== "CONNECTED") {
        // What an operator does once the cluster answers again: disconnect, connect.
        await stores.disconnect(OWNER.accountId, id);
        stores.connect(OWNER.accountId, id);
        await stores.settled(id);
      }
      const row = rows.rows.get(id)!;
      outcomes.push(`${atUs}: ${row.connectionState}${row.connectionErrorCode ? ` ${row.connectionErrorCode}` : ""}`);
      await stores.close();
      world.dispose();
    }
    expect(outcomes.filter((o) => !o.endsWith("CONNECTED"))).toEqual([]);
  });
});

describe("red team 2: hsmsim audit --kms", () => {
  // U+009B is the one-byte CSI (C1): terminals that honour C1 controls start an escape sequence
  // with it; U+202E reverses the rest of the line. printable() removes C0 and C1 from table
  // cells, so the authors count them as dangerous; what a caller chooses must reach no output raw.
  const HOSTILE = /[\u0080-\u009f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;

  it("a caller's encryption context and key id reach no output with C1 controls or bidi overrides (table and --request)", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const key = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!;
    const sent = await owner.send(new EncryptCommand({ KeyId: key.KeyId!, Plaintext: Buffer.from("x"), EncryptionContext: { note: "\u009b2J\u009b31mALL CLEAR\u202e" } }));
    await owner.send(new EncryptCommand({ KeyId: `${key.KeyId!}\u202e`, Plaintext: Buffer.from("x") })).catch(() => undefined);
    await kms.endpoint.close();
    const out: string[] = [];
    runKmsAudit(kms.dataDir, { json: false }, (t) => out.push(t));
    const table = out.join("");
    out.length = 0;
    runKmsAudit(kms.dataDir, { json: false, request: sent.$metadata.requestId! }, (t) => out.push(t));
    const request = out.join("");
    expect({ table: HOSTILE.test(table), request: HOSTILE.test(request) }).toEqual({ table: false, request: false });
  });
});

describe("red team 2: hsmsim audit --kms reading an edited trail", () => {
  it("the verdict an editor breaks cannot be painted over: no C1 control from the file reaches the verdict lines", async () => {
    const kms = await startKmsFixture();
    await kms.client(OWNER).send(new CreateKeyCommand({}));
    await kms.endpoint.close();
    const path = join(kms.dataDir, "kms", TRAIL_FILE);
    const lines = readFileSync(path, "utf8").split("\n").filter((l) => l.length > 0);
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    // CSI 1A (cursor up), CSI 2K (erase line): on a terminal that honours C1, the "TRAIL CHAIN BROKEN" line is overwritten.
    first.hsmsimSeq = "\u009b2K\u009b1G   trail chain verified";
    lines[0] = JSON.stringify(first);
    writeFileSync(path, `${lines.join("\n")}\n`);
    const out: string[] = [];
    const code = runKmsAudit(kms.dataDir, { json: false }, (t) => out.push(t));
    expect(code).toBe(1);
    expect(out.join("")).not.toMatch(/[\u0080-\u009f]/);
  });
});

describe("red team 2: the trail in the data folder", () => {
  it("dropping the newest records together with the digests that sign them is detected (by verifyTrail or at the next start)", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const key = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!;
    await kms.restart(); // the close signs a digest of everything so far
    const kmsDir = join(kms.dataDir, "kms");
    const size = (f: string) => statSync(join(kmsDir, f)).size;
    const before = { trail: size(TRAIL_FILE), digests: size(TRAIL_DIGESTS_FILE) };
    const later = kms.client(OWNER);
    await later.send(new ScheduleKeyDeletionCommand({ KeyId: key.KeyId!, PendingWindowInDays: 7 }));
    await kms.endpoint.close();
    expect(readFileSync(join(kmsDir, TRAIL_FILE), "utf8")).toContain("ScheduleKeyDeletion");

    // The editor cuts both files back to where they were: the ScheduleKeyDeletion record and its digest are gone.
    truncateSync(join(kmsDir, TRAIL_FILE), before.trail);
    truncateSync(join(kmsDir, TRAIL_DIGESTS_FILE), before.digests);
    const v = verifyTrail(kmsDir);
    let restartRefused = false;
    await kms.restart().catch(() => void (restartRefused = true));
    expect({ verified: v.ok && v.unsignedTail === 0 && v.unvouched.length === 0, restartRefused }).not.toEqual({ verified: true, restartRefused: false });
  });
});

/**
 * Runs `code` (an ES module body; `dir` is bound) in a child node with tsx and reports how it ends:
 * "exited N", or "blocked in W" once its main thread sleeps in a FIFO's open or read (W is the
 * kernel's wchan) — then the child is killed. No time limit: the kernel says where it waits.
 */
async function outcomeOf(code: string, dir: string): Promise<string> {
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", `const dir = ${JSON.stringify(dir)};\n${code}`],
    { cwd: process.cwd(), stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => void (stderr += d.toString()));
  const exited = new Promise<number>((resolve) => child.once("exit", (c) => resolve(c ?? -1)));
  for (;;) {
    const done = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 25))]);
    if (done !== null) return `exited ${done}${done === 0 ? "" : ` (${stderr.trim().split("\n").pop()})`}`;
    let wchan = "";
    try { wchan = readFileSync(`/proc/${child.pid}/wchan`, "utf8"); } catch { /* gone */ }
    if (/partner|fifo|pipe/.test(wchan)) {
      child.kill("SIGKILL");
      await exited;
      return `blocked in ${wchan}`;
    }
  }
}

describe("red team 2: kms.db rolled back", () => {
  it("a revoked grant does not come back when kms.db is put back from an older copy (the endpoint anchors the store's head)", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const key = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!;
    const { GrantId } = await owner.send(new CreateGrantCommand({ KeyId: key.KeyId!, GranteePrincipal: SAAS.arn, Operations: ["Encrypt"] }));
    await kms.endpoint.close();
    const kmsDir = join(kms.dataDir, "kms");
    const copies = readdirSync(kmsDir).filter((f) => f.startsWith("kms.db"));
    for (const f of copies) copyFileSync(join(kmsDir, f), join(kms.dataDir, `old-${f}`));
    await kms.restart();
    await kms.client(OWNER).send(new RevokeGrantCommand({ KeyId: key.KeyId!, GrantId: GrantId! }));
    expect((await failure(kms.client(SAAS).send(new EncryptCommand({ KeyId: key.Arn!, Plaintext: Buffer.from("x") })))).name).toBe("AccessDeniedException");
    await kms.endpoint.close();

    // The editor puts the old kms.db back (nothing else changes).
    for (const f of readdirSync(kmsDir).filter((f) => f.startsWith("kms.db"))) rmSync(join(kmsDir, f));
    for (const f of copies) copyFileSync(join(kms.dataDir, `old-${f}`), join(kmsDir, f));
    let outcome: string;
    try {
      await kms.restart();
      outcome = await kms.client(SAAS).send(new EncryptCommand({ KeyId: key.Arn!, Plaintext: Buffer.from("x") })).then(() => "the revoked grant works again", (e: Error) => e.name);
    } catch {
      outcome = "refused at start";
    }
    expect(outcome).not.toBe("the revoked grant works again");
  });
});

describe("red team 2: FIFOs planted in the data folder", () => {
  const SRC = join(process.cwd(), "src");

  it("credentials.json as a FIFO: reading it (hsmsim up --kms, status) fails with KMS's error, never blocks", async () => {
    const kms = await startKmsFixture();
    const dir = join(kms.dataDir, "kms");
    rmSync(join(dir, "credentials.json"), { force: true });
    spawnSyncMkfifo(join(dir, "credentials.json"));
    const outcome = await outcomeOf(`const { readCredentials } = await import(${JSON.stringify(join(SRC, "kms/credentials-file.ts"))});
      try { readCredentials(dir + "/credentials.json"); } catch (e) { process.exit(e.name === "KmsError" || e.code === "ValidationException" ? 3 : 4); }`, dir);
    expect(outcome).toMatch(/^exited 3/);
  }, 60_000);

  it("trail-digests.jsonl as a FIFO: the KMS refuses to start, never blocks", async () => {
    const kms = await startKmsFixture();
    await kms.endpoint.close();
    const dir = join(kms.dataDir, "kms");
    rmSync(join(dir, TRAIL_DIGESTS_FILE));
    spawnSyncMkfifo(join(dir, TRAIL_DIGESTS_FILE));
    const outcome = await outcomeOf(`const { startKms } = await import(${JSON.stringify(join(SRC, "kms/endpoint.ts"))});
      try { const e = await startKms({ dataDir: dir, credentials: ${JSON.stringify([OWNER])} }); await e.close(); process.exit(0); } catch (e) { process.exit(3); }`, dir);
    expect(outcome).toMatch(/^exited 3/);
  }, 60_000);

  it("trail.jsonl as a FIFO: the KMS refuses it (records would vanish, and the 65th KiB would block every request) and audit --kms does not block", async () => {
    const kms = await startKmsFixture();
    await kms.endpoint.close();
    const dir = join(kms.dataDir, "kms");
    rmSync(join(dir, TRAIL_FILE));
    spawnSyncMkfifo(join(dir, TRAIL_FILE));
    const audit = await outcomeOf(`const { verifyTrail } = await import(${JSON.stringify(join(SRC, "kms/trail.ts"))});
      try { verifyTrail(dir); process.exit(0); } catch (e) { process.exit(3); }`, dir);
    let refused = false;
    try {
      await kms.restart();
    } catch {
      refused = true;
    }
    expect({ audit: audit.startsWith("exited"), startRefused: refused }).toEqual({ audit: true, startRefused: true });
  }, 60_000);
});

function spawnSyncMkfifo(path: string): void {
  const r = spawnSync("mkfifo", ["-m", "600", path]);
  if (r.status !== 0) throw new Error(`mkfifo failed: ${r.stderr}`);
}

describe("red team 2: hsmsim up --kms, the supervised KMS process", () => {
  it("while the supervisor restarts a killed KMS process, no other local process can take its port (and answer the SDKs in its place)", async () => {
    const where = placement();
    const kmsPort = 20_000 + Math.floor(Math.random() * 40_000);
    const standIn = process.env.HSMSIM_KMS_STAND_IN;
    process.env.HSMSIM_KMS_STAND_IN = "1"; // the process plumbing is what is attacked: the stand-in binds the port as the KMS does
    let impostor: Server | null = null;
    try {
      const up = await cli("up", "--kms", "--kms-port", String(kmsPort), "--data", where.dir, "--hsms", "2", "--base-address", where.baseAddress,
        "--port", String(where.port), "--password-cost", "4", "--restart-delay-ms", "200");
      expect(up.code, up.stderr).toBe(0);
      const pid = ((await status(where.dir)) as unknown as { kms: { pid: number } }).kms.pid;
      process.kill(pid, "SIGKILL");
      while (alive(pid)) await new Promise((r) => setTimeout(r, 5));
      // Any local user's process: listen on the port as soon as it is free; stop once another listener holds it.
      for (;;) {
        const server = createServer((socket) => socket.end("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
        const got = await new Promise<boolean>((resolve) => {
          server.once("error", () => resolve(false));
          server.listen(kmsPort, "127.0.0.1", () => resolve(true));
        });
        if (got) { impostor = server; break; }
        const heldByOther = await new Promise<boolean>((resolve) => {
          const c = createConnection({ port: kmsPort, host: "127.0.0.1" });
          c.once("connect", () => { c.destroy(); resolve(true); });
          c.once("error", () => resolve(false));
        });
        if (heldByOther) break;
      }
      expect(impostor === null ? "the supervisor kept the port" : "an impostor listens on the KMS endpoint's port").toBe("the supervisor kept the port");
    } finally {
      impostor?.close();
      await cli("down", "--data", where.dir);
      if (standIn === undefined) delete process.env.HSMSIM_KMS_STAND_IN;
      else process.env.HSMSIM_KMS_STAND_IN = standIn;
      rmSync(join(where.dir, ".."), { recursive: true, force: true });
    }
  }, 120_000);
});
