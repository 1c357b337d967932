// The cost of one remote request, split into parts that are each measured on their own:
// - codec: encoding and decoding a real request and its answer (the protocol's shapes, msgpackr
//   as the wire uses it, plus the wire's framing when src/net/frame.ts is present);
// - transport: a frame echo between this process and another over plain TCP, and over TLS 1.3,
//   with the request's and answer's sizes (TLS = the difference);
// - the chip: the call alone, in-process;
// - the rest (queueing, the worker bridge, the client's and HSM's own logic) = the remote
//   figure minus the parts, when the remote figure is given.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as crypto from "node:crypto";
import * as net from "node:net";
import { dirname, join } from "node:path";
import * as tls from "node:tls";
import { fileURLToPath } from "node:url";

import { Packr, Unpackr } from "msgpackr";

import * as P from "../src/index.js";
import { type Measured, measure } from "./measure.js";
import { makeKeys, syncOperations } from "./remote-ops.js";

const here = dirname(fileURLToPath(import.meta.url));

interface Codec { encode(value: unknown): Buffer; decode(payload: Buffer): unknown; source: string }

/** The wire's own codec and framing when the wire has landed, else msgpackr with the wire's options. */
async function loadCodec(): Promise<Codec> {
  try {
    const codec = await import("../src/net/codec.js" as string) as { encodePayload(v: unknown): Buffer; decodePayload(b: Buffer): unknown };
    return { encode: codec.encodePayload, decode: codec.decodePayload, source: "src/net/codec.ts (msgpackr, validated)" };
  } catch {
    const packr = new Packr({ useRecords: false, structuredClone: false, moreTypes: false });
    const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false, copyBuffers: true });
    return { encode: (v) => packr.pack(v), decode: (b) => unpackr.unpack(b), source: "msgpackr with the wire's options (src/net/codec.ts absent)" };
  }
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

/** A certificate for 127.0.0.1: the cluster PKI's when src/net/pki.ts is present, else the openssl command's. */
async function serverCertificate(): Promise<{ cert: string; key: string; ca: string }> {
  try {
    const pki = await import("../src/net/pki.js" as string) as {
      createClusterCa(o: { commonName: string }): Promise<{ certPem: string; keyPem: string }>;
      issueHsmCertificate(ca: unknown, o: { host: string; hsmId: string }): Promise<{ certPem: string; keyPem: string }>;
    };
    const ca = await pki.createClusterCa({ commonName: "bench CA" });
    const hsm = await pki.issueHsmCertificate(ca, { host: "127.0.0.1", hsmId: "hsm-bench" });
    return { cert: hsm.certPem, key: hsm.keyPem, ca: ca.certPem };
  } catch {
    const dir = mkdtempSync(join(tmpdir(), "hsmsim-bench-cert-"));
    try {
      execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdio: "pipe" });
      const cert = readFileSync(join(dir, "cert.pem"), "utf8");
      return { cert, key: readFileSync(join(dir, "key.pem"), "utf8"), ca: cert };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
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
      ? tls.connect({ host: "127.0.0.1", port, ca: cert, minVersion: "TLSv1.3" }, () => resolve(s))
      : net.connect({ host: "127.0.0.1", port }, () => resolve(s));
    s.once("error", reject);
  });
  return new EchoClient(socket, answerBytes);
}

export interface SplitRow { operation: string; codecUs: number; tcpUs: number; tlsUs: number; chipUs: number; remoteUs?: number; tcp64OpsPerSecond: number; tls64OpsPerSecond: number }

/** Measures the parts for two requests (AES-GCM 4 KiB, HMAC 64 B) and prints the split. `remoteP50Us` by operation, if measured. */
export async function costSplit(options: { timeMs: number; remoteP50Us?: Partial<Record<"AES-GCM 4 KiB" | "HMAC-SHA256 64 B", number>> }): Promise<SplitRow[]> {
  const codec = await loadCodec();
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
      codec.decode(codec.encode(request));
      codec.decode(codec.encode(response));
    }, { timeMs: options.timeMs });
    const requestBytes = codec.encode(request).length, answerBytes = codec.encode(response).length;
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
  console.log(`\nCost per request, split (p50, µs; codec: ${codec.source}; echo server in its own process on 127.0.0.1):`);
  console.log("| request | codec (enc+dec, both ways) | TCP round trip | TLS 1.3 extra | chip call | sum | remote sync p50 | rest (queueing, worker bridge, client+HSM logic) | TCP echo ×64 ops/s | TLS echo ×64 ops/s |");
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    const sum = r.codecUs + r.tlsUs + r.chipUs;
    console.log(`| ${r.operation} | ${r.codecUs.toFixed(1)} | ${r.tcpUs.toFixed(1)} | ${(r.tlsUs - r.tcpUs).toFixed(1)} | ${r.chipUs.toFixed(1)} | ${sum.toFixed(1)} | ${r.remoteUs?.toFixed(1) ?? "—"} | ${r.remoteUs ? (r.remoteUs - sum).toFixed(1) : "—"} | ${Math.round(r.tcp64OpsPerSecond).toLocaleString("en-US")} | ${Math.round(r.tls64OpsPerSecond).toLocaleString("en-US")} |`);
  }
  return rows;
}
