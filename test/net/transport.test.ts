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
    expect(a.logger.lines.some((l) => /claims HSM address/.test(l.message))).toBe(true);
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
  it("connections per remote address and in all; a socket that never says hello is closed", async () => {
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
      await expect(rawConnection(`${host}:${port}`, ca.certPem, { localAddress: "127.0.0.1" })).rejects.toThrow(/closed during the handshake/);
      expect(transport.stats.refusedPerAddress).toBe(1);
      open.push(await rawConnection(`${host}:${port}`, ca.certPem, { localAddress: "127.0.0.7" }));
      await expect(rawConnection(`${host}:${port}`, ca.certPem, { localAddress: "127.0.0.8" })).rejects.toThrow(/closed during the handshake/);
      expect(transport.stats.refusedTotal).toBe(1);
      // Room again once one closes.
      open.shift()!.socket.destroy();
      await until(() => transport.connections.tcp === 2, "the closed connection to be counted out");
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
