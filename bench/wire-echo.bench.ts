// What the wire alone costs: a ClientTransport sends requests over TLS 1.3 on loopback to an
// HsmTransport whose handler answers at once (no node, no chip), so a round trip is framing +
// codec + TLS + the kernel, twice. One request in flight gives the latency (p50, p99); 1, 8 and
// 64 in flight the throughput; and the same round trip without TLS (frames over a plain
// in-process call) isolates the codec. Run: npx tsx bench/wire-echo.bench.ts [--time MS]
import { randomBytes } from "node:crypto";
import * as net from "node:net";

import { decodePayload, encodePayload } from "../src/net/codec.js";
import { FRAME_MESSAGE, FrameDecoder, FrameEncoder } from "../src/net/frame.js";
import { createClusterCa, issueHsmCertificate } from "../src/net/pki.js";
import { ClientTransport, HsmTransport, clientTls, hsmTls } from "../src/net/tls-transport.js";
import { numberOption } from "./peers.js";

const timeMs = numberOption("--time", 2_000);

async function freePort(host: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

const host = "127.0.0.2";
const port = await freePort(host);
const address = `${host}:${port}`;
const ca = await createClusterCa({ commonName: "wire bench" });
const hsm = await HsmTransport.listen({ address, tls: hsmTls({ hsm: await issueHsmCertificate(ca, { host, port, hsmId: "hsm-bench" }), clusterCaPem: ca.certPem }) });
hsm.attach(address, (from, message) => {
  const request = message as { id: number; op: { args: unknown[] } };
  hsm.send(address, from, { t: "res", id: request.id, ok: true, value: { result: 32, output: OUTPUT }, hsmId: "hsm-bench", spareCapacity: 32, membershipEpoch: 1 });
});
const OUTPUT = randomBytes(32);
const client = new ClientTransport({ tls: clientTls({ trustAnchorPem: ca.certPem }) });
const waiting = new Map<number, () => void>();
client.attach("bench", (_from, message) => {
  const id = (message as { id: number }).id;
  waiting.get(id)?.();
  waiting.delete(id);
});
let nextId = 1;
const session = { id: 1, flags: 6, login: "alice:alice-password", continuation: true, operation: { n: 1, step: 1 } };
const request = (id: number) => ({ t: "req", id, conn: "bench#1", after: [[1, 10]], op: { kind: "call", method: "sign", args: [1, randomBytes(64), 32], session } });
const roundTrip = () => new Promise<void>((resolve) => {
  const id = nextId++;
  waiting.set(id, resolve);
  client.send("bench", address, request(id));
});

await roundTrip(); // connect, handshake
const latencies: number[] = [];
const latencyEnd = performance.now() + timeMs;
while (performance.now() < latencyEnd) {
  const t = performance.now();
  await roundTrip();
  latencies.push((performance.now() - t) * 1000);
}
latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];

const rows: Record<string, string | number>[] = [{ measure: "round trip, 1 in flight", "p50 µs": Math.round(pct(0.5)), "p99 µs": Math.round(pct(0.99)), "ops/s": Math.round(latencies.length / (timeMs / 1000)) }];
for (const inFlight of [8, 64]) {
  let done = 0;
  const end = performance.now() + timeMs;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (performance.now() < end) {
      await roundTrip();
      done++;
    }
  }));
  rows.push({ measure: `throughput, ${inFlight} in flight`, "ops/s": Math.round(done / (timeMs / 1000)) });
}
// TLS's share: the same frames and codec over plain TCP (an ad-hoc echo server, not a transport: the wire never runs without TLS).
const plainPort = await freePort(host);
const plainServer = net.createServer((socket) => {
  socket.setNoDelay(true);
  const decoder = new FrameDecoder();
  const encoder = new FrameEncoder();
  socket.on("data", (chunk) => {
    for (const frame of decoder.push(chunk)) {
      const message = decodePayload(frame.payload) as { id: number };
      socket.write(encoder.encode(FRAME_MESSAGE, encodePayload({ t: "res", id: message.id, ok: true, value: { result: 32, output: OUTPUT }, hsmId: "hsm-bench", spareCapacity: 32, membershipEpoch: 1 })));
    }
  });
});
await new Promise<void>((resolve) => plainServer.listen(plainPort, host, () => resolve()));
const plain = net.connect({ host, port: plainPort });
plain.setNoDelay(true);
await new Promise<void>((resolve) => plain.once("connect", () => resolve()));
const plainEncoder = new FrameEncoder();
const plainDecoder = new FrameDecoder();
plain.on("data", (chunk) => {
  for (const frame of plainDecoder.push(chunk)) {
    const id = (decodePayload(frame.payload) as { id: number }).id;
    waiting.get(id)?.();
    waiting.delete(id);
  }
});
const plainTimes: number[] = [];
const plainEnd = performance.now() + timeMs;
while (performance.now() < plainEnd) {
  const t = performance.now();
  await new Promise<void>((resolve) => {
    const id = nextId++;
    waiting.set(id, resolve);
    plain.write(plainEncoder.encode(FRAME_MESSAGE, encodePayload(request(id))));
  });
  plainTimes.push((performance.now() - t) * 1000);
}
plainTimes.sort((a, b) => a - b);
rows.push({ measure: "round trip without TLS (plain TCP, same frames)", "p50 µs": Math.round(plainTimes[plainTimes.length >> 1]), "p99 µs": Math.round(plainTimes[Math.floor(plainTimes.length * 0.99)]), "ops/s": Math.round(plainTimes.length / (timeMs / 1000)) });
plain.destroy();
plainServer.close();

// The codec's share: the same request and answer encoded and decoded, no sockets.
const answer = { t: "res", id: 1, ok: true, value: { result: 32, output: OUTPUT }, hsmId: "hsm-bench", spareCapacity: 32, membershipEpoch: 1 };
const codecTimes: number[] = [];
const codecEnd = performance.now() + timeMs / 2;
while (performance.now() < codecEnd) {
  const message = request(codecTimes.length);
  const t = performance.now();
  decodePayload(encodePayload(message));
  decodePayload(encodePayload(answer));
  codecTimes.push((performance.now() - t) * 1000);
}
codecTimes.sort((a, b) => a - b);
// p50 per iteration: on a shared machine the mean mostly measures the time the process was not scheduled.
rows.push({ measure: "codec only (request + answer, encode + decode)", "p50 µs": +codecTimes[codecTimes.length >> 1].toFixed(1), "p99 µs": +codecTimes[Math.floor(codecTimes.length * 0.99)].toFixed(1) });
console.log("the wire alone: ClientTransport → HsmTransport (TLS 1.3, loopback) → echo handler → back; no node, no chip");
console.table(rows);
client.close();
await hsm.close();
