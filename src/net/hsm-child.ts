// The supervisor's handle on one HSM process: start it (fork with an IPC channel), send it
// commands and await their replies (bounded), and hear when it is ready, activated or gone.
import { type ChildProcess, fork } from "node:child_process";
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

import { type ChildMessage, type HsmProcessConfig, type SupervisorCommand, isChildMessage } from "./hsm-ipc.js";
import { entryPoint } from "./entry-points.js";
import { EXIT_FATAL, ProcessError } from "./process-errors.js";

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type CommandBody = DistributiveOmit<SupervisorCommand, "id">;

export interface ChildEvents {
  ready(info: { hsmId: string; origin: number; activated: boolean }): void;
  activated(): void;
  /** The process ended; `reason` is its last fatal message, if it sent one. */
  exit(code: number | null, signal: NodeJS.Signals | null, reason: string | null): void;
}

export class HsmChild {
  private readonly process: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  private exited = false;
  private fatalReason: string | null = null;
  ready = false;

  constructor(config: HsmProcessConfig, private readonly events: ChildEvents) {
    const { file, execArgv } = entryPoint("hsm-process");
    this.process = fork(file, [JSON.stringify(config)], { execArgv, serialization: "advanced", stdio: ["ignore", "ignore", "inherit", "ipc"] });
    this.process.on("message", (m: unknown) => this.receive(m));
    this.process.on("error", () => {}); // a failed send or spawn shows as exit
    this.process.on("exit", (code, signal) => {
      this.exited = true;
      // The reason goes over IPC too, but an exiting process may not flush it: the log line is written synchronously.
      if (code === EXIT_FATAL && this.fatalReason === null) this.fatalReason = lastFatalReason(config.logFile);
      for (const [, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new ProcessError("CHILD_FAILED", `the HSM process exited (${signal ?? `code ${code}`})`));
      }
      this.pending.clear();
      events.exit(code, signal, this.fatalReason);
    });
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  get alive(): boolean {
    return !this.exited;
  }

  command<T = unknown>(body: CommandBody, timeoutMs = 30_000): Promise<T> {
    if (this.exited || !this.process.connected) return Promise.reject(new ProcessError("CHILD_FAILED", "the HSM process is not running"));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ProcessError("TIMEOUT", `the HSM process did not answer '${body.t}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.process.send({ ...body, id }, (error) => {
        if (!error) return;
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new ProcessError("CHILD_FAILED", `cannot reach the HSM process: ${error.message}`));
      });
    });
  }

  /** A crash, as `hsm kill` simulates: SIGKILL, nothing saved but what the folder holds. */
  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    if (!this.exited) this.process.kill(signal);
  }

  /** Resolves when the process has exited (at once if it has). */
  whenExited(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => this.process.once("exit", () => resolve()));
  }

  private receive(message: unknown): void {
    if (!isChildMessage(message)) return;
    const m = message as ChildMessage;
    switch (m.t) {
      case "ready":
        this.ready = true;
        this.events.ready(m);
        return;
      case "activated":
        this.events.activated();
        return;
      case "fatal":
        this.fatalReason = m.reason;
        return;
      case "reply": {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        clearTimeout(p.timer);
        if (m.ok) p.resolve(m.value);
        else p.reject(new ProcessError("CHILD_FAILED", `${m.code}: ${m.message}`));
      }
    }
  }
}

/** The reason of the last fatal line in an HSM process's log (its tail only), or null. */
function lastFatalReason(logFile: string): string | null {
  try {
    const fd = openSync(logFile, "r");
    try {
      const size = fstatSync(fd).size;
      const length = Math.min(size, 16_384);
      const tail = Buffer.alloc(length);
      readSync(fd, tail, 0, length, size - length);
      for (const line of tail.toString("utf8").split("\n").reverse()) {
        if (!line.includes('"reason"')) continue;
        const reason = (JSON.parse(line) as { reason?: unknown }).reason;
        if (typeof reason === "string") return reason;
      }
    } finally {
      closeSync(fd);
    }
  } catch {
    // no log, or a partial line: no reason
  }
  return null;
}
