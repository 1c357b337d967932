// The supervisor's handle on the KMS endpoint's process (`hsmsim up --kms`): fork it with an IPC
// channel (it is src/kms/kms-process.ts: started by name, never imported, so this layer knows
// nothing of KMS), hear when it listens or why it cannot, restart it after a backoff when it
// dies (as an HSM process), and stop it cleanly (its trail is flushed and signed on the way out).
import { type ChildProcess, fork } from "node:child_process";
import { closeSync, constants, openSync } from "node:fs";

import { entryPoint } from "./entry-points.js";

export interface KmsProcessOptions {
  clusterDir: string;
  /** Loopback address and port it listens on (hsmsim up --kms-port, default 4599 on 127.0.0.1). */
  host: string;
  port: number;
  /** Its stderr goes here (0600). */
  logFile: string;
  /** First restart delay; doubles per crash in a row up to 30 s. */
  restartDelayMs: number;
  event(text: string): void;
}

export type KmsProcessState = "starting" | "running" | "restarting" | "stopped";

/** What `hsmsim status` shows of the KMS process. */
export interface KmsView {
  url: string;
  state: KmsProcessState;
  pid: number | null;
  restarts: number;
  /** Why it last failed to start or stopped (e.g. its port is taken). */
  lastError: string | null;
}

const STABLE_MS = 60_000;
const MAX_RESTART_DELAY_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

export class KmsProcess {
  #child: ChildProcess | null = null;
  #state: KmsProcessState = "stopped";
  #restarts = 0;
  #crashesInRow = 0;
  #readyAtMs = 0;
  #lastError: string | null = null;
  #restartTimer: NodeJS.Timeout | null = null;
  #stopping = false;

  constructor(private readonly options: KmsProcessOptions) {}

  get url(): string {
    return `http://${this.options.host}:${this.options.port}`;
  }

  start(): void {
    this.#stopping = false;
    this.#spawn();
  }

  view(): KmsView {
    return { url: this.url, state: this.#state, pid: this.#child?.pid ?? null, restarts: this.#restarts, lastError: this.#lastError };
  }

  /** Sends a crash (SIGKILL), as `hsm kill` does to an HSM: it is restarted after the backoff. */
  kill(): void {
    this.#child?.kill("SIGKILL");
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    this.#restartTimer = null;
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      this.#state = "stopped";
      return;
    }
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    if (child.connected) child.send({ t: "stop" }, () => {});
    else child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(killer);
    this.#state = "stopped";
  }

  #spawn(): void {
    const { file, execArgv } = entryPoint("kms-process", "kms");
    const errFd = openSync(this.options.logFile, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW, 0o600);
    let child: ChildProcess;
    try {
      child = fork(file, [JSON.stringify({ clusterDir: this.options.clusterDir, host: this.options.host, port: this.options.port })],
        { execArgv, serialization: "json", stdio: ["ignore", "ignore", errFd, "ipc"] });
    } finally {
      closeSync(errFd);
    }
    this.#child = child;
    this.#state = "starting";
    child.on("error", () => {}); // a failed spawn or send shows as exit
    child.on("message", (m: unknown) => {
      const message = m as { t?: unknown; url?: unknown; reason?: unknown } | null;
      if (message?.t === "ready" && typeof message.url === "string") {
        this.#state = "running";
        this.#readyAtMs = Date.now();
        this.#lastError = null;
        this.options.event(`KMS process ${child.pid} listening at ${message.url}`);
      } else if (message?.t === "fatal" && typeof message.reason === "string") {
        this.#lastError = message.reason.slice(0, 500);
      }
    });
    child.on("exit", (code, signal) => {
      if (this.#child !== child) return;
      this.#child = null;
      this.options.event(`KMS process exited (${signal ?? `code ${code}`})${this.#lastError ? `: ${this.#lastError}` : ""}`);
      if (this.#stopping) {
        this.#state = "stopped";
        return;
      }
      if (this.#lastError === null) this.#lastError = `exited (${signal ?? `code ${code}`})`;
      if (Date.now() - this.#readyAtMs > STABLE_MS) this.#crashesInRow = 0;
      const delayMs = Math.min(MAX_RESTART_DELAY_MS, this.options.restartDelayMs * 2 ** this.#crashesInRow);
      this.#crashesInRow++;
      this.#state = "restarting";
      this.options.event(`KMS process restarts in ${delayMs} ms`);
      this.#restartTimer = setTimeout(() => {
        this.#restartTimer = null;
        if (this.#stopping) return;
        this.#restarts++;
        this.#spawn();
      }, delayMs);
    });
  }
}
