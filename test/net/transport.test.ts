// The TLS transports end to end on loopback: real ClusterNodes and Hsms serving a real
// ClusterClient, two HSMs replicating to each other over TLS, and the attacks: a peer claiming
// another HSM's address, a wrong trust anchor, a client that does not read its answers, too
// many connections, silence after the handshake, bad frames.
import { createHash } from "node:crypto";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createClusterCa, issueHsmCertificate } from "../../src/net/pki.js";
import { TlsError } from "../../src/net/net-error.js";
import { HsmTransport, hsmTls } from "../../src/net/tls-transport.js";
import { FRAME_MESSAGE, HEADER_BYTES, WIRE_VERSION } from "../../src/net/frame.js";
import { internalsOf } from "../../src/hsm/internals.js";
import {
  ALICE, type TestCluster, activate, hsmDigest, freePort, messageFrame, rawConnection, recordingLogger, sessionContext, sharedCa, startClient, startCluster, until,
} from "./fixture.js";

const alice = `${ALICE.username}:${ALICE.password}`;

describe("two HSMs and a client over TLS", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster({ hsms: 2, keyAvailabilityMin: 2 });
  }, 60_000);
  afterAll(() => cluster?.stop());

  it("the client bootstraps, learns both addresses, and writes replicate HSM to HSM over TLS", async () => {
    const [a, b] = cluster.hsms;
    const c = await startClient(a.address, cluster.ca.certPem);
    try {
      expect(c.client.isMember(a.address) && c.client.isMember(b.address)).toBe(true);
      // keyAvailabilityMin 2: createUser answers only once the other HSM holds it (a push over TLS, heads back).
      await activate(c);
      const users = (await c.send({ kind: "manage", method: "listUsers", username: "admin", password: "officer-pass-1", args: [] }, { pinned: b.address, rule: "repeat" })) as { username: string }[];
      expect(users.map((u) => u.username)).toContain(ALICE.username);
      expect(internalsOf(b.node.hsm).state.head(a.node.origin) + internalsOf(a.node.hsm).state.head(b.node.origin)).toBeGreaterThan(0);
      // Crypto on each HSM in alice's login: generateRandom fills an output buffer over the wire.
      for (const hsm of cluster.hsms) {
        const value = (await c.send({ kind: "call", method: "generateRandom", args: [1, 4096], session: sessionContext(1, alice) }, { pinned: hsm.address, rule: "repeat" })) as { output: Buffer };
        expect(Buffer.isBuffer(value.output) && value.output.length === 4096).toBe(true);
      }
      // A mechanism (a Float64Array) and input bytes over the wire, checked against node's own SHA-256.
      const data = Buffer.from("the cluster in real time");
      for (const hsm of cluster.hsms) expect((await hsmDigest(c, hsm.address, data)).equals(createHash("sha256").update(data).digest())).toBe(true);
      expect(a.transport.stats.badFrames).toEqual({});
      expect(b.transport.connections.peersInbound).toBe(1); // a's outbound to b, proven by a's certificate
      expect(a.transport.connections.peersInbound).toBe(1);
    } finally {
      c.close();
    }
  }, 60_000);

  it("a client's socket closing makes the node forget its connections (onGone)", async () => {
    const [a] = cluster.hsms;
    const c = await startClient(a.address, cluster.ca.certPem);
    await c.send({ kind: "call", method: "generateRandom", args: [1, 16], session: sessionContext(1, null) }, { pinned: a.address, rule: "repeat" });
    const table = (a.node as unknown as { connections: { table: Map<string, unknown> } }).connections.table;
    const mine = () => [...table.keys()].filter((k) => k.endsWith(`|${c.client.conn}`)).length;
    expect(mine()).toBe(1);
    c.close();
    await until(() => mine() === 0, "the HSM to drop the closed client's connection");
  }, 30_000);

  it("a peer claiming another HSM's address is refused; so is a certificate-less socket claiming to be an HSM", async () => {
    const [a, b] = cluster.hsms;
    const ca = await sharedCa();
    // A genuine cluster certificate, but for 127.0.0.9: it may not speak as b.
    const other = await issueHsmCertificate(ca, { host: "127.0.0.9", port: 2223, hsmId: "hsm-impostor" });
    const before = a.transport.stats.peerRefused;
    const impostor = await rawConnection(a.address, ca.certPem, { cert: other, hello: { role: "hsm", address: b.address } });
    await impostor.closed;
    const anonymous = await rawConnection(a.address, ca.certPem, { hello: { role: "hsm", address: b.address } });
    await anonymous.closed;
    expect(a.transport.stats.peerRefused).toBe(before + 2);
    expect(a.logger.lines.some((l) => (l.context as { code?: string }).code === "PEER_NOT_PROVEN" && /claims HSM address/.test(l.message))).toBe(true);
    expect(a.transport.stats.badFrames.PEER_NOT_PROVEN).toBe(2);
  }, 30_000);

  it("a client trusting another CA is refused with a clear, typed error", async () => {
    const foreign = await createClusterCa({ commonName: "someone else" });
    const c = await startClient(cluster.hsms[0].address, foreign.certPem, false);
    try {
      const failed = await new Promise<Error | null>((resolve) => c.client.connect((e) => resolve(e)));
      expect(failed).not.toBeNull();
      expect(c.errors.length).toBeGreaterThan(0);
      expect(c.errors[0]).toBeInstanceOf(TlsError);
      expect((c.errors[0] as TlsError).code).toBe("UNTRUSTED_HSM_CERTIFICATE");
      expect(c.errors[0].message).toContain(cluster.hsms[0].address);
      expect(c.transport.errors()[0].address).toBe(cluster.hsms[0].address);
    } finally {
      c.close();
    }
  }, 30_000);

  it("a client that does not read its answers is dropped; another client keeps being served", async () => {
    const [a] = cluster.hsms;
    const before = a.transport.stats.slowReaders;
    const greedy = await rawConnection(a.address, cluster.ca.certPem);
    greedy.socket.pause(); // reads nothing
    const ask = (id: number) => messageFrame(greedy.encoder, { t: "req", id, conn: "greedy", after: [], op: { kind: "call", method: "generateRandom", args: [1, 1024 * 1024], session: sessionContext(1, null) } });
    for (let i = 1; i <= 64; i++) greedy.socket.write(ask(i));
    const c = await startClient(a.address, cluster.ca.certPem);
    try {
      for (let i = 0; i < 20; i++) {
        const value = (await c.send({ kind: "call", method: "generateRandom", args: [1, 64], session: sessionContext(1, null) }, { pinned: a.address, rule: "repeat" })) as { output: Buffer };
        expect(value.output.length).toBe(64);
      }
      await until(() => a.transport.stats.slowReaders > before, "the HSM to drop the client that does not read");
      greedy.socket.resume();
      await greedy.closed;
    } finally {
      c.close();
      greedy.socket.destroy();
    }
  }, 60_000);

  it("bad frames close only their connection, with a logged and counted reason", async () => {
    const [a] = cluster.hsms;
    const header = (version: number, type: number, sequence: number) => {
      const h = Buffer.alloc(HEADER_BYTES);
      h.writeUInt32BE(6, 0);
      h.writeUInt8(version, 4);
      h.writeUInt8(type, 5);
      h.writeUInt32BE(sequence, 6);
      return h;
    };
    const cases: [string, (r: Awaited<ReturnType<typeof rawConnection>>) => Buffer][] = [
      ["UNKNOWN_VERSION", () => header(WIRE_VERSION + 1, FRAME_MESSAGE, 1)],
      ["OUT_OF_ORDER", () => header(WIRE_VERSION, FRAME_MESSAGE, 7)],
      ["BAD_PAYLOAD", (r) => r.encoder.encode(FRAME_MESSAGE, Buffer.from([0xc1]))],
      ["BAD_MESSAGE", (r) => messageFrame(r.encoder, { t: "req", id: "one" })],
      ["WRONG_DIRECTION", (r) => messageFrame(r.encoder, { t: "peer", cluster: "c", from: "x", to: "y", body: "{}", mac: Buffer.alloc(1) })],
      ["UNEXPECTED_HELLO", (r) => r.encoder.encode(1, Buffer.from([0x80]))],
    ];
    const c = await startClient(a.address, cluster.ca.certPem);
    try {
      for (const [code, frame] of cases) {
        const before = a.transport.stats.badFrames[code] ?? 0;
        const r = await rawConnection(a.address, cluster.ca.certPem);
        r.socket.write(frame(r));
        await r.closed;
        expect(a.transport.stats.badFrames[code], code).toBe(before + 1);
        expect(a.logger.lines.some((l) => (l.context as { code?: string }).code === code)).toBe(true);
      }
      const value = (await c.send({ kind: "call", method: "generateRandom", args: [1, 8], session: sessionContext(1, null) }, { pinned: a.address, rule: "repeat" })) as { output: Buffer };
      expect(value.output.length).toBe(8);
    } finally {
      c.close();
    }
  }, 60_000);
});

describe("limits at accept", () => {
  it("client connections per remote address and in all, counted at hello; a socket that never says hello is closed", async () => {
    const ca = await sharedCa();
    const host = "127.0.0.2";
    const port = await freePort(host);
    const cert = await issueHsmCertificate(ca, { host, port, hsmId: "hsm-limits" });
    const logger = recordingLogger();
    const transport = await HsmTransport.listen({
      address: `${host}:${port}`, tls: hsmTls({ hsm: cert, clusterCaPem: ca.certPem }), logger,
      limits: { maxConnectionsPerAddress: 2, maxConnections: 3, helloTimeoutMs: 300 },
    });
    const received: string[] = [];
    transport.attach(`${host}:${port}`, (from) => received.push(from));
    const open: Awaited<ReturnType<typeof rawConnection>>[] = [];
    try {
      open.push(await rawConnection(`${host}:${port}`, ca.certPem, { localAddress: "127.0.0.1" }));
      open.push(await rawConnection(`${host}:${port}`, ca.certPem, { localAddress: "127.0.0.1" }));
      await until(() => transport.connections.clients === 2, "two clients to say hello");
      // A third client from the same address completes TLS, says hello, and is closed there.
      const third = await rawConnection(`${host}:${port}`, ca.certPem, { localAddress: "127.0.0.1" });
      await third.closed;
      expect(transport.stats.refusedPerAddress).toBe(1);
      open.push(await rawConnection(`${host}:${port}`, ca.certPem, { localAddress: "127.0.0.7" }));
      await until(() => transport.connections.clients === 3, "the third client to say hello");
      const fourth = await rawConnection(`${host}:${port}`, ca.certPem, { localAddress: "127.0.0.8" });
      await fourth.closed;
      expect(transport.stats.refusedTotal).toBe(1);
      expect(logger.lines.some((l) => (l.context as { code?: string }).code === "TOO_MANY_CONNECTIONS")).toBe(true);
      // Room again once one closes.
      open.shift()!.socket.destroy();
      await until(() => transport.connections.clients === 2, "the closed connection to be counted out");
      open.push(await rawConnection(`${host}:${port}`, ca.certPem, { localAddress: "127.0.0.1" }));
      await until(() => transport.connections.clients === 3, "a client in the freed slot");
      const silent = await rawConnection(`${host}:${port}`, ca.certPem, { localAddress: "127.0.0.1", hello: null });
      await silent.closed;
      expect(transport.stats.helloTimeouts).toBe(1);
      expect(logger.lines.some((l) => (l.context as { code?: string }).code === "HELLO_TIMEOUT")).toBe(true);
    } finally {
      for (const o of open) o.socket.destroy();
      await transport.close();
    }
  }, 60_000);
});

describe("mutual TLS", () => {
  it("enforced: a client without a certificate from the client trust anchor is refused at the handshake with a typed error; one with it is served", async () => {
    const { createClientCa, issueClientCertificate } = await import("../../src/net/pki.js");
    const ca = await sharedCa();
    const clientCa = await createClientCa({ commonName: "hsmsim test clients" });
    const appCert = await issueClientCertificate(clientCa, { commonName: "app-one" });
    const host = "127.0.0.2";
    const port = await freePort(host);
    const address = `${host}:${port}`;
    const cert = await issueHsmCertificate(ca, { host, port, hsmId: "hsm-mtls" });
    const transport = await HsmTransport.listen({ address, tls: hsmTls({ hsm: cert, clusterCaPem: ca.certPem, clientCaPem: clientCa.certPem, enforceMutualTls: true }) });
    // A bare transport that answers every request with a response of its own id: the TLS path is what is tested here.
    transport.attach(address, (from, message) => {
      const id = (message as { id: number }).id;
      transport.send(address, from, { t: "res", id, ok: true, value: { hsmId: "hsm-mtls", clusterId: "c", members: [{ hsmId: "hsm-mtls", address, availabilityZone: "az" }], membershipEpoch: 1 }, hsmId: "hsm-mtls", spareCapacity: 1, membershipEpoch: 1 });
    });
    const anonymous = await startClient(address, ca.certPem, false);
    const withCert = await startClient(address, ca.certPem, false, appCert);
    try {
      const refused = await new Promise<Error | null>((resolve) => anonymous.client.connect((e) => resolve(e)));
      expect(refused).not.toBeNull();
      await until(() => anonymous.errors.length > 0, "the anonymous client's connection error");
      expect(anonymous.errors[0]).toBeInstanceOf(TlsError);
      expect((anonymous.errors[0] as TlsError).code).toMatch(/^CLIENT_CERTIFICATE_(REQUIRED|REJECTED)$/);
      const served = await new Promise<Error | null>((resolve) => withCert.client.connect((e) => resolve(e)));
      expect(served).toBeNull();
      expect(withCert.errors).toEqual([]);
    } finally {
      anonymous.close();
      withCert.close();
      await transport.close();
    }
  }, 60_000);
});

describe("timeouts, memory budget, a peer that is down", () => {
  it("a half-open handshake, a silent client, and incomplete frames past the budget are closed; a down peer is not dialled on every send", async () => {
    const ca = await sharedCa();
    const host = "127.0.0.2";
    const port = await freePort(host);
    const address = `${host}:${port}`;
    const cert = await issueHsmCertificate(ca, { host, port, hsmId: "hsm-timeouts" });
    const logger = recordingLogger();
    const transport = await HsmTransport.listen({
      address, tls: hsmTls({ hsm: cert, clusterCaPem: ca.certPem }), logger,
      limits: { handshakeTimeoutMs: 300, idleTimeoutMs: 400, maxBufferedBytes: 100_000 },
    });
    transport.attach(address, () => {});
    const { connect } = await import("node:net");
    try {
      // TCP, and not a byte of TLS: the handshake timeout closes it.
      const raw = connect({ host, port });
      raw.on("error", () => {});
      await new Promise<void>((resolve) => raw.once("close", () => resolve()));
      expect(transport.stats.tlsRefused).toBeGreaterThanOrEqual(1);
      // Hello, then silence: the idle timeout.
      const silent = await rawConnection(address, ca.certPem);
      silent.socket.resume();
      await silent.closed;
      expect(transport.stats.idleTimeouts).toBe(1);
      // Two connections each holding 60 KB of a 1 MiB frame: the second passes the 100 KB budget.
      const header = (sequence: number) => {
        const h = Buffer.alloc(HEADER_BYTES);
        h.writeUInt32BE(6 + 1024 * 1024, 0);
        h.writeUInt8(WIRE_VERSION, 4);
        h.writeUInt8(FRAME_MESSAGE, 5);
        h.writeUInt32BE(sequence, 6);
        return h;
      };
      const first = await rawConnection(address, ca.certPem);
      first.socket.write(Buffer.concat([header(1), Buffer.alloc(60_000)]));
      const second = await rawConnection(address, ca.certPem);
      second.socket.write(Buffer.concat([header(1), Buffer.alloc(60_000)]));
      await until(() => transport.stats.memoryRefused === 1, "a connection closed for the memory budget");
      expect(logger.lines.some((l) => (l.context as { code?: string }).code === "MEMORY_BUDGET")).toBe(true);
      first.socket.destroy();
      second.socket.destroy();
      // A peer address nobody listens on: sends for 600 ms, a handful of attempts at most (backoff), not one per send.
      const nowhere = `127.0.0.2:${await freePort(host)}`;
      const started = Date.now();
      let sends = 0;
      while (Date.now() - started < 600) {
        transport.send(address, nowhere, { t: "peer" });
        sends++;
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(sends).toBeGreaterThan(20);
      expect(transport.stats.connects).toBeLessThanOrEqual(6);
      expect(transport.stats.undeliverable).toBeGreaterThan(10);
      // A message that cannot be encoded (a cycle) is dropped and counted, never thrown into the sender.
      const client = await rawConnection(address, ca.certPem);
      await until(() => transport.connections.clients === 1, "the client's hello");
      const cyclic: Record<string, unknown> = { t: "res" };
      cyclic.self = cyclic;
      const unsendable = transport.stats.unsendable;
      const clientId = [...(transport as unknown as { clients: Map<string, unknown> }).clients.keys()][0];
      expect(clientId).toMatch(new RegExp(`^client/${client.socket.localAddress}:${client.socket.localPort}#\\d+$`));
      expect(() => transport.send(address, clientId, cyclic)).not.toThrow();
      expect(transport.stats.unsendable).toBe(unsendable + 1);
      client.socket.destroy();
    } finally {
      await transport.close();
    }
  }, 60_000);
});

describe("an HSM dialling a peer checks who answers", () => {
  it("an impostor at the peer's address, with a cluster certificate for another address or one from a foreign CA, never receives the message", async () => {
    const ca = await sharedCa();
    const foreign = await createClusterCa({ commonName: "impostor CA" });
    const host = "127.0.0.2";
    const [port, peerPort] = [await freePort(host), await freePort("127.0.0.4")];
    const address = `${host}:${port}`, peerAddress = `127.0.0.4:${peerPort}`;
    const hsm = await HsmTransport.listen({ address, tls: hsmTls({ hsm: await issueHsmCertificate(ca, { host, port, hsmId: "hsm-dialler" }), clusterCaPem: ca.certPem }) });
    hsm.attach(address, () => {});
    try {
      const impostorCerts = [
        { cert: await issueHsmCertificate(ca, { host: "127.0.0.4", port: peerPort + 1, hsmId: "hsm-wrong-port" }), clusterCaPem: ca.certPem },
        { cert: await issueHsmCertificate(foreign, { host: "127.0.0.4", port: peerPort, hsmId: "hsm-foreign" }), clusterCaPem: foreign.certPem },
      ];
      for (const [i, impostor] of impostorCerts.entries()) {
        const listener = await HsmTransport.listen({ address: peerAddress, tls: hsmTls({ hsm: impostor.cert, clusterCaPem: impostor.clusterCaPem }) });
        const received: unknown[] = [];
        listener.attach(peerAddress, (_from, message) => received.push(message));
        try {
          hsm.send(address, peerAddress, { t: "peer", cluster: "c", from: address, to: peerAddress, body: "{}", mac: Buffer.alloc(32) });
          await until(() => hsm.stats.connectFailures === i + 1, "the dialling HSM to refuse the impostor's certificate");
          expect(received).toEqual([]);
          expect(listener.stats.messagesIn).toBe(0);
        } finally {
          await listener.close();
        }
        await new Promise((r) => setTimeout(r, 2_100)); // past the dial backoff
      }
    } finally {
      await hsm.close();
    }
  }, 60_000);
});

describe("a peer that accepts TCP but never finishes the handshake", () => {
  it("fails the dial after the handshake timeout (counted, backed off), never wedging the sender", async () => {
    const ca = await sharedCa();
    const host = "127.0.0.2";
    const port = await freePort(host);
    const address = `${host}:${port}`;
    const hsm = await HsmTransport.listen({ address, tls: hsmTls({ hsm: await issueHsmCertificate(ca, { host, port, hsmId: "hsm-stuck-dialler" }), clusterCaPem: ca.certPem }), limits: { handshakeTimeoutMs: 300 } });
    hsm.attach(address, () => {});
    const { createServer } = await import("node:net");
    const held: import("node:net").Socket[] = [];
    const stuck = createServer((socket) => { held.push(socket); socket.on("error", () => {}); }); // reads nothing, answers nothing
    const stuckPort = await freePort("127.0.0.4");
    await new Promise<void>((resolve) => stuck.listen(stuckPort, "127.0.0.4", () => resolve()));
    try {
      hsm.send(address, `127.0.0.4:${stuckPort}`, { t: "peer", cluster: "c", from: address, to: "x", body: "{}", mac: Buffer.alloc(32) });
      await until(() => hsm.stats.connectFailures === 1, "the stuck dial to fail on the handshake timeout");
      expect(held.length).toBe(1);
    } finally {
      for (const s of held) s.destroy();
      await new Promise((r) => stuck.close(r));
      await hsm.close();
    }
  }, 30_000);
});
