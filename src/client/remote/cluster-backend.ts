// The worker's real backend: today's client (ClusterClient + ClusterChip) in real time, over
// TLS to the cluster. It bootstraps on the first call (and again on a later call after a
// failed bootstrap: the cluster may come up after the application), then runs every call
// through ClusterChip.start and management calls through startManage.
import type { ManageMethod } from "../../cluster/protocol.js";
import { CKR_DEVICE_ERROR } from "../../pkcs11/constants.js";
import { Pkcs11Error } from "../../pkcs11/errors.js";
import { startManage } from "../api.js";
import { ClusterClient, dilatedTimings } from "../client.js";
import { ClusterChip } from "../cluster-chip.js";
import { ClientError } from "../errors.js";
import type { BackendSpec } from "./messages.js";
import { realTimeRuntime } from "./runtime.js";
import type { Done, WorkerBackend } from "./worker.js";

type ClusterSpec = Extract<BackendSpec, { kind: "cluster" }>;

/** Calls the client answers itself (sessions are logical): they need no cluster, so C_Finalize and close() work without one. */
const LOCAL_CALLS = new Set(["getSlotList", "openSession", "closeSession", "closeAllSessions", "getSessionInfo", "logout"]);

export function clusterBackend(spec: ClusterSpec): WorkerBackend {
  const runtime = realTimeRuntime(spec);
  const scaled = dilatedTimings(spec.timeScale ?? 1);
  const client = new ClusterClient({ transport: runtime.transport, clock: runtime.clock, rng: runtime.rng, address: runtime.address, bootstrap: spec.bootstrap, ...scaled });
  const chip = new ClusterChip(client);
  // A refused connection or failed handshake fails over now, not at the request's timeout (500 ms for a
  // read); a write it never sent fails over too, rather than reporting OUTCOME_UNKNOWN.
  runtime.onUnreachable((address, undelivered) => client.unreachable(address, undelivered));
  let connected = false;
  let waiting: Done[] | null = null;

  /** Runs `then` once bootstrapped; a failed bootstrap fails the calls that waited for it, with the reason. */
  const whenConnected = (fail: Done, then: () => void) => {
    if (connected) return then();
    const first = waiting === null;
    (waiting ??= []).push((error) => (error ? fail(error) : then()));
    if (!first) return;
    client.connect((error) => {
      const callers = waiting ?? [];
      waiting = null;
      connected = error === null;
      const reason = error && (runtime.lastError(spec.bootstrap) ?? error);
      for (const caller of callers) caller(reason);
    });
  };

  return {
    call(request, args, done) {
      if (request.kind === "chip" && LOCAL_CALLS.has(request.method)) return chip.start(request.method, args, done);
      const fail: Done = (error) => done(request.kind === "chip" ? asPkcs11(error!, request.method) : error);
      whenConnected(fail, () => {
        switch (request.kind) {
          case "chip": return chip.start(request.method, args, done);
          case "manage": {
            const [username, password, method, manageArgs, pinned, anyState] = args as [string, string, ManageMethod, unknown[], string | undefined, boolean];
            return startManage(client, { username, password, method, args: manageArgs }, pinned, anyState === true, done);
          }
          case "health": return done(null, client.health());
          default: return done(new ClientError("INVALID_ARGUMENT", `unknown request kind ${String(request.kind)}`));
        }
      });
    },
    close(done) {
      client.close();
      runtime.close();
      done();
    },
  };
}

/** A bootstrap failure as a PKCS#11 call reports it: CKR_DEVICE_ERROR, the reason as detail. */
function asPkcs11(error: Error, method: string): Error {
  if (error instanceof Pkcs11Error) return error;
  const code = (error as { code?: unknown }).code;
  return new Pkcs11Error(CKR_DEVICE_ERROR, method, `${typeof code === "string" ? `${code}: ` : ""}${error.message}`);
}
