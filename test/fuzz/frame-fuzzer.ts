// Hostile frames at a live HSM (a real ClusterNode + Hsm behind HsmTransport, TLS on loopback,
// a second HSM replicating with it), seeded. Each fuzzing connection says hello (or a hostile
// one), sends a run of frames the wire accepts but whose messages the node refuses or answers
// with an error (unknown methods, hostile arguments, stale heads, forged peer envelopes on a
// peer connection…), waits until the HSM has dealt with every one, then usually ends with one
// frame that must close it (garbage, truncated, oversized, unknown version or type, out of
// order, undecodable or hostile MessagePack, a bad message shape, a hello out of place, or a
// half-open handshake). Reconnections resume the TLS session. Meanwhile, and afterwards, a
// legitimate client checks SHA-256 digests and random lengths from the HSM against node's own.
import { createHash } from "node:crypto";
import * as net from "node:net";

import { Packr } from "msgpackr";

import { Rng } from "../../src/sim/random.js";
import { decodePayload, encodePayload } from "../../src/net/codec.js";
import { FRAME_HELLO, FRAME_MESSAGE, FrameDecoder, FrameEncoder, HEADER_BYTES, MAX_PAYLOAD_BYTES, WIRE_VERSION } from "../../src/net/frame.js";
import { type TestClient, type TestCluster, activate, hsmDigest, rawConnection, sessionContext, startClient, startCluster } from "../net/fixture.js";

export interface FrameFuzzReport {
  seed: number;
  frames: number;
  connections: number;
  /** TLS connections that resumed a session (no full handshake). */
  resumed: number;
  /** Connections that ended with a fatal frame, and those the HSM closed for it. */
  fatalSent: number;
  closedByHsm: number;
  /** Half-open handshakes (a cut ClientHello) the HSM keeps until its handshake timeout: not waited for here (the transport tests cover it). */
  leftToHandshakeTimeout: number;
  /** Fatal frames the HSM did not close the connection for (must be 0). */
  notClosed: number;
  /** Non-fatal frames: requests the HSM answered, peer envelopes it dropped. */
  answered: number;
  peerDropped: number;
  legitChecks: number;
  legitFailures: string[];
  durationMs: number;
  hsm: { transport: unknown; node: unknown; running: boolean };
  findings: string[];
}

const hostilePackr = new Packr({ structuredClone: true, moreTypes: true, useRecords: true });
const FATAL_KINDS = [
  "garbage", "truncated", "oversized", "too-short", "version", "type", "sequence-skip", "sequence-repeat", "bad-msgpack", "hostile-msgpack",
  "bad-shape", "wrong-direction", "repeated-hello", "hostile-hello", "half-open", "no-hello-message",
] as const;
type FatalKind = (typeof FATAL_KINDS)[number];

function header(length: number, version: number, type: number, sequence: number): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  b.writeUInt32BE(length >>> 0, 0);
  b.writeUInt8(version, 4);
  b.writeUInt8(type, 5);
  b.writeUInt32BE(sequence >>> 0, 6);
  return b;
}

/** Values a hostile client puts where a request's fields go: well-shaped requests whose content the node must refuse or answer with an error. */
function hostileRequest(rng: Rng, id: number): unknown {
  const methods = ["generateRandom", "digestInit", "digest", "getAttributeValue", "findObjectsInit", "findObjects", "encryptInit", "signInit", "createObject",
    "destroyObject", "initToken", "closeAllSessions", "__proto__", "constructor", "toString", "exportMasked", "deviceMac", "shareMaskingKey", "login", "setPin"];
  const junk = (): unknown => rng.pick<() => unknown>([
    () => rng.int(2 ** 31), () => -rng.int(1000), () => 2 ** 52 + rng.int(1000), () => rng.bytes(rng.int(64)), () => "x".repeat(rng.int(300)),
    () => null, () => [junk(), junk()], () => ({ type: rng.int(0x200), value: rng.bytes(8) }), () => new Float64Array([rng.int(0x2000), 1, rng.int(99), -1, 1e300]),
    () => true, () => 1.5, () => Number.NaN,
  ])();
  const session = rng.chance(0.7) ? { id: rng.int(5), flags: rng.pick([0, 4, 6, 2 ** 31]), login: rng.pick([null, "alice:wrong", "nobody:x", ""]),
    continuation: rng.chance(0.3), ...(rng.chance(0.3) ? { operation: { n: rng.int(5), step: rng.int(3) } } : {}), ...(rng.chance(0.2) ? { objectsHere: true } : {}) } : undefined;
  // Rarely stale: each stale request makes the HSM ask its peers for heads (real work, the protocol's own).
  const after = rng.chance(0.02) ? [[rng.int(5), 2 ** 40]] : [];
  const conn = rng.pick(["fuzz", "x|y", "client/127.0.0.1:1", "🙂", "a".repeat(256)]);
  const op = rng.pick<() => unknown>([
    () => ({ kind: "call", method: rng.pick(methods), args: Array.from({ length: rng.int(6) }, junk), ...(session ? { session } : {}) }),
    () => ({ kind: "call", method: "generateRandom", args: [rng.int(5), rng.pick([-1, 2 ** 40, 16 * 1024 * 1024 + 1, 1.5, rng.int(512)])], session: session ?? sessionContext(1, null) }),
    () => ({ kind: "manage", method: rng.pick(["listUsers", "createUser", "deleteUser", "describeKey", "nope", "constructor"]), username: rng.pick(["nobody", "ghost", ""]), password: "x", args: [junk()] }),
    () => ({ kind: "close" }),
    () => ({ kind: "hello" }),
  ])();
  return { t: "req", id, conn, after, op };
}

function hostileEnvelope(rng: Rng, cluster: TestCluster, fromAddress: string): unknown {
  const to = cluster.hsms[0].address;
  return rng.pick<() => unknown>([
    () => ({ t: "peer", cluster: "cluster-wire", from: fromAddress, to, body: JSON.stringify({ t: "heads", heads: [[1, 5]], reply: true }), mac: rng.bytes(32) }),
    () => ({ t: "peer", cluster: "other-cluster", from: fromAddress, to, body: "{}", mac: rng.bytes(32) }),
    () => ({ t: "peer", cluster: "cluster-wire", from: "127.0.0.99:1", to, body: "{}", mac: rng.bytes(32) }),
    () => ({ t: "peer", cluster: "cluster-wire", from: fromAddress, to: "127.0.0.99:1", body: rng.bytes(100).toString("latin1"), mac: rng.bytes(rng.int(64)) }),
    () => ({ t: "peer", cluster: "cluster-wire", from: fromAddress, to, body: JSON.stringify({ t: "push", entries: [[1, 999, "garbage"]] }), mac: Buffer.alloc(32) }),
  ])();
}

/** The fatal frame of `kind` for a connection whose next sequence number is `next`. */
function fatalFrame(rng: Rng, kind: FatalKind, encoder: FrameEncoder, next: number, asPeer: boolean): Buffer {
  switch (kind) {
    case "garbage": return rng.bytes(HEADER_BYTES + rng.int(64)); // at least a header's worth: fewer bytes are a frame still arriving
    case "truncated": { const full = encoder.encode(FRAME_MESSAGE, encodePayload({ t: "req" })); return full.subarray(0, 1 + rng.int(full.length - 1)); }
    case "oversized": return header(6 + MAX_PAYLOAD_BYTES + 1 + rng.int(2 ** 20), WIRE_VERSION, FRAME_MESSAGE, next);
    case "too-short": return Buffer.concat([header(rng.int(6), WIRE_VERSION, FRAME_MESSAGE, next), rng.bytes(8)]);
    case "version": return Buffer.concat([header(7, rng.pick([0, 2, 3, 255]), FRAME_MESSAGE, next), Buffer.from([0xc0])]);
    case "type": return Buffer.concat([header(7, WIRE_VERSION, rng.pick([0, 3, 7, 255]), next), Buffer.from([0xc0])]);
    case "sequence-skip": return Buffer.concat([header(7, WIRE_VERSION, FRAME_MESSAGE, next + 1 + rng.int(1000)), Buffer.from([0xc0])]);
    case "sequence-repeat": return Buffer.concat([header(7, WIRE_VERSION, FRAME_MESSAGE, Math.max(0, next - 1 - rng.int(next))), Buffer.from([0xc0])]);
    case "bad-msgpack": return encoder.encode(FRAME_MESSAGE, rng.pick([Buffer.from([0xc1]), Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]), rng.bytes(1 + rng.int(40)), Buffer.alloc(0)]));
    case "hostile-msgpack": {
      const cyclic: Record<string, unknown> = { t: "req" };
      cyclic.self = cyclic;
      let deep: unknown = 1;
      for (let i = 0; i < 40; i++) deep = [deep];
      const value = rng.pick<unknown>([new Date(), new Set([1]), /(a+)+$/, new Error("x"), new Int16Array([1]), 2n ** 80n, cyclic, { t: "req", id: new Map([[1, 2]]) }, deep]);
      return encoder.encode(FRAME_MESSAGE, Buffer.from(hostilePackr.pack(value)));
    }
    case "bad-shape": return encoder.encode(FRAME_MESSAGE, encodePayload(rng.pick<unknown>([null, 5, "req", [], { t: "req" }, { t: "req", id: 1.5, conn: "c", after: [], op: { kind: "hello" } },
      { t: "req", id: 1, conn: "", after: [], op: { kind: "hello" } }, { t: "push", entries: [] }, { t: "req", id: 1, conn: "c", after: "x", op: { kind: "call" } }, { __proto__: { t: "req" } }])));
    case "wrong-direction": return encoder.encode(FRAME_MESSAGE, encodePayload(rng.pick<unknown>([{ t: "res", id: 1, ok: true, hsmId: "h", spareCapacity: 1, membershipEpoch: 1 },
      asPeer ? { t: "req", id: 1, conn: "c", after: [], op: { kind: "hello" } } : { t: "peer", cluster: "c", from: "a", to: "b", body: "", mac: Buffer.alloc(1) }])));
    case "repeated-hello": return encoder.encode(FRAME_HELLO, encodePayload({ role: "client" }));
    default: throw new Error(`no frame for ${kind}`);
  }
}

/** A legitimate client's check: a digest and a random length, compared with what they must be. */
async function legitCheck(c: TestClient, address: string, rng: Rng): Promise<string | null> {
  const data = rng.bytes(1 + rng.int(4096));
  try {
    const digest = await hsmDigest(c, address, data, 7);
    if (!digest.equals(createHash("sha256").update(data).digest())) return "a wrong SHA-256 digest";
    const length = 1 + rng.int(1024);
    const value = (await c.send({ kind: "call", method: "generateRandom", args: [7, length], session: sessionContext(7, null) }, { pinned: address, rule: "repeat" })) as { output: Buffer };
    if (value.output.length !== length) return `generateRandom gave ${value.output.length} bytes, not ${length}`;
    return null;
  } catch (e) {
    return `legitimate call failed: ${String(e)}`;
  }
}

export async function fuzzFrames(frameTarget: number, seed: number, options: { concurrency?: number; log?: (line: string) => void } = {}): Promise<FrameFuzzReport> {
  const rng = new Rng(`frames-${seed}`);
  const started = Date.now();
  // A deep queue: hostile requests wait their turn instead of making the legitimate client's answers "busy" (the node's own protocol, not the wire's).
  const cluster = await startCluster({ hsms: 2, keyAvailabilityMin: 1, node: { queueCapacity: 8192 } });
  const target = cluster.hsms[0];
  const report: FrameFuzzReport = {
    seed, frames: 0, connections: 0, resumed: 0, fatalSent: 0, closedByHsm: 0, leftToHandshakeTimeout: 0, notClosed: 0, answered: 0, peerDropped: 0, legitChecks: 0, legitFailures: [],
    durationMs: 0, hsm: { transport: null, node: null, running: false }, findings: [],
  };
  const legit = await startClient(target.address, cluster.ca.certPem);
  await activate(legit);
  let stopLegit = false;
  const legitRng = rng.fork("legit");
  const legitLoop = (async () => {
    while (!stopLegit) {
      const failure = await legitCheck(legit, target.address, legitRng);
      report.legitChecks++;
      if (failure) report.legitFailures.push(failure);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  let ticket: Buffer | undefined;
  let peerTicket: Buffer | undefined;
  const peerCert = cluster.hsms[1].cert; // a compromised or broken peer: a genuine certificate, hostile envelopes
  const concurrency = options.concurrency ?? 4;
  let nextLog = 0;

  const oneConnection = async (crng: Rng): Promise<void> => {
    report.connections++;
    const fatal: FatalKind | null = crng.chance(0.85) ? crng.pick(FATAL_KINDS) : null;
    if (fatal === "half-open") {
      // TCP without TLS: a few bytes of nothing, or a cut ClientHello, then gone or silent until the HSM gives up.
      const raw = net.connect({ host: target.host, port: target.port });
      raw.on("error", () => {});
      await new Promise<void>((resolve) => raw.once("connect", () => resolve()).once("error", () => resolve()));
      raw.write(crng.pick([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), crng.bytes(1 + crng.int(200)), Buffer.from("GET / HTTP/1.1\r\n\r\n")]));
      report.frames++;
      report.fatalSent++;
      const closed = await Promise.race([new Promise<boolean>((r) => raw.once("close", () => r(true))), new Promise<boolean>((r) => setTimeout(() => r(false), 200))]);
      if (closed) report.closedByHsm++;
      else report.leftToHandshakeTimeout++;
      // A cut ClientHello waits for the handshake timeout (tested on its own in the transport tests): not waited for here.
      raw.destroy();
      return;
    }
    const asPeer = fatal === null ? crng.chance(0.3) : crng.chance(0.1);
    const hello = asPeer ? { role: "hsm", address: cluster.hsms[1].address } : { role: "client" };
    let r: Awaited<ReturnType<typeof rawConnection>>;
    try {
      r = await rawConnection(target.address, cluster.ca.certPem, { cert: asPeer ? peerCert : undefined, session: asPeer ? peerTicket : ticket, hello: fatal === "no-hello-message" || fatal === "hostile-hello" ? null : hello });
    } catch (e) {
      report.findings.push(`connection ${report.connections} failed: ${String(e)}`);
      return;
    }
    let closedByHsm = false;
    let weClose = false;
    r.closed.then(() => { if (!weClose) closedByHsm = true; });
    const decoder = new FrameDecoder();
    let answers = 0;
    r.socket.on("data", (chunk: Buffer) => {
      try {
        for (const frame of decoder.push(chunk)) {
          const message = decodePayload(frame.payload) as { t?: string };
          if (message?.t === "res") answers++;
        }
      } catch (e) {
        report.findings.push(`the HSM sent a bad frame: ${String(e)}`);
      }
    });
    let sent = fatal === "no-hello-message" || fatal === "hostile-hello" ? 0 : 1;
    report.frames += sent;
    if (fatal === "hostile-hello") {
      r.socket.write(r.encoder.encode(FRAME_HELLO, encodePayload(crng.pick<unknown>([{ role: "admin" }, { role: "hsm" }, { role: "hsm", address: "127.0.0.1:1; rm" }, null, [1, 2], { role: "hsm", address: target.address }]))));
      report.frames++;
    } else if (fatal !== "no-hello-message") {
      // The run the wire accepts: answered (requests) or dropped unread (peer envelopes), the connection stays open.
      const count = 20 + crng.int(300);
      const peerRejectedBefore = target.node.stats.peerRejected;
      const batch: Buffer[] = [];
      for (let i = 0; i < count; i++) {
        const message = asPeer ? hostileEnvelope(crng, cluster, cluster.hsms[1].address) : hostileRequest(crng, report.frames + i);
        batch.push(r.encoder.encode(FRAME_MESSAGE, encodePayload(message)));
      }
      r.socket.write(Buffer.concat(batch));
      sent += count;
      report.frames += count;
      const deadline = Date.now() + 30_000;
      const done = () => (asPeer ? target.node.stats.peerRejected - peerRejectedBefore >= count : answers >= count);
      while (!done() && !closedByHsm && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
      if (closedByHsm) report.findings.push(`the HSM closed a connection over frames it should accept (${asPeer ? "peer" : "client"}; stats ${JSON.stringify(target.transport.stats.badFrames)})`);
      else if (!done()) report.findings.push(`the HSM did not deal with ${count} accepted frames within 30 s (${asPeer ? target.node.stats.peerRejected - peerRejectedBefore : answers} done)`);
      if (asPeer) report.peerDropped += count;
      else report.answered += answers;
    }
    if (fatal !== null && fatal !== "hostile-hello") {
      const frame = fatal === "no-hello-message" ? r.encoder.encode(FRAME_MESSAGE, encodePayload(hostileRequest(crng, 1))) : fatalFrame(crng, fatal, r.encoder, sent, asPeer);
      r.socket.write(frame);
      report.frames++;
    }
    if (fatal !== null) {
      report.fatalSent++;
      // "truncated" leaves half a frame: the HSM waits for the rest, so the client ends its side.
      if (fatal === "truncated") r.socket.end();
      const closed = await Promise.race([r.closed.then(() => true), new Promise<boolean>((res) => setTimeout(() => res(false), 15_000))]);
      if (closed && (closedByHsm || fatal === "truncated")) report.closedByHsm++;
      else {
        report.notClosed++;
        report.findings.push(`a ${fatal} frame did not close its connection`);
      }
    }
    // TLS 1.3 tickets come after the handshake: take the newest for the next connection's resumption.
    if (asPeer) peerTicket = r.session() ?? peerTicket;
    else ticket = r.session() ?? ticket;
    if (r.resumed) report.resumed++;
    weClose = true;
    r.socket.destroy();
    if (options.log && report.frames >= nextLog) {
      options.log(`${report.frames} frames, ${report.connections} connections, ${report.legitChecks} legitimate checks (${report.legitFailures.length} failed), ${Date.now() - started} ms`);
      nextLog += 10_000;
    }
  };

  try {
    const workers = Array.from({ length: concurrency }, (_, w) => (async () => {
      const wrng = rng.fork(`worker-${w}`);
      while (report.frames < frameTarget && report.findings.length < 20) await oneConnection(wrng);
    })());
    await Promise.all(workers);
    stopLegit = true;
    await legitLoop; // one legitimate check at a time: two would share (and abort) the session's digest
    // Afterwards: the HSM still serves correct answers.
    for (let i = 0; i < 20; i++) {
      const failure = await legitCheck(legit, target.address, legitRng);
      report.legitChecks++;
      if (failure) report.legitFailures.push(`after the fuzzing: ${failure}`);
    }
  } finally {
    stopLegit = true;
    await legitLoop;
    report.durationMs = Date.now() - started;
    report.hsm = { transport: { ...target.transport.stats, badFrames: { ...target.transport.stats.badFrames } }, node: { ...target.node.stats }, running: target.node.running };
    legit.close();
    await cluster.stop();
  }
  if (report.legitFailures.length > 0) report.findings.push(`${report.legitFailures.length} legitimate checks failed: ${report.legitFailures.slice(0, 3).join("; ")}`);
  return report;
}
