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
function exchange(method: string, input: Buffer, outputBytes: number): { request: unknown; response: unknown } {
  return {
    request: {
      t: "req", id: 123456, conn: "c1",
      op: { kind: "call", method, args: [17, input, outputBytes], session: { id: 17, flags: 6, login: "alice:alice-password", continuation: true, operation: { n: 42, step: 1 } } },
      after: [[1, 1234], [2, 987], [3, 55]],
    },
    response: { t: "res", id: 123456, ok: true, value: crypto.randomBytes(outputBytes), hsmId: "hsm-1", spareCapacity: 250, membershipEpoch: 3 },
  };
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
  constructor(private readonly socket: net.Socket, private readonly answerBytes: number) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
      while (this.pending.length >= 4 + this.answerBytes) {
        this.pending = this.pending.subarray(4 + this.answerBytes);
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

async function echoServer(mode: "tcp" | "tls", answerBytes: number, pem: { cert: string; key: string }): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ["--import", "tsx", join(here, "echo-server.ts"), mode, String(answerBytes)],
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

async function connectEcho(mode: "tcp" | "tls", port: number, cert: string, answerBytes: number): Promise<EchoClient> {
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = mode === "tls"
      ? tls.connect(applicationTlsOptions({ address: `127.0.0.1:${port}`, trustAnchorPem: cert }), () => resolve(s))
      : net.connect({ host: "127.0.0.1", port }, () => resolve(s));
    s.once("error", reject);
  });
  return new EchoClient(socket, answerBytes);
}

export interface SplitRow { operation: string; codecUs: number; tcpUs: number; tlsUs: number; chipUs: number; remoteUs?: number; tcp64OpsPerSecond: number; tls64OpsPerSecond: number }

/** Measures the parts for two requests (AES-GCM 4 KiB, HMAC 64 B) and prints the split. `remoteP50Us` by operation, if measured. */
export async function costSplit(options: { timeMs: number; remoteP50Us?: Partial<Record<"AES-GCM 4 KiB" | "HMAC-SHA256 64 B", number>> }): Promise<SplitRow[]> {
  const wire = wireCodec();
  const pem = await serverCertificate();
  const chip = P.load("memory:");
  chip.C_Initialize();
  const { session } = P.openUserSession(chip, { soPin: "bench-so-1", userPin: "bench-user-1" });
  const ops = syncOperations(chip, session, makeKeys(chip, session, false));
  const cases = [
    { operation: "AES-GCM 4 KiB" as const, method: "encrypt", input: crypto.randomBytes(4096), outputBytes: 4112, chip: ops["AES-GCM 4 KiB"] },
    { operation: "HMAC-SHA256 64 B" as const, method: "sign", input: crypto.randomBytes(64), outputBytes: 32, chip: ops["HMAC-SHA256 64 B"] },
  ];
  const rows: SplitRow[] = [];
  for (const c of cases) {
    const { request, response } = exchange(c.method, c.input, c.outputBytes);
    const codecM = await measure(`codec ${c.operation}`, () => {
      wire(request, "req");
      wire(response, "res");
    }, { timeMs: options.timeMs });
    const requestBytes = encodePayload(request).length, answerBytes = encodePayload(response).length;
    const frame = Buffer.alloc(4 + requestBytes, 1);
    frame.writeUInt32BE(requestBytes, 0);
    const transport: Record<string, { seq: Measured; par: Measured }> = {};
    for (const mode of ["tcp", "tls"] as const) {
      const { child, port } = await echoServer(mode, answerBytes, pem);
      try {
        const client = await connectEcho(mode, port, pem.ca, answerBytes);
        const seq = await measure(`${mode} echo ${c.operation}`, () => client.call(frame), { timeMs: options.timeMs, inFlight: 1, serverPids: [child.pid!] });
        const par = await measure(`${mode} echo ${c.operation} x64`, () => client.call(frame), { timeMs: options.timeMs, inFlight: 64, serverPids: [child.pid!] });
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
      remoteUs: options.remoteP50Us?.[c.operation], tcp64OpsPerSecond: transport.tcp.par.opsPerSecond, tls64OpsPerSecond: transport.tls.par.opsPerSecond,
    });
    process.stderr.write(`  split ${c.operation}: request ${requestBytes} B, answer ${answerBytes} B\n`);
  }
  chip.C_Finalize();
  console.log(`\nCost per request, split (p50, µs; codec: src/net codec + framing + message checks, both messages; echo server in its own process on 127.0.0.1):`);
  console.log("| request | codec (enc+dec, both ways) | TCP round trip | TLS 1.3 extra | chip call | sum | remote sync p50 | rest (queueing, worker bridge, client+HSM logic) | TCP echo ×64 ops/s | TLS echo ×64 ops/s |");
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    const sum = r.codecUs + r.tlsUs + r.chipUs;
    console.log(`| ${r.operation} | ${r.codecUs.toFixed(1)} | ${r.tcpUs.toFixed(1)} | ${(r.tlsUs - r.tcpUs).toFixed(1)} | ${r.chipUs.toFixed(1)} | ${sum.toFixed(1)} | ${r.remoteUs?.toFixed(1) ?? "—"} | ${r.remoteUs ? (r.remoteUs - sum).toFixed(1) : "—"} | ${Math.round(r.tcp64OpsPerSecond).toLocaleString("en-US")} | ${Math.round(r.tls64OpsPerSecond).toLocaleString("en-US")} |`);
  }
  return rows;
}
