// Red team of issue 9 (the cluster on real sockets, processes and folders): attacks as the
// README's adversaries would make them — another local user who plants files in a cluster folder
// before `up`, a hostile network peer, a careless caller. Each test fails on the code it found
// the hole in; loopback only, non-default addresses, every wait bounded.
import { createHash } from "node:crypto";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { connect } from "node:net";

import { afterAll, describe, expect, it } from "vitest";

import { ClusterFolder, writeAtomically } from "../../src/net/cluster-folder.js";
import { serveControl } from "../../src/net/control-socket.js";
import { cli } from "../processes/helpers.js";
import { FRAME_MESSAGE, HEADER_BYTES, MAX_PAYLOAD_BYTES, WIRE_VERSION } from "../../src/net/frame.js";
import { createCluster } from "../../src/net/new-cluster.js";
import { loadError } from "../file-token-helpers.js";
import { issueHsmCertificate } from "../../src/net/pki.js";
import { HsmTransport, hsmTls } from "../../src/net/tls-transport.js";
import { type TestCluster, freePort, hsmDigest, messageFrame, rawConnection, recordingLogger, sessionContext, sharedCa, startClient, startCluster } from "../net/fixture.js";

const root = mkdtempSync(join(tmpdir(), "hsmsim-redteam9-"));
let n = 0;
const fresh = () => join(root, `c${++n}`);
const options = (port: number) => ({ hsmCount: 1, baseAddress: "127.0.77.2", port, mtls: false, passwordCost: 1 });

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("redteam 9: files planted in a cluster folder before up", () => {
  it("a symlink planted at pki/customerCA.crt is never written through (the target outside the folder stays intact)", async () => {
    const dir = fresh();
    const victim = join(root, `victim-${n}.txt`);
    writeFileSync(victim, "precious\n");
    mkdirSync(join(dir, "pki"), { recursive: true, mode: 0o700 });
    symlinkSync(victim, join(dir, "pki", "customerCA.crt"));
    await createCluster(new ClusterFolder(dir), options(41_001)).catch(() => undefined);
    expect(readFileSync(victim, "utf8")).toBe("precious\n");
  }, 60_000);

  it("a symlink planted at an atomic write's temp name is never written through", () => {
    const dir = fresh();
    mkdirSync(dir, { mode: 0o700 });
    const victim = join(root, `victim-${n}.txt`);
    writeFileSync(victim, "precious\n");
    const target = join(dir, "cluster.json");
    symlinkSync(victim, `${target}.${process.pid}.tmp`);
    try {
      writeAtomically(target, "{}\n", 0o600);
    } catch {
      // refusing is fine
    }
    expect(readFileSync(victim, "utf8")).toBe("precious\n");
    if (existsSync(target)) expect(lstatSync(target).isSymbolicLink()).toBe(false);
  });

  it("a cluster folder others may write into (0777) is refused at creation: they could plant or swap its files", async () => {
    const dir = fresh();
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    await expect(createCluster(new ClusterFolder(dir), options(41_002))).rejects.toMatchObject({ code: "FOLDER_INVALID" });
  }, 60_000);

  it("a cluster folder owned by another user is refused at creation", async () => {
    if (process.getuid?.() !== 0) return; // only root can hand a folder to another user here
    const dir = fresh();
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 65534, 65534);
    await expect(createCluster(new ClusterFolder(dir), options(41_003))).rejects.toMatchObject({ code: "FOLDER_INVALID" });
  }, 60_000);
});

describe("redteam 9: two ups creating one folder at once", () => {
  it("the second creation is told the cluster exists, never to remove the folder (a live cluster)", async () => {
    const dir = fresh();
    const folder = new ClusterFolder(dir);
    await createCluster(folder, options(41_030));
    const lineage = readFileSync(folder.lineageSecret, "utf8");
    const second = await createCluster(folder, options(41_031)).then(() => null, (e: Error) => e);
    expect(second).toMatchObject({ code: "FOLDER_INVALID" });
    expect(second?.message).not.toMatch(/remove it/);
    expect(readFileSync(folder.lineageSecret, "utf8")).toBe(lineage);
  }, 60_000);
});

describe("redteam 9: a hand-edited cluster.json", () => {
  it("two live HSMs on one address, or two HSMs on one origin (one data folder), are FOLDER_INVALID", () => {
    const dir = fresh();
    const folder = new ClusterFolder(dir);
    folder.makeTree();
    const hsm = (id: string, origin: number, address: string) => ({ hsmId: id, origin, address, availabilityZone: "az-a", state: "ACTIVE" as const, folder: `hsms/${origin}` });
    const base = {
      version: 1, clusterId: "cluster-0123456789ab", lineageId: "lineage-0123456789ab", state: "ACTIVE" as const, hsmType: "hsm2m.medium",
      zones: ["az-a"], nextOrigin: 3, baseAddress: "127.0.77.2", port: 41_010, mtls: false,
    };
    folder.write({ ...base, hsms: [hsm("hsm-0123456789abcdef", 1, "127.0.77.2:41010"), hsm("hsm-fedcba9876543210", 2, "127.0.77.2:41010")] });
    expect(() => folder.read()).toThrow(expect.objectContaining({ code: "FOLDER_INVALID" }));
    folder.write({ ...base, hsms: [hsm("hsm-0123456789abcdef", 1, "127.0.77.2:41010"), hsm("hsm-fedcba9876543210", 1, "127.0.77.3:41010")] });
    expect(() => folder.read()).toThrow(expect.objectContaining({ code: "FOLDER_INVALID" }));
  });
});

describe("redteam 9: a file: token folder another user can write into", () => {
  // Whoever may write into the folder can plant masking.key (then every token made there is sealed
  // under a key they hold), swap or delete token files, or plant the write's temp names.
  it("a token folder writable by others (0777) is refused with TOKEN_FOLDER_INVALID", () => {
    const dir = fresh();
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    expect(loadError(dir)).toMatchObject({ code: "TOKEN_FOLDER_INVALID" });
  });

  it("a token folder owned by another user is refused with TOKEN_FOLDER_INVALID", () => {
    if (process.getuid?.() !== 0) return;
    const dir = fresh();
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 65534, 65534);
    expect(loadError(dir)).toMatchObject({ code: "TOKEN_FOLDER_INVALID" });
  });
});

describe("redteam 9: a hostile client of a live HSM", () => {
  let cluster: TestCluster | undefined;
  afterAll(async () => cluster?.stop());

  it("one frame of 17 million tiny values does not stall the HSM for its other clients (its plain-data check cost seconds of the event loop)", async () => {
    cluster = await startCluster({ hsms: 1, firstHost: 150 + Math.floor(Math.random() * 90) });
    const [hsm] = cluster.hsms;
    const honest = await startClient(hsm.address, cluster.ca.certPem);
    try {
      const data = Buffer.from("still served");
      await hsmDigest(honest, hsm.address, data); // warm: connected, session known
      const attacker = await rawConnection(hsm.address, cluster.ca.certPem);
      attacker.socket.resume();
      // A MessagePack array32 of nils filling the largest frame: valid MessagePack, ~6 bytes of work each.
      const payload = Buffer.alloc(MAX_PAYLOAD_BYTES, 0xc0);
      payload[0] = 0xdd;
      payload.writeUInt32BE(MAX_PAYLOAD_BYTES - 5, 1);
      const header = Buffer.alloc(HEADER_BYTES);
      header.writeUInt32BE(HEADER_BYTES - 4 + payload.length, 0);
      header.writeUInt8(WIRE_VERSION, 4);
      header.writeUInt8(FRAME_MESSAGE, 5);
      header.writeUInt32BE(1, 6); // after the hello (0)
      const sent = new Promise<void>((resolve) => attacker.socket.write(Buffer.concat([header, payload]), () => resolve()));
      await sent;
      await attacker.closed; // refused once decoded and checked: not a request
      // The honest client is still served. (The stall itself, ~0.5 s now against 3.3 s before the
      // plain-data check stopped stacking a pair per leaf, was measured by hand: no timing threshold here.)
      expect((await hsmDigest(honest, hsm.address, data, 2)).equals(createHash("sha256").update(data).digest())).toBe(true);
      expect(hsm.transport.stats.badFrames.BAD_MESSAGE ?? 0).toBeGreaterThanOrEqual(1);
    } finally {
      honest.close();
    }
  }, 60_000);
});

describe("redteam 9: slowloris", () => {
  it("a connection trickling one byte of a begun frame at a time is closed, though it is never idle", async () => {
    const ca = await sharedCa();
    const host = `127.0.${10 + Math.floor(Math.random() * 90)}.${2 + Math.floor(Math.random() * 200)}`;
    const port = await freePort(host);
    const address = `${host}:${port}`;
    const cert = await issueHsmCertificate(ca, { host, port, hsmId: "hsm-slowloris" });
    const transport = await HsmTransport.listen({
      address, tls: hsmTls({ hsm: cert, clusterCaPem: ca.certPem }), logger: recordingLogger(),
      limits: { idleTimeoutMs: 400, frameTimeoutMs: 1_000 } as object,
    });
    transport.attach(address, () => {});
    const slow = await rawConnection(address, ca.certPem);
    slow.socket.resume();
    let open = true;
    void slow.closed.then(() => { open = false; });
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt32BE(HEADER_BYTES - 4 + 1024, 0);
    header.writeUInt8(WIRE_VERSION, 4);
    header.writeUInt8(FRAME_MESSAGE, 5);
    header.writeUInt32BE(1, 6);
    try {
      slow.socket.write(header);
      // One byte every 150 ms (under the 400 ms idle timeout) for 3 s: the frame never completes.
      for (let i = 0; i < 20 && open; i++) {
        await new Promise((r) => setTimeout(r, 150));
        if (open) slow.socket.write(Buffer.alloc(1));
      }
      expect(open).toBe(false);
      expect(transport.stats.idleTimeouts).toBe(0);
    } finally {
      slow.socket.destroy();
      await transport.close();
    }
  }, 30_000);
});

describe("redteam 9: the control socket's reader", () => {
  it("a cluster folder path too long for a unix socket is a clear refusal, not a socket bound truncated elsewhere and an uncaught chmod ENOENT", async () => {
    const dir = join(root, "d".repeat(120 - root.length));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, "control.sock");
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on("uncaughtException", onUncaught);
    try {
      const served = await serveControl(path, async () => null, () => {}).then((s) => s.close(), (e: unknown) => e);
      await new Promise((r) => setTimeout(r, 100));
      expect(uncaught).toEqual([]);
      expect(served).toMatchObject({ code: "INVALID_ARGUMENT" });
    } finally {
      process.off("uncaughtException", onUncaught);
    }
    const ran = await cli("up", "--data", join(dir, "cluster"), "--hsms", "1", "--base-address", "127.0.77.2", "--port", "41020", "--password-cost", "1");
    expect(ran.code).not.toBe(0);
    expect(ran.stderr).toMatch(/unix socket path is at most/);
    expect(existsSync(join(dir, "cluster", "cluster.json"))).toBe(false);
  }, 30_000);

  it("a client that pipelines thousands of requests and never reads its answers is not served without bound (the supervisor would buffer them all)", async () => {
    const dir = fresh();
    mkdirSync(dir, { mode: 0o700 });
    const path = join(dir, "control.sock");
    let handled = 0;
    const big = "x".repeat(16 * 1024); // a status answer of a large cluster is this order of size
    const server = await serveControl(path, async () => {
      handled++;
      return big;
    }, () => {});
    const client = connect(path);
    client.on("error", () => {});
    try {
      await new Promise<void>((resolve) => client.once("connect", () => resolve()));
      client.pause(); // never reads
      client.write('{"op":"status"}\n'.repeat(5_000));
      await new Promise((r) => setTimeout(r, 1_500));
      // Served without reading: 5,000 answers, 80 MB held in the supervisor for a client that reads nothing.
      expect(handled).toBeLessThan(1_000);
    } finally {
      client.destroy();
      server.close();
    }
  }, 30_000);
});

describe("redteam 9: connection slots before authentication", () => {
  // Found open: the per-address limit (64) was taken at accept, before TLS said who the socket
  // was, and on one machine every client and every peer HSM connects from 127.0.0.1, so any local
  // process holding 64 bare TCP connections locked every other application (and the peers) out.
  // Now client slots are counted at the hello, peers proven by certificate count in none, and a
  // connection that has not said hello is closed to make room for a newer one.
  it("64 bare TCP connections from a local process do not lock another application out of an HSM", async () => {
    const c = await startCluster({ hsms: 1, firstHost: 150 + Math.floor(Math.random() * 90) });
    const [hsm] = c.hsms;
    const sockets = [] as ReturnType<typeof connect>[];
    try {
      for (let i = 0; i < 64; i++) {
        const s = connect({ host: hsm.host, port: hsm.port });
        s.on("error", () => {});
        sockets.push(s);
      }
      await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.once("connect", () => resolve()))));
      await new Promise((r) => setTimeout(r, 200));
      const honest = await startClient(hsm.address, c.ca.certPem, false);
      try {
        await hsmDigest(honest, hsm.address, Buffer.from("served?"));
      } finally {
        honest.close();
      }
    } finally {
      for (const s of sockets) s.destroy();
      await c.stop();
    }
  }, 60_000);
});

describe("redteam 9: peer traffic an unauthenticated client can cause (open finding, not fixed)", () => {
  // A request whose causality token (`after`) names a change from the future is answered stale,
  // and each such answer also sends this HSM's heads to every peer at once, asking for a reply
  // (src/cluster/node.ts serve → replication.sendHeads): one small unauthenticated request buys
  // 2 × peers MACed peer messages, with no coalescing. A fix (send heads at most once per few
  // milliseconds) belongs in the shared cluster code, whose seeded runs it would shift.
  it("500 requests with a future causality token do not make 500 rounds of heads to the peers", async () => {
    const c = await startCluster({ hsms: 2, firstHost: 150 + Math.floor(Math.random() * 90) });
    const [a, b] = c.hsms;
    try {
      const raw = await rawConnection(a.address, c.ca.certPem);
      raw.socket.resume();
      await new Promise((r) => setTimeout(r, 300));
      const before = b.transport.stats.messagesIn;
      // In batches under the queue's 32, paced as a client that waits for its answers would be.
      for (let batch = 0; batch < 25; batch++) {
        const frames: Buffer[] = [];
        for (let i = 1; i <= 20; i++) {
          frames.push(messageFrame(raw.encoder, { t: "req", id: batch * 20 + i, conn: "stale", after: [[1, 1e12]], op: { kind: "call", method: "generateRandom", args: [1, 8], session: sessionContext(1, null) } }));
        }
        raw.socket.write(Buffer.concat(frames));
        await new Promise((r) => setTimeout(r, 40));
      }
      await new Promise((r) => setTimeout(r, 300));
      const caused = b.transport.stats.messagesIn - before;
      // Gossip alone is ~5 rounds a second.
      expect(caused).toBeLessThan(100);
      raw.socket.destroy();
    } finally {
      await c.stop();
    }
  }, 60_000);
});
