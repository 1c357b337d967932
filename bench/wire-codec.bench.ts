// The wire's payload codec against the obvious alternative, on real protocol messages: msgpackr
// (src/net/codec.ts, with its plain-data check) versus JSON with Buffers as base64 (and typed
// arrays as number lists), each a full encode + decode round trip; plus the bytes each puts on
// the wire. Run: npx tsx bench/wire-codec.bench.ts [--time MS]
import { randomBytes } from "node:crypto";

import { Bench } from "tinybench";

import { decodePayload, encodePayload } from "../src/net/codec.js";
import { encodePushBody } from "../src/cluster/protocol.js";
import { numberOption } from "./peers.js";

const timeMs = numberOption("--time", 500);

const session = { id: 3, flags: 6, login: "alice:alice-password", continuation: true, operation: { n: 12, step: 1 } };
const messages: Record<string, unknown> = {
  "request: AES-GCM encrypt 4 KiB": { t: "req", id: 4711, conn: "app-1#12345", after: [[1, 120], [2, 7]], op: { kind: "call", method: "encrypt", args: [3, randomBytes(4096), 4112], session } },
  "request: encryptInit (mechanism)": { t: "req", id: 4712, conn: "app-1#12345", after: [[1, 120]], op: { kind: "call", method: "encryptInit", args: [3, 2 ** 20 + 5, new Float64Array([0x1087, 1, 128, 0, 0]), randomBytes(12), null], session: { ...session, operation: { n: 13, step: 0 }, continuation: false } } },
  "response: 4 KiB + tag": { t: "res", id: 4711, ok: true, value: { result: 4112, output: randomBytes(4112) }, hsmId: "hsm-1a2b3c", spareCapacity: 31, membershipEpoch: 4 },
  "response: HMAC (32 B)": { t: "res", id: 4713, ok: true, value: { result: 32, output: randomBytes(32) }, hsmId: "hsm-1a2b3c", spareCapacity: 31, membershipEpoch: 4 },
  "peer: push of 16 journal rows": (() => {
    const body = encodePushBody(1, Array.from({ length: 16 }, (_, i) => ({ seq: 100 + i, change: randomBytes(300).toString("base64") })));
    return { t: "peer", cluster: "cluster-0a1b2c", from: "127.0.0.2:2223", to: "127.0.0.3:2223", body, mac: randomBytes(32)};
  })(),
};

// JSON + base64: what a hand-rolled JSON wire would have to do to carry Buffers and typed arrays.
const jsonEncode = (value: unknown) => Buffer.from(JSON.stringify(value, function (this: Record<string, unknown>, key) {
  const raw = this[key];
  if (Buffer.isBuffer(raw)) return { $b: raw.toString("base64") };
  if (raw instanceof Float64Array) return { $f: [...raw] };
  return raw;
}));
const jsonDecode = (bytes: Buffer) => JSON.parse(bytes.toString("utf8"), (_key, value) => {
  if (value !== null && typeof value === "object" && typeof value.$b === "string") return Buffer.from(value.$b, "base64");
  if (value !== null && typeof value === "object" && Array.isArray(value.$f)) return new Float64Array(value.$f);
  return value;
});

const bench = new Bench({ time: timeMs, warmupTime: 100 });
for (const [name, message] of Object.entries(messages)) {
  bench.add(`msgpackr | ${name}`, () => decodePayload(encodePayload(message)));
  bench.add(`JSON+base64 | ${name}`, () => jsonDecode(jsonEncode(message)));
}
await bench.run();
const rate = (name: string) => (bench.tasks.find((t) => t.name === name)!.result as { throughput: { mean: number } }).throughput.mean;
console.log("encode + decode round trip, one message at a time (msgpackr includes the plain-data check)");
console.table(Object.entries(messages).map(([name, message]) => ({
  message: name,
  "msgpackr ops/s": Math.round(rate(`msgpackr | ${name}`)),
  "JSON+base64 ops/s": Math.round(rate(`JSON+base64 | ${name}`)),
  "msgpackr ÷ JSON": +(rate(`msgpackr | ${name}`) / rate(`JSON+base64 | ${name}`)).toFixed(2),
  "msgpackr bytes": encodePayload(message).length,
  "JSON bytes": jsonEncode(message).length,
})));
