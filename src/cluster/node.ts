// One HSM of a cluster on the network: it serves client requests from a bounded queue (busy
// when full), runs them on its device, pushes the journal entries a request wrote to its
// peers and answers only once `keyAvailabilityMin` HSMs hold them; it applies its peers'
// entries, and gossips journal heads so an HSM that missed changes (down, partitioned, a
// lost message) catches up: anti-entropy (the HSM-to-HSM side is replication.ts; the shape
// checks and answers of client requests are requests.ts).
import { SetHas, freezeClass } from "../primordials.js";
import { HsmError } from "../hsm/errors.js";
import type { Hsm } from "../hsm/hsm.js";
import { internalsOf } from "../hsm/internals.js";
import { type JournalEntry, changeSubject, decodeChange, keyIdOrigin } from "../hsm/journal.js";
import { PRECO_USERNAME } from "../hsm/types.js";
import { CKR_FUNCTION_FAILED } from "../pkcs11/constants.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import type { Clock } from "../runtime/clock.js";
import type { Transport } from "../runtime/transport.js";
import { CREATING_CALLS, SESSION_OBJECT_BASE, copyValue } from "./calls.js";
import { Connections, NodeFailure } from "./connections.js";
import { type Failure, type HelloValue, MAX_CALL_BUFFER_BYTES, type MemberAddress, type PeerEnvelope, type Request, type RequestOp, type Response, type WritePosition } from "./protocol.js";
import { type CompactionConfig, MAX_PUSH, Replication } from "./replication.js";
import { failureOf, isWellFormedRequest, scopeToSender } from "./requests.js";
import { type ServiceTimeFn, heldBytesOf, inputBytesOf, ownMechanism } from "./service-profile.js";

/** An HSM's settings; compaction and snapshot transfer ones are optional (DEFAULT_COMPACTION, replication.ts). */
export interface NodeConfig extends Partial<CompactionConfig> {
  clusterId: string;
  address: string;
  availabilityZone: string;
  /** Requests waiting or running before the HSM answers busy. */
  queueCapacity: number;
  /** How long a write waits for keyAvailabilityMin HSMs before it fails. */
  replicationTimeoutUs: number;
  /** How often the HSM compares journal heads with each peer. */
  gossipIntervalUs: number;
  /**
   * Engine time the HSM spends on a request (0: its control path serves it at once). The
   * simulator's rough default, or a performance profile's (service-profile.ts); real time
   * without a profile: 0, the HSM takes as long as its chip does.
   */
  serviceTimeUs: ServiceTimeFn;
  /** Parallel crypto engines: requests with a service time run on at most this many at once (default 1). */
  engines?: number;
}

export interface Member extends MemberAddress {
  origin: number;
}

interface QueuedRequest {
  from: string;
  request: Request;
  serviceUs: number;
  arrivedUs: number;
  /** Bytes of buffers the request carries, held until it is served. */
  bytes: number;
}

interface Waiter {
  from: string;
  request: Request;
  wrote: WritePosition;
  value: unknown;
  createdKeys: number[];
  timer: number;
}

const RECENT_REQUESTS = 4096;
/**
 * Bytes of request buffers an HSM holds for requests waiting for or on an engine: four calls of
 * the largest size. Without it a full queue of 16 MiB calls (256 on a calibrated profile, slow
 * to drain when dilated) held 4 GiB; past it the HSM answers busy, which the client retries.
 */
export const MAX_QUEUED_BYTES = 4 * (MAX_CALL_BUFFER_BYTES + 64 * 1024); // + a call's other arguments (heldBytesOf counts them)
/** What a queued request holds besides its buffers and heads (its objects), counted against MAX_QUEUED_BYTES. */
const REQUEST_OVERHEAD_BYTES = 1024;
const MANAGE_METHODS = new Set<string>(["createUser", "deleteUser", "changePassword", "listUsers", "shareKey", "unshareKey", "describeKey", "setKeyTrusted"]);

export class ClusterNode {
  private members: Member[] = [];
  private membershipEpoch = 0;
  private keyAvailabilityMin = 1;
  private readonly connections: Connections;
  /** Requests waiting for an engine, with their service time (drawn once, on arrival) and arrival time. */
  private readonly queue: QueuedRequest[] = [];
  /** Engines serving a request now. */
  private busyEngines = 0;
  /** Bytes held by the queued and in-service requests (bounded by MAX_QUEUED_BYTES). */
  private queuedBytes = 0;
  private readonly replication: Replication;
  private readonly startedUs: number;
  private waiters: Waiter[] = [];
  private readonly timers = new Set<number>();
  private alive = true;
  private initialized = false;
  private readonly recentRequests = new Set<string>();
  /** What this HSM did; `applied`, `pruned`, `peerRejected` and `unknownOrigin` are its replication's (see ReplicationStats). */
  readonly stats = {
    served: 0, busy: 0, stale: 0, replicationTimeouts: 0, applied: 0, pruned: 0, peerRejected: 0, unknownOrigin: 0,
    snapshotsSent: 0, snapshotsInstalled: 0, snapshotsRefused: 0,
    /** Client requests dropped unread because their shape is not a request's (a hostile or broken client). */
    malformed: 0,
    /** Requests whose serving threw something that is no HSM or PKCS#11 error (a bug): answered as a failure, the queue goes on. */
    internalErrors: 0,
  };

  constructor(readonly hsm: Hsm, private readonly config: NodeConfig, private readonly transport: Transport, private readonly clock: Clock,
    private readonly onActivated: () => void = () => {}) {
    this.startedUs = clock.nowUs();
    this.connections = new Connections(hsm, (method, keyId, visible) => this.checkKeyAvailability(method, keyId, visible));
    this.replication = new Replication({
      hsm, clusterId: config.clusterId, address: config.address, transport, clock, stats: this.stats,
      members: () => this.members, onProgress: () => this.checkWaiters(), compaction: config, later: (delayUs, fn) => void this.later(delayUs, fn),
    });
    transport.attach(config.address, (from, message) => {
      if (this.alive) this.receive(from, message);
    }, (from) => {
      // A client's socket closed: its connections here (sessions, logins) go with it, as on CloudHSM.
      if (this.alive) this.connections.closeSender(from);
    });
    this.every(config.gossipIntervalUs, () => this.replication.gossipRound());
  }

  get address(): string {
    return this.config.address;
  }

  get origin(): number {
    return internalsOf(this.hsm).state.origin;
  }

  /** The control plane's word on who is in the cluster. */
  setMembers(members: Member[], epoch: number, keyAvailabilityMin: number, initialized: boolean, maxOrigin = 0): void {
    const first = this.members.length === 0;
    this.replication.membersChanged(members, maxOrigin);
    this.initialized = initialized;
    this.members = members.map((m) => ({ ...m }));
    this.membershipEpoch = epoch;
    this.keyAvailabilityMin = keyAvailabilityMin;
    this.checkWaiters();
    if (first) this.replication.sendHeads(); // a new or restarted HSM syncs at once, not at the next round
  }

  /** Stops at once, as a crash does: nothing in memory survives; the data folder holds what was committed. */
  stop(): void {
    if (!this.alive) return;
    this.alive = false;
    for (const timer of this.timers) this.clock.cancel(timer);
    this.timers.clear();
    this.transport.detach(this.config.address);
    this.hsm.close();
  }

  get running(): boolean {
    return this.alive;
  }

  private peers(): Member[] {
    return this.members.filter((m) => m.address !== this.config.address);
  }

  private later(delayUs: number, fn: () => void): number {
    const id = this.clock.schedule(delayUs, () => {
      this.timers.delete(id);
      if (this.alive) fn();
    });
    this.timers.add(id);
    return id;
  }

  private every(intervalUs: number, fn: () => void): void {
    const tick = () => {
      fn();
      this.later(intervalUs, tick);
    };
    this.later(intervalUs, tick);
  }

  private receive(from: string, message: unknown): void {
    try {
      const m = message as { t?: string };
      if (m?.t === "req") {
        if (isWellFormedRequest(message)) this.enqueue(from, scopeToSender(from, message));
        else this.stats.malformed++;
      }
      else if (m?.t === "peer") this.replication.receive(from, message as PeerEnvelope);
      else if (m?.t === "push" || m?.t === "heads") this.stats.peerRejected++; // a bare peer message: never authenticated
    } catch {
      // A message whose getters throw (or a Proxy) is dropped here, never thrown into the network's delivery.
      this.stats.malformed++;
    }
  }

  // ---- client requests ----
  private enqueue(from: string, request: Request): void {
    // A request the network delivered twice runs once (a duplicated create would make two keys).
    const key = `${request.conn}/${request.id}`;
    if (this.recentRequests.has(key)) return;
    this.recentRequests.add(key);
    if (this.recentRequests.size > RECENT_REQUESTS) this.recentRequests.delete(this.recentRequests.values().next().value!);
    const serviceUs = this.serviceTimeOf(request);
    if (serviceUs <= 0) {
      // No engine time (real time without a profile; a profile's control path: Inits, sessions,
      // reads, heartbeats): served at once, never behind the engines' queue nor refused by it.
      this.serveSafely(from, request);
      return;
    }
    const held = this.queue.length + this.busyEngines;
    // Its buffers, its causality heads (up to 4,096 pairs) and the request itself: with a large queue
    // (a profile's queueCapacity may be 1,000,000) small requests alone would otherwise fill the heap.
    const bytes = heldBytesOf(request.op) + 64 * request.after.length + REQUEST_OVERHEAD_BYTES;
    if (held >= this.config.queueCapacity || (this.queuedBytes > 0 && this.queuedBytes + bytes > MAX_QUEUED_BYTES)) {
      this.stats.busy++;
      this.reply(from, request, { kind: "busy", message: `HSM ${this.hsm.id} is busy (${held} requests queued or in service)` });
      return;
    }
    this.queuedBytes += bytes;
    this.queue.push({ from, request, serviceUs, arrivedUs: this.clock.nowUs(), bytes });
    this.startEngines(undefined);
  }

  private serviceTimeOf(request: Request): number {
    const { op } = request;
    const continued = op.kind === "call" ? this.connections.continuedOperation(request.conn, op) : undefined;
    const mechanism = op.kind === "call" ? ownMechanism(op) ?? continued?.mechanism : undefined;
    // An Init's key size for the operation it started; a wrap's wrapping key (an RSA-OAEP wrap is a public-key encrypt with it).
    const keyBits = continued?.keyBits ?? (op.kind === "call" ? this.connections.wrappingKeyBits(request.conn, op) : undefined);
    return this.config.serviceTimeUs(op, { mechanism, inputBytes: inputBytesOf(op), memberCount: Math.max(1, this.members.length), keyBits });
  }

  /**
   * Puts waiting requests on free engines. `freedAtUs` is when the engine that just finished was
   * due to finish: in real time a timer fires late, and the next request starts from that due
   * time rather than from now, so late timers do not add up to a lower rate than the profile's.
   */
  private startEngines(freedAtUs: number | undefined): void {
    const engines = this.config.engines ?? 1;
    while (this.busyEngines < engines && this.queue.length > 0) {
      const item = this.queue.shift()!;
      const now = this.clock.nowUs();
      const startUs = freedAtUs === undefined ? now : Math.max(item.arrivedUs, freedAtUs);
      freedAtUs = undefined; // one engine was freed: the others start now
      const dueUs = startUs + item.serviceUs;
      this.busyEngines++;
      this.later(Math.max(0, dueUs - now), () => {
        this.busyEngines--;
        this.queuedBytes -= item.bytes;
        this.serveSafely(item.from, item.request);
        this.startEngines(dueUs);
      });
    }
  }

  private serveSafely(from: string, request: Request): void {
    try {
      this.serve(from, request);
    } catch (e) {
      // Whatever one request does, the HSM keeps serving the others.
      this.stats.internalErrors++;
      this.reply(from, request, { kind: "hsm", code: "INTERNAL_ERROR", message: `HSM ${this.hsm.id} failed to serve the request: ${String(e)}` });
    }
  }

  private serve(from: string, request: Request): void {
    const missing = request.after.find(([origin, seq]) => internalsOf(this.hsm).state.head(origin) < seq);
    if (missing) {
      this.stats.stale++;
      this.replication.requestCatchUp(); // ask the peers for what is missing now rather than at the next round (coalesced)
      this.reply(from, request, { kind: "stale", message: `HSM ${this.hsm.id} does not yet hold change ${missing[1]} of origin ${missing[0]}` });
      return;
    }
    const headBefore = internalsOf(this.hsm).state.head(this.origin);
    let value: unknown;
    try {
      value = this.execute(request);
    } catch (e) {
      this.reply(from, request, failureOf(e));
      this.shipAndWait(from, request, headBefore, undefined, true);
      return;
    }
    this.stats.served++;
    this.shipAndWait(from, request, headBefore, value, false);
  }

  /** Sends the entries a request wrote to every peer; answers once enough HSMs hold them. */
  private shipAndWait(from: string, request: Request, headBefore: number, value: unknown, answered: boolean): void {
    const head = internalsOf(this.hsm).state.head(this.origin);
    if (head === headBefore) {
      if (!answered) this.reply(from, request, undefined, value);
      return;
    }
    const rows = internalsOf(this.hsm).store.journalRange(this.origin, headBefore, MAX_PUSH);
    this.replication.push(this.origin, rows);
    const entries: JournalEntry[] = rows.map((r) => ({ origin: this.origin, seq: r.seq, change: decodeChange(r.change) }));
    if (answered) return;
    const creates = request.op.kind === "call" && CREATING_CALLS.has(request.op.method);
    const createdKeys = creates ? entries.flatMap((e) => (e.change.kind === "key" ? [e.change.id] : [])) : [];
    const last = entries[entries.length - 1];
    const wrote: WritePosition = { origin: this.origin, seq: last.seq, version: last.change.version, subject: changeSubject(last.change) };
    const waiter: Waiter = { from, request, wrote, value, createdKeys, timer: 0 };
    waiter.timer = this.later(this.config.replicationTimeoutUs, () => this.replicationTimedOut(waiter));
    this.waiters.push(waiter);
    this.checkWaiters();
  }

  private holders(origin: number, seq: number): number {
    let count = internalsOf(this.hsm).state.head(origin) >= seq ? 1 : 0;
    for (const peer of this.peers()) if (this.replication.headOf(peer.address, origin) >= seq) count++;
    return count;
  }

  private checkWaiters(): void {
    const needed = Math.min(this.keyAvailabilityMin, Math.max(1, this.members.length));
    this.waiters = this.waiters.filter((w) => {
      if (this.holders(w.wrote.origin, w.wrote.seq) < needed) return true;
      this.clock.cancel(w.timer);
      this.timers.delete(w.timer);
      this.reply(w.from, w.request, undefined, w.value, w.wrote);
      return false;
    });
  }

  private replicationTimedOut(waiter: Waiter): void {
    this.waiters = this.waiters.filter((w) => w !== waiter);
    this.stats.replicationTimeouts++;
    const held = this.holders(waiter.wrote.origin, waiter.wrote.seq);
    // A key that did not reach the quorum is deleted again, so the failed create leaves nothing behind.
    const before = internalsOf(this.hsm).state.head(this.origin);
    if (waiter.createdKeys.length > 0) {
      internalsOf(this.hsm).store.transaction(() => {
        for (const id of waiter.createdKeys) {
          if (!internalsOf(this.hsm).state.hasKey(id)) continue;
          internalsOf(this.hsm).chip.removeObject(0, internalsOf(this.hsm).state.handleOf(id));
          internalsOf(this.hsm).state.writeKeyDelete(id);
          internalsOf(this.hsm).audit("DELETE_KEY", null, null, [id], "OK", "key availability quorum not reached");
        }
      });
    }
    const detail = `key availability: the change is on ${held} of the ${this.keyAvailabilityMin} HSMs required` +
      (waiter.createdKeys.length > 0 ? "; the new key was deleted again" : "; it stands on this HSM and will reach the others");
    const failure: Failure = waiter.request.op.kind === "manage" ? { kind: "hsm", code: "NOT_REPLICATED", message: detail }
      : { kind: "pkcs11", code: CKR_FUNCTION_FAILED, message: detail };
    this.reply(waiter.from, waiter.request, failure);
    this.shipAndWait(waiter.from, waiter.request, before, undefined, true);
  }

  private reply(to: string, request: Request, error?: Failure, value?: unknown, wrote?: WritePosition): void {
    const response: Response = {
      t: "res", id: request.id, ok: error === undefined, hsmId: this.hsm.id, membershipEpoch: this.membershipEpoch,
      spareCapacity: Math.max(0, this.config.queueCapacity - this.queue.length - this.busyEngines),
    };
    if (error) response.error = error;
    else if (value !== undefined) response.value = copyValue(value);
    if (wrote) response.wrote = wrote;
    this.transport.send(this.config.address, to, response);
  }

  private execute(request: Request): unknown {
    const { op } = request;
    switch (op.kind) {
      case "hello":
        return {
          hsmId: this.hsm.id, clusterId: this.config.clusterId, membershipEpoch: this.membershipEpoch,
          members: this.members.map(({ hsmId, address, availabilityZone }) => ({ hsmId, address, availabilityZone })),
        } satisfies HelloValue;
      case "close":
        this.connections.close(request.conn);
        return null;
      case "manage":
        return this.manage(op);
      case "call":
        return this.connections.call(request.conn, op);
    }
  }

  private manage(op: Extract<RequestOp, { kind: "manage" }>): unknown {
    if (typeof op.method !== "string" || !SetHas(MANAGE_METHODS, op.method)) throw new HsmError("INVALID_ARGUMENT", `unknown management method ${String(op.method)}`);
    if (String(op.username).toLowerCase() === PRECO_USERNAME && !this.initialized && !this.hsm.activated) {
      throw new HsmError("NOT_ACTIVATED", "initialize the cluster (sign its certificate) before activating it");
    }
    const actor = this.hsm.login(op.username, op.password);
    try {
      const hsm = this.hsm as unknown as Record<string, (...args: unknown[]) => unknown>;
      return hsm[op.method](actor, ...op.args) ?? null;
    } finally {
      if (op.method !== "changePassword" || actor.role !== "PRECO") this.hsm.logout(actor);
      else if (this.hsm.activated) this.onActivated();
    }
  }

  /**
   * CloudHSM's key availability check: a token key is used only while keyAvailabilityMin live
   * HSMs hold it — this one, and peers heard from lately whose journal has the key's creation.
   */
  private checkKeyAvailability(method: string, wire: unknown, visible: () => boolean): void {
    const needed = Math.min(this.keyAvailabilityMin, this.members.length);
    if (needed <= 1 || typeof wire !== "number" || wire >= SESSION_OBJECT_BASE || !internalsOf(this.hsm).state.hasKey(wire)) return;
    const seq = internalsOf(this.hsm).state.creationSeq(wire);
    if (seq === undefined) return; // held here through a later change only: another HSM has it too
    const origin = keyIdOrigin(wire);
    const recent = this.clock.nowUs() - 3 * this.config.gossipIntervalUs;
    let holders = 1;
    for (const peer of this.peers()) {
      // The HSM that made the key holds it; another holds it once its journal has the creation.
      // …and was heard from in the last 3 gossip rounds.
      const holds = peer.origin === origin || this.replication.headOf(peer.address, origin) >= seq;
      if (holds && this.replication.heardSince(peer.address, recent)) holders++;
    }
    if (holders < needed) {
      if (!visible()) return; // a key this session may not see: the call fails with its own error
      if (this.clock.nowUs() < this.startedUs + 3 * this.config.gossipIntervalUs) {
        // Just started: it has not heard its peers yet. Nothing was done; the client retries.
        throw new NodeFailure({ kind: "stale", message: `HSM ${this.hsm.id} is still syncing with its peers` });
      }
      throw new Pkcs11Error(CKR_FUNCTION_FAILED, method, `Key ${wire} does not meet the availability requirements - the key must be ` +
        `available on at least ${needed} HSMs before being used (${holders} live HSM${holders === 1 ? "" : "s"} hold it)`);
    }
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(ClusterNode);
