// The real-time part of `hsmsim demo`: a cluster of HSM processes started by the real `hsmsim up`
// (supervisor, one process per HSM, TLS on loopback addresses) in a temporary folder, on a random
// 127.x.y.2… base address and high port so it never meets another cluster; an application in a
// second process (live-demo-app.ts, connect() from the remote client) activates it, logs in and
// encrypts in a loop; `hsmsim hsm kill` SIGKILLs the HSM it bootstrapped from mid-run, and the
// application carries on. Every wait is bounded; the processes and the folder are always removed.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { ClusterFolder } from "../net/cluster-folder.js";
import { entryPoint } from "../net/entry-points.js";
import { SUPERVISOR_PID } from "../net/process-errors.js";
import type { ClusterView } from "../net/supervisor.js";
import { alive, downCommand, hsmCommand } from "./cluster-commands.js";
import { upCommand } from "./cluster-up.js";
import { statusOf } from "./cluster-view.js";
import { type Command, runEntry } from "./command.js";
import type { Output } from "./format.js";

/** What the application process is given (argv[2], JSON). */
export interface AppConfig {
  address: string;
  trustAnchor: string;
  officerPassword: string;
  alicePassword: string;
  callTimeoutMs: number;
  /** The longest the loop runs whatever it is told. */
  runLimitMs: number;
}

export interface AppResult {
  kind: "result";
  before: number;
  after: number;
  errorCount: number;
  /** Distinct error messages (5 at most). */
  errors: string[];
  /** From the kill to the first round trip completed after it. */
  firstAfterMs: number | null;
  /** The slowest of the first round trips completed after the kill (those in flight at it included). */
  slowestMs: number | null;
  /** The client's view of the killed HSM at the end (ok, suspect, unreachable). */
  victimStatus: string | null;
  stoppedByDeadline: boolean;
}

export type AppMessage =
  | { kind: "ready"; keyId: number }
  | { kind: "progress"; ok: number; errors: number }
  | AppResult
  | { kind: "failed"; message: string };

export type ParentMessage = { kind: "killed"; at: number; address: string; afterMs: number } | { kind: "stop" };

export interface LiveDemoOptions {
  /** Bound of each wait: the cluster coming up, the application ready, the HSM restarted (default 60 s). */
  timeoutMs?: number;
  /** How long the application goes on after the kill (default 1500 ms). */
  afterKillMs?: number;
  /** Round trips before the kill (default 100). */
  roundTripsBeforeKill?: number;
  /** The first HSM's address and the port (default: 127.<random>.<random>.2 and a random high port). */
  baseAddress?: string;
  port?: number;
}

export interface LiveDemoReport {
  ok: boolean;
  /** Why the part failed (also printed). */
  failure?: string;
  /** The temporary folder (removed at the end). */
  root: string;
  /** Every process the part started or saw (supervisor, HSMs, the application). */
  pids: number[];
  result?: AppResult;
  /** Processes still alive after the clean-up (none expected). */
  leftovers: number[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Runs one cluster command in this process, its output captured; throws with it on a nonzero exit. */
async function hsmsim(command: Command, path: string, args: string[]): Promise<string> {
  let stdout = "", stderr = "";
  const code = await runEntry(command, args, path, { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) }, env: {} });
  if (code !== 0) throw new Error(`${path} exited ${code}: ${(stderr || stdout).trim()}`);
  return stdout;
}

/** The application process and its messages. */
class App {
  readonly child: ChildProcess;
  readonly #inbox: AppMessage[] = [];
  #stderr = "";
  #exit: string | null = null;
  readonly exited: Promise<void>;

  constructor(config: AppConfig) {
    const { file, execArgv } = entryPoint("live-demo-app", "cli");
    this.child = spawn(process.execPath, [...execArgv, file, JSON.stringify(config)], { stdio: ["ignore", "ignore", "pipe", "ipc"] });
    this.child.stderr!.setEncoding("utf8").on("data", (t: string) => (this.#stderr = (this.#stderr + t).slice(-2000)));
    this.child.on("message", (m: AppMessage) => this.#inbox.push(m));
    this.exited = new Promise((resolve) => {
      this.child.on("exit", (code, signal) => {
        this.#exit = signal ?? `code ${code}`;
        resolve();
      });
      this.child.on("error", (e) => {
        this.#exit = `not started: ${e.message}`;
        resolve();
      });
    });
  }

  send(message: ParentMessage): void {
    if (this.child.connected) this.child.send(message);
  }

  /** The first message that `accept` takes (earlier ones are dropped); fails on the app's failure, exit or the timeout. */
  async next<T extends AppMessage>(accept: (m: AppMessage) => m is T, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.#inbox.length > 0) {
        const m = this.#inbox.shift()!;
        if (m.kind === "failed") throw new Error(`the application failed: ${m.message}`);
        if (accept(m)) return m;
      }
      if (this.#exit !== null) throw new Error(`the application exited (${this.#exit}) before ${what}${this.#stderr.trim() ? `: ${this.#stderr.trim().split("\n").slice(-3).join(" | ")}` : ""}`);
      if (Date.now() > deadline) throw new Error(`${what} did not happen within ${seconds(timeoutMs)}`);
      await sleep(20);
    }
  }

  /** Ends the process (SIGKILL when it does not end by itself within `graceMs`). */
  async end(graceMs: number): Promise<void> {
    if (this.#exit !== null) return;
    await Promise.race([this.exited, sleep(graceMs)]);
    if (this.#exit === null) {
      this.child.kill("SIGKILL");
      await Promise.race([this.exited, sleep(5_000)]);
    }
  }
}

export async function runLiveClusterDemo(out: Output, options: LiveDemoOptions = {}): Promise<LiveDemoReport> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const afterKillMs = options.afterKillMs ?? 1_500;
  const beforeKill = options.roundTripsBeforeKill ?? 100;
  const root = mkdtempSync(join(tmpdir(), "hsmsim-demo-live-"));
  const dir = join(root, "cluster");
  const folder = new ClusterFolder(dir);
  // 127.<a>.<b>.2, .3, .4 and a high port: never the default 127.0.0.2:2223, nor another run's.
  const base = options.baseAddress ?? `127.${100 + Math.floor(Math.random() * 150)}.${1 + Math.floor(Math.random() * 250)}.2`;
  const port = options.port ?? 20_000 + Math.floor(Math.random() * 40_000);
  const pids = new Set<number>();
  const report: LiveDemoReport = { ok: false, root, pids: [], leftovers: [] };
  const seen = (v: ClusterView) => {
    if (v.supervisorPid !== null) pids.add(v.supervisorPid);
    for (const h of v.hsms) if (h.pid !== null) pids.add(h.pid);
  };
  let supervisor: number | undefined;
  const supervisorPid = () => {
    try {
      const pid = Number(readFileSync(join(dir, SUPERVISOR_PID), "utf8"));
      if (Number.isInteger(pid) && pid > 0) pids.add((supervisor = pid));
    } catch {
      // not started (yet), or gone
    }
  };
  let app: App | null = null;
  // Ctrl-C (or SIGTERM) mid-part: the supervisor runs detached, out of the terminal's reach, so stop
  // it here, then the rest, and remove the folder before exiting. A second Ctrl-C exits at once.
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = true;
    out.line(`interrupted (${signal}): stopping the cluster and removing ${root}`);
    app?.child.kill("SIGKILL");
    supervisorPid();
    void stopAll(pids, supervisor).finally(() => {
      rmSync(root, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  out.step("The cluster in real time: hsmsim up starts 3 HSM processes, an application in a second process, kill -9 of an HSM");
  try {
    const started = Date.now();
    const up = JSON.parse(await hsmsim(upCommand, "hsmsim up", [
      "--data", dir, "--hsms", "3", "--base-address", base, "--port", String(port), "--password-cost", "1", "--timeout-ms", String(timeoutMs), "--json",
    ])) as ClusterView & { connect: { address: string; trustAnchor: string } };
    seen(up);
    supervisorPid();
    const hsms = up.hsms.filter((h) => h.state !== "DELETED");
    const last = hsms[hsms.length - 1].address.split(":")[0].split(".")[3];
    out.line(`up in ${seconds(Date.now() - started)}: supervisor pid ${up.supervisorPid}; ${hsms.length} HSMs on ${base}–${last}:${port} (pids ${hsms.map((h) => h.pid).join(", ")}), TLS; data in ${dir}`);

    app = new App({
      address: up.connect.address, trustAnchor: up.connect.trustAnchor, officerPassword: "officer-pass-1", alicePassword: "alice-pass-1",
      callTimeoutMs: 20_000, runLimitMs: 2 * timeoutMs,
    });
    if (app.child.pid !== undefined) pids.add(app.child.pid);
    const ready = await app.next((m): m is Extract<AppMessage, { kind: "ready" }> => m.kind === "ready", timeoutMs, "the application's login");
    out.line(`app (pid ${app.child.pid}, connect() to ${up.connect.address}): activated the cluster, created alice, logged in, generated token AES key ${ready.keyId}`);

    await app.next((m): m is Extract<AppMessage, { kind: "progress" }> => m.kind === "progress" && m.ok >= beforeKill, timeoutMs, `${beforeKill} round trips`);
    const victim = hsms.find((h) => h.address === up.connect.address) ?? hsms[0];
    await hsmsim(hsmCommand, "hsmsim hsm", ["kill", victim.hsmId, "--data", dir]);
    const killedAt = Date.now();
    app.send({ kind: "killed", at: killedAt, address: victim.address, afterMs: afterKillMs });
    out.line(`hsmsim hsm kill ${victim.hsmId}: SIGKILL of pid ${victim.pid} (${victim.address}, the app's bootstrap address) mid-run`);

    const result = await app.next((m): m is AppResult => m.kind === "result", afterKillMs + timeoutMs, "the application's report");
    report.result = result;
    out.line(`app: ${result.before} encrypt+decrypt round trips before the kill, ${result.after} in the ${seconds(afterKillMs)} after it, ${result.errorCount} errors` +
      (result.firstAfterMs !== null ? `; first success ${result.firstAfterMs} ms after the kill, slowest ${result.slowestMs} ms` : ""));
    if (result.victimStatus) {
      out.line(`the app's client sees ${victim.hsmId} as ${result.victimStatus}${result.victimStatus === "ok" ? "" : " and sends its calls to the other two"}`);
    }

    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await statusOf(folder).catch(() => null);
      if (v) seen(v);
      const back = v?.hsms.find((h) => h.hsmId === victim.hsmId);
      if (back && back.pid !== null && back.pid !== victim.pid && back.keyCount !== undefined) {
        out.line(`the supervisor restarted ${victim.hsmId} from its data folder (pid ${back.pid}, ${back.keyCount} key${back.keyCount === 1 ? "" : "s"}) ${seconds(Date.now() - killedAt)} after the kill`);
        break;
      }
      if (Date.now() > deadline) throw new Error(`the supervisor did not restart ${victim.hsmId} within ${seconds(timeoutMs)}`);
      await sleep(100);
    }
    await app.end(10_000);
    if (result.errorCount > 0) throw new Error(`the application saw ${result.errorCount} errors: ${result.errors.join("; ")}`);
    if (result.after === 0) throw new Error("no round trip succeeded after the kill");
    if (result.stoppedByDeadline) throw new Error("the application's loop ran into its time limit");
    report.ok = true;
  } catch (e) {
    report.failure = e instanceof Error ? e.message : String(e);
    if (!interrupted) out.line(`FAILED: ${report.failure}`);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    report.failure = await cleanUp(out, app, folder, root, pids, supervisorPid, report);
    report.pids = [...pids];
    if (report.failure !== undefined) report.ok = false;
  }
  return report;
}

/**
 * Makes sure none of `pids` runs: SIGTERM to the supervisor first when given (it stops its HSMs
 * cleanly; HSM processes also exit once their supervisor is gone), SIGKILL for what is left after 5 s.
 */
async function stopAll(pids: Set<number>, supervisor?: number): Promise<void> {
  const signal = (pid: number, name: NodeJS.Signals) => {
    try {
      process.kill(pid, name);
    } catch {
      // gone meanwhile
    }
  };
  if (supervisor !== undefined && alive(supervisor)) signal(supervisor, "SIGTERM");
  const deadline = Date.now() + 5_000;
  while ([...pids].some(alive) && Date.now() < deadline) await sleep(50);
  for (const pid of [...pids].filter(alive)) signal(pid, "SIGKILL");
  const killed = Date.now();
  while ([...pids].some(alive) && Date.now() - killed < 2_000) await sleep(20);
}

/** Stops the application and the cluster (hsmsim down; SIGKILL of whatever still runs), removes the folder. */
async function cleanUp(out: Output, app: App | null, folder: ClusterFolder, root: string, pids: Set<number>, supervisorPid: () => void, report: LiveDemoReport): Promise<string | undefined> {
  let failure = report.failure;
  const problems: string[] = [];
  if (app !== null) {
    app.send({ kind: "stop" });
    await app.end(5_000);
  }
  supervisorPid();
  if (existsSync(folder.dir)) {
    // The HSM processes running now (also when `up` failed half-way), to make sure of them below.
    const view = await Promise.race([statusOf(folder).catch(() => null), sleep(5_000).then(() => null)]);
    if (view) for (const h of view.hsms) if (h.pid !== null) pids.add(h.pid);
    try {
      // Bounded: a supervisor still busy with a failed start must not hold the demo; what is left is killed below.
      await Promise.race([
        hsmsim(downCommand, "hsmsim down", ["--data", folder.dir]),
        sleep(20_000).then(() => { throw new Error("hsmsim down did not finish within 20 s (what still runs is stopped by signal)"); }),
      ]);
    } catch (e) {
      problems.push(e instanceof Error ? e.message : String(e));
    }
  }
  await stopAll(pids);
  report.leftovers = [...pids].filter(alive);
  if (report.leftovers.length > 0) problems.push(`processes still running: ${report.leftovers.join(", ")}`);
  try {
    rmSync(root, { recursive: true, force: true });
  } catch (e) {
    problems.push(`could not remove ${root}: ${(e as Error).message}`);
  }
  if (problems.length === 0) {
    out.line(`hsmsim down: all ${pids.size} processes gone (supervisor, HSMs, app); ${root} removed`);
  } else {
    out.line(`clean-up FAILED: ${problems.join("; ")}`);
    failure ??= `clean-up: ${problems.join("; ")}`;
  }
  return failure;
}
