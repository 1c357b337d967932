// The remote columns of the benchmark against one real cluster (remote-cluster.ts):
// - sync: the pkcs11js-compatible PKCS11 from load("cloudhsm://…"), every call blocking;
// - async core, N in flight: every call of an operation (Init included) in its callback form,
//   N lanes (one session each) at once. pkcs11js has no async Init, C_GenerateRandom or
//   C_GetSessionInfo, so these go through the facade's backend (the same remote link and worker
//   the facade's own callback forms use), replaying the exact calls the sync facade made;
// - pkcs11js async forms, 64 in flight: C_SignInit/C_EncryptInit (sync) + C_SignAsync/C_EncryptAsync.
import { Pkcs11Error } from "../src/pkcs11/errors.js";
import { APPLICATION_CALLS, type NativeChip } from "../src/pkcs11/addon.js";
import * as P from "../src/index.js";
import { RemoteLink } from "../src/client/remote/link.js";
import { type BenchCluster, CU, startCluster } from "./remote-cluster.js";
import { type BenchKeys, type OperationName, OPERATIONS, gcmMechanism, makeKeys, probe, syncOperations } from "./remote-ops.js";

export interface RemotePath {
  name: string;
  inFlight: number;
  operations: Partial<Record<OperationName, (() => unknown) | string>>;
  serverPids(): number[];
  close(): Promise<void>;
}

type Call = { method: string; args: unknown[] };
type Callback = (error: Error | null, value?: unknown) => void;

/** A backend that records the calls the facade makes while `recording` is set, and can replay them async. */
function recordingBackend(inner: NativeChip): { chip: NativeChip; record(fn: () => void): Call[]; replay(calls: Call[]): Promise<void> } {
  let recording: Call[] | null = null;
  const target = inner as unknown as Record<string, (...a: unknown[]) => unknown>;
  const chip: Record<string, unknown> = {};
  for (const method of [...APPLICATION_CALLS, "unload"]) {
    if (typeof target[method] !== "function") continue;
    chip[method] = (...args: unknown[]) => {
      // Copied now: the facade reuses its mechanism arrays from call to call.
      recording?.push({ method, args: args.map(copyArg) });
      return target[method](...args);
    };
  }
  return {
    chip: chip as unknown as NativeChip,
    record(fn) {
      recording = [];
      try {
        fn();
        return recording;
      } finally {
        recording = null;
      }
    },
    replay(calls) {
      return new Promise((resolve, reject) => {
        let i = 0;
        const next: Callback = (error) => {
          if (error) return reject(error);
          if (i === calls.length) return resolve();
          const { method, args } = calls[i++];
          target[method](...args, next);
        };
        next(null);
      });
    },
  };
}

function copyArg(arg: unknown): unknown {
  if (Buffer.isBuffer(arg)) return Buffer.from(arg);
  if (ArrayBuffer.isView(arg)) return (arg as unknown as { slice(): unknown }).slice();
  if (Array.isArray(arg)) return arg.map(copyArg);
  return arg;
}

function loginSession(pkcs11: P.PKCS11, loggedIn: boolean): Buffer {
  const slot = pkcs11.C_GetSlotList(true)[0];
  const session = pkcs11.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
  if (!loggedIn) pkcs11.C_Login(session, P.CKU_USER, `${CU.username}:${CU.password}`);
  return session;
}

/** A pool of lanes: each concurrent iteration takes a free one (tinybench keeps at most N in flight). */
function pooled<T>(lanes: T[], run: (lane: T) => Promise<unknown>): () => Promise<void> {
  const free = [...lanes];
  return async () => {
    const lane = free.pop();
    if (lane === undefined) throw new Error("more calls in flight than lanes");
    try {
      await run(lane);
    } finally {
      free.push(lane);
    }
  };
}

type Lane = { session: Buffer; recorded: Record<OperationName, Call[]> };

/**
 * The async core over a link: a facade on a recording backend, `laneCount` sessions (the first
 * opened with `first === null`, so it may log in), each operation recorded once per lane and
 * replayed in callback form.
 */
function asyncCore(link: RemoteLink, open: (facade: P.PKCS11, first: Buffer | null) => Buffer, keysOf: (facade: P.PKCS11, session: Buffer) => BenchKeys, laneCount: number) {
  const backend = recordingBackend(link.chip());
  const facade = new P.PKCS11(backend.chip as never);
  facade.C_Initialize();
  const first = open(facade, null);
  const keys = keysOf(facade, first);
  const lanes: Lane[] = [first, ...Array.from({ length: laneCount - 1 }, () => open(facade, first))].map((session) => {
    const ops = syncOperations(facade, session, keys);
    const recorded = {} as Record<OperationName, Call[]>;
    for (const op of OPERATIONS) recorded[op] = backend.record(ops[op]);
    return { session, recorded };
  });
  return {
    facade, lanes, keys,
    operations(n: number): RemotePath["operations"] {
      const ops: RemotePath["operations"] = {};
      for (const op of OPERATIONS) ops[op] = pooled(lanes.slice(0, n), (lane) => backend.replay(lane.recorded[op]));
      return ops;
    },
    close: () => facade.C_Finalize(),
  };
}

/** The worker bridge alone: the same link and worker, hosting a `memory:` chip instead of the cluster client. */
export function bridgePaths(inFlights: number[] = [1, 64]): RemotePath[] {
  const link = new RemoteLink({ kind: "memory", target: "memory:" });
  const core = asyncCore(link, (facade, first) => {
    if (first !== null) return facade.C_OpenSession(facade.C_GetSlotList(true)[0], P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    return P.openUserSession(facade, { soPin: "bench-so-1", userPin: "bench-user-1" }).session;
  }, (facade, session) => makeKeys(facade, session, false), Math.max(...inFlights));
  const session = core.lanes[0].session;
  const syncOps = syncOperations(core.facade, session, core.keys);
  const paths: RemotePath[] = [{ name: "worker bridge only (memory:)", inFlight: 0, operations: syncOps, serverPids: () => [], close: async () => undefined }];
  for (const n of inFlights) paths.push({ name: `worker bridge only, async core ×${n}`, inFlight: n, operations: core.operations(n), serverPids: () => [], close: async () => undefined });
  paths[paths.length - 1].close = async () => core.close();
  return paths;
}

export async function remotePaths(hsms: number, inFlights: number[] = [1, 8, 64]): Promise<RemotePath[]> {
  const cluster: BenchCluster = await startCluster(hsms);
  const url = `cloudhsm://${cluster.addresses[0]}?ca=${encodeURIComponent(cluster.trustAnchorPath)}`;
  const paths: RemotePath[] = [];
  const closers: (() => void)[] = [];
  try {
    const pids = (await cluster.status()).map((h) => h.pid).filter((p): p is number => typeof p === "number");
    const tag = `${hsms} HSM${hsms > 1 ? "s" : ""}`;

    // sync, through load("cloudhsm://…"); token keys, so every HSM holds them and any may serve.
    const sync = P.load(url);
    sync.C_Initialize();
    closers.push(() => sync.C_Finalize());
    const syncSession = loginSession(sync, false);
    const keys: BenchKeys = makeKeys(sync, syncSession, true);
    const syncOps = syncOperations(sync, syncSession, keys);
    const operations: RemotePath["operations"] = {};
    for (const op of OPERATIONS) {
      const why = probe(syncOps[op]);
      operations[op] = why === null ? syncOps[op] : `failed: ${why}`;
    }
    paths.push({ name: `remote sync, ${tag}`, inFlight: 0, operations, serverPids: () => pids, close: async () => undefined });

    // async core: one application (one link, one worker, one TLS connection per HSM), 64 sessions.
    const link = new RemoteLink({ kind: "cluster", bootstrap: cluster.addresses[0], trustAnchorPem: cluster.trustAnchorPem });
    const core = asyncCore(link, (facade, first) => loginSession(facade, first !== null), () => keys, Math.max(...inFlights, 64));
    closers.push(core.close);
    const { facade, lanes } = core;
    for (const n of inFlights) paths.push({ name: `remote async core ×${n}, ${tag}`, inFlight: n, operations: core.operations(n), serverPids: () => pids, close: async () => undefined });

    // pkcs11js's own async forms: the Init blocks, the call does not.
    {
      const out = lanes.map(() => ({ gcm: Buffer.alloc(4112), mac: Buffer.alloc(32), sig: Buffer.alloc(64) }));
      const indexed = lanes.map((lane, i) => ({ ...lane, out: out[i] }));
      const block = Buffer.alloc(4096, 1), message = Buffer.alloc(64, 2), digest = Buffer.alloc(32, 3);
      const n = 64;
      paths.push({
        name: `remote pkcs11js async forms ×${n}, ${tag}`, inFlight: n, serverPids: () => pids, close: async () => undefined,
        operations: {
          "round trip (C_GetSessionInfo)": "no async form in pkcs11js",
          "network round trip (C_GetTokenInfo)": "no async form in pkcs11js",
          "AES-GCM 4 KiB": pooled(indexed.slice(0, n), (l) => {
            facade.C_EncryptInit(l.session, gcmMechanism, keys.aes);
            return facade.C_EncryptAsync(l.session, block, l.out.gcm);
          }),
          "HMAC-SHA256 64 B": pooled(indexed.slice(0, n), (l) => {
            facade.C_SignInit(l.session, { mechanism: P.CKM_SHA256_HMAC }, keys.hmac);
            return facade.C_SignAsync(l.session, message, l.out.mac);
          }),
          "ECDSA P-256 sign": pooled(indexed.slice(0, n), (l) => {
            facade.C_SignInit(l.session, { mechanism: P.CKM_ECDSA }, keys.ecPrivate);
            return facade.C_SignAsync(l.session, digest, l.out.sig);
          }),
          "C_GenerateRandom 32 B": "no async form in pkcs11js",
        },
      });
    }
  } catch (e) {
    for (const close of closers.reverse()) tryClose(close);
    await cluster.down();
    throw e;
  }
  // The last path's close() ends the connections and the cluster.
  paths[paths.length - 1].close = async () => {
    for (const close of closers.reverse()) tryClose(close);
    await cluster.down();
  };
  return paths;
}

function tryClose(close: () => void): void {
  try {
    close();
  } catch (e) {
    if (!(e instanceof Pkcs11Error)) throw e;
  }
}
