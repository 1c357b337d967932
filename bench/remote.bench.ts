// The remote benchmark: the same five operations in-process (chip, `memory:`), remote through the
// synchronous PKCS11 (`load("cloudhsm://…")`), remote through the async API with 1, 8 and 64
// requests in flight against 1, 2 and 3 HSMs, and the p11-kit peer (SoftHSMv2 behind
// `p11-kit server`, over a unix socket, no TLS), side by side in one run; p50 and ops/s, ratios to
// in-process, the issue's targets met/missed, the CPU of client and servers, and the cost split.
// Run: npm run bench:remote [-- --time MS] [--hsms 1,2,3] [--no-remote] [--no-split]
import * as P from "../src/index.js";
import { type Measured, errorText, measure } from "./measure.js";
import { p11kitPeer } from "./p11kit-peer.js";
import { numberOption } from "./peers.js";
import { costSplit } from "./cost-split.js";
import { type RemotePath, bridgePaths, remotePaths } from "./remote-paths.js";
import { type BenchKeys, OPERATIONS, type OperationName, makeKeys, probe, syncOperations } from "./remote-ops.js";

const timeMs = numberOption("--time", 500);
const hsmCounts = (process.argv.includes("--hsms") ? process.argv[process.argv.indexOf("--hsms") + 1] : "1,2,3").split(",").map(Number);
if (hsmCounts.some((n) => !Number.isInteger(n) || n < 1 || n > 8)) throw new Error("--hsms takes a list such as 1,2,3");
const withRemote = !process.argv.includes("--no-remote");
const withSplit = !process.argv.includes("--no-split");

/** One column of the report: a path and how many calls it keeps in flight (0 = sync). */
interface Column { name: string; hsms?: number; inFlight: number; serverPids: number[] }
const results = new Map<string, Map<OperationName, Measured | string>>();
const columns: Column[] = [];

async function runColumn(column: Column, operations: Partial<Record<OperationName, (() => unknown) | string>>): Promise<void> {
  columns.push(column);
  const row = new Map<OperationName, Measured | string>();
  results.set(column.name, row);
  for (const op of OPERATIONS) {
    const fn = operations[op];
    if (fn === undefined) continue;
    if (typeof fn === "string") {
      row.set(op, fn);
      continue;
    }
    let m: Measured;
    try {
      m = await measure(`${column.name} / ${op}`, fn, { timeMs, inFlight: column.inFlight, serverPids: column.serverPids });
    } catch (e) {
      row.set(op, `failed: ${describe(e)}`);
      process.stderr.write(`  ${column.name} / ${op}: failed: ${describe(e)}\n`);
      continue;
    }
    row.set(op, m);
    process.stderr.write(`  ${column.name} / ${op}: p50 ${m.p50Us.toFixed(1)} µs, ${Math.round(m.opsPerSecond)} ops/s\n`);
  }
}

/** Sync operations of a path, with the ones it cannot carry replaced by the reason. */
function checked(pkcs11: P.PKCS11, session: Buffer, keys: BenchKeys): Record<OperationName, (() => void) | string> {
  const ops = syncOperations(pkcs11, session, keys);
  const out = {} as Record<OperationName, (() => void) | string>;
  for (const op of OPERATIONS) {
    const why = probe(ops[op]);
    out[op] = why === null ? ops[op] : `not carried: ${why}`;
  }
  return out;
}

// ---- in-process: the chip through the PKCS11 facade ----
{
  const pkcs11 = P.load("memory:");
  pkcs11.C_Initialize();
  const { session } = P.openUserSession(pkcs11, { soPin: "bench-so-1", userPin: "bench-user-1", label: "bench" });
  await runColumn({ name: "in-process (memory:)", inFlight: 0, serverPids: [] }, checked(pkcs11, session, makeKeys(pkcs11, session, false)));
  pkcs11.C_Finalize();
}

// ---- the peer: SoftHSMv2 behind p11-kit server, over a unix socket ----
{
  const peer = await p11kitPeer();
  if (typeof peer === "string") console.log(`note: ${peer}`);
  else {
    try {
      await runColumn({ name: "p11-kit (unix socket)", inFlight: 0, serverPids: [peer.serverPid] },
        checked(peer.pkcs11, peer.session, makeKeys(peer.pkcs11, peer.session, false)));
    } finally {
      peer.close();
    }
  }
}

// ---- the worker bridge alone (the remote client's thread hop, hosting a memory: chip) ----
{
  const paths = bridgePaths([1, 64]);
  try {
    for (const path of paths) await runColumn({ name: path.name, inFlight: path.inFlight, serverPids: [] }, path.operations);
  } finally {
    for (const path of paths) await path.close();
  }
}

// ---- remote: a real cluster of 1, 2, 3 HSM processes over TLS ----
const remoteNotes: string[] = [];
if (withRemote) {
  for (const hsms of hsmCounts) {
    let paths: RemotePath[];
    try {
      paths = await remotePaths(hsms);
    } catch (e) {
      remoteNotes.push(`remote, ${hsms} HSM(s): not measured: ${describe(e)}`);
      continue;
    }
    try {
      for (const path of paths) await runColumn({ name: path.name, hsms, inFlight: path.inFlight, serverPids: path.serverPids() }, path.operations);
    } finally {
      for (const path of paths) await path.close();
    }
  }
}

// ---- report ----
const inProcess = results.get("in-process (memory:)")!;
const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(1));
const cell = (m: Measured | string | undefined) => (m === undefined ? "—" : typeof m === "string" ? m : `${m.p50Us.toFixed(1)} µs / ${fmt(m.opsPerSecond)}`);
console.log(`\nRemote benchmark, ${new Date().toISOString()}, node ${process.version}, tinybench ${timeMs} ms per task`);
console.log(`cells: p50 per call (Init+call pair where there is one) / ops/s over wall time; ratio to in-process ops/s in the second table\n`);
console.log(`| path | in flight | ${OPERATIONS.join(" | ")} | client cores | server cores |`);
console.log(`|---|---:|${OPERATIONS.map(() => "---:").join("|")}|---:|---:|`);
for (const column of columns) {
  const row = results.get(column.name)!;
  const measured = [...row.values()].filter((m): m is Measured => typeof m !== "string");
  const cores = (f: (m: Measured) => number) => (measured.length ? (measured.reduce((s, m) => s + f(m), 0) / measured.length).toFixed(2) : "—");
  console.log(`| ${column.name} | ${column.inFlight || "sync"} | ${OPERATIONS.map((op) => cell(row.get(op))).join(" | ")} | ${cores((m) => m.clientCores)} | ${cores((m) => m.serverCores.reduce((a, b) => a + b, 0))} |`);
}
console.log(`\n| path | ${OPERATIONS.map((op) => `${op} ÷ in-process`).join(" | ")} |`);
console.log(`|---|${OPERATIONS.map(() => "---:").join("|")}|`);
for (const column of columns.slice(1)) {
  const row = results.get(column.name)!;
  console.log(`| ${column.name} | ${OPERATIONS.map((op) => {
    const m = row.get(op), base = inProcess.get(op);
    return typeof m === "object" && typeof base === "object" ? `${(m.opsPerSecond / base.opsPerSecond).toFixed(4)}` : "—";
  }).join(" | ")} |`);
}
for (const note of remoteNotes) console.log(`note: ${note}`);

// ---- where the cores run out ----
console.log("\nCores busy (CPU seconds per wall second; the machine has 2): the client process (main thread + the remote client's worker) vs all HSM processes");
for (const c of columns.filter((c) => c.hsms !== undefined)) {
  const measured = [...results.get(c.name)!.values()].filter((m): m is Measured => typeof m !== "string");
  if (!measured.length) continue;
  const client = Math.max(...measured.map((m) => m.clientCores));
  const servers = Math.max(...measured.map((m) => m.serverCores.reduce((a, b) => a + b, 0)));
  const busiestHsm = Math.max(...measured.flatMap((m) => m.serverCores));
  const limit = client >= 0.85 ? "client-bound (its worker thread and main thread near one core)" : busiestHsm >= 0.85 ? "an HSM process near one core" : "neither side saturated: latency-bound (round trips)";
  console.log(`  ${c.name}: client up to ${client.toFixed(2)}, HSMs up to ${servers.toFixed(2)} (busiest HSM ${busiestHsm.toFixed(2)}): ${limit}`);
}

// ---- targets ----
const p11kit = results.get("p11-kit (unix socket)");
const syncRemote = columns.filter((c) => c.hsms !== undefined && c.inFlight === 0);
const inFlight64 = columns.filter((c) => c.inFlight === 64 && c.hsms !== undefined && c.name.includes("async core"));
const get = (name: string, op: OperationName) => {
  const m = results.get(name)?.get(op);
  return typeof m === "object" ? m : undefined;
};
console.log("\nTargets (over TLS):");
function verdict(label: string, got: number | undefined, ok: (v: number) => boolean, show: (v: number) => string): void {
  console.log(got === undefined ? `  NOT MEASURED ${label}` : `  ${ok(got) ? "MET   " : "MISSED"} ${label}: ${show(got)}`);
}
for (const c of syncRemote.length ? syncRemote : [undefined]) {
  const where = c ? ` [${c.name}]` : "";
  verdict(`sync remote round trip p50 ≤ 50 µs (C_GetSessionInfo: the client's worker answers it, no network)${where}`, c && get(c.name, "round trip (C_GetSessionInfo)")?.p50Us, (v) => v <= 50, (v) => `${v.toFixed(1)} µs`);
  verdict(`sync remote network round trip p50 ≤ 50 µs (C_GetTokenInfo, answered by an HSM)${where}`, c && get(c.name, "network round trip (C_GetTokenInfo)")?.p50Us, (v) => v <= 50, (v) => `${v.toFixed(1)} µs`);
  verdict(`sync remote AES-GCM 4 KiB p50 ≤ 100 µs${where}`, c && get(c.name, "AES-GCM 4 KiB")?.p50Us, (v) => v <= 100, (v) => `${v.toFixed(1)} µs`);
  for (const op of ["HMAC-SHA256 64 B", "ECDSA P-256 sign"] as const) {
    const peer = p11kit?.get(op);
    const mine = c && get(c.name, op);
    verdict(`sync remote ${op} ≥ 2× p11-kit${where}`, mine && typeof peer === "object" ? mine.opsPerSecond / peer.opsPerSecond : undefined, (v) => v >= 2, (v) => `${v.toFixed(2)}×`);
  }
}
for (const c of inFlight64.length ? inFlight64 : [undefined]) {
  for (const op of OPERATIONS) {
    const mine = c && get(c.name, op), base = inProcess.get(op);
    verdict(`64 in flight ${op} ≥ 25% of in-process${c ? ` [${c.name}]` : ""}`, mine && typeof base === "object" ? mine.opsPerSecond / base.opsPerSecond : undefined,
      (v) => v >= 0.25, (v) => `${(100 * v).toFixed(1)}%`);
  }
}

if (withSplit) {
  const firstSync = syncRemote[0]?.name;
  const remoteP50Us = firstSync ? {
    "AES-GCM 4 KiB": get(firstSync, "AES-GCM 4 KiB")?.p50Us,
    "HMAC-SHA256 64 B": get(firstSync, "HMAC-SHA256 64 B")?.p50Us,
  } : undefined;
  const bridgeP50Us = {
    "AES-GCM 4 KiB": get("worker bridge only (memory:)", "AES-GCM 4 KiB")?.p50Us,
    "HMAC-SHA256 64 B": get("worker bridge only (memory:)", "HMAC-SHA256 64 B")?.p50Us,
  };
  if (firstSync) console.log(`\n(remote sync p50 below: ${firstSync})`);
  await costSplit({ timeMs, remoteP50Us, bridgeP50Us });
}

function describe(e: unknown): string {
  return errorText(e);
}

// Every cluster and peer this run started is stopped above; end here rather than wait on a
// handle a library keeps (seen: the run printed everything, then did not exit).
process.exit(process.exitCode ?? 0);
