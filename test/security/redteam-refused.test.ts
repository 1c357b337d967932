// Red team: "a request the transport never sent fails over; a write that may have reached an HSM is
// never repeated". Hostile TLS servers on loopback record what arrives while the client refuses their
// certificate (nothing does: the safety promise held); a real cluster shows where a write that was
// never sent used to end OUTCOME_UNKNOWN (three findings, fixed: each test below says what it found).
import * as net from "node:net";
import * as tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { ClientTransport } from "../../src/net/client-transport.js";
import { clientTls } from "../../src/net/tls-transport.js";
import { type CertificateAndKey, createClusterCa, issueHsmCertificate } from "../../src/net/pki.js";
import { FrameDecoder } from "../../src/net/frame.js";
import { decodePayload } from "../../src/net/codec.js";
import { type TestCluster, activate, createKeyOp, firstChoice, freePort, sessionContext, sharedCa, startClient, startCluster, until } from "../net/fixture.js";
import { ClusterClient, CLIENT_TIMINGS } from "../../src/client/client.js";
import { internalsOf } from "../../src/hsm/internals.js";
import { RealClock } from "../../src/net/real-clock.js";
import type { RequestOp } from "../../src/cluster/protocol.js";

let labels = 0;

interface Hostile {
  address: string;
  /** Decoded frames (type, payload) the server received, per connection. */
  frames: { type: number; message: unknown }[];
  bytes: number;
  closedConnections: number;
  stop(): Promise<void>;
}

/** A TLS 1.3 server that completes handshakes and records every frame it reads. */
async function hostileServer(host: string, cert: CertificateAndKey, extra: tls.TlsOptions = {}): Promise<Hostile> {
  const port = await freePort(host);
  const frames: { type: number; message: unknown }[] = [];
  const sockets = new Set<tls.TLSSocket>();
  const h: Hostile = { address: `${host}:${port}`, frames, bytes: 0, closedConnections: 0, stop: async () => {} };
  const server = tls.createServer({ key: cert.keyPem, cert: cert.certPem, minVersion: "TLSv1.3", maxVersion: "TLSv1.3", ...extra }, (socket) => {
    sockets.add(socket);
    const decoder = new FrameDecoder();
    socket.on("data", (chunk: Buffer) => {
      h.bytes += chunk.length;
      try {
        for (const f of decoder.push(chunk)) frames.push({ type: f.type, message: decodePayload(f.payload) });
      } catch { /* ignore */ }
    });
    socket.on("error", () => {});
    socket.on("close", () => { sockets.delete(socket); });
  });
  server.on("tlsClientError", () => {});
  server.on("connection", (raw) => raw.on("close", () => { h.closedConnections++; }));
  await new Promise<void>((resolve) => server.listen(port, host, () => resolve()));
  h.stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  };
  return h;
}

const req = (id: number) => ({ t: "req", id, conn: "c", op: { kind: "hello" }, after: [] });

describe("red team: messages reported as never sent", () => {
  let ca: CertificateAndKey;
  beforeAll(async () => { ca = await sharedCa(); }, 60_000);

  async function probe(name: string, cert: CertificateAndKey, host = "127.0.0.61") {
    const server = await hostileServer(host, cert);
    const reports: { error: Error; undelivered: readonly unknown[] }[] = [];
    const transport = new ClientTransport({ tls: clientTls({ trustAnchorPem: ca.certPem }), onError: (error, _a, undelivered) => reports.push({ error, undelivered }) });
    transport.attach("app", () => {});
    try {
      const m = req(1);
      transport.send("app", server.address, m);
      await until(() => reports.length >= 1, `${name}: the failure reported`);
      await until(() => server.closedConnections >= 1, `${name}: the server side closed`);
      const got = server.frames.filter((f) => f.type === 2).map((f) => f.message);
      return { reports, got, m };
    } finally {
      transport.close();
      await server.stop();
    }
  }

  it("certificate for another address (HSM_ADDRESS_MISMATCH): reported unsent messages never reached the server", async () => {
    const cert = await issueHsmCertificate(ca, { host: "127.0.0.99", port: 2223, hsmId: "hsm-evil" });
    const { reports, got } = await probe("mismatch", cert);
    if (reports[0].undelivered.length > 0) expect(got).toEqual([]);
  }, 30_000);

  it("expired certificate (HSM_CERTIFICATE_EXPIRED): reported unsent messages never reached the server", async () => {
    const cert = await issueHsmCertificate(ca, { host: "127.0.0.61", port: 2223, hsmId: "hsm-old", validDays: 1, validFrom: new Date(Date.now() - 3 * 86_400_000) });
    const { reports, got } = await probe("expired", cert);
    if (reports[0].undelivered.length > 0) expect(got).toEqual([]);
  }, 30_000);

  it("untrusted CA: reported unsent messages never reached the server", async () => {
    const foreign = await createClusterCa({ commonName: "foreign" });
    const cert = await issueHsmCertificate(foreign, { host: "127.0.0.61", port: 2223, hsmId: "hsm-foreign" });
    const { reports, got } = await probe("untrusted", cert);
    if (reports[0].undelivered.length > 0) expect(got).toEqual([]);
  }, 30_000);

  it("repeated: messages written before TCP connect, after TCP connect (mid-handshake), and large multi-record ones never reach a server whose certificate is refused", async () => {
    const cert = await issueHsmCertificate(ca, { host: "127.0.0.99", port: 2223, hsmId: "hsm-evil2" });
    const server = await hostileServer("127.0.0.62", cert);
    let reports = 0, undelivered = 0;
    const transport = new ClientTransport({ tls: clientTls({ trustAnchorPem: ca.certPem }), onError: (_e, _a, u) => { reports++; undelivered += u.length; } });
    transport.attach("app", () => {});
    try {
      let sent = 0;
      for (let round = 0; round < 15; round++) {
        transport.send("app", server.address, req(++sent));
        const link = (transport as unknown as { links: Map<string, { link: { socket: tls.TLSSocket } }> }).links.get(`app\n${server.address}`)!.link;
        await new Promise<void>((resolve) => { if (!link.socket.connecting) resolve(); else link.socket.once("connect", () => resolve()); setTimeout(resolve, 2000); });
        transport.send("app", server.address, req(++sent));
        transport.send("app", server.address, { ...req(++sent), op: { kind: "hello", pad: Buffer.alloc(100_000, 7) } });
        await until(() => reports === round + 1, "round reported");
      }
      await until(() => server.closedConnections >= 15, "all server sockets closed");
      expect(undelivered).toBe(sent);
      expect(server.frames).toEqual([]);
    } finally {
      transport.close();
      await server.stop();
    }
  }, 60_000);

  it("a peer that accepts TCP and never answers TLS is reported (handshake timeout) even while the client keeps writing to it, with everything it held as unsent", async () => {
    const port = await freePort("127.0.0.63");
    const held: net.Socket[] = [];
        const server = net.createServer((s) => { held.push(s); s.on("error", () => {}); });
    await new Promise<void>((r) => server.listen(port, "127.0.0.63", () => r()));
    const address = `127.0.0.63:${port}`;
    const reports: { error: Error; undelivered: readonly unknown[] }[] = [];
    const transport = new ClientTransport({ tls: clientTls({ trustAnchorPem: ca.certPem }), connectTimeoutMs: 1000, onError: (error, _a, undelivered) => reports.push({ error, undelivered }) });
    transport.attach("app", () => {});
    let sent = 0;
    // A heartbeat-like writer: a message every 200 ms (the client heartbeats every member every second, default timeout 5 s).
    const ticker = setInterval(() => { if (reports.length === 0) transport.send("app", address, req(++sent)); }, 200);
    try {
      transport.send("app", address, req(++sent));
      await until(() => reports.length >= 1 || sent >= 40, "the handshake timeout reported (or 40 writes, ~8 s, without it)", 20_000);
      expect(reports.length).toBe(1);
      expect(reports[0].undelivered.length).toBe(sent);
    } finally {
      clearInterval(ticker);
      transport.close();
      for (const s of held) s.destroy();
      await new Promise((r) => server.close(r));
    }
  }, 30_000);

  it("close() and detach() during a handshake report nothing (no spurious failover)", async () => {
    const port = await freePort("127.0.0.64");
    const held: net.Socket[] = [];
    const server = net.createServer((s) => { held.push(s); s.on("error", () => {}); });
    await new Promise<void>((r) => server.listen(port, "127.0.0.64", () => r()));
    const address = `127.0.0.64:${port}`;
    const reports: unknown[] = [];
    const transport = new ClientTransport({ tls: clientTls({ trustAnchorPem: ca.certPem }), connectTimeoutMs: 300, onError: (e) => reports.push(e) });
    try {
      transport.attach("a", () => {});
      transport.attach("b", () => {});
      transport.send("a", address, req(1));
      transport.send("b", address, req(2));
      await until(() => held.length === 2, "both connected");
      transport.detach("a");
      transport.attach("a", () => {}); // re-attached at once: the old link must stay silent
      await until(() => reports.length >= 1, "b's handshake times out");
      await new Promise((r) => setTimeout(r, 600));
      expect(reports).toHaveLength(1); // only b's
      transport.send("a", address, req(3));
      await until(() => held.length === 3, "a connected again");
      transport.close();
      await new Promise((r) => setTimeout(r, 600));
      expect(reports).toHaveLength(1);
    } finally {
      transport.close();
      for (const s of held) s.destroy();
      await new Promise((r) => server.close(r));
    }
  }, 30_000);
});

describe("red team: a connection that cannot even begin", () => {
  // Found: ClientTransport.linkTo guarded only tls.connect's options builder; tls.connect itself
  // throws synchronously for a client certificate whose key does not match (valid PEMs), so send()
  // threw into ClusterClient.exchange and the message was not reported as undelivered.
  it("a client certificate with a mismatched key: send() does not throw, and reports the message undelivered", async () => {
    const ca = await sharedCa();
    const cert = await issueHsmCertificate(ca, { host: "127.0.0.66", port: 2223, hsmId: "hsm-client" });
    const reports: (readonly unknown[])[] = [];
    const transport = new ClientTransport({ tls: clientTls({ trustAnchorPem: ca.certPem, clientCertificate: { certPem: cert.certPem, keyPem: ca.keyPem } }), onError: (_e, _a, u) => reports.push(u) });
    transport.attach("app", () => {});
    try {
      const port = await freePort("127.0.0.66");
      const message = req(1);
      expect(() => transport.send("app", `127.0.0.66:${port}`, message)).not.toThrow();
      expect(reports).toHaveLength(1);
      expect(reports[0]).toHaveLength(1);
      expect(reports[0][0]).toBe(message);
    } finally {
      transport.close();
    }
  }, 30_000);
});

describe("red team: the client over a real cluster", () => {
  let cluster: TestCluster;
  const keysOn = (i: number) => internalsOf(cluster.hsms[i].node.hsm).keyIds.size;

  beforeAll(async () => {
    cluster = await startCluster({ hsms: 3, keyAvailabilityMin: 1, firstHost: 70 });
    const c = await startClient(cluster.hsms[1].address, cluster.ca.certPem);
    await activate(c);
    c.close();
    cluster.hsms[0].node.stop();
    await cluster.hsms[0].transport.close(); // HSM 0 still listed by the cluster, its port refuses
  }, 60_000);
  afterAll(() => cluster?.stop());

  /** A client wired exactly as src/client/remote/cluster-backend.ts wires it, defaults otherwise. */
  async function wiredClient(opts: { sameTurn?: (client: ClusterClient) => void; timings?: Partial<{ writeTimeoutUs: number; requestTimeoutUs: number }> } = {}) {
    const errors: Error[] = [];
    const transport = new ClientTransport({
      tls: clientTls({ trustAnchorPem: cluster.ca.certPem }),
      onError: (e, address, undelivered) => {
        errors.push(e);
        client.unreachable(address, undelivered);
        // Anything else this event-loop turn does before the check phase (another socket's answer
        // leading the application to its next call, a worker message): modelled by a nextTick.
        if (opts.sameTurn) { const f = opts.sameTurn; opts.sameTurn = undefined; process.nextTick(() => f(client)); }
      },
    });
    const client: ClusterClient = new ClusterClient({
      transport, clock: new RealClock(), rng: firstChoice, address: `redteam-${++labels}`, bootstrap: cluster.hsms[1].address,
      heartbeatIntervalUs: 60_000_000, ...opts.timings,
    });
    await new Promise<void>((resolve, reject) => client.connect((e) => (e ? reject(e) : resolve())));
    const send = (op: RequestOp, c = client) => new Promise<unknown>((resolve, reject) => c.send(op, { rule: "fail" }, (e, v) => (e ? reject(e) : resolve(v))));
    return { client, transport, errors, send, close: () => { client.close(); transport.close(); } };
  }

  it("sanity: a create routed to the refusing HSM 0 fails over and is made once", async () => {
    const c = await wiredClient();
    try {
      const before = keysOn(1);
      await c.send(createKeyOp(`redteam-${++labels}`));
      expect(c.client.stats.undelivered).toBe(1);
      await until(() => keysOn(1) === before + 1, "the key on HSM 1");
    } finally {
      c.close();
    }
  }, 30_000);

  // Found: client.unreachable(address, undelivered) ran in a setImmediate after the report and timed
  // out EVERY request then pending to that address and not in `undelivered`, including one sent since
  // on a new connection still handshaking (refused in turn): OUTCOME_UNKNOWN for a write never sent.
  // Now the requests waiting at the report are the ones it concerns; a later one waits for its own.
  it("a second write sent to the refusing HSM in the same event-loop turn as the first's refusal fails over too", async () => {
    const box: { second?: Promise<unknown> } = {};
    const c = await wiredClient({
      sameTurn: (client) => {
        box.second = new Promise((resolve) => client.send(createKeyOp(`redteam-${++labels}`), { rule: "fail" }, (e, v) => resolve(e ?? v)));
      },
    });
    try {
      // HSMs 1 and 2 answer once, so only the never-answered HSM 0 looks idlest: both writes go there first.
      for (const i of [1, 2]) await new Promise((resolve, reject) => c.client.send({ kind: "call", method: "generateRandom", args: [1, 8], session: sessionContext(1, null) }, { rule: "repeat", pinned: cluster.hsms[i].address }, (e, v) => (e ? reject(e) : resolve(v))));
      const before = [keysOn(1), keysOn(2)];
      const first = await c.send(createKeyOp(`redteam-${++labels}`)).then((v) => v, (e: Error) => e);
      expect(first).not.toBeInstanceOf(Error);
      await until(() => box.second !== undefined, "the second write issued");
      const outcome = (await box.second) as Error & { code?: string };
      // The second write went to HSM 0 on a fresh connection that was refused: never sent.
      await until(() => c.errors.length === 2, "the second connection's refusal reported");
      expect(c.errors.every((e) => /ECONNREFUSED/.test(e.message))).toBe(true); // both connections to HSM 0 refused: neither write reached it
      expect(c.client.stats.undelivered).toBe(2); // both writes counted as never sent
      expect(outcome instanceof Error ? outcome.code : "ok").toBe("ok"); // failed over (it was OUTCOME_UNKNOWN)
      await until(() => keysOn(1) === before[0] + 2 && keysOn(2) === before[1] + 2, "both keys made, on both live HSMs");
      await new Promise((r) => setTimeout(r, 200));
      expect([keysOn(1), keysOn(2)]).toEqual([before[0] + 2, before[1] + 2]); // each made once
    } finally {
      c.close();
    }
  }, 30_000);

  // Found: the write timeout (CLIENT_TIMINGS.writeTimeoutUs, 3 s) ran out before the transport's
  // handshake timeout (documented 5 s, effectively ~10 s: node's _onTimeout skips one period while a
  // write is pending), so a create routed to an HSM that accepts TCP but never answers TLS (SIGSTOPped,
  // hung event loop) was OUTCOME_UNKNOWN although it provably never left. Now the transport holds
  // messages until the handshake (not node), and the client takes a timed-out one back (withdraw).
  it("a hung HSM (kernel accepts, no TLS answer): a create routed to it is taken back at the write timeout and made elsewhere", async () => {
    const [host, port] = [cluster.hsms[0].host, cluster.hsms[0].port];
    const held: net.Socket[] = [];
    const hung = net.createServer((s) => { held.push(s); s.on("error", () => {}); });
    await new Promise<void>((r) => hung.listen(port, host, () => r()));
    const c = await wiredClient({ timings: { writeTimeoutUs: CLIENT_TIMINGS.writeTimeoutUs } });
    try {
      const before = keysOn(1) + keysOn(2);
      const outcome = await c.send(createKeyOp(`redteam-${++labels}`)).then(() => null, (e: Error & { code?: string }) => e);
      expect(outcome?.code ?? "ok").toBe("ok"); // withdrawn from the handshake's queue, sent elsewhere (it was OUTCOME_UNKNOWN)
      expect(c.client.stats.undelivered).toBe(1);
      await until(() => c.errors.length >= 1, "the handshake timeout reported", 20_000);
      expect(c.errors[0].message).toMatch(/ETIMEDOUT/);
      await until(() => keysOn(1) + keysOn(2) === before + 2, "the key made once, on both live HSMs");
      expect(held.length).toBeGreaterThan(0); // it did reach the hung HSM's TCP port, and nothing more
    } finally {
      c.close();
      for (const s of held) s.destroy();
      await new Promise((r) => hung.close(r));
    }
  }, 30_000);
});
