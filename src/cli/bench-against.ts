// `hsmsim bench --against ADDRESS`: the load generator (src/sizing/load.ts) driving a running
// cluster, any profile, through the remote client. Every call goes through the client's
// callback forms, so no Init blocks the main thread; with --connections N the load is spread
// over N remote clients (N worker threads, N TLS connections per HSM) in this one process.
// Rates are multiplied by the time dilation and latencies divided by it (see timeDilation).
import { CodedError } from "../coded-error.js";
import { type NativeChip } from "../pkcs11/addon.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import { PKCS11 } from "../pkcs11/pkcs11.js";
import { handleToNumber } from "../pkcs11/handles.js";
import { RemoteLink } from "../client/remote/link.js";
import { checkAddress, pemOrFile } from "../client/remote/target.js";
import { OsRandom } from "../net/os-random.js";
import { RealClock } from "../net/real-clock.js";
import {
  type AsyncChip, type ChipCallback, type LatencySummary, type LoadMode, type LoadOperation, type LoadProgress, type LoadResult, type PreparedLoad,
  type TimelineWindow, asyncChipOf, openLoadSessions, prepareLoad, startLoad,
} from "../sizing/load.js";

export interface RemoteBenchOptions {
  /** One HSM's "host:port" (port 2223 by default). */
  address: string;
  /** The cluster's trust anchor: PEM text or a path. */
  trustAnchor: string;
  clientCertificate?: { certificate: string; key: string };
  /** A crypto user of the cluster. */
  username: string;
  password: string;
  operations: LoadOperation[];
  mode: LoadMode;
  durationS: number;
  warmupS: number;
  /** The cluster's time dilation (every service time × K): rates × K and latencies ÷ K in the dilated figures. */
  timeDilation: number;
  /** Remote clients (worker threads) sharing the load (default 1). */
  connections?: number;
  /** Sessions per connection (default: the concurrency's share, or 256 for an open loop). */
  sessions?: number;
  onProgress?: (progress: LoadProgress) => void;
  /** Called as the load starts (after the keys and sessions are made): schedule faults from here. */
  onLoadStart?: () => void;
}

export interface DilatedFigures {
  throughputPerSec: number;
  offeredPerSec: number;
  latency: LatencySummary | null;
  byOperation: Record<string, { completed: number; failed: number; throughputPerSec: number; latency: LatencySummary | null }>;
  timeline: TimelineWindow[];
}

export interface RemoteBenchResult {
  against: string;
  timeDilation: number;
  connections: number;
  /** As measured on this machine (wall clock). */
  measured: LoadResult;
  /** The profile's figures: rates × K, latencies ÷ K (the network's share of a latency is divided too: it is an approximation for latency, exact for rates). */
  dilated: DilatedFigures;
  /** This process's CPU over the measured window (main thread and the remote clients' worker threads), as a share of one core. */
  clientCpuPercent: number;
}

/** Rates × K, latencies ÷ K. */
export function undilate(result: LoadResult, k: number): DilatedFigures {
  const latency = (l: LatencySummary | null): LatencySummary | null => l && { count: l.count, meanMs: l.meanMs / k, p50Ms: l.p50Ms / k, p95Ms: l.p95Ms / k, p99Ms: l.p99Ms / k, maxMs: l.maxMs / k };
  const byOperation: DilatedFigures["byOperation"] = {};
  const measuredS = result.measuredMs / 1000;
  for (const [name, r] of Object.entries(result.byOperation)) {
    byOperation[name] = { completed: r.completed, failed: r.failed, throughputPerSec: (r.completed / measuredS) * k, latency: latency(r.latency) };
  }
  return {
    throughputPerSec: result.throughputPerSec * k, offeredPerSec: result.offeredPerSec * k, latency: latency(result.latency), byOperation,
    timeline: result.timeline.map((w) => ({ ...w, startMs: w.startMs / k, endMs: w.endMs / k, opsPerSec: w.opsPerSec * k,
      p50Ms: w.p50Ms === null ? null : w.p50Ms / k, p99Ms: w.p99Ms === null ? null : w.p99Ms / k })),
  };
}

/** The calls of the load whose first argument is a session (stepsFor's and renew's). */
const SESSION_FIRST = new Set(["signInit", "sign", "verifyInit", "verify", "encryptInit", "encrypt", "decryptInit", "decrypt", "digestInit", "digest",
  "generateRandom", "closeSession"]);

/**
 * Several remote clients as one asynchronous chip: session numbers are made unique across them
 * (local × N + index) and each call goes to the client its session belongs to; a new session
 * goes to the client holding the fewest. Token keys have the same handle on every client
 * (a token key's id is the same on every HSM), so one client's keys serve them all.
 */
export function spreadChip(chips: AsyncChip[], sessionsPerChip: number[]): AsyncChip {
  const n = chips.length;
  const held = [...sessionsPerChip];
  return {
    start(method: string, args: unknown[], callback: ChipCallback) {
      if (method === "openSession") {
        const i = held.indexOf(Math.min(...held));
        held[i]++;
        return chips[i].start(method, args, (error, value) => (error !== null ? callback(error) : callback(null, (value as number) * n + i)));
      }
      if (!SESSION_FIRST.has(method) || typeof args[0] !== "number") return callback(new Error(`spreadChip: ${method} is not a call of the load`));
      const composite = args[0];
      const i = composite % n;
      if (method === "closeSession") held[i]--;
      chips[i].start(method, [Math.floor(composite / n), ...args.slice(1)], callback);
    },
  };
}

const LINK_TIMEOUT_MS = 120_000;

/** The bench could not make its sessions and keys on the cluster (the reason is the cluster's). */
export class BenchError extends CodedError<"PREPARE_FAILED"> {
  constructor(message: string) {
    super("BenchError", "PREPARE_FAILED", message);
  }
}

/** Runs the load against the cluster; resolves once the measured window is over and the operations in flight have drained. */
export async function benchAgainst(options: RemoteBenchOptions): Promise<RemoteBenchResult> {
  const bootstrap = checkAddress(options.address, "--against");
  const trustAnchorPem = pemOrFile(options.trustAnchor, "--ca", "certificate");
  const client = options.clientCertificate && {
    clientCertificatePem: pemOrFile(options.clientCertificate.certificate, "--cert", "certificate"),
    clientKeyPem: pemOrFile(options.clientCertificate.key, "--key", "key"),
  };
  const connections = options.connections ?? 1;
  const k = options.timeDilation;
  const concurrency = options.mode.kind === "closed" ? options.mode.concurrency : 0;
  const share = (i: number) => Math.max(1, Math.floor(concurrency / connections) + (i < concurrency % connections ? 1 : 0));
  const sessionsOf = (i: number) => options.sessions ?? (options.mode.kind === "closed" ? share(i) : 256);
  const links: RemoteLink[] = [];
  const facades: PKCS11[] = [];
  try {
    for (let i = 0; i < connections; i++) {
      // The client's timeouts dilated as the cluster's service times are.
      const link = new RemoteLink({ kind: "cluster", bootstrap, trustAnchorPem, ...client, timeScale: k }, { callTimeoutMs: LINK_TIMEOUT_MS * k });
      links.push(link);
      const chip: NativeChip = link.chip();
      const facade = new PKCS11(chip);
      facade.C_Initialize();
      facades.push(facade);
    }
    // The first client makes the (token) keys; the others open their sessions and log in.
    const first = prepare(() => prepareLoad(facades[0], { username: options.username, password: options.password, sessions: sessionsOf(0), operations: options.operations }));
    const sessions: number[][] = [first.sessions];
    for (let i = 1; i < connections; i++) sessions.push(prepare(() => openSessions(facades[i], options.username, options.password, sessionsOf(i))));
    const chips = links.map((l) => asyncChipOf(l.chip()));
    const prepared: PreparedLoad = connections === 1 ? first
      : { ...first, sessions: sessions.flatMap((list, i) => list.map((s) => s * connections + i)) };
    const chip = connections === 1 ? chips[0] : spreadChip(chips, sessions.map((s) => s.length));
    const clock = new RealClock();
    const warmUpUs = options.warmupS * 1e6;
    // CPU over the measured window only (not the warm-up, nor the drain after it).
    let cpuAtStart = process.cpuUsage();
    let cpu: NodeJS.CpuUsage | null = null;
    const cpuTimers = [setTimeout(() => void (cpuAtStart = process.cpuUsage()), options.warmupS * 1000),
      setTimeout(() => void (cpu = process.cpuUsage(cpuAtStart)), (options.warmupS + options.durationS) * 1000)];
    const measured = await new Promise<LoadResult>((resolve, reject) => {
      try {
        options.onLoadStart?.();
        startLoad({
          chip, clock, random: new OsRandom(), prepared, operations: options.operations, mode: options.mode,
          durationUs: options.durationS * 1e6, warmUpUs, windowUs: 1_000_000, drainUs: 30_000_000, onProgress: options.onProgress,
        }, resolve);
      } catch (e) {
        reject(e as Error);
      }
    });
    for (const t of cpuTimers) clearTimeout(t);
    const used = (cpu ?? process.cpuUsage(cpuAtStart)) as NodeJS.CpuUsage;
    return {
      against: bootstrap, timeDilation: k, connections, measured, dilated: undilate(measured, k),
      clientCpuPercent: Math.round(((used.user + used.system) / (options.durationS * 1e6)) * 100),
    };
  } finally {
    for (const f of facades) {
      try {
        f.C_Finalize();
      } catch {
        // the link may be broken already: closing is all that is left
      }
    }
    for (const l of links) l.close();
  }
}

function openSessions(pkcs11: PKCS11, username: string, password: string, count: number): number[] {
  return openLoadSessions(pkcs11, username, password, count).map((h) => handleToNumber(h, "handle"));
}

/**
 * Runs a preparation step; a failure ends as a BenchError naming it. (A key generation on a slow or
 * dilated profile takes long: the client gives key generations their own, dilated, timeout.)
 */
function prepare<T>(step: () => T): T {
  try {
    return step();
  } catch (e) {
    if (e instanceof CodedError) throw e;
    const why = e instanceof Pkcs11Error ? `${e.message}${e.detail ? ` (${e.detail})` : ""}` : e instanceof Error ? e.message : String(e);
    throw new BenchError(`making the load's sessions and keys failed: ${why}`);
  }
}
