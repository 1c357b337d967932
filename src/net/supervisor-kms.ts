// The supervisor's handle on the KMS endpoint's process (`hsmsim up --kms`): fork it with an IPC
// channel (it is src/kms/kms-process.ts: started by name, never imported, so this layer knows
// nothing of KMS), hear when it listens or why it cannot, restart it after a backoff when it
// dies (as an HSM process), and stop it cleanly (its trail is flushed and signed on the way out).
// The port is the supervisor's: bound once at start and held until stop (hsmsim down), the
// listening socket handed to each KMS process it starts. Were the KMS process to bind it, the port
// would be free from its death to its restart, for any local process to take and answer the SDKs
// (plain HTTP) in its place. Both processes accept on the socket: what the supervisor's side
// accepts is passed to the KMS process unread, or held (unread, bounded) while none is running.
import { type ChildProcess, fork } from "node:child_process";
import { closeSync, constants, openSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";

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
/** Connections accepted here and not yet passed on (none serves: restarting), at most, and how long each waits. */
const MAX_HELD = 256;
const HOLD_MS = 30_000;
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
  /** The port, bound by this process for as long as the cluster is up. */
  #listener: Server | null = null;
  /** The child that said it serves (connections accepted here go to it), or null. */
  #serving: ChildProcess | null = null;
  #held = new Map<Socket, NodeJS.Timeout>();
  /** A connection is on its way to the serving child. */
  #passing = false;

  constructor(private readonly options: KmsProcessOptions) {}

  get url(): string {
    return `http://${this.options.host}:${this.options.port}`;
  }

  start(): void {
    this.#stopping = false;
    void this.#bindThenSpawn();
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
      this.#release();
      return;
    }
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    if (child.connected) child.send({ t: "stop" }, () => {});
    else child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(killer);
    this.#state = "stopped";
    this.#release();
  }

  /** Binds the port once (kept across restarts), then starts the KMS process; a port taken is retried on the backoff. */
  async #bindThenSpawn(): Promise<void> {
    if (this.#stopping) return;
    if (this.#listener === null) {
      try {
        this.#listener = await this.#bind();
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        this.#lastError = code === "EADDRINUSE"
          ? `port ${this.options.port} on ${this.options.host} is in use (another hsmsim up --kms, or another program): choose another with --kms-port`
          : `cannot listen on ${this.options.host}:${this.options.port}: ${(e as Error).message}`;
        this.options.event(`KMS endpoint: ${this.#lastError}`);
        this.#scheduleRestart();
        return;
      }
      if (this.#stopping) return this.#release(); // stopped while binding
    }
    this.#spawn();
  }

  #bind(): Promise<Server> {
    // Paused: a connection accepted here is passed on unread, for the KMS process to read.
    const server = createServer({ pauseOnConnect: true }, (socket) => this.#accepted(socket));
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port, this.options.host, () => {
        server.off("error", reject);
        // Accept failures (out of descriptors…) must not take the supervisor down.
        server.on("error", (e) => this.options.event(`KMS port: ${e.message}`));
        resolve(server);
      });
    });
  }

  /** A connection accepted here: queued (unread, bounded), then passed to the KMS process that serves. */
  #accepted(socket: Socket): void {
    socket.on("error", () => {});
    if (this.#stopping || this.#held.size >= MAX_HELD) return void socket.destroy();
    this.#held.set(socket, setTimeout(() => {
      this.#held.delete(socket);
      socket.destroy();
    }, HOLD_MS));
    this.#pass();
  }

  /**
   * Passes the next queued connection, one at a time: the next goes once the KMS process says it
   * took the last ({t:"taken"}). Node closes the one in flight when the child dies, but would keep
   * open (forever) those queued behind it in the channel.
   */
  #pass(): void {
    const child = this.#serving;
    if (child === null || !child.connected || this.#passing) return;
    for (const [socket, timer] of this.#held) {
      this.#held.delete(socket);
      clearTimeout(timer);
      if (socket.destroyed) continue;
      this.#passing = true;
      child.send({ t: "connection" }, socket, undefined, (e) => {
        if (!e) return;
        socket.destroy();
        if (this.#serving === child) this.#passing = false;
      });
      return;
    }
  }
  /** Unbinds the port (hsmsim down): the connections held are closed. */
  #release(): void {
    for (const [socket, timer] of this.#held) {
      clearTimeout(timer);
      socket.destroy();
    }
    this.#held.clear();
    this.#listener?.close();
    this.#listener = null;
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
      if (message?.t === "listener" && this.#listener !== null && this.#child === child) {
        child.send({ t: "listen" }, this.#listener, undefined, () => {}); // a failure shows as its exit
      } else if (message?.t === "taken" && this.#serving === child) {
        this.#passing = false;
        this.#pass();
      } else if (message?.t === "ready" && typeof message.url === "string") {
        this.#state = "running";
        this.#readyAtMs = Date.now();
        this.#lastError = null;
        this.#serving = child;
        this.#passing = false;
        this.#pass();
        this.options.event(`KMS process ${child.pid} listening at ${message.url}`);
      } else if (message?.t === "fatal" && typeof message.reason === "string") {
        this.#lastError = message.reason.slice(0, 500);
      }
    });
    child.on("exit", (code, signal) => {
      if (this.#serving === child) {
        this.#serving = null;
        this.#passing = false;
      }
      if (this.#child !== child) return;
      this.#child = null;
      this.options.event(`KMS process exited (${signal ?? `code ${code}`})${this.#lastError ? `: ${this.#lastError}` : ""}`);
      if (this.#stopping) {
        this.#state = "stopped";
        return;
      }
      if (this.#lastError === null) this.#lastError = `exited (${signal ?? `code ${code}`})`;
      this.#scheduleRestart();
    });
  }

  #scheduleRestart(): void {
    if (Date.now() - this.#readyAtMs > STABLE_MS) this.#crashesInRow = 0;
    const delayMs = Math.min(MAX_RESTART_DELAY_MS, this.options.restartDelayMs * 2 ** this.#crashesInRow);
    this.#crashesInRow++;
    this.#state = "restarting";
    this.options.event(`KMS process restarts in ${delayMs} ms`);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = null;
      if (this.#stopping) return;
      this.#restarts++;
      void this.#bindThenSpawn();
    }, delayMs);
  }
}
