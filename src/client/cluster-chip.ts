// The cluster as one logical token: the chip interface the PKCS11 facade drives, served by
// whichever HSM the client picks. Sessions are logical: each HSM opens its own session for a
// logical one on first use and logs the application in with the credentials the client
// holds, so sessions and logins survive the loss of an HSM. What cannot move between HSMs is
// pinned: an operation in progress, and session objects (they live on one HSM).
//
// Retry rules per call (README "The client"):
// - busy or lagging HSM: every call goes elsewhere, up to 3 retries with exponential backoff,
//   then CKR_FUNCTION_FAILED;
// - HSM gone, no answer: calls that change nothing (crypto, reads, find, random, login) are
//   repeated on another HSM; writes (create, generate, copy, unwrap, derive, destroy, set
//   attributes, set PIN) fail with CKR_FUNCTION_FAILED, outcome unknown;
// - an operation's calls: each Init carries the operation's number in its session and each
//   later call its step, so the HSM aborts an older operation a lost message left open,
//   answers a repeated step from its record, and ignores late ones. A call of an operation
//   whose answer is lost is resent to the same HSM (up to 3 times); if that HSM stays silent,
//   an operation that had not progressed is started again elsewhere (up to 3 times), and one
//   that had (after an Update or a partial find) fails with CKR_DEVICE_REMOVED;
// - session objects: an application's all live on one HSM, its home (where the first was
//   made); searches and calls that may create one go there. While the home does not answer,
//   calls naming one fail with CKR_KEY_HANDLE_INVALID / CKR_OBJECT_HANDLE_INVALID and searches
//   with CKR_DEVICE_REMOVED; once it answers after a restart, or leaves the cluster, its
//   session objects are gone (they died with it) and searches go anywhere again.
//
// Every call runs through one asynchronous core, start(method, args, done). Synchronous calls
// wait for it as pkcs11js's do: in the simulator, a call runs the virtual clock (the `Driver`)
// until its answer arrives; in real time a worker thread runs start() while the caller's
// thread waits (src/client/remote/). The callback forms run without blocking.
import { ObjectFreeze } from "../primordials.js";
import { freezeClass } from "../primordials.js";
import {
  CREATING_CALLS, KEY_USING_CALLS, OBJECT_ARGS, OPERATION_END, OPERATION_FAMILY, OPERATION_INIT, OUTPUT_ARGS, HANDLE_RESULTS, SESSION_CALLS, SESSION_OBJECT_BASE,
  WRITING_CALLS,
} from "../cluster/calls.js";
import { MAX_CALL_BUFFER_BYTES, type RequestOp, type SessionContext } from "../cluster/protocol.js";
import { regressions } from "../cluster/regressions.js";
import { HsmError, type HsmErrorCode } from "../hsm/errors.js";
import type { NativeChip } from "../pkcs11/addon.js";
import {
  CKF_RW_SESSION, CKF_SERIAL_SESSION, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL, CKR_DEVICE_ERROR, CKR_DEVICE_REMOVED, CKR_FUNCTION_FAILED,
  CKR_FUNCTION_NOT_SUPPORTED, CKR_KEY_HANDLE_INVALID, CKR_OBJECT_HANDLE_INVALID, CKR_SESSION_COUNT, CKR_SESSION_HANDLE_INVALID, CKR_SESSION_PARALLEL_NOT_SUPPORTED,
  CKR_SLOT_ID_INVALID, CKR_USER_ALREADY_LOGGED_IN, CKR_USER_NOT_LOGGED_IN, CKS_RO_PUBLIC_SESSION, CKS_RO_USER_FUNCTIONS,
  CKS_RW_PUBLIC_SESSION, CKS_RW_USER_FUNCTIONS, CKU_USER,
} from "../pkcs11/constants.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import { type ClusterClient, RemoteError } from "./client.js";
import { type Driver, waitFor } from "./driver.js";
import { ClientError } from "./errors.js";

interface Operation {
  address: string;
  init: { method: string; args: unknown[] };
  progressed: boolean;
  /** The operation's number in its session, and the last step sent (the HSM's ledger keys on both). */
  n: number;
  step: number;
}

interface LogicalSession {
  flags: number;
  /** Open operations by family ("encrypt", "findObjects" …): PKCS#11 allows one of each at a time. */
  operations: Map<string, Operation>;
  nextOperation: number;
  visited: Set<string>;
}

interface SessionObject {
  address: string;
  wire: number;
  session: number;
}

type Callback = (error: Error | null, value?: unknown) => void;

const MAX_SESSIONS = 1024;
/** Session calls the client answers itself (sessions and logins are logical). */
const LOCAL_CALLS = new Set(["closeSession", "getSessionInfo", "login", "logout"]);
/** Every call the cluster's chip has (a remote worker may be asked for exactly these). */
export const CHIP_CALLS: readonly string[] = ObjectFreeze([
  "getSlotList", "getTokenInfo", "getMechanismList", "getMechanismInfo", "initToken", "initPin", "openSession", "closeAllSessions",
  ...SESSION_CALLS,
]);
/** How many times one call may start its operation again on another HSM. */
const MAX_REPLAYS = 3;

export class ClusterChip {
  private readonly sessions = new Map<number, LogicalSession>();
  private nextSession = 1;
  private credentials: string | null = null;
  private readonly objects = new Map<number, SessionObject>();
  private nextObject = SESSION_OBJECT_BASE + 1;
  /** The HSM holding this application's session objects, while it holds any. */
  private home: string | null = null;

  /** `driver` runs the simulation while a synchronous call waits; without one, only start() serves (real time). */
  constructor(private readonly client: ClusterClient, private readonly driver: Driver | null = null) {}

  /**
   * The asynchronous core: starts `method` (a NativeChip call, arguments as the facade passes
   * them, output buffers filled in place) and calls `done` with its result or typed error.
   * Local calls (sessions are logical) finish before it returns; the rest when an HSM answers.
   * The simulator's synchronous chip (asChip) and the real-time worker both run every call here.
   */
  start(method: string, args: unknown[], callback: Callback): void {
    let answered = false;
    const done: Callback = (error, value) => {
      answered = true;
      callback(error, value);
    };
    try {
      switch (method) {
        case "getSlotList": return done(null, [0]);
        case "getTokenInfo": return this.slotCall("getTokenInfo", [this.slot(args[0] as number, "C_GetTokenInfo")], done);
        case "getMechanismList": return this.slotCall("getMechanismList", [this.slot(args[0] as number, "C_GetMechanismList")], done);
        case "getMechanismInfo": return this.slotCall("getMechanismInfo", [this.slot(args[0] as number, "C_GetMechanismInfo"), args[1]], done);
        case "initToken": return this.unsupported("C_InitToken");
        case "initPin": return this.unsupported("C_InitPIN");
        case "openSession": return done(null, this.openSession(args[0] as number, args[1] as number));
        case "closeSession": return done(null, this.closeSession(args[0] as number));
        case "closeAllSessions":
          this.slot(args[0] as number, "C_CloseAllSessions");
          for (const id of [...this.sessions.keys()]) this.closeSession(id);
          return done(null);
        case "getSessionInfo": return done(null, this.sessionInfo(args[0] as number));
        case "login": return this.login(args[0] as number, args[1] as number, args[2] as Buffer, done);
        case "logout": return done(null, this.logout(args[0] as number));
        default:
          if (!SESSION_CALLS.has(method)) return this.unsupported(method);
          return this.invoke(method, args, done);
      }
    } catch (e) {
      if (answered) throw e; // thrown by the caller's own callback: not this call's failure
      done(e as Error);
    }
  }

  /** The facade's chip: every NativeChip method, served by the cluster; sync calls run the driver until answered. */
  asChip(): NativeChip {
    const chip: Record<string, unknown> = { newApplication: () => 0 };
    for (const method of CHIP_CALLS) {
      const callbacks = SESSION_CALLS.has(method) && !LOCAL_CALLS.has(method);
      chip[method] = (...args: unknown[]) => {
        const cb = callbacks && typeof args[args.length - 1] === "function" ? (args.pop() as Callback) : undefined;
        return cb ? this.invoke(method, args, cb) : this.wait((done) => this.start(method, args, done));
      };
    }
    // Only PKCS#11 calls: the device's own chip calls (masked export, principals, sharing) are not here at all.
    return ObjectFreeze(chip) as unknown as NativeChip; // captured: a replaced Object.freeze never sees an application's chip
  }

  // ---- sessions and login (logical, on the client) ----
  private openSession(slot: number, flags: number): number {
    this.slot(slot, "C_OpenSession");
    if (this.client.isClosed) throw new Pkcs11Error(CKR_DEVICE_REMOVED, "C_OpenSession", "CLOSED: this connection was closed");
    if (!(flags & CKF_SERIAL_SESSION)) throw new Pkcs11Error(CKR_SESSION_PARALLEL_NOT_SUPPORTED, "C_OpenSession");
    if (this.sessions.size >= MAX_SESSIONS) throw new Pkcs11Error(CKR_SESSION_COUNT, "C_OpenSession");
    const id = this.nextSession++;
    this.sessions.set(id, { flags, operations: new Map(), nextOperation: 0, visited: new Set() });
    return id;
  }

  private closeSession(id: number): void {
    const session = this.session(id, "C_CloseSession");
    this.sessions.delete(id);
    for (const [handle, object] of this.objects) if (object.session === id) this.objects.delete(handle);
    this.settleHome();
    // Fire and forget: an HSM that misses it drops the session when the client's connection closes.
    for (const address of session.visited) {
      this.client.send({ kind: "call", method: "closeSession", args: [id], session: this.context(id, session, false) },
        { pinned: address, rule: "repeat" }, () => {});
    }
    if (this.sessions.size === 0) this.credentials = null;
  }

  private sessionInfo(id: number): { slotID: number; state: number; flags: number; deviceError: number } {
    const session = this.session(id, "C_GetSessionInfo");
    const rw = (session.flags & CKF_RW_SESSION) !== 0;
    const state = this.credentials ? (rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS) : (rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION);
    return { slotID: 0, state, flags: session.flags, deviceError: 0 };
  }

  private login(id: number, userType: number, pin: Buffer, done: Callback): void {
    this.session(id, "C_Login");
    if (this.credentials !== null) throw new Pkcs11Error(CKR_USER_ALREADY_LOGGED_IN, "C_Login");
    this.invoke("login", [id, userType, pin], (error) => {
      if (error) return done(error);
      if (userType === CKU_USER) this.credentials = Buffer.from(pin).toString("utf8");
      done(null);
    });
  }

  private logout(id: number): void {
    this.session(id, "C_Logout");
    if (this.credentials === null) throw new Pkcs11Error(CKR_USER_NOT_LOGGED_IN, "C_Logout");
    this.credentials = null; // each HSM logs the application out on its next call
  }

  // ---- calls ----
  private slotCall(method: string, args: unknown[], done: Callback): void {
    this.client.send({ kind: "call", method, args }, { rule: "repeat" }, (e, v) => done(e && this.toPkcs11(e, method), v));
  }

  /** Runs a session call on the right HSM, with the retry rules above. */
  private invoke(method: string, args: unknown[], cb: Callback, replays = 0): void {
    const id = args[0] as number;
    const session = this.sessions.get(id);
    if (!session) return cb(new Pkcs11Error(CKR_SESSION_HANDLE_INVALID, method));
    const wire = [...args];
    let pinned: string | undefined;
    for (const i of OBJECT_ARGS[method] ?? []) {
      const handle = wire[i] as number;
      if (typeof handle !== "number" || handle < SESSION_OBJECT_BASE) continue;
      const object = this.objects.get(handle);
      if (!object) return cb(new Pkcs11Error(invalidHandle(method), method));
      if (pinned !== undefined && pinned !== object.address) return cb(new Pkcs11Error(CKR_OBJECT_HANDLE_INVALID, method, "session objects on different HSMs"));
      pinned = object.address;
      wire[i] = object.wire;
    }
    // The application's session objects all live on one HSM, its home: searches and calls that may
    // create one go there, so a search always sees them and never splits them over HSMs.
    const objectsHere = pinned !== undefined || (this.home !== null && !regressions.strayFinds && (method === "findObjectsInit" || maySessionObject(method, wire)));
    if (pinned === undefined && objectsHere) pinned = this.home!;
    const output = OUTPUT_ARGS[method];
    const outBuffer = output !== undefined ? (wire[output] as Buffer) : undefined;
    if (outBuffer !== undefined) {
      if (!Buffer.isBuffer(outBuffer)) return cb(new Pkcs11Error(CKR_FUNCTION_FAILED, method, "output must be a Buffer"));
      wire[output!] = outBuffer.length;
    }
    // One call carries at most MAX_CALL_BUFFER_BYTES to an HSM (as the HSM answers at most that much):
    // a larger input is refused here, not sent to fail as an HSM that "did not answer".
    let inputBytes = 0;
    for (const a of wire) if (a instanceof Uint8Array) inputBytes += a.length;
    if (inputBytes > MAX_CALL_BUFFER_BYTES) return cb(new Pkcs11Error(CKR_ARGUMENTS_BAD, method, `${inputBytes} bytes of input: one call carries at most ${MAX_CALL_BUFFER_BYTES} to an HSM`));
    const family = OPERATION_FAMILY[method];
    const starts = OPERATION_INIT.has(method);
    const operation = family !== undefined && !starts ? session.operations.get(family) ?? null : null;
    const continues = operation !== null;
    if (continues) pinned = operation.address;
    const position = starts ? { n: ++session.nextOperation, step: 0 } : continues ? { n: operation.n, step: operation.step + 1 } : undefined;
    const rule = WRITING_CALLS.has(method) ? "fail" : "repeat";
    const op: RequestOp = { kind: "call", method, args: wire, session: { ...this.context(id, session, continues), operation: position, objectsHere } };
    const finish = (error: Error | null, value: unknown, at: string | undefined) => {
      if (at) session.visited.add(at);
      if (continues && (!error || error instanceof RemoteError)) operation.step = position!.step; // the HSM ran this step
      if (error) {
        if (objectsHere && error instanceof ClientError && error.code === "NO_CONNECTION" && !continues) {
          // The home HSM restarted: its session objects died with it (another call of this application may have seen it first).
          this.dropObjectsAt(pinned!);
          if (namesSessionObject(method, args)) {
            return cb(new Pkcs11Error(invalidHandle(method), method, `the session object lived on an HSM that restarted: ${error.message}`));
          }
          return this.invoke(method, args, cb, replays); // a search or create: anywhere now
        }
        if (continues && isLostHsm(error) && !operation.progressed && replays < MAX_REPLAYS) {
          // The operation had not started producing output: start it again elsewhere.
          return this.replayInit(session, operation, method, (e2) => (e2 ? cb(e2) : this.invoke(method, args, cb, replays + 1)));
        }
        if (continues && isLostHsm(error)) {
          session.operations.delete(family!);
          return cb(new Pkcs11Error(CKR_DEVICE_REMOVED, method, `the HSM running this session's operation is gone: ${error.message}`));
        }
        if (pinned !== undefined && !continues && isLostHsm(error)) {
          if (!this.client.isMember(pinned)) this.dropObjectsAt(pinned); // removed from the cluster: its session objects are gone for good
          if (namesSessionObject(method, args)) {
            return cb(new Pkcs11Error(invalidHandle(method), method, `the session object lives on an HSM that is not reachable: ${error.message}`));
          }
        }
        const failure = this.toPkcs11(error, method);
        if (failure instanceof Pkcs11Error && failure.code === CKR_USER_NOT_LOGGED_IN && this.credentials !== null && method !== "login") {
          this.credentials = null; // the HSM refused our credentials: stop offering them
        }
        if (continues && !(failure instanceof Pkcs11Error && failure.code === CKR_BUFFER_TOO_SMALL)) session.operations.delete(family!);
        return cb(failure);
      }
      this.track(method, args, session, at!, operation, position);
      const result = this.unwire(method, value, output, outBuffer, at!, id);
      if (method === "destroyObject" && typeof args[1] === "number" && args[1] >= SESSION_OBJECT_BASE) {
        this.objects.delete(args[1]);
        this.settleHome();
      }
      cb(null, result);
    };
    this.client.send(op, { pinned, rule, repeatPinned: rule === "repeat" }, (e, v, at) => finish(e, v, at));
  }

  private replayInit(session: LogicalSession, operation: Operation, method: string, cb: (e: Error | null) => void): void {
    session.operations.delete(OPERATION_FAMILY[method]);
    this.invoke(operation.init.method, operation.init.args, (error) => {
      if (error) return cb(error instanceof Pkcs11Error ? error : new Pkcs11Error(CKR_DEVICE_REMOVED, method, error.message));
      cb(null);
    });
  }

  /** Keeps the operation's pinning current after a successful call. */
  private track(method: string, args: unknown[], session: LogicalSession, at: string, operation: Operation | null,
    position: { n: number; step: number } | undefined): void {
    const family = OPERATION_FAMILY[method];
    if (family === undefined) return;
    if (OPERATION_INIT.has(method)) {
      session.operations.set(family, { address: at, init: { method, args: [...args] }, progressed: false, n: position!.n, step: 0 });
      return;
    }
    if (!operation) return;
    if ((OPERATION_END[operation.init.method] ?? []).includes(method)) session.operations.delete(family);
    else operation.progressed = true;
  }

  /** Forgets the session objects on `address` (its HSM restarted or left): they died with it. */
  private dropObjectsAt(address: string): void {
    for (const [handle, object] of this.objects) if (object.address === address) this.objects.delete(handle);
    this.settleHome();
  }

  /** The home HSM stays while the application holds a session object there. */
  private settleHome(): void {
    if (this.home !== null && ![...this.objects.values()].some((o) => o.address === this.home)) this.home = null;
  }

  /** Output bytes into the caller's buffer, HSM session objects into client handles. */
  private unwire(method: string, value: unknown, output: number | undefined, outBuffer: Buffer | undefined, at: string, session: number): unknown {
    let result = value;
    if (output !== undefined) {
      const { result: length, output: bytes } = value as { result: number; output: Buffer };
      Buffer.from(bytes).copy(outBuffer!);
      result = length;
    }
    const shape = HANDLE_RESULTS[method];
    if (shape === "one") return this.clientHandle(result as number, at, session);
    if (shape === "pair" || shape === "list") return (result as number[]).map((h) => this.clientHandle(h, at, session));
    return result;
  }

  private clientHandle(wire: number, address: string, session: number): number {
    if (wire < SESSION_OBJECT_BASE) return wire; // a token key: its id is the same on every HSM
    for (const [handle, object] of this.objects) if (object.address === address && object.wire === wire) return handle;
    const handle = this.nextObject++;
    this.objects.set(handle, { address, wire, session });
    this.home ??= address;
    return handle;
  }

  private context(id: number, session: LogicalSession, continuation: boolean): SessionContext {
    return { id, flags: session.flags, login: this.credentials, continuation };
  }

  private wait(start: (done: Callback) => void): unknown {
    if (this.driver === null) throw new Pkcs11Error(CKR_FUNCTION_FAILED, "wait", "this chip has no driver: in real time, calls go through start() (a remote worker)");
    return waitFor(this.driver, start, () => new Pkcs11Error(CKR_DEVICE_ERROR, "wait", "the simulation ran out of events before the HSM answered"));
  }

  private toPkcs11(error: Error, method: string): Error {
    if (error instanceof Pkcs11Error) return error;
    if (error instanceof RemoteError) {
      const f = error.failure;
      return f.kind === "pkcs11" ? new Pkcs11Error(f.code, method, f.message) : new HsmError(f.code as HsmErrorCode, f.message);
    }
    if (error instanceof ClientError) {
      const code = error.code === "NO_REACHABLE_HSM" ? CKR_DEVICE_ERROR
        : error.code === "HSM_UNREACHABLE" || error.code === "CLOSED" ? CKR_DEVICE_REMOVED : CKR_FUNCTION_FAILED;
      return new Pkcs11Error(code, method, `${error.code}: ${error.message}`);
    }
    return error;
  }

  private session(id: number, method: string): LogicalSession {
    const session = this.sessions.get(id);
    if (!session) throw new Pkcs11Error(CKR_SESSION_HANDLE_INVALID, method);
    return session;
  }

  private slot(slot: number, method: string): number {
    if (slot !== 0) throw new Pkcs11Error(CKR_SLOT_ID_INVALID, method);
    return slot;
  }

  private unsupported(method: string): never {
    throw new Pkcs11Error(CKR_FUNCTION_NOT_SUPPORTED, method);
  }
}

function namesSessionObject(method: string, args: unknown[]): boolean {
  return (OBJECT_ARGS[method] ?? []).some((i) => typeof args[i] === "number" && (args[i] as number) >= SESSION_OBJECT_BASE);
}

/** The call's own error for a handle that names nothing (a session object that died with its HSM). */
function invalidHandle(method: string): number {
  return KEY_USING_CALLS.has(method) && method !== "copyObject" ? CKR_KEY_HANDLE_INVALID : CKR_OBJECT_HANDLE_INVALID;
}

/** Template argument positions of the calls that create objects. */
const TEMPLATE_ARGS: Record<string, readonly number[]> = {
  createObject: [1], generateKey: [1], generateKeyPair: [1, 2], unwrapKey: [3], deriveKey: [2], copyObject: [2],
};
const CKA_TOKEN_TYPE = 0x1;

/**
 * Whether a creating call may make a session object: a template without CKA_TOKEN true (a copy
 * without CKA_TOKEN keeps its source's, and a token key's copy is a token key).
 */
function maySessionObject(method: string, wire: unknown[]): boolean {
  if (!CREATING_CALLS.has(method)) return false;
  return (TEMPLATE_ARGS[method] ?? []).some((i) => {
    const token = tokenAttribute(wire[i]);
    return method === "copyObject" ? token === false : token !== true;
  });
}

/** CKA_TOKEN from an encoded template (u32 count, then u32 type, u32 length, bytes), or undefined if absent. */
function tokenAttribute(template: unknown): boolean | undefined {
  if (!Buffer.isBuffer(template) || template.length < 4) return undefined;
  const count = template.readUInt32LE(0);
  let offset = 4;
  for (let i = 0; i < count && offset + 8 <= template.length; i++) {
    const type = template.readUInt32LE(offset);
    const length = template.readUInt32LE(offset + 4);
    offset += 8;
    if (type === CKA_TOKEN_TYPE && length >= 1 && offset < template.length) return template[offset] !== 0;
    offset += length;
  }
  return undefined;
}

function isLostHsm(error: Error): boolean {
  return error instanceof ClientError && (error.code === "HSM_UNREACHABLE" || error.code === "NO_CONNECTION" || error.code === "NO_REACHABLE_HSM");
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(ClusterChip);
