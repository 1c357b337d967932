// The cost of one remote request, split into parts that are each measured on their own:
// - codec: a real request and its answer through the wire's codec (msgpackr), framing and
//   message checks (src/net/), as the client and the HSM run them;
// - transport: a frame echo between this process and another over plain TCP, and over TLS 1.3,
//   with the request's and answer's sizes (TLS = the difference);
// - the chip: the call alone, in-process;
// - the rest (queueing, the worker bridge, the client's and HSM's own logic) = the remote
//   figure minus the parts, when the remote figure is given.
import { type ChildProcess, spawn } from "node:child_process";
import * as crypto from "node:crypto";
import * as net from "node:net";
import { dirname, join } from "node:path";
import * as tls from "node:tls";
import { fileURLToPath } from "node:url";


import * as P from "../src/index.js";
import { decodePayload, encodePayload } from "../src/net/codec.js";
import { FRAME_MESSAGE, FrameDecoder, FrameEncoder } from "../src/net/frame.js";
import { checkMessage } from "../src/net/messages.js";
import { createClusterCa, issueHsmCertificate } from "../src/net/pki.js";
import { applicationTlsOptions } from "../src/net/tls-options.js";
import { type Measured, measure } from "./measure.js";
import { makeKeys, syncOperations } from "./remote-ops.js";

const here = dirname(fileURLToPath(import.meta.url));

/** One message through the wire as the client and HSM run it: encode, frame, unframe, decode, check. */
function wireCodec(): (message: unknown, accepts: "req" | "res") => void {
  const encoder = new FrameEncoder(), decoder = new FrameDecoder();
  return (message, accepts) => {
    const frames = decoder.push(encoder.encode(FRAME_MESSAGE, encodePayload(message)));
    checkMessage(decodePayload(frames[0].payload), accepts);
  };
}

/** A request and its answer as the client and HSM exchange them (src/cluster/protocol.ts). */
function exchange(method: string, args: unknown[], value: unknown, step: number): { request: unknown; response: unknown } {
  return {
    request: {
      t: "req", id: 123456, conn: "c1",
      op: { kind: "call", method, args, session: { id: 17, flags: 6, login: "bench:bench-password-1", continuation: step > 0, operation: { n: 42, step } } },
      after: [[1, 1234], [2, 987], [3, 55]],
    },
    response: { t: "res", id: 123456, ok: true, value, hsmId: "hsm-1", spareCapacity: 250, membershipEpoch: 3 },
  };
}

/** The two exchanges of an Init+call operation: the Init (mechanism as the facade encodes it) and the call with its data. */
function operationExchanges(init: string, mechanismBytes: Buffer, method: string, input: Buffer, outputBytes: number) {
  return [
    exchange(init, [17, 1_000_001, new Float64Array([1, 0, 0, 128]), mechanismBytes, Buffer.alloc(0)], null, 0),
    exchange(method, [17, input, outputBytes], crypto.randomBytes(outputBytes), 1),
  ];
}

/** The cluster PKI's certificates: a cluster CA and an HSM certificate for 127.0.0.1. */
async function serverCertificate(): Promise<{ cert: string; key: string; ca: string }> {
  const ca = await createClusterCa({ commonName: "bench CA" });
  const hsm = await issueHsmCertificate(ca, { host: "127.0.0.1", hsmId: "hsm-bench" });
  return { cert: hsm.certPem, key: hsm.keyPem, ca: ca.certPem };
}

/** A connection to an echo server with FIFO request/answer matching. */
class EchoClient {
  private pending: Buffer = Buffer.alloc(0);
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
      while (this.pending.length >= 4 && this.pending.length >= 4 + this.pending.readUInt32BE(0)) {
        this.pending = this.pending.subarray(4 + this.pending.readUInt32BE(0));
        this.waiting.shift()!();
      }
    });
  }
  call(frame: Buffer): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.socket.write(frame);
    });
  }
  close(): void {
    this.socket.destroy();
  }
}

async function echoServer(mode: "tcp" | "tls", pem: { cert: string; key: string }): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ["--import", "tsx", join(here, "echo-server.ts"), mode],
    { env: { ...process.env, ECHO_CERT: pem.cert, ECHO_KEY: pem.key }, stdio: ["pipe", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("echo server did not start in 20 s")), 20_000);
    child.stdout!.once("data", (d: Buffer) => {
      clearTimeout(timer);
      resolve(Number(d.toString().trim()));
    });
    child.once("exit", (code) => reject(new Error(`echo server exited (${code})`)));
  });
  return { child, port };
}

async function connectEcho(mode: "tcp" | "tls", port: number, cert: string): Promise<EchoClient> {
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = mode === "tls"
      ? tls.connect(applicationTlsOptions({ address: `127.0.0.1:${port}`, trustAnchorPem: cert }), () => resolve(s))
      : net.connect({ host: "127.0.0.1", port }, () => resolve(s));
    s.once("error", reject);
  });
  return new EchoClient(socket);
}

export interface SplitRow {
  operation: string;
  codecUs: number;
  tcpUs: number;
  tlsUs: number;
  chipUs: number;
  bridgeUs?: number;
  remoteUs?: number;
  tcp64OpsPerSecond: number;
  tls64OpsPerSecond: number;
}
type SplitOperation = "AES-GCM 4 KiB" | "HMAC-SHA256 64 B";

/**
 * Measures the parts of two Init+call operations (AES-GCM 4 KiB, HMAC 64 B): both exchanges through
 * the codec, both round trips through TCP and TLS echoes of the same sizes, the chip; and prints the
 * split against the remote sync p50 and the worker bridge's p50 (bridge-only minus chip), if given.
 */
export async function costSplit(options: { timeMs: number; remoteP50Us?: Partial<Record<SplitOperation, number>>; bridgeP50Us?: Partial<Record<SplitOperation, number>> }): Promise<SplitRow[]> {
  const wire = wireCodec();
  const pem = await serverCertificate();
  const chip = P.load("memory:");
  chip.C_Initialize();
  const { session } = P.openUserSession(chip, { soPin: "bench-so-1", userPin: "bench-user-1" });
  const ops = syncOperations(chip, session, makeKeys(chip, session, false));
  const cases = [
    { operation: "AES-GCM 4 KiB" as const, exchanges: operationExchanges("encryptInit", crypto.randomBytes(12), "encrypt", crypto.randomBytes(4096), 4112), chip: ops["AES-GCM 4 KiB"] },
    { operation: "HMAC-SHA256 64 B" as const, exchanges: operationExchanges("signInit", Buffer.alloc(0), "sign", crypto.randomBytes(64), 32), chip: ops["HMAC-SHA256 64 B"] },
  ];
  const rows: SplitRow[] = [];
  for (const c of cases) {
    const codecM = await measure(`codec ${c.operation}`, () => {
      for (const { request, response } of c.exchanges) {
        wire(request, "req");
        wire(response, "res");
      }
    }, { timeMs: options.timeMs });
    // Echo frames of the same sizes; the first 4 payload bytes ask for the answer's size.
    const frames = c.exchanges.map(({ request, response }) => {
      const requestBytes = encodePayload(request).length, answerBytes = encodePayload(response).length;
      const frame = Buffer.alloc(4 + Math.max(requestBytes, 4), 1);
      frame.writeUInt32BE(frame.length - 4, 0);
      frame.writeUInt32BE(answerBytes, 4);
      process.stderr.write(`  split ${c.operation}: request ${requestBytes} B, answer ${answerBytes} B\n`);
      return frame;
    });
    const transport: Record<string, { seq: Measured; par: Measured }> = {};
    for (const mode of ["tcp", "tls"] as const) {
      const { child, port } = await echoServer(mode, pem);
      try {
        const client = await connectEcho(mode, port, pem.ca);
        const both = async () => {
          for (const frame of frames) await client.call(frame);
        };
        const seq = await measure(`${mode} echo ${c.operation}`, both, { timeMs: options.timeMs, inFlight: 1, serverPids: [child.pid!] });
        const par = await measure(`${mode} echo ${c.operation} x64`, both, { timeMs: options.timeMs, inFlight: 64, serverPids: [child.pid!] });
        transport[mode] = { seq, par };
        client.close();
      } finally {
        child.stdin!.end();
        child.kill();
      }
    }
    const chipM = await measure(`chip ${c.operation}`, c.chip, { timeMs: options.timeMs });
    rows.push({
      operation: c.operation, codecUs: codecM.p50Us, tcpUs: transport.tcp.seq.p50Us, tlsUs: transport.tls.seq.p50Us, chipUs: chipM.p50Us,
      bridgeUs: options.bridgeP50Us?.[c.operation] === undefined ? undefined : options.bridgeP50Us[c.operation]! - chipM.p50Us,
      remoteUs: options.remoteP50Us?.[c.operation], tcp64OpsPerSecond: transport.tcp.par.opsPerSecond, tls64OpsPerSecond: transport.tls.par.opsPerSecond,
    });
  }
  chip.C_Finalize();
  const f = (n: number | undefined) => (n === undefined ? "—" : n.toFixed(1));
  console.log(`\nCost of one sync Init+call operation (two requests), split; p50 µs; echo server in its own process on 127.0.0.1:`);
  console.log("| operation | codec (2 requests + 2 answers: msgpackr, framing, checks) | 2 round trips over TCP | TLS 1.3's extra | chip | worker bridge (bridge-only − chip) | sum | remote sync p50 | rest: client + HSM logic, queueing | TCP echo ×64 ops/s | TLS echo ×64 ops/s |");
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    const sum = r.codecUs + r.tlsUs + r.chipUs + (r.bridgeUs ?? 0);
    console.log(`| ${r.operation} | ${f(r.codecUs)} | ${f(r.tcpUs)} | ${f(r.tlsUs - r.tcpUs)} | ${f(r.chipUs)} | ${f(r.bridgeUs)} | ${f(sum)} | ${f(r.remoteUs)} | ${r.remoteUs === undefined ? "—" : f(r.remoteUs - sum)} | ${Math.round(r.tcp64OpsPerSecond).toLocaleString("en-US")} | ${Math.round(r.tls64OpsPerSecond).toLocaleString("en-US")} |`);
  }
  return rows;
}
