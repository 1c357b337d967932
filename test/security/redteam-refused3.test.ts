// Red team 3 of "a connection lost after its handshake is reported (CONNECTION_LOST) and the requests
// waiting on it end at once". Loopback only; every wait bounded; no timing thresholds asserted.
import * as net from "node:net";
import * as tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { ClientTransport } from "../../src/net/client-transport.js";
import { clientTls } from "../../src/net/tls-transport.js";
import { issueHsmCertificate } from "../../src/net/pki.js";
import { FRAME_MESSAGE, FrameDecoder, FrameEncoder } from "../../src/net/frame.js";
import { decodePayload, encodePayload } from "../../src/net/codec.js";
import { ClusterClient } from "../../src/client/client.js";
import { RealClock } from "../../src/net/real-clock.js";
import type { RequestOp } from "../../src/cluster/protocol.js";
import { type TestCluster, firstChoice, freePort, messageFrame, sessionContext, sharedCa, startCluster, until } from "../net/fixture.js";

let n = 0;
function client(bootstrap: string, ca: string, opts: { heartbeatIntervalUs?: number } = {}) {
  const errors: { error: Error; address: string }[] = [];
  const transport = new ClientTransport({
    tls: clientTls({ trustAnchorPem: ca }),
    onError: (error, address, undelivered) => {
      errors.push({ error, address });
      c.unreachable(address, undelivered);
    },
  });
  const c: ClusterClient = new ClusterClient({
    transport, clock: new RealClock(), rng: firstChoice, address: `rt3-${++n}`, bootstrap,
    requestTimeoutUs: 20_000_000, writeTimeoutUs: 20_000_000, heartbeatIntervalUs: opts.heartbeatIntervalUs ?? 600_000_000,
  });
  const send = (op: RequestOp, o: { pinned?: string; rule?: "repeat" | "fail" } = {}) => new Promise<{ error: (Error & { code?: string }) | null; value?: unknown; at?: string }>((resolve) => {
    c.send(op, { rule: o.rule ?? "repeat", pinned: o.pinned }, (error, value, at) => resolve({ error: error as Error & { code?: string }, value, at }));
  });
  const connect = () => new Promise<void>((resolve, reject) => c.connect((e) => (e ? reject(e) : resolve())));
  const internals = () => {
    const t = transport as unknown as { links: Map<unknown, unknown>; held: Map<unknown, unknown> };
    const k = c as unknown as { pending: Map<unknown, unknown>; inFlight: Map<unknown, unknown> };
    return { links: t.links.size, held: t.held.size, pending: k.pending.size, inFlight: k.inFlight.size };
  };
  return { c, transport, errors, send, connect, internals, close: () => { c.close(); transport.close(); } };
}

/** A raw TLS client connection from a fixed local ip:port that says hello. */
async function rawFrom(address: string, ca: string, localAddress: string, localPort: number) {
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))];
  const socket = tls.connect({ host, port, ca: [ca], minVersion: "TLSv1.3", maxVersion: "TLSv1.3", checkServerIdentity: () => undefined, localAddress, localPort } as tls.ConnectionOptions);
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  await new Promise<void>((resolve, reject) => { socket.once("secureConnect", () => resolve()); socket.once("close", () => reject(new Error("closed during handshake"))); });
  const encoder = new FrameEncoder();
  socket.write(encoder.encode(1, encodePayload({ role: "client" })));
  return { socket, encoder, closed };
}

const random = (bytes = 8): RequestOp => ({ kind: "call", method: "generateRandom", args: [1, bytes], session: sessionContext(1, null) });

describe("red team 3: connection lost after the handshake", () => {
  let cluster: TestCluster;
  let slow = new Map<string, number>();

  beforeAll(async () => {
    cluster = await startCluster({
      hsms: 2, firstHost: 60, limits: { idleTimeoutMs: 400 },
      node: { serviceTimeUs: (op) => (op.kind === "call" && slow.has(op.method) ? slow.get(op.method)! : 0) },
    });
  }, 60_000);
  afterAll(() => cluster?.stop());

  it("found and fixed (the HSM named a client by ip:port): an answer to a request sent on connection A is never delivered on a later connection B from the same ip:port (another application)", async () => {
    // Application 1 connects from a fixed local port, sends a slow generateRandom (id 1), and its socket is reset.
    const host = "127.0.0.61";
    const port = await freePort(host);
    const hsm = cluster.hsms[0].address;
    slow = new Map([["generateRandom", 1_500_000]]);
    try {
      const a = await rawFrom(hsm, cluster.ca.certPem, host, port);
      expect(a.socket.localPort).toBe(port);
      a.socket.write(messageFrame(a.encoder, { t: "req", id: 1, conn: "app-one#1", op: random(32), after: [] }));
      await until(() => cluster.hsms[0].node.stats.served >= 0 && (cluster.hsms[0].node as unknown as { busyEngines: number }).busyEngines === 1, "app 1's request in service");
      // App 1 goes away (its process killed): the HSM sees its socket close; the request stays in service.
      const raws = (cluster.hsms[0].transport as unknown as { rawSockets: Set<net.Socket> }).rawSockets;
      [...raws].find((r) => r.remotePort === port)!.destroy(); // the HSM side closes first: no TIME_WAIT on app 1's port
      await a.closed;
      // Application 2 (another process) happens to get the same local port, and sends its own request id 1 (a slow one too).
      slow = new Map([["generateRandom", 1_500_000]]);
      const b = await rawFrom(hsm, cluster.ca.certPem, host, port);
      expect(b.socket.localPort).toBe(port);
      const got: unknown[] = [];
      const decoder = new FrameDecoder();
      b.socket.on("data", (chunk: Buffer) => { for (const f of decoder.push(chunk)) if (f.type === FRAME_MESSAGE) got.push(decodePayload(f.payload)); });
      b.socket.write(messageFrame(b.encoder, { t: "req", id: 1, conn: "app-two#2", op: { kind: "hello" }, after: [] }));
      await until(() => got.length >= 1, "app 2's answer");
      // Keep B busy (the idle timeout is short here) while app 1's request finishes.
      for (let id = 2; id < 30; id++) {
        b.socket.write(messageFrame(b.encoder, { t: "req", id, conn: "app-two#2", op: { kind: "hello" }, after: [] }));
        await new Promise((r) => setTimeout(r, 100));
      }
      // Correct: app 2 receives exactly its own answer (a hello), never app 1's random bytes.
      const foreign = got.filter((m) => (m as { value?: { output?: unknown } }).value?.output !== undefined);
      expect(foreign).toEqual([]);
      b.socket.destroy();
    } finally {
      slow = new Map();
    }
  }, 30_000);

  it("held: an idle client whose connections the HSM closes for idleness: each reported CONNECTION_LOST, nothing ended, the next request served; no leak over 15 rounds", async () => {
    const t = client(cluster.hsms[0].address, cluster.ca.certPem);
    try {
      await t.connect();
      for (let i = 0; i < 15; i++) {
        const before = t.errors.length;
        const r = await t.send(random(), { pinned: cluster.hsms[0].address });
        expect(r.error).toBeNull();
        await until(() => t.errors.length === before + 1, "the idle close reported", 10_000);
        expect((t.errors.at(-1)!.error as { code?: string }).code).toBe("CONNECTION_LOST");
        expect(t.errors.at(-1)!.error.message).toMatch(/closed by the other side/);
      }
      await new Promise((r) => setTimeout(r, 50));
      expect(t.internals()).toEqual({ links: 0, held: 0, pending: 0, inFlight: 0 });
      expect(t.c.stats.timeouts).toBe(0);
      expect(t.transport.errors().length).toBeLessThanOrEqual(32);
    } finally {
      t.close();
    }
  }, 60_000);

  it("held: losing the connection to HSM 0 ends only HSM 0's requests; a slow read in HSM 1 is answered by HSM 1", async () => {
    const t = client(cluster.hsms[0].address, cluster.ca.certPem, { heartbeatIntervalUs: 100_000 });
    try {
      await t.connect();
      // Open both links first.
      for (const h of cluster.hsms) expect((await t.send(random(), { pinned: h.address })).error).toBeNull();
      slow = new Map([["generateRandom", 1_500_000]]);
      const onOne = t.send(random(), { pinned: cluster.hsms[1].address });
      const onZero = t.send(random(), { pinned: cluster.hsms[0].address });
      await until(() => (cluster.hsms[0].node as unknown as { busyEngines: number }).busyEngines === 1 && (cluster.hsms[1].node as unknown as { busyEngines: number }).busyEngines === 1, "both in service");
      const link = (t.transport as unknown as { links: Map<string, { link: { socket: tls.TLSSocket } }> }).links;
      const zero = [...link.entries()].find(([k]) => k.endsWith(cluster.hsms[0].address))![1].link.socket;
      // The HSM closes this client's connection (as a restart, a limit or an idle timeout would).
      const raws = (cluster.hsms[0].transport as unknown as { rawSockets: Set<net.Socket> }).rawSockets;
      [...raws].find((r) => r.remotePort === zero.localPort)!.destroy();
      const r0 = await onZero;
      const r1 = await onOne;
      expect(r1.error).toBeNull();
      expect(r1.at).toBe(cluster.hsms[1].address);
      // Pinned read repeated on HSM 0 (repeatPinned not set here): HSM_UNREACHABLE; never another HSM's request ended.
      expect(r0.error === null || r0.error.code === "HSM_UNREACHABLE").toBe(true);
    } finally {
      slow = new Map();
      t.close();
    }
  }, 30_000);

  it("held: close() and detach() of a client with open, answered connections report nothing", async () => {
    const t = client(cluster.hsms[0].address, cluster.ca.certPem);
    await t.connect();
    for (const h of cluster.hsms) expect((await t.send(random(), { pinned: h.address })).error).toBeNull();
    const before = t.errors.length;
    t.c.close();
    t.transport.close();
    await new Promise((r) => setTimeout(r, 300));
    expect(t.errors.length).toBe(before);
  }, 30_000);

  it("found and fixed: a connection reset by the HSM after it answered is reported CONNECTION_LOST, not as a failure to connect", async () => {
    const ca = await sharedCa();
    const host = "127.0.0.62";
    const port = await freePort(host);
    const cert = await issueHsmCertificate(ca, { host, port, hsmId: "hostile-reset" });
    const context = tls.createSecureContext({ key: cert.keyPem, cert: cert.certPem, minVersion: "TLSv1.3", maxVersion: "TLSv1.3" });
    const raws = new Set<net.Socket>();
    // Answers the first request, then resets the TCP connection (a killed HSM with unread bytes does that).
    const server = net.createServer((raw) => {
      raws.add(raw);
      raw.on("error", () => {});
      const socket = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
      socket.on("error", () => {});
      const decoder = new FrameDecoder();
      const encoder = new FrameEncoder();
      socket.on("data", (chunk: Buffer) => {
        for (const f of decoder.push(chunk)) {
          if (f.type !== FRAME_MESSAGE) continue;
          const m = decodePayload(f.payload) as { id: number };
          socket.write(encoder.encode(FRAME_MESSAGE, encodePayload({ t: "res", id: m.id, ok: true, hsmId: "h", membershipEpoch: 1, spareCapacity: 1, value: { hsmId: "h", clusterId: "x", membershipEpoch: 1, members: [] } })));
          setTimeout(() => raw.resetAndDestroy(), 100);
        }
      });
    });
    await new Promise<void>((r) => server.listen(port, host, () => r()));
    const t = client(`${host}:${port}`, ca.certPem);
    try {
      await t.connect();
      await until(() => t.errors.length >= 1, "the reset reported", 10_000);
      const e = t.errors[0].error as Error & { code?: string };
      expect({ code: e.code, message: e.message }).toEqual({ code: "CONNECTION_LOST", message: expect.not.stringMatching(/cannot connect/) });
    } finally {
      t.close();
      for (const s of raws) s.destroy();
      await new Promise((r) => server.close(r));
    }
  }, 30_000);
});
