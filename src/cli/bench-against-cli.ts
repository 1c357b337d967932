// The command line of `hsmsim bench --against`: its options, the live line while it runs, and
// the table (or JSON, or charts) of what it measured. The engine is bench-against.ts.
import { X509Certificate } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";

import { pemOrFile } from "../client/remote/target.js";
import { ClusterFolder } from "../net/cluster-folder.js";
import { controlRequest } from "../net/control-socket.js";

import { LoadGeneratorError, type LoadMode, type LoadOperation, loadOperation } from "../sizing/load.js";
import { type CommandIo, type OptionSpec, type OptionValues, UsageError, type ValueParser, decimalNumber, wholeNumber } from "./command.js";
import { textOutput } from "./format.js";
import { progressLine } from "./progress.js";
import { timeDilationParser } from "./profile-option.js";
import { type RemoteBenchResult, benchAgainst } from "./bench-against.js";
import { statusOf } from "./cluster-view.js";

const opParser: ValueParser<LoadOperation> = (text, name) => {
  const m = /^([a-z0-9-]+)(?:=(\d+(?:\.\d+)?))?$/.exec(text);
  if (!m) throw new UsageError(`${name} takes NAME or NAME=WEIGHT (ecdsa-p256-sign, rsa-2048-sign=2, aes-gcm-4k, hmac-64b…), not '${text}'`);
  const weight = m[2] === undefined ? 1 : Number(m[2]);
  if (!(weight > 0)) throw new UsageError(`${name} ${text}: the weight must be a positive number`);
  try {
    return loadOperation(m[1], weight);
  } catch (e) {
    if (e instanceof LoadGeneratorError) throw new UsageError(`${name}: ${e.message}`);
    throw e;
  }
};

const userParser: ValueParser<{ username: string; password: string }> = (text, name) => {
  const at = text.indexOf(":");
  if (at <= 0 || at === text.length - 1) throw new UsageError(`${name} takes NAME:PASSWORD (a crypto user of the cluster), not '${text.slice(0, Math.max(0, at)) || text}:…'`);
  return { username: text.slice(0, at), password: text.slice(at + 1) };
};

/** bench's options for the remote mode (all but --against need it). */
export const AGAINST_OPTIONS = {
  against: { type: "string", valueName: "HOST[:PORT]", description: "drive a running cluster (any profile) through the remote client instead of measuring the chip in-process" },
  ca: { type: "string", valueName: "PATH", description: "the cluster's trust anchor (customerCA.crt in the cluster folder's pki/)" },
  cert: { type: "string", valueName: "PATH", description: "client certificate, for a cluster that enforces mutual TLS" },
  key: { type: "string", valueName: "PATH", description: "the client certificate's key" },
  user: { type: "string", valueName: "NAME:PASSWORD", parse: userParser, description: "a crypto user (CU) of the cluster (see Creating a crypto user below)" },
  op: { type: "string", valueName: "NAME[=WEIGHT]", multiple: true, parse: opParser, description: "an operation of the mix, repeatable (default ecdsa-p256-sign): ecdsa-p256-sign, rsa-2048-sign, ecdsa-p256-verify, rsa-2048-verify, aes-gcm-4k, aes-cbc-1k, hmac-64b, digest-1k, random-32b" },
  rate: { type: "string", valueName: "R", parse: decimalNumber(0.001, 10_000_000), description: "open loop: Poisson arrivals at R operations/s (the profile's rate: R ÷ K are started on this machine)" },
  saturate: { type: "boolean", description: "closed loop: keep --concurrency operations in flight (the cluster's saturation throughput)" },
  concurrency: { type: "string", valueName: "N", parse: wholeNumber(1, 4096), description: "operations in flight with --saturate (default 64)" },
  "duration-s": { type: "string", valueName: "S", parse: decimalNumber(0.1, 86_400), description: "measured seconds, after the warm-up (default 10)" },
  "warmup-s": { type: "string", valueName: "S", parse: decimalNumber(0, 3600), description: "seconds of load before measuring (default 2)" },
  "time-dilation": { type: "string", valueName: "K", parse: timeDilationParser, description: "the cluster's time dilation (hsmsim up --time-dilation K): reported rates × K, latencies ÷ K (default 1)" },
  connections: { type: "string", valueName: "N", parse: wholeNumber(1, 16), description: "remote clients sharing the load in this process, each its own worker thread (default 1)" },
  "kill-at-s": { type: "string", valueName: "S", parse: decimalNumber(0, 86_400), description: "kill -9 one HSM S seconds into the measured window (needs --data: the cluster's folder on this machine), to see the failover dip" },
  data: { type: "string", valueName: "DIR", description: "the cluster's data folder (for --kill-at-s)" },
  charts: { type: "string", valueName: "DIR", description: "write latency and timeline charts (SVG) and an HTML report of the run into DIR" },
} as const satisfies Record<string, OptionSpec>;

export const AGAINST_HELP = `With --against, bench drives a running cluster (started with hsmsim up, any profile) through the
remote client with a load generator: --rate R (open loop) or --saturate (closed loop), the mix given
by --op, for --duration-s seconds after --warmup-s. It prints throughput, latency percentiles and
failures by reason (CKR_FUNCTION_FAILED: busy after the client's retries); a live line on a terminal.
A time-dilated cluster (up --time-dilation K) runs K times slower than the profile: pass the same K
and every rate is × K and every latency ÷ K (the network's share of a latency is divided too); the
client's timeouts and busy backoff are × K as well, so a queue the profile serves in time is not
mistaken for a lost HSM.

Creating a crypto user: with the management console of the typed API (connect() from "hsmsim"):
  const c = connect({ address: "127.0.0.2:2223", trustAnchor: ".hsmsim/pki/customerCA.crt" });
  c.console("admin", "password").changePassword("admin", "NEW-ADMIN-PASSWORD");   // activates the cluster
  c.console("admin", "NEW-ADMIN-PASSWORD").createUser("bench", "CU", "bench-password-1");
then --user bench:bench-password-1.`;

type AgainstValues = OptionValues<typeof AGAINST_OPTIONS> & { json?: boolean };

/** Refuses the remote options without --against (they would be silently ignored). */
export function checkAgainstOptions(values: AgainstValues): void {
  if (values.against !== undefined) return;
  const given = (Object.keys(AGAINST_OPTIONS) as (keyof typeof AGAINST_OPTIONS)[]).filter((k) => values[k] !== undefined);
  if (given.length > 0) throw new UsageError(`--${given.join(", --")} apply only with --against`);
}

export async function runBenchAgainst(values: AgainstValues, io: CommandIo): Promise<number> {
  if (values.ca === undefined) throw new UsageError("--against needs --ca PATH (the cluster's trust anchor, pki/customerCA.crt)");
  if (values.user === undefined) throw new UsageError("--against needs --user NAME:PASSWORD (a crypto user; see Creating a crypto user in hsmsim bench --help)");
  if ((values.cert === undefined) !== (values.key === undefined)) throw new UsageError("--cert and --key go together");
  if ((values.rate === undefined) === (values.saturate === undefined)) throw new UsageError("give either --rate R (open loop) or --saturate (closed loop)");
  if (values.concurrency !== undefined && values.saturate === undefined) throw new UsageError("--concurrency applies only with --saturate");
  const k = values["time-dilation"] ?? 1;
  const operations = values.op ?? [loadOperation("ecdsa-p256-sign")];
  if (new Set(operations.map((o) => o.name)).size !== operations.length) throw new UsageError("--op names an operation twice");
  const mode: LoadMode = values.rate !== undefined ? { kind: "open", ratePerSec: values.rate / k } : { kind: "closed", concurrency: values.concurrency ?? 64 };
  const connections = values.connections ?? 1;
  if (mode.kind === "closed" && mode.concurrency < connections) throw new UsageError("--concurrency must be at least --connections");
  const durationS = values["duration-s"] ?? 10, warmupS = values["warmup-s"] ?? 2;
  const json = values.json ?? false;
  const killAtS = values["kill-at-s"];
  if (killAtS !== undefined && values.data === undefined) throw new UsageError("--kill-at-s needs --data DIR (the cluster's folder: the HSM is killed through its supervisor)");
  if (values.data !== undefined && killAtS === undefined) throw new UsageError("--data applies only with --kill-at-s");
  if (killAtS !== undefined && killAtS >= durationS) throw new UsageError("--kill-at-s must fall within --duration-s");
  const folder = values.data === undefined ? undefined : new ClusterFolder(values.data);
  // --data must be the cluster --against measures: a foreign folder's HSM was killed, the measured cluster never failed over.
  if (folder !== undefined) checkSameCluster(folder, values.ca);
  if (folder !== undefined) await statusOf(folder).catch((e: Error) => {
    throw new UsageError(`--data ${values.data}: no running cluster there (${e.message})`);
  });
  let killed: { hsmId: string; atSec: number } | null = null;
  let killError: Error | null = null;
  const progress = progressLine({ unit: "ops", label: "bench", stream: io.stderr, quiet: json });
  let seenDone = 0, seenFailed = 0;
  progress.status("connecting and making keys");
  let result: RemoteBenchResult;
  try {
    result = await benchAgainst({
      address: values.against!, trustAnchor: values.ca, clientCertificate: values.cert === undefined ? undefined : { certificate: values.cert, key: values.key! },
      onLoadStart: folder === undefined ? undefined : () => {
        setTimeout(() => void killOne(folder).then((hsmId) => {
          killed = { hsmId, atSec: warmupS + killAtS! };
          progress.interrupt(() => io.stderr.write(`killed ${hsmId} (kill -9) at ${killAtS} s into the measured window\n`));
        }, (e: Error) => void (killError = e)), (warmupS + killAtS!) * 1000);
      },
      username: values.user.username, password: values.user.password, operations, mode, durationS, warmupS, timeDilation: k, connections,
      onProgress: (p) => {
        if (p.completed > seenDone) progress.tick(true, p.completed - seenDone);
        if (p.failed > seenFailed) progress.tick(false, p.failed - seenFailed);
        seenDone = p.completed;
        seenFailed = p.failed;
        const phase = p.elapsedMs < warmupS * 1000 ? "warming up" : "measuring";
        const rate = Math.round(p.window.opsPerSec * k), p99 = p.window.p99Ms === null ? "-" : (p.window.p99Ms / k).toFixed(1);
        progress.status(`${phase}: ${rate} ops/s, p99 ${p99} ms${k === 1 ? "" : ` (×${k} dilation corrected)`}, ${p.inFlight} in flight`);
      },
    });
  } finally {
    progress.finish();
  }
  if (killError !== null) io.stderr.write(`warning: the HSM could not be killed: ${(killError as Error).message}\n`);
  const kill = killed as { hsmId: string; atSec: number } | null;
  let charts: string[] = [];
  if (values.charts !== undefined) {
    mkdirSync(values.charts, { recursive: true });
    const { benchChartFiles } = await import("./bench-charts.js"); // vega loads only when charts are asked for
    charts = await benchChartFiles(result, values.charts, { operations: operations.map((o) => o.name), mode, killAtSec: kill === null ? undefined : kill.atSec / k });
  }
  if (json) {
    io.stdout.write(`${JSON.stringify({ ...result, killed: kill, charts }, null, 2)}\n`);
    return 0;
  }
  printResult(result, io);
  if (kill !== null) io.stdout.write(`killed ${kill.hsmId} at ${kill.atSec} s (wall clock, warm-up included)\n`);
  for (const file of charts) io.stdout.write(`chart: ${file}\n`);
  return 0;
}

function printResult(r: RemoteBenchResult, io: CommandIo): void {
  const k = r.timeDilation;
  const note = k === 1 ? "" : ` (×${k}: time-dilated cluster, rates × ${k}, latencies ÷ ${k})`;
  const ms = (v: number | undefined) => (v === undefined ? "-" : v.toFixed(2));
  const m = r.measured;
  io.stdout.write(`${m.mode.kind === "open" ? `open loop at ${Math.round(m.mode.ratePerSec * k)} ops/s offered` : `closed loop, ${m.mode.concurrency} in flight`} against ${r.against}, `
    + `${m.measuredMs / 1000} s measured after ${m.warmUpMs / 1000} s warm-up, ${r.connections} connection${r.connections === 1 ? "" : "s"}${note}\n`);
  const rows = Object.entries(r.dilated.byOperation).map(([name, o]) => [name, o.completed, o.failed, Math.round(o.throughputPerSec), ms(o.latency?.p50Ms), ms(o.latency?.p95Ms), ms(o.latency?.p99Ms)]);
  if (rows.length > 1) {
    const l = r.dilated.latency;
    rows.push(["all", m.completed, m.failed, Math.round(r.dilated.throughputPerSec), ms(l?.p50Ms), ms(l?.p95Ms), ms(l?.p99Ms)]);
  }
  textOutput((t) => io.stdout.write(t)).table(["operation", "completed", "failed", `ops/s${k === 1 ? "" : ` ×${k}`}`, `p50 ms${k === 1 ? "" : ` ÷${k}`}`,
    `p95 ms${k === 1 ? "" : ` ÷${k}`}`, `p99 ms${k === 1 ? "" : ` ÷${k}`}`], rows);
  io.stdout.write(`throughput ${Math.round(r.dilated.throughputPerSec)} ops/s${note}; offered ${Math.round(r.dilated.offeredPerSec)} ops/s\n`);
  const reasons = Object.entries(m.failedByReason).map(([why, n]) => `${why} ×${n}`).join(", ");
  if (m.failed > 0) io.stdout.write(`failures: ${reasons}\n`);
  if (m.unfinished > 0) io.stdout.write(`unfinished when the drain ran out: ${m.unfinished}\n`);
  io.stdout.write(`client CPU: ${r.clientCpuPercent}% of one core over the measured window (main thread and the remote clients' workers)\n`);
}

/**
 * Refuses a --data folder whose cluster is not the one --ca trusts (each cluster has its own
 * customer CA): --kill-at-s would kill -9 an HSM of another cluster, which the run never sees.
 */
function checkSameCluster(folder: ClusterFolder, ca: string): void {
  const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;
  let theirs: string;
  try {
    theirs = fingerprint(readFileSync(folder.trustAnchor, "utf8"));
  } catch (e) {
    throw new UsageError(`--data ${folder.dir}: no cluster's trust anchor there (${(e as Error).message})`);
  }
  if (fingerprint(pemOrFile(ca, "--ca", "certificate")) !== theirs) {
    throw new UsageError(`--data ${folder.dir} is another cluster than the one --ca trusts (its pki/customerCA.crt differs): --kill-at-s would kill an HSM the run does not measure`);
  }
}

/** Kills (-9) the first running HSM of the cluster in `folder`, through its supervisor; resolves with its id. */
async function killOne(folder: ClusterFolder): Promise<string> {
  const view = await statusOf(folder);
  const victim = view.hsms.find((h) => h.state === "ACTIVE" && h.pid !== null && !h.remote);
  if (victim === undefined) throw new Error("no running HSM to kill");
  await controlRequest(folder.socket, { op: "kill", hsmId: victim.hsmId }, 30_000);
  return victim.hsmId;
}
