// One HSM of a cluster on the network: it serves client requests from a bounded queue (busy
// when full), runs them on its device, pushes the journal entries a request wrote to its
// peers and answers only once `keyAvailabilityMin` HSMs hold them; it applies its peers'
// entries, and gossips journal heads so an HSM that missed changes (down, partitioned, a
// lost message) catches up: anti-entropy.
import { timingSafeEqual } from "node:crypto";

import { SetHas, freezeClass } from "../primordials.js";
import { HsmError } from "../hsm/errors.js";
import type { Hsm } from "../hsm/hsm.js";
import { type JournalEntry, changeSubject, decodeChange, keyIdOrigin } from "../hsm/journal.js";
import { MAC_PURPOSE } from "../hsm/seal.js";
import { PRECO_USERNAME } from "../hsm/types.js";
import { CKR_FUNCTION_FAILED } from "../pkcs11/constants.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import type { Clock } from "../sim/clock.js";
import { CREATING_CALLS, SESSION_OBJECT_BASE, copyValue } from "./calls.js";
import { Connections, NodeFailure } from "./connections.js";
import type {
  Failure, HeadList, HelloValue, MemberAddress, PeerEnvelope, PeerMessage, Request, RequestOp, Response, Transport, WritePosition,
} from "./protocol.js";
import { type ReceivedPeerMessage, decodePeerMessage, encodePeerMessage, encodePushBody, peerMacInput } from "./protocol.js";
import { internalsOf } from "../hsm/internals.js";

export interface NodeConfig {
  clusterId: string;
  address: string;
  availabilityZone: string;
  /** Requests waiting or running before the HSM answers busy. */
  queueCapacity: number;
  /** How long a write waits for keyAvailabilityMin HSMs before it fails. */
  replicationTimeoutUs: number;
  /** How often the HSM compares journal heads with each peer. */
  gossipIntervalUs: number;
  /** Simulated time the HSM spends on a request. */
  serviceTimeUs: (op: RequestOp) => number;
}

export interface Member extends MemberAddress {
  origin: number;
}

interface Waiter {
  from: string;
  request: Request;
  wrote: WritePosition;
  value: unknown;
  createdKeys: number[];
  timer: number;
}

const MAX_PUSH = 256;
const RECENT_REQUESTS = 4096;
const PRUNE_EVERY_ROUNDS = 5;
const MANAGE_METHODS = new Set<string>(["createUser", "deleteUser", "changePassword", "listUsers", "shareKey", "unshareKey", "describeKey", "setKeyTrusted"]);

export class ClusterNode {
  private members: Member[] = [];
  private membershipEpoch = 0;
  private keyAvailabilityMin = 1;
  private readonly connections: Connections;
  private readonly queue: { from: string; request: Request }[] = [];
  private working = false;
  private readonly peerHeads = new Map<string, Map<number, number>>();
  /** When each peer was last heard from (simulated µs): a peer silent for 3 gossip rounds is not counted as holding keys. */
  private readonly lastHeard = new Map<string, number>();
  private readonly startedUs: number;
  private waiters: Waiter[] = [];
  private readonly timers = new Set<number>();
  private alive = true;
  private initialized = false;
  private readonly recentRequests = new Set<string>();
  readonly stats = {
    served: 0, busy: 0, stale: 0, applied: 0, replicationTimeouts: 0, pruned: 0,
    /** Peer messages dropped unread: not an authenticated envelope from a member to this HSM in this cluster (forged, mis-MACed, replayed from elsewhere). */
    peerRejected: 0,
    /** Journal entries refused because their origin is no ordinal this cluster ever gave (defence in depth behind the MAC). */
    unknownOrigin: 0,
    /** Client requests dropped unread because their shape is not a request's (a hostile or broken client). */
    malformed: 0,
    /** Requests whose serving threw something that is no HSM or PKCS#11 error (a bug): answered as a failure, the queue goes on. */
    internalErrors: 0,
  };
  /** The highest ordinal the control plane has given an HSM of this cluster: entries from a higher origin are refused. */
  private maxOrigin = 0;
  private gossipRounds = 0;

  constructor(readonly hsm: Hsm, private readonly config: NodeConfig, private readonly transport: Transport, private readonly clock: Clock,
    private readonly onActivated: () => void = () => {}) {
    this.startedUs = clock.nowUs();
    this.connections = new Connections(hsm, (method, keyId, visible) => this.checkKeyAvailability(method, keyId, visible));
    transport.attach(config.address, (from, message) => {
      if (this.alive) this.receive(from, message);
    });
    this.every(config.gossipIntervalUs, () => this.gossipRound());
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
    this.maxOrigin = Math.max(this.maxOrigin, maxOrigin, ...members.map((m) => m.origin));
    this.initialized = initialized;
    this.members = members.map((m) => ({ ...m }));
    this.membershipEpoch = epoch;
    this.keyAvailabilityMin = keyAvailabilityMin;
    for (const address of this.peerHeads.keys()) if (!members.some((m) => m.address === address)) this.peerHeads.delete(address);
    this.checkWaiters();
    if (first) this.sendHeads(); // a new or restarted HSM syncs at once, not at the next round
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
    const m = message as { t?: string };
    if (m?.t === "req") {
      if (isWellFormedRequest(message)) this.enqueue(from, scopeToSender(from, message));
      else this.stats.malformed++;
    }
    else if (m?.t === "peer") this.onEnvelope(from, message as PeerEnvelope);
    else if (m?.t === "push" || m?.t === "heads") this.stats.peerRejected++; // a bare peer message: never authenticated
  }

  // ---- client requests ----
  private enqueue(from: string, request: Request): void {
    // A request the network delivered twice runs once (a duplicated create would make two keys).
    const key = `${request.conn}/${request.id}`;
    if (this.recentRequests.has(key)) return;
    this.recentRequests.add(key);
    if (this.recentRequests.size > RECENT_REQUESTS) this.recentRequests.delete(this.recentRequests.values().next().value!);
    if (this.queue.length >= this.config.queueCapacity) {
      this.stats.busy++;
      this.reply(from, request, { kind: "busy", message: `HSM ${this.hsm.id} is busy (${this.queue.length} requests queued)` });
      return;
    }
    this.queue.push({ from, request });
    if (!this.working) this.next();
  }

  private next(): void {
    const item = this.queue[0];
    if (!item) {
      this.working = false;
      return;
    }
    this.working = true;
    this.later(this.config.serviceTimeUs(item.request.op), () => {
      this.queue.shift();
      try {
        this.serve(item.from, item.request);
      } catch (e) {
        // Whatever one request does, the HSM keeps serving the others.
        this.stats.internalErrors++;
        this.reply(item.from, item.request, { kind: "hsm", code: "INTERNAL_ERROR", message: `HSM ${this.hsm.id} failed to serve the request: ${String(e)}` });
      } finally {
        this.next();
      }
    });
  }

  private serve(from: string, request: Request): void {
    const missing = request.after.find(([origin, seq]) => internalsOf(this.hsm).state.head(origin) < seq);
    if (missing) {
      this.stats.stale++;
      this.sendHeads(); // ask the peers for what is missing now rather than at the next round
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
    this.sendPeerBody(this.peers().map((p) => p.address), encodePushBody(this.origin, rows));
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
    for (const peer of this.peers()) if ((this.peerHeads.get(peer.address)?.get(origin) ?? 0) >= seq) count++;
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
      spareCapacity: Math.max(0, this.config.queueCapacity - this.queue.length),
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
      const holds = peer.origin === origin || (this.peerHeads.get(peer.address)?.get(origin) ?? 0) >= seq;
      if (holds && (this.lastHeard.get(peer.address) ?? -Infinity) >= recent) holders++;
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

  // ---- replication ----
  /** The cluster's peer key: a chip MAC under a key derived from the masking key every member shares. */
  private peerMac(data: Buffer): Buffer {
    return internalsOf(this.hsm).chip.deviceMac(0, MAC_PURPOSE.peerMessage, data);
  }

  /** Sends one peer message to each of `to`: encoded once, MACed per receiver. */
  private sendPeer(to: readonly string[], message: PeerMessage): void {
    this.sendPeerBody(to, encodePeerMessage(message));
  }

  private sendPeerBody(to: readonly string[], body: string): void {
    const { clusterId: cluster, address: from } = this.config;
    for (const address of to) {
      const envelope: PeerEnvelope = { t: "peer", cluster, from, to: address, body, mac: this.peerMac(peerMacInput(cluster, from, address, body)) };
      this.transport.send(from, address, envelope);
    }
  }

  /** Acts on a peer message only when it is authenticated, from the address that sent it, to this HSM, in this cluster. */
  private onEnvelope(from: string, envelope: PeerEnvelope): void {
    const { clusterId, address } = this.config;
    const { cluster, to, body, mac } = envelope;
    // (A member that has just left may still have messages in flight: onPeer drops those, uncounted.)
    if (envelope.from !== from || to !== address || cluster !== clusterId || typeof body !== "string" || !(mac instanceof Uint8Array) || mac.length !== 32) {
      this.stats.peerRejected++;
      return;
    }
    const expected = this.peerMac(peerMacInput(cluster, from, to, body));
    const message = timingSafeEqual(expected, mac) ? decodePeerMessage(body) : null;
    if (!message) {
      this.stats.peerRejected++;
      return;
    }
    this.onPeer(from, message);
  }

  /** An ordinal this cluster gave (now or in the past), or one whose entries this HSM already holds (from its snapshot). */
  private knownOrigin(origin: number): boolean {
    return (origin >= 1 && origin <= this.maxOrigin) || internalsOf(this.hsm).state.head(origin) > 0;
  }

  private onPeer(from: string, message: ReceivedPeerMessage): void {
    if (!this.members.some((m) => m.address === from)) return; // not (or no longer) a member
    this.lastHeard.set(from, this.clock.nowUs());
    if (message.t === "push") {
      const entries = message.entries.filter((entry) => {
        if (this.knownOrigin(entry.origin)) return true;
        this.stats.unknownOrigin++;
        return false;
      });
      // Whoever sends entries holds them.
      const theirs = this.peerHeads.get(from) ?? new Map<number, number>();
      for (const entry of entries) if ((theirs.get(entry.origin) ?? 0) < entry.seq) theirs.set(entry.origin, entry.seq);
      this.peerHeads.set(from, theirs);
      let progressed = false;
      for (const entry of entries) {
        // Only the next entry of its origin can apply; a duplicate or a gap is left undecoded.
        if (entry.seq !== internalsOf(this.hsm).state.head(entry.origin) + 1) continue;
        let change: JournalEntry["change"];
        try {
          change = decodeChange(entry.change);
        } catch {
          this.stats.peerRejected++;
          break;
        }
        const outcome = internalsOf(this.hsm).state.apply({ origin: entry.origin, seq: entry.seq, change });
        if (outcome === "applied" || outcome === "superseded") {
          progressed = true;
          this.stats.applied++;
        }
      }
      if (progressed) this.checkWaiters();
      this.sendPeer([from], { t: "heads", heads: this.headList(), reply: false });
      return;
    }
    const theirs = new Map(message.heads);
    this.peerHeads.set(from, theirs);
    this.checkWaiters();
    // Send what they lack, origin by origin; ask for what we lack.
    let weLack = false;
    for (const [origin, head] of internalsOf(this.hsm).state.vector()) {
      const theirHead = theirs.get(origin) ?? 0;
      if (theirHead < head) {
        this.sendPeerBody([from], encodePushBody(origin, internalsOf(this.hsm).store.journalRange(origin, theirHead, MAX_PUSH)));
      }
    }
    for (const [origin, head] of theirs) if (head > internalsOf(this.hsm).state.head(origin)) weLack = true;
    if (message.reply || weLack) this.sendPeer([from], { t: "heads", heads: this.headList(), reply: false });
  }

  /** Drops the journal entries every member holds: no member can need them again (new ones start from a snapshot). */
  private pruneJournal(): void {
    const floors = new Map<number, number>();
    for (const [origin, head] of internalsOf(this.hsm).state.vector()) {
      let floor = head;
      for (const peer of this.peers()) floor = Math.min(floor, this.peerHeads.get(peer.address)?.get(origin) ?? 0);
      floors.set(origin, floor);
    }
    this.stats.pruned += internalsOf(this.hsm).state.prune(floors);
  }

  private headList(): HeadList {
    return [...internalsOf(this.hsm).state.vector()];
  }

  /** The periodic round: heads to every peer, and now and then a journal prune. */
  private gossipRound(): void {
    if (++this.gossipRounds % PRUNE_EVERY_ROUNDS === 0) this.pruneJournal();
    this.sendHeads();
  }

  private sendHeads(): void {
    const peers = this.peers();
    if (peers.length > 0) this.sendPeer(peers.map((p) => p.address), { t: "heads", heads: this.headList(), reply: true });
  }
}

function failureOf(e: unknown): Failure {
  if (e instanceof NodeFailure) return e.failure;
  if (e instanceof Pkcs11Error) return { kind: "pkcs11", code: e.code, message: e.detail ?? e.message };
  if (e instanceof HsmError) return { kind: "hsm", code: e.code, message: e.message };
  return { kind: "pkcs11", code: CKR_FUNCTION_FAILED, message: e instanceof Error ? e.message : String(e) };
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(ClusterNode);

const REQUEST_KINDS = new Set(["hello", "call", "manage", "close"]);
const MAX_CONNECTION_NAME = 256;
const MAX_HEADS = 4096;

/** A request's shape, checked before anything reads it: a client is not trusted to send one. */
function isWellFormedRequest(message: unknown): message is Request {
  const r = message as Partial<Request>;
  if (typeof r.id !== "number" || !Number.isSafeInteger(r.id)) return false;
  if (typeof r.conn !== "string" || r.conn.length === 0 || r.conn.length > MAX_CONNECTION_NAME) return false;
  const op = r.op as { kind?: unknown; method?: unknown; args?: unknown } | undefined;
  if (op === null || typeof op !== "object" || !SetHas(REQUEST_KINDS, op.kind as string)) return false;
  if ((op.kind === "call" || op.kind === "manage") && (typeof op.method !== "string" || !Array.isArray(op.args))) return false;
  if (!Array.isArray(r.after) || r.after.length > MAX_HEADS) return false;
  return r.after.every((pair) => Array.isArray(pair) && pair.length === 2 && Number.isSafeInteger(pair[0]) && Number.isSafeInteger(pair[1]));
}

/**
 * A connection is named by the client, but it belongs to the address the network delivered its
 * requests from: another client naming it reaches a connection of its own, never the victim's.
 */
function scopeToSender(from: string, request: Request): Request {
  return { ...request, conn: `${from}|${request.conn}` };
}
