// The main thread's side of the remote client: a worker thread runs the real client (network
// I/O, timers, retries) and this link carries each call to it. A synchronous call posts its
// request, then blocks the calling thread with Atomics.wait on a SharedArrayBuffer until the
// worker has answered on the sync channel, which it reads with receiveMessageOnPort, as a
// real PKCS#11 library blocks its caller on the network. A callback call posts and returns at
// once; its answer comes through the event loop. Output bytes are copied back into the
// caller's own buffers, as pkcs11js writes into them.
//
// The wait is bounded, never a hang: a worker that exits fails the call at once; one whose
// event loop stops turning (no heartbeat for stallTimeoutMs, default 15 s, once it has started) or that gives no
// answer within callTimeoutMs (default 60 s, far above the client's own timeouts and retries)
// fails it with CKR_DEVICE_ERROR, and the link is then broken for good (the worker is ended).
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { MessageChannel, type MessagePort, Worker, receiveMessageOnPort } from "node:worker_threads";

import { OUTPUT_ARGS } from "../../cluster/calls.js";
import { APPLICATION_CALLS, type NativeChip } from "../../pkcs11/addon.js";
import { CKR_DEVICE_ERROR } from "../../pkcs11/constants.js";
import { Pkcs11Error } from "../../pkcs11/errors.js";
import { ObjectFreeze, freezeClass } from "../../primordials.js";
import { ClientError } from "../errors.js";
import {
  type BackendSpec, type BridgeAnswer, type BridgeRequest, type RequestKind, STATE_ANSWERS, STATE_DEAD, STATE_HEARTBEAT, STATE_SLOTS,
  revive, reviveError,
} from "./messages.js";

export interface RemoteLinkOptions {
  /** The longest a synchronous call waits for its answer (default 60 000 ms). */
  callTimeoutMs?: number;
  /** How long the worker's event loop may stop turning before a waiting call gives up (default 15 000 ms). */
  stallTimeoutMs?: number;
}

type AnswerCallback = (answer: BridgeAnswer) => void;

/** How long one Atomics.wait lasts before the caller checks the worker's health again. */
const WAIT_SLICE_MS = 250;

export class RemoteLink {
  readonly #worker: Worker;
  readonly #state: Int32Array;
  readonly #syncPort: MessagePort;
  readonly #pending = new Map<number, AnswerCallback>();
  readonly #callTimeoutMs: number;
  readonly #stallTimeoutMs: number;
  #nextId = 1;
  /** Why the link no longer works (the worker exited, stalled or was closed), once it does not. */
  #broken: string | null = null;

  constructor(spec: BackendSpec, options: RemoteLinkOptions = {}) {
    for (const name of ["callTimeoutMs", "stallTimeoutMs"] as const) {
      const value = options[name];
      if (value !== undefined && !(Number.isFinite(value) && value > 0)) throw new ClientError("INVALID_ARGUMENT", `${name} must be a positive number of milliseconds`);
    }
    this.#callTimeoutMs = options.callTimeoutMs ?? 60_000;
    this.#stallTimeoutMs = options.stallTimeoutMs ?? 15_000;
    const shared = new SharedArrayBuffer(STATE_SLOTS * Int32Array.BYTES_PER_ELEMENT);
    this.#state = new Int32Array(shared);
    const channel = new MessageChannel();
    this.#syncPort = channel.port1; // never started: read only with receiveMessageOnPort
    this.#syncPort.unref(); // nor does it keep the process alive
    const { script, eval: isEval } = workerScript();
    this.#worker = new Worker(script, { eval: isEval, workerData: { spec, syncPort: channel.port2, state: shared }, transferList: [channel.port2] });
    this.#worker.on("message", (answer: BridgeAnswer) => {
      const callback = this.#pending.get(answer.id);
      if (callback === undefined) return;
      this.#pending.delete(answer.id);
      if (this.#pending.size === 0) this.#worker.unref();
      callback(answer);
    });
    this.#worker.on("error", (e) => this.#break(`the remote client's worker failed: ${e.message}`));
    this.#worker.on("exit", (code) => this.#break(`the remote client's worker exited (code ${code})`));
    // The worker never keeps the process alive by itself: only while callback calls wait for answers.
    // After the listeners: adding a "message" listener refs the worker's port again.
    this.#worker.unref();
  }

  /** Whether calls can still reach the worker. */
  get usable(): boolean {
    return this.#broken === null;
  }

  /** One call, blocking the calling thread until the worker answers (or the bounds above run out). */
  callSync(kind: RequestKind, method: string, args: unknown[]): BridgeAnswer {
    const state = this.#state;
    if (this.#broken !== null) throw this.#failure(method, this.#broken);
    const id = this.#nextId++;
    let seen = Atomics.load(state, STATE_ANSWERS);
    this.#worker.postMessage({ id, kind, method, args: pack(args), sync: true } satisfies BridgeRequest);
    const startedMs = performance.now();
    let beat = Atomics.load(state, STATE_HEARTBEAT);
    let beatMs = startedMs;
    for (;;) {
      const received = receiveMessageOnPort(this.#syncPort);
      if (received !== undefined) {
        const answer = received.message as BridgeAnswer;
        if (answer.id === id) return answer;
        continue; // not possible while one thread waits at a time; ignored if it ever is
      }
      const nowMs = performance.now();
      let why: string | null = null;
      if (Atomics.load(state, STATE_DEAD) !== 0) why = "the remote client's worker exited during the call";
      const b = Atomics.load(state, STATE_HEARTBEAT);
      if (b !== beat) {
        beat = b;
        beatMs = nowMs;
      } else if (b !== 0 && nowMs - beatMs > this.#stallTimeoutMs) {
        // (0: the worker is still starting — loading modules is not a stall; callTimeoutMs bounds it)
        why ??= `the remote client's worker stopped responding (no heartbeat for ${this.#stallTimeoutMs} ms)`;
      }
      if (nowMs - startedMs > this.#callTimeoutMs) why ??= `no answer from the remote client's worker within ${this.#callTimeoutMs} ms`;
      if (why !== null) {
        this.#break(why);
        throw this.#failure(method, why);
      }
      Atomics.wait(state, STATE_ANSWERS, seen, WAIT_SLICE_MS);
      seen = Atomics.load(state, STATE_ANSWERS);
    }
  }

  /** One call whose answer comes through `callback` from the event loop; returns at once. */
  callAsync(kind: RequestKind, method: string, args: unknown[], callback: AnswerCallback): void {
    if (this.#broken !== null) {
      const error = this.#failure(method, this.#broken);
      process.nextTick(() => callback({ id: 0, error: { name: "Pkcs11Error", message: error.message, code: error.code, method: error.method, detail: error.detail } }));
      return;
    }
    const id = this.#nextId++;
    if (this.#pending.size === 0) this.#worker.ref();
    this.#pending.set(id, callback);
    this.#worker.postMessage({ id, kind, method, args: pack(args), sync: false } satisfies BridgeRequest);
  }

  /**
   * The facade's backend: every PKCS#11 call of NativeChip, proxied. Synchronous forms block;
   * forms with a callback never do. `unload()` (the facade's close()) ends the worker.
   */
  chip(): NativeChip {
    const chip: Record<string, unknown> = { unload: () => this.close(), asyncInits: true };
    for (const method of APPLICATION_CALLS) {
      const output = OUTPUT_ARGS[method];
      chip[method] = (...args: unknown[]) => {
        const cb = typeof args[args.length - 1] === "function" ? (args.pop() as (e: Error | null, v?: unknown) => void) : undefined;
        const out = output !== undefined && Buffer.isBuffer(args[output]) ? (args[output] as Buffer) : undefined;
        if (cb === undefined) return settle(this.callSync("chip", method, args), out);
        this.callAsync("chip", method, args, (answer) => {
          let value: unknown;
          try {
            value = settle(answer, out);
          } catch (e) {
            return cb(e as Error);
          }
          cb(null, value);
        });
      };
    }
    return ObjectFreeze(chip) as unknown as NativeChip;
  }

  /** Ends the worker: the backend closes its connections, then the thread exits. Later calls fail with CKR_DEVICE_ERROR. */
  close(): void {
    if (this.#broken !== null) return;
    this.#worker.postMessage({ id: this.#nextId++, kind: "close", method: "close", args: [], sync: false } satisfies BridgeRequest);
    this.#break("the connection was closed");
    // The worker exits by itself once its connections are closed; end it if it does not.
    setTimeout(() => void this.#worker.terminate(), 5_000).unref();
  }

  /** Ends the worker at once, as a crash would (tests, and a caller that gave up). */
  terminate(): Promise<number> {
    this.#break("the remote client's worker was terminated");
    return this.#worker.terminate();
  }

  #break(why: string): void {
    if (this.#broken !== null) return;
    this.#broken = why;
    // A worker blocked on the shared state (or ending) is released; callers still waiting get the reason.
    Atomics.store(this.#state, STATE_DEAD, 1);
    Atomics.notify(this.#state, STATE_DEAD);
    if (why !== "the connection was closed") void this.#worker.terminate();
    this.#syncPort.close();
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    this.#worker.unref();
    for (const callback of pending) {
      process.nextTick(() => callback({ id: 0, error: { name: "Pkcs11Error", message: "CKR_DEVICE_ERROR", code: CKR_DEVICE_ERROR, method: "", detail: why } }));
    }
  }

  #failure(method: string, why: string): Pkcs11Error {
    return new Pkcs11Error(CKR_DEVICE_ERROR, cName(method), why);
  }
}

/** An answer as the caller sees it: the value, output bytes in its own buffer, or the typed error thrown. */
function settle(answer: BridgeAnswer, out: Buffer | undefined): unknown {
  if (answer.error !== undefined) throw reviveError(answer.error);
  if (answer.output !== undefined && out !== undefined) out.set(answer.output.subarray(0, out.length));
  return revive(answer.value);
}

/** Arguments on their way to the worker: Buffers copied into their own bytes (a pooled Buffer would carry its whole pool). */
function pack(args: unknown[]): unknown[] {
  return args.map((a) => (a instanceof Uint8Array ? new Uint8Array(a) : Array.isArray(a) ? pack(a) : a));
}

/** pkcs11js's name of a chip method: encrypt → C_Encrypt, initPin → C_InitPIN. */
function cName(method: string): string {
  if (method.startsWith("C_") || method === "") return method;
  return `C_${method[0].toUpperCase()}${method.slice(1)}`.replace(/Pin$/, "PIN");
}

/**
 * The worker's script: the compiled module next to this one (dist/esm), the bundled worker
 * next to the package bundle (dist/cjs), or in a source checkout the TypeScript file loaded
 * through tsx (tests, `tsx` runs).
 */
function workerScript(): { script: string | URL; eval: boolean } {
  const here = typeof __filename === "string" ? dirname(__filename) : dirname(fileURLToPath(import.meta.url));
  for (const name of ["worker.js", "remote-worker.cjs"]) {
    const candidate = join(here, name);
    if (existsSync(candidate)) return { script: candidate, eval: false };
  }
  const source = join(here, "worker.ts");
  if (!existsSync(source)) throw new ClientError("INVALID_ARGUMENT", `the remote client's worker script is missing next to ${here}: rebuild hsmsim (npm run build:ts)`);
  const require = createRequire(join(here, "link.ts"));
  const tsx = pathToFileURL(join(dirname(require.resolve("tsx/package.json")), "dist", "esm", "api", "index.mjs")).href;
  // A worker that cannot load marks itself dead at once, so a waiting call fails now rather than at callTimeoutMs.
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(pathToFileURL(source).href)}); })` +
    `.catch(async (e) => { const { workerData } = await import("node:worker_threads"); const s = new Int32Array(workerData.state);` +
    ` Atomics.store(s, ${STATE_DEAD}, 1); Atomics.notify(s, ${STATE_ANSWERS}); throw e; });`;
  // An ES module from a data: URL, not an eval'd script (which would define __filename for every module it loads).
  return { script: new URL(`data:text/javascript,${encodeURIComponent(code)}`), eval: false };
}

freezeClass(RemoteLink);
