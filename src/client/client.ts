// The client SDK's connection layer: bootstrap from one HSM address, learn and keep current
// the address list (polled: a heartbeat to every HSM each heartbeatIntervalUs carries the
// list back, and an answer showing a newer membership epoch triggers a fetch at once), spread
// requests by the HSMs' spare capacity, retry busy or lagging HSMs elsewhere with exponential
// backoff, and fail over when an HSM stops answering — for the requests that are safe to
// repeat (see RetryRule), and for any the transport says it never sent. The heartbeat is also
// the failure detector: an HSM that misses one leaves the rotation until it answers again.
import { freezeClass } from "../primordials.js";
import { copyValue } from "../cluster/calls.js";
import { ownMechanism, requestedKeyBits, rsaKeyScale } from "../cluster/service-profile.js";
import { CKM_RSA_PKCS_KEY_PAIR_GEN } from "../pkcs11/constants.js";
import type { Failure, HeadList, HelloValue, MemberAddress, Request, RequestOp, Response, WritePosition } from "../cluster/protocol.js";
import type { Clock } from "../runtime/clock.js";
import type { Random } from "../runtime/random.js";
import type { Transport } from "../runtime/transport.js";
import { ClientError } from "./errors.js";

export interface ClientOptions {
  transport: Transport;
  clock: Clock;
  rng: Random;
  /** This client's own address on the network. */
  address: string;
  /** One HSM's address (or a gateway's): the client learns the others from it. */
  bootstrap: string;
  /** How long the client waits for an answer to a read before it counts the HSM as unreachable (default 500 ms). */
  requestTimeoutUs?: number;
  /**
   * How long it waits for an answer to a write (default 3 s): longer than the HSMs' replication
   * timeout, so a write that waits for its quorum is not mistaken for a lost HSM.
   */
  writeTimeoutUs?: number;
  /**
   * How long it waits for a key-pair generation (default 30 s): an HSM's RSA key generation searches
   * for primes, about a second on a profiled hsm2m.medium with a long tail, well past writeTimeoutUs.
   */
  keyGenerationTimeoutUs?: number;
  /** Retries after a busy or lagging answer, or a failover (default 3). */
  maxRetries?: number;
  /** First backoff; each retry doubles it (default 20 ms). */
  backoffUs?: number;
  /** How often the client checks every HSM and polls the address list (default 1 s). */
  heartbeatIntervalUs?: number;
}

/**
 * What the client may do when an HSM does not answer a request (it may or may not have run it):
 * "repeat" re-sends it to another HSM (reads, and anything that changes nothing); "fail" reports
 * the outcome as unknown (writes: repeating one could create a second key).
 */
export type RetryRule = "repeat" | "fail";

/** The client's default timings (µs). */
export const CLIENT_TIMINGS = Object.freeze({
  requestTimeoutUs: 500_000, writeTimeoutUs: 3_000_000, keyGenerationTimeoutUs: 30_000_000, backoffUs: 20_000,
});

/**
 * The client's timings for a cluster whose HSMs run `scale` times slower than life (a time-dilated
 * profile): a dilated queue would otherwise look like a lost HSM, and resends would duplicate work.
 */
export function dilatedTimings(scale: number): Partial<ClientOptions> {
  if (!(Number.isFinite(scale) && scale > 1)) return {};
  return {
    requestTimeoutUs: CLIENT_TIMINGS.requestTimeoutUs * scale, writeTimeoutUs: CLIENT_TIMINGS.writeTimeoutUs * scale,
    keyGenerationTimeoutUs: CLIENT_TIMINGS.keyGenerationTimeoutUs * scale, backoffUs: CLIENT_TIMINGS.backoffUs * scale,
  };
}

export interface SendOptions {
  /** Only this HSM (a session's operation or session object lives there). */
  pinned?: string;
  /** A pinned request that is safe to repeat on its HSM (the HSM answers a repeat from its record): resend it when no answer comes. */
  repeatPinned?: boolean;
  rule: RetryRule;
  /** Serve from whatever the HSM holds, even if it lacks this client's own writes (to compare HSMs). */
  anyState?: boolean;
}

export interface MemberHealth extends MemberAddress {
  /** answering; suspect (missed its last answer); unreachable (never answered this client) */
  status: "ok" | "suspect" | "unreachable" | "unknown";
  spareCapacity: number;
}

interface MemberState extends MemberAddress {
  spareCapacity: number;
  answered: boolean;
  missed: number;
}

interface Pending {
  request: Request;
  target: string;
  timer: number;
  /** The answer; null when none came (`delivered` false: the request certainly never reached the HSM). */
  done: (response: Response | null, delivered?: boolean) => void;
}

type Callback = (error: Error | null, value?: unknown, hsmAddress?: string) => void;

export class ClusterClient {
  readonly conn: string;
  private readonly members = new Map<string, MemberState>();
  private membershipEpoch = 0;
  private clusterId: string | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Requests this client sent to each HSM and has no answer to yet (see pick()). */
  private readonly inFlight = new Map<string, number>();
  /** Journal positions of the writes acknowledged to this client. */
  private readonly acked = new Map<number, number>();
  private readonly requestTimeoutUs: number;
  private readonly writeTimeoutUs: number;
  private readonly keyGenerationTimeoutUs: number;
  private readonly maxRetries: number;
  private readonly backoffUs: number;
  private refreshing = false;
  private lastWritePosition: WritePosition | null = null;
  private closed = false;

  get isClosed(): boolean {
    return this.closed;
  }
  readonly stats = { requests: 0, retries: 0, busy: 0, stale: 0, timeouts: 0, failovers: 0, undelivered: 0 };

  constructor(private readonly options: ClientOptions) {
    for (const name of ["address", "bootstrap"] as const) {
      if (typeof options[name] !== "string" || options[name].length === 0) throw new ClientError("INVALID_ARGUMENT", `${name} must be a non-empty address`);
    }
    for (const name of ["requestTimeoutUs", "writeTimeoutUs", "keyGenerationTimeoutUs", "backoffUs", "heartbeatIntervalUs"] as const) {
      const value = options[name];
      if (value !== undefined && !(Number.isFinite(value) && value > 0)) throw new ClientError("INVALID_ARGUMENT", `${name} must be a positive number of microseconds`);
    }
    if (options.maxRetries !== undefined && !(Number.isInteger(options.maxRetries) && options.maxRetries >= 0 && options.maxRetries <= 10)) {
      throw new ClientError("INVALID_ARGUMENT", "maxRetries must be an integer from 0 to 10");
    }
    this.conn = `${options.address}#${options.rng.int(1 << 30)}`;
    this.requestTimeoutUs = options.requestTimeoutUs ?? CLIENT_TIMINGS.requestTimeoutUs;
    this.writeTimeoutUs = options.writeTimeoutUs ?? CLIENT_TIMINGS.writeTimeoutUs;
    this.keyGenerationTimeoutUs = Math.max(this.writeTimeoutUs, options.keyGenerationTimeoutUs ?? CLIENT_TIMINGS.keyGenerationTimeoutUs);
    this.maxRetries = options.maxRetries ?? 3;
    this.backoffUs = options.backoffUs ?? CLIENT_TIMINGS.backoffUs;
    options.transport.attach(options.address, (from, message) => this.receive(from, message));
    const interval = options.heartbeatIntervalUs ?? 1_000_000;
    const heartbeat = () => {
      if (this.closed) return;
      for (const member of this.members.values()) {
        this.exchange(member.address, { kind: "hello" }, this.requestTimeoutUs, (response) => {
          if (response?.ok) this.learn(response.value as HelloValue);
        });
      }
      options.clock.schedule(interval, heartbeat);
    };
    options.clock.schedule(interval, heartbeat);
  }

  get cluster(): string | null {
    return this.clusterId;
  }

  /** The address list as this client knows it, with what it has seen of each HSM. */
  health(): { members: MemberHealth[]; warnings: string[] } {
    const members = [...this.members.values()].map((m): MemberHealth => ({
      hsmId: m.hsmId, address: m.address, availabilityZone: m.availabilityZone, spareCapacity: m.spareCapacity,
      status: m.missed > 0 ? (m.answered ? "suspect" : "unreachable") : m.answered ? "ok" : "unknown",
    }));
    const unreachable = members.filter((m) => m.status === "unreachable");
    const warnings = unreachable.length === 0 ? [] : [
      `${unreachable.length} of ${members.length} HSM addresses from the cluster's list never answered this client ` +
      `(${unreachable.map((m) => m.address).join(", ")}). If the HSMs sit behind NAT or a load balancer, the client ` +
      `cannot reach them directly and cannot fail over to them: give clients a route to every HSM's own address.`,
    ];
    return { members, warnings };
  }

  /**
   * The writes acknowledged to this client, as an opaque token another client can observe():
   * that client's requests then go only to HSMs holding those writes (causal consistency
   * across processes, e.g. a key created by one service and used by another).
   */
  causalityToken(): string {
    return JSON.stringify(this.after());
  }

  observe(token: string): void {
    let heads: unknown;
    try {
      heads = JSON.parse(token);
    } catch {
      heads = null;
    }
    if (!Array.isArray(heads) || !heads.every((h) => Array.isArray(h) && h.length === 2 && h.every((n) => Number.isSafeInteger(n) && n >= 0))) {
      throw new ClientError("INVALID_ARGUMENT", "token must come from causalityToken()");
    }
    for (const [origin, seq] of heads as [number, number][]) if ((this.acked.get(origin) ?? 0) < seq) this.acked.set(origin, seq);
  }

  /** Whether `address` is in the cluster's address list as this client last learned it. */
  isMember(address: string): boolean {
    return this.members.has(address);
  }

  /** The last write acknowledged to this client (for checkers and tests). */
  get lastWrite(): WritePosition | null {
    return this.lastWritePosition;
  }

  /** Bootstraps: asks the bootstrap address for the cluster's members. */
  connect(cb: (error: Error | null) => void): void {
    this.exchange(this.options.bootstrap, { kind: "hello" }, this.requestTimeoutUs, (response) => {
      if (!response || !response.ok) {
        cb(new ClientError("NO_REACHABLE_HSM", `bootstrap address ${this.options.bootstrap} did not answer`));
        return;
      }
      this.learn(response.value as HelloValue);
      cb(null);
    });
  }

  /** Sends `op` to the best HSM; retries and fails over under `options.rule`. */
  send(op: RequestOp, options: SendOptions, cb: Callback): void {
    if (this.closed) return cb(new ClientError("CLOSED", "this connection was closed"));
    this.stats.requests++;
    this.attempt(op, options, 0, new Set(), cb);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const member of this.members.values()) this.exchange(member.address, { kind: "close" }, this.requestTimeoutUs, () => {});
    for (const p of this.pending.values()) this.options.clock.cancel(p.timer);
    this.pending.clear();
    this.inFlight.clear();
    this.options.transport.detach(this.options.address);
  }

  /**
   * The transport knows `address` cannot be reached now (a refused connection, a failed TLS
   * handshake, a connection reset): the requests waiting on it now are treated as if their timeout
   * had run out, so they fail over (or report) on the clock's next turn — never inside the
   * transport's call. Those among `undelivered` (the very request objects the transport was given
   * and never sent) fail over whatever their rule: a write that never left cannot have been made.
   * A request sent after this call waits for its own connection's fate. The simulator never calls
   * it; real time does.
   */
  unreachable(address: string, undelivered: readonly unknown[] = []): void {
    const neverSent = new Set(undelivered);
    const waiting = [...this.pending].filter(([, p]) => p.target === address);
    // Their timeouts end now: one due in the same pass of the clock would otherwise take a request
    // reported never sent for one that may have arrived (the report already took it from the transport).
    for (const [, p] of waiting) this.options.clock.cancel(p.timer);
    this.options.clock.schedule(0, () => {
      for (const [id, p] of waiting) {
        if (this.pending.get(id) !== p) continue; // answered meanwhile
        this.pending.delete(id);
        this.landed(p.target);
        const delivered = !neverSent.has(p.request);
        if (delivered) this.stats.timeouts++;
        else this.stats.undelivered++;
        const member = this.members.get(address);
        if (member) member.missed++;
        p.done(null, delivered);
      }
    });
  }

  private attempt(op: RequestOp, options: SendOptions, retry: number, tried: Set<string>, cb: Callback): void {
    const target = options.pinned ?? this.pick(tried);
    if (target === null) {
      cb(new ClientError("NO_REACHABLE_HSM", this.unreachableReport()));
      return;
    }
    tried.add(target);
    this.exchange(target, op, this.timeoutFor(op, options.rule), (response, delivered = true) => {
      const again = (why: "busy" | "stale" | "failover", message: string) => {
        // A pinned request waits for its HSM when busy, but cannot fail over; it is resent to it when that is safe.
        if (retry >= this.maxRetries || (options.pinned !== undefined && why === "failover" && !options.repeatPinned)) {
          const attempts = `after ${retry + 1} attempt${retry ? "s" : ""}`;
          if (why !== "failover") cb(new ClientError("HSM_BUSY", `${message} (${attempts})`), undefined, target);
          else if (options.pinned !== undefined) cb(new ClientError("HSM_UNREACHABLE", `${message} (${attempts})`), undefined, target);
          else cb(new ClientError("NO_REACHABLE_HSM", `${message} (${attempts}); ${this.unreachableReport()}`), undefined, target);
          return;
        }
        this.stats.retries++;
        if (why === "failover") this.stats.failovers++;
        // Busy and lagging HSMs get time to recover: 1×, 2×, 4× the base backoff.
        const delay = why === "failover" ? 0 : this.backoffUs * 2 ** retry;
        this.options.clock.schedule(delay, () => this.attempt(op, options, retry + 1, tried, cb));
      };
      if (response === null) {
        if (!delivered) return again("failover", `HSM at ${target} could not be reached; the request was not sent to it`);
        if (options.rule === "repeat") return again("failover", `HSM at ${target} did not answer`);
        cb(new ClientError("OUTCOME_UNKNOWN", `HSM at ${target} did not answer; the change may or may not have been made`), undefined, target);
        return;
      }
      if (response.ok) {
        cb(null, response.value, target);
        return;
      }
      const failure = response.error as Failure;
      if (failure.kind === "busy") {
        this.stats.busy++;
        return again("busy", failure.message);
      }
      if (failure.kind === "stale") {
        this.stats.stale++;
        return again("stale", failure.message);
      }
      cb(failureError(failure), undefined, target);
    }, options.anyState);
  }

  private timeoutFor(op: RequestOp, rule: RetryRule): number {
    // Key-pair generation only: an RSA prime search is slow; a symmetric key generation is not, and keeps the write timeout.
    // Scaled as an HSM prices it by the size asked (RSA as its fourth power, EC as its cube), or an
    // RSA-3072 generation a profile prices past the timeout always failed while the HSM made the pair.
    if (op.kind === "call" && op.method === "generateKeyPair") {
      const opClass = ownMechanism(op) === CKM_RSA_PKCS_KEY_PAIR_GEN ? "rsa-2048-keygen" : "ec-p256-keygen";
      return this.keyGenerationTimeoutUs * Math.max(1, rsaKeyScale(opClass, requestedKeyBits(op)));
    }
    return rule === "fail" ? this.writeTimeoutUs : this.requestTimeoutUs;
  }

  /** One request to one HSM: the answer, or null after the timeout. */
  private exchange(target: string, op: RequestOp, timeoutUs: number, done: Pending["done"], anyState = false): void {
    const request: Request = { t: "req", id: this.nextId++, conn: this.conn, op: copyValue(op), after: anyState ? [] : this.after() };
    const timer = this.options.clock.schedule(timeoutUs, () => {
      if (!this.pending.delete(request.id)) return;
      this.landed(target);
      // Still waiting for a handshake (an HSM that accepts TCP and never answers TLS): taken back, it was never sent.
      const withdrawn = this.options.transport.withdraw?.(this.options.address, target, request) ?? false;
      if (withdrawn) this.stats.undelivered++;
      else this.stats.timeouts++;
      const member = this.members.get(target);
      if (member) member.missed++;
      done(null, !withdrawn);
    });
    this.pending.set(request.id, { request, target, timer, done });
    this.inFlight.set(target, (this.inFlight.get(target) ?? 0) + 1);
    this.options.transport.send(this.options.address, target, request);
  }

  /** A request to `target` was answered or given up. */
  private landed(target: string): void {
    const left = (this.inFlight.get(target) ?? 1) - 1;
    if (left > 0) this.inFlight.set(target, left);
    else this.inFlight.delete(target);
  }

  private receive(from: string, message: unknown): void {
    const response = message as Response;
    if (response?.t !== "res") return;
    const pending = this.pending.get(response.id);
    if (!pending || pending.target !== from) return; // late, duplicated, or not ours
    this.pending.delete(response.id);
    this.landed(from);
    this.options.clock.cancel(pending.timer);
    const member = this.members.get(from);
    if (member) {
      member.answered = true;
      member.missed = 0;
      member.spareCapacity = response.spareCapacity;
    }
    if (response.wrote) {
      this.lastWritePosition = response.wrote;
      const { origin, seq } = response.wrote;
      if ((this.acked.get(origin) ?? 0) < seq) this.acked.set(origin, seq);
    }
    if (response.membershipEpoch > this.membershipEpoch && this.clusterId !== null) this.refresh();
    pending.done(response);
  }

  private after(): HeadList {
    return [...this.acked];
  }

  private refresh(): void {
    if (this.refreshing || this.closed) return;
    const target = this.pick(new Set());
    if (target === null) return;
    this.refreshing = true;
    this.exchange(target, { kind: "hello" }, this.requestTimeoutUs, (response) => {
      this.refreshing = false;
      if (response?.ok) this.learn(response.value as HelloValue);
    });
  }

  private learn(hello: HelloValue): void {
    if (hello.membershipEpoch < this.membershipEpoch) return;
    this.clusterId = hello.clusterId;
    this.membershipEpoch = hello.membershipEpoch;
    const listed = new Set(hello.members.map((m) => m.address));
    for (const address of [...this.members.keys()]) if (!listed.has(address)) this.members.delete(address);
    for (const m of hello.members) {
      const known = this.members.get(m.address);
      if (known) Object.assign(known, m);
      // Unknown HSMs look fully idle, so the client tries them early and learns whether they answer.
      else this.members.set(m.address, { ...m, spareCapacity: Number.MAX_SAFE_INTEGER, answered: false, missed: 0 });
    }
  }

  /**
   * The HSM with the most spare capacity among those not yet tried for this request, preferring
   * ones that answer; the bootstrap address when no listed HSM has ever answered (a gateway).
   * Spare capacity is the HSM's last report less this client's requests to it still unanswered:
   * an Init is answered at once but its operation's work arrives a round trip later, so without
   * that every Init sent within one round trip would herd onto the same HSM.
   */
  private pick(tried: Set<string>): string | null {
    const all = [...this.members.values()];
    // No listed address has ever answered but the bootstrap did: it is a gateway (NAT, load
    // balancer) to one HSM. Use it, though failover through it is impossible (see health()).
    if (all.length > 0 && all.every((m) => !m.answered && m.missed > 0) && !tried.has(this.options.bootstrap)) return this.options.bootstrap;
    const fresh = all.filter((m) => !tried.has(m.address));
    // Untried answering HSMs first; then untried silent ones; then answering ones again (busy ones recover).
    const pools = [fresh.filter((m) => m.missed === 0), fresh, all.filter((m) => m.missed === 0)];
    const pool = pools.find((p) => p.length > 0) ?? [];
    if (pool.length > 0) {
      const spare = (m: MemberState) => m.spareCapacity - (this.inFlight.get(m.address) ?? 0);
      const best = Math.max(...pool.map(spare));
      const top = pool.filter((m) => spare(m) === best);
      return top[this.options.rng.int(top.length)].address;
    }
    return all.length === 0 && !tried.has(this.options.bootstrap) ? this.options.bootstrap : null;
  }

  private unreachableReport(): string {
    const { members, warnings } = this.health();
    const list = members.map((m) => `${m.hsmId} at ${m.address}: ${m.status}`).join("; ");
    return `no HSM of the cluster answers this client (${list || "no address list yet"})${warnings.length ? `. ${warnings[0]}` : ""}`;
  }
}

function failureError(failure: Failure): Error {
  switch (failure.kind) {
    case "pkcs11":
    case "hsm":
      return new RemoteError(failure);
    default:
      return new ClientError("NO_CONNECTION", failure.message);
  }
}

/** An HSM's own refusal, carried back to the caller's layer to rethrow as its typed error. */
export class RemoteError extends Error {
  constructor(readonly failure: Extract<Failure, { kind: "pkcs11" | "hsm" }>) {
    super(failure.message);
    this.name = "RemoteError";
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(ClusterClient);
freezeClass(RemoteError);
