// Real HSMs (ClusterNode + Hsm, passwordCost 1) serving over HsmTransport on loopback
// addresses with certificates from a cluster CA, and clients over ClientTransport: what the
// transport, fuzz and limit tests share. Everything started is stopped by stop().
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";

import { ClusterClient } from "../../src/client/client.js";
import { ClusterNode, type Member, type NodeConfig } from "../../src/cluster/node.js";
import { DEFAULT_NODE } from "../../src/cluster/cluster.js";
import type { RequestOp, Response } from "../../src/cluster/protocol.js";
import { Hsm, restoreHsm } from "../../src/hsm/hsm.js";
import { internalsOf } from "../../src/hsm/internals.js";
import { OsRandom } from "../../src/net/os-random.js";
import { type CertificateAndKey, createClusterCa, issueHsmCertificate } from "../../src/net/pki.js";
import { RealClock } from "../../src/net/real-clock.js";
import { ClientTransport, HsmTransport, type HsmTransportLimits, clientTls, hsmTls } from "../../src/net/tls-transport.js";
import type { WireLogger } from "../../src/net/wire-stats.js";
import { FRAME_HELLO, FRAME_MESSAGE, FrameEncoder } from "../../src/net/frame.js";
import { encodePayload } from "../../src/net/codec.js";
import type { Random } from "../../src/runtime/random.js";
import { encodeTemplate } from "../../src/pkcs11/template.js";
import { CKA_CLASS, CKA_LABEL, CKA_TOKEN, CKA_VALUE } from "../../src/pkcs11/constants/attributes.js";
import { CKK_GENERIC_SECRET, CKO_SECRET_KEY } from "../../src/pkcs11/constants/other.js";

export const CO = { username: "admin", password: "officer-pass-1" };
export const ALICE = { username: "alice", password: "alice-pass-1" };

/** A port free on `host` now (the tests bind it right after; a collision fails loudly, never silently). */
export async function freePort(host: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** A logger that keeps what it is told, to assert on reasons. */
export function recordingLogger(): WireLogger & { lines: { level: string; context: object; message: string }[] } {
  const lines: { level: string; context: object; message: string }[] = [];
  const at = (level: string) => (context: object, message: string) => void lines.push({ level, context, message });
  return { lines, info: at("info"), warn: at("warn"), error: at("error") };
}

export interface TestHsm {
  address: string;
  host: string;
  port: number;
  cert: CertificateAndKey;
  transport: HsmTransport;
  node: ClusterNode;
  logger: ReturnType<typeof recordingLogger>;
}

export interface TestCluster {
  ca: CertificateAndKey;
  hsms: TestHsm[];
  members: Member[];
  dir: string;
  stop(): Promise<void>;
}

/** Issues an HSM certificate for `host:port` from `ca`. */
export function hsmCertificate(ca: CertificateAndKey, host: string, port: number, hsmId: string): Promise<CertificateAndKey> {
  return issueHsmCertificate(ca, { host, port, hsmId });
}

let caPromise: Promise<CertificateAndKey> | null = null;
/** One cluster CA for the whole test file (key generation is the slow part). */
export function sharedCa(): Promise<CertificateAndKey> {
  caPromise ??= createClusterCa({ commonName: "hsmsim test cluster" });
  return caPromise;
}

/**
 * HSMs on 127.0.0.2, 127.0.0.3, … (random free ports), the first created and the others cloned
 * from it (masking key chip to chip), initialized; `keyAvailabilityMin` as given.
 */
export async function startCluster(options: { hsms: number; keyAvailabilityMin?: number; limits?: Partial<HsmTransportLimits>; firstHost?: number; node?: Partial<NodeConfig> } = { hsms: 1 }): Promise<TestCluster> {
  const ca = await sharedCa();
  const dir = mkdtempSync(join(tmpdir(), "hsmsim-wire-"));
  const clock = new RealClock({ unref: true });
  const placed: { host: string; port: number; origin: number }[] = [];
  for (let i = 0; i < options.hsms; i++) {
    const host = `127.0.0.${(options.firstHost ?? 2) + i}`;
    placed.push({ host, port: await freePort(host), origin: i + 1 });
  }
  const first = Hsm.create(join(dir, "hsm1"), { origin: 1, passwordCost: 1 });
  const devices = [first];
  for (const p of placed.slice(1)) {
    const source = internalsOf(first);
    devices.push(restoreHsm(join(dir, `hsm${p.origin}`), source.snapshot(), (target) => source.chip.shareMaskingKey(0, target, 0), { origin: p.origin, passwordCost: 1 }));
  }
  const members: Member[] = placed.map((p, i) => ({ hsmId: devices[i].id, address: `${p.host}:${p.port}`, availabilityZone: `az-${i}`, origin: p.origin }));
  const hsms: TestHsm[] = [];
  for (const [i, p] of placed.entries()) {
    const cert = await hsmCertificate(ca, p.host, p.port, devices[i].id);
    const logger = recordingLogger();
    const address = members[i].address;
    const transport = await HsmTransport.listen({ address, tls: hsmTls({ hsm: cert, clusterCaPem: ca.certPem }), logger, limits: options.limits });
    const node = new ClusterNode(devices[i], { ...DEFAULT_NODE, serviceTimeUs: () => 0, ...options.node, clusterId: "cluster-wire", address, availabilityZone: members[i].availabilityZone }, transport, clock);
    hsms.push({ address, host: p.host, port: p.port, cert, transport, node, logger });
  }
  const kam = options.keyAvailabilityMin ?? 1;
  for (const h of hsms) h.node.setMembers(members, 1, kam, true, options.hsms);
  return {
    ca, hsms, members, dir,
    async stop() {
      for (const h of hsms) if (h.node.running) h.node.stop();
      await Promise.all(hsms.map((h) => h.transport.close()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TestClient {
  client: ClusterClient;
  transport: ClientTransport;
  errors: Error[];
  /** Sends an op (promisified); resolves to the value, rejects with the client's error. */
  send(op: RequestOp, options?: { pinned?: string; rule?: "repeat" | "fail" }): Promise<unknown>;
  close(): void;
}

let clients = 0;
/** A ClusterClient over a ClientTransport trusting `trustAnchorPem`, bootstrapped from `bootstrap`. */
export async function startClient(bootstrap: string, trustAnchorPem: string, connect = true, clientCertificate?: CertificateAndKey): Promise<TestClient> {
  const errors: Error[] = [];
  // Wired as the worker's runtime wires it (src/client/remote/cluster-backend.ts): a refused connection fails over at once.
  const transport = new ClientTransport({
    tls: clientTls({ trustAnchorPem, clientCertificate }),
    onError: (e, address, undelivered) => {
      errors.push(e);
      client.unreachable(address, undelivered);
    },
  });
  const client: ClusterClient = new ClusterClient({
    transport, clock: new RealClock(), rng: new OsRandom(), address: `app-${++clients}`, bootstrap,
    requestTimeoutUs: 5_000_000, writeTimeoutUs: 10_000_000, heartbeatIntervalUs: 1_000_000,
  });
  const send = (op: RequestOp, options: { pinned?: string; rule?: "repeat" | "fail" } = {}) => new Promise<unknown>((resolve, reject) => {
    client.send(op, { rule: options.rule ?? "fail", pinned: options.pinned }, (e, v) => (e ? reject(e) : resolve(v)));
  });
  if (connect) await new Promise<void>((resolve, reject) => client.connect((e) => (e ? reject(e) : resolve())));
  return { client, transport, errors, send, close: () => { client.close(); transport.close(); } };
}

/** Activates the cluster (PRECO → CO) and creates crypto user alice. */
export async function activate(c: TestClient): Promise<void> {
  await c.send({ kind: "manage", method: "changePassword", username: "admin", password: "password", args: ["admin", CO.password] });
  await c.send({ kind: "manage", method: "createUser", username: CO.username, password: CO.password, args: [ALICE.username, "CU", ALICE.password] });
}

/** A session context for raw call ops. */
export function sessionContext(id: number, login: string | null): NonNullable<Extract<RequestOp, { kind: "call" }>["session"]> {
  return { id, flags: 6, login, continuation: false };
}

/** A TLS socket to an HSM speaking raw frames (for hostile tests): it says hello unless told not to. */
export async function rawConnection(address: string, ca: string, options: { cert?: CertificateAndKey; session?: Buffer; hello?: object | null; localAddress?: string } = {}): Promise<{ socket: tls.TLSSocket; encoder: FrameEncoder; closed: Promise<void>; session: () => Buffer | undefined; resumed: boolean }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))];
  let ticket: Buffer | undefined;
  // localAddress goes through to net.connect (node's types omit it from tls's options).
  const connectOptions: tls.ConnectionOptions & { localAddress?: string } = {
    host, port, ca: [ca], minVersion: "TLSv1.3", maxVersion: "TLSv1.3", session: options.session, localAddress: options.localAddress,
    key: options.cert?.keyPem, cert: options.cert?.certPem, checkServerIdentity: () => undefined,
  };
  const socket = tls.connect(connectOptions);
  socket.on("session", (t: Buffer) => { ticket = t; });
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("close", () => reject(new Error(`connection to ${address} closed during the handshake`)));
  });
  const resumed = socket.isSessionReused();
  const encoder = new FrameEncoder();
  if (options.hello !== null) socket.write(encoder.encode(FRAME_HELLO, encodePayload(options.hello ?? { role: "client" })));
  return { socket, encoder, closed, session: () => ticket, resumed };
}

/** A message frame for a raw connection. */
export function messageFrame(encoder: FrameEncoder, message: unknown): Buffer {
  return encoder.encode(FRAME_MESSAGE, encodePayload(message));
}

/** Resolves when `predicate` holds, polling; rejects with `what` after `timeoutMs` (generous: a shared machine). */
export async function until(predicate: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export type { Response };

const CKM_SHA256 = 0x250;
let operations = 0;
/** SHA-256 of `data` by HSM `address` (digestInit + digest in one logical session): a mechanism and an output buffer over the wire. */
export async function hsmDigest(c: TestClient, address: string, data: Buffer, sessionId = 1): Promise<Buffer> {
  const n = ++operations;
  const session = (step: number) => ({ ...sessionContext(sessionId, null), continuation: step > 0, operation: { n, step } });
  await c.send({ kind: "call", method: "digestInit", args: [sessionId, new Float64Array([CKM_SHA256, 0, 0, 0, 0]), null, null], session: session(0) }, { pinned: address, rule: "repeat" });
  const value = (await c.send({ kind: "call", method: "digest", args: [sessionId, data, 32], session: session(1) }, { pinned: address, rule: "repeat" })) as { output: Buffer };
  return value.output;
}

/** The CKA_KEY_TYPE attribute. */
const CKA_KEY_TYPE = 0x100;
/** alice creates a token secret key labelled `label` (a createObject, a write): the request's op. */
export function createKeyOp(label: string): RequestOp {
  const template = encodeTemplate([
    { type: CKA_CLASS, value: CKO_SECRET_KEY }, { type: CKA_KEY_TYPE, value: CKK_GENERIC_SECRET }, { type: CKA_TOKEN, value: true },
    { type: CKA_VALUE, value: Buffer.alloc(32, 7) }, { type: CKA_LABEL, value: label },
  ], "template");
  return { kind: "call", method: "createObject", args: [1, template], session: sessionContext(1, `${ALICE.username}:${ALICE.password}`) };
}

/** Always the first candidate: among HSMs that look equally idle, a client with it picks the first listed. */
export const firstChoice: Random = { int: () => 0, bytes: (n) => Buffer.alloc(n), fork: () => firstChoice };
