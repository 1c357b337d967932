// The remote client's worker thread: hosts a backend (the real client over TLS, or a memory
// chip for the bridge's own tests) and answers the main thread's calls. Synchronous calls are
// answered on the sync channel, then the shared state is bumped and notified (the caller is
// blocked in Atomics.wait); callback calls on the worker's port. A timer bumps the heartbeat
// so a caller can tell a stuck worker from a slow answer; exit marks the state dead.
import { type MessagePort, parentPort, workerData } from "node:worker_threads";

import { OUTPUT_ARGS } from "../../cluster/calls.js";
import { parseTarget } from "../../pkcs11/target.js";
import { APPLICATION_CALLS, createChip } from "../../pkcs11/addon.js";
import { Pkcs11Error } from "../../pkcs11/errors.js";
import { CKR_FUNCTION_NOT_SUPPORTED } from "../../pkcs11/constants.js";
import {
  type BackendSpec, type BridgeAnswer, type BridgeRequest, HEARTBEAT_INTERVAL_MS, STATE_ANSWERS, STATE_DEAD, STATE_HEARTBEAT, revive,
  serializeError,
} from "./messages.js";

export type Done = (error: Error | null, value?: unknown) => void;

/** What the worker serves: every call as start(done); close() ends it. */
export interface WorkerBackend {
  call(request: BridgeRequest, args: unknown[], done: Done): void;
  close(done: () => void): void;
}

interface WorkerData {
  spec: BackendSpec;
  syncPort: MessagePort;
  state: SharedArrayBuffer;
}

const APPLICATION = new Set<string>(APPLICATION_CALLS);

/** The bridge's test backend: one application on a fresh chip, each call run at once. */
function memoryBackend(target: string): WorkerBackend {
  const application = createChip(parseTarget(target)).openApplication() as unknown as Record<string, (...a: unknown[]) => unknown>;
  return {
    call(request, args, done) {
      if (request.kind !== "chip" || !APPLICATION.has(request.method)) return done(new Pkcs11Error(CKR_FUNCTION_NOT_SUPPORTED, request.method));
      let value: unknown;
      try {
        value = application[request.method](...args);
      } catch (e) {
        return done(e as Error);
      }
      done(null, value);
    },
    close(done) {
      done();
    },
  };
}

function main(): void {
  const port = parentPort;
  if (port === null) throw new Error("the remote client's worker runs in a worker thread");
  const { spec, syncPort, state: shared } = workerData as WorkerData;
  const state = new Int32Array(shared);
  process.on("exit", () => {
    Atomics.store(state, STATE_DEAD, 1);
    Atomics.notify(state, STATE_ANSWERS);
  });
  Atomics.add(state, STATE_HEARTBEAT, 1); // started: from now on a stopped heartbeat means a stuck worker
  setInterval(() => Atomics.add(state, STATE_HEARTBEAT, 1), HEARTBEAT_INTERVAL_MS).unref();

  const answer = (request: BridgeRequest, message: BridgeAnswer) => {
    try {
      (request.sync ? syncPort : port).postMessage(message);
    } catch (e) {
      // A value structured clone cannot carry: the caller still gets an answer.
      (request.sync ? syncPort : port).postMessage({ id: request.id, error: serializeError(e) });
    }
    if (request.sync) {
      Atomics.add(state, STATE_ANSWERS, 1);
      Atomics.notify(state, STATE_ANSWERS);
    }
  };

  let backend: WorkerBackend | null = null;
  const ready: Promise<WorkerBackend> = spec.kind === "memory"
    ? Promise.resolve(memoryBackend(spec.target))
    : import("./cluster-backend.js").then((m) => m.clusterBackend(spec));
  ready.then((b) => (backend = b), () => {});

  const serve = (request: BridgeRequest, b: WorkerBackend) => {
    if (request.kind === "close") {
      b.close(() => {
        answer(request, { id: request.id });
        setImmediate(() => process.exit(0));
      });
      return;
    }
    if (spec.faults?.exitOn === request.method) process.exit(3);
    if (spec.faults?.hangOn === request.method) {
      while (Atomics.load(state, STATE_DEAD) === 0) Atomics.wait(state, STATE_DEAD, 0, 60_000); // a blocked event loop, until the caller gives up
      return;
    }
    const gate = spec.faults?.gate;
    if (gate !== undefined && gate.on === request.method) Atomics.wait(new Int32Array(gate.signal), 0, 0);
    const args = revive(request.args) as unknown[];
    const output = OUTPUT_ARGS[request.method];
    b.call(request, args, (error, value) => {
      if (error) return answer(request, { id: request.id, error: serializeError(error) });
      const message: BridgeAnswer = { id: request.id, value: pack(value) };
      if (output !== undefined && Buffer.isBuffer(args[output])) {
        const out = args[output] as Buffer;
        const written = typeof value === "number" && value <= out.length ? value : out.length;
        message.output = new Uint8Array(out.subarray(0, written)); // a copy: never the pool a Buffer may share
      }
      answer(request, message);
    });
  };

  port.on("message", (request: BridgeRequest) => {
    if (backend !== null) return serve(request, backend);
    ready.then((b) => serve(request, b), (e) => answer(request, { id: request.id, error: serializeError(e) }));
  });
}

/** Values on their way out: Buffers copied into their own Uint8Arrays (never a shared pool). */
function pack(value: unknown): unknown {
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (Array.isArray(value)) return value.map(pack);
  if (value !== null && typeof value === "object" && !ArrayBuffer.isView(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = pack(v);
    return out;
  }
  return value;
}

main();
