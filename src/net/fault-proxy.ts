// A TCP proxy that tests and `hsmsim proxy` put between a client and an HSM, or between two
// HSMs, to inject real network faults. It moves bytes only (TLS passes through untouched), and
// every fault can be changed while it runs: latency and jitter per direction, a slow link
// (bytes per second), a black hole (connections accepted, nothing forwarded, as a partition:
// bytes wait, bounded, and flow again on heal, as TCP's would), refused connections (the
// listener closes, so connects get ECONNREFUSED), resets (every open connection now, or each new
// connection with a probability), and heal. Buffers are bounded; close() stops everything.
import * as net from "node:net";
import { NetError } from "./net-error.js";
import { formatAddress, parseAddress } from "./pki.js";

export type Direction = "toTarget" | "fromTarget";
const DIRECTIONS: Direction[] = ["toTarget", "fromTarget"];

export interface LinkFaults {
  /** Added one-way delay per chunk. */
  latencyMs: number;
  /** Extra delay drawn uniformly from [0, jitterMs) per chunk (order is kept). */
  jitterMs: number;
  /** Bytes per second, or 0 for unlimited. */
  bandwidthBytesPerS: number;
}

export interface ProxyFaults {
  toTarget: LinkFaults;
  fromTarget: LinkFaults;
  /** Accept connections, forward nothing (bytes wait, bounded, until heal). */
  blackhole: boolean;
  /** Stop listening: connects are refused (ECONNREFUSED). Open connections stay. */
  refuse: boolean;
  /** Each new connection is reset with this probability, at a random moment within resetWindowMs. */
  resetRate: number;
  resetWindowMs: number;
}

export interface ProxyStats {
  accepted: number;
  open: number;
  resets: number;
  bytesToTarget: number;
  bytesFromTarget: number;
  /** Bytes held in the proxy now (delayed or black-holed), all connections. */
  queuedBytes: number;
}

/** Bytes a direction holds before it stops reading its source (backpressure, as a full TCP window). */
const MAX_QUEUED_BYTES = 1 << 20;
const MAX_DELAY_MS = 600_000;
const MAX_BANDWIDTH = 1e12;

const HEALED: ProxyFaults = {
  toTarget: { latencyMs: 0, jitterMs: 0, bandwidthBytesPerS: 0 },
  fromTarget: { latencyMs: 0, jitterMs: 0, bandwidthBytesPerS: 0 },
  blackhole: false,
  refuse: false,
  resetRate: 0,
  resetWindowMs: 200,
};

function cloneFaults(f: ProxyFaults): ProxyFaults {
  return { ...f, toTarget: { ...f.toTarget }, fromTarget: { ...f.fromTarget } };
}

function checkNumber(name: string, value: unknown, max: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > max) throw new NetError("INVALID_ARGUMENT", `${name} must be a number from 0 to ${max}; got ${String(value)}`);
  return value;
}

export type FaultChange = Partial<Omit<ProxyFaults, Direction>> & { toTarget?: Partial<LinkFaults>; fromTarget?: Partial<LinkFaults> };

function applyChange(current: ProxyFaults, change: FaultChange): ProxyFaults {
  if (typeof change !== "object" || change === null) throw new NetError("INVALID_ARGUMENT", "a fault change must be an object");
  const next = cloneFaults(current);
  for (const key of Object.keys(change)) {
    if (!(key in HEALED)) throw new NetError("INVALID_ARGUMENT", `unknown fault "${key}"`);
  }
  for (const direction of DIRECTIONS) {
    const link = change[direction];
    if (link === undefined) continue;
    for (const key of Object.keys(link)) {
      if (!(key in HEALED.toTarget)) throw new NetError("INVALID_ARGUMENT", `unknown link fault "${direction}.${key}"`);
    }
    if (link.latencyMs !== undefined) next[direction].latencyMs = checkNumber(`${direction}.latencyMs`, link.latencyMs, MAX_DELAY_MS);
    if (link.jitterMs !== undefined) next[direction].jitterMs = checkNumber(`${direction}.jitterMs`, link.jitterMs, MAX_DELAY_MS);
    if (link.bandwidthBytesPerS !== undefined) next[direction].bandwidthBytesPerS = checkNumber(`${direction}.bandwidthBytesPerS`, link.bandwidthBytesPerS, MAX_BANDWIDTH);
  }
  if (change.blackhole !== undefined) next.blackhole = change.blackhole === true;
  if (change.refuse !== undefined) next.refuse = change.refuse === true;
  if (change.resetRate !== undefined) next.resetRate = checkNumber("resetRate", change.resetRate, 1);
  if (change.resetWindowMs !== undefined) next.resetWindowMs = checkNumber("resetWindowMs", change.resetWindowMs, MAX_DELAY_MS);
  return next;
}

interface Chunk {
  data: Buffer;
  releaseAtMs: number;
}

/** One direction of one connection: reads `source`, holds chunks until their time, writes `sink`. */
class Pipe {
  readonly #queue: Chunk[] = [];
  #queuedBytes = 0;
  #lastReleaseMs = 0;
  #nextSendMs = 0;
  #timer: NodeJS.Timeout | undefined;
  #waitingDrain = false;
  #sourceEnded = false;
  #closed = false;

  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  constructor(
    readonly direction: Direction,
    private readonly source: net.Socket,
    private readonly sink: () => net.Socket | undefined,
    private readonly faults: () => ProxyFaults,
    private readonly count: (bytes: number) => void,
  ) {
    source.on("data", (data: Buffer) => this.#push(data));
    source.on("end", () => {
      this.#sourceEnded = true;
      this.pump();
    });
  }

  #push(data: Buffer): void {
    if (this.#closed) return;
    const link = this.faults()[this.direction];
    const delay = link.latencyMs + (link.jitterMs > 0 ? Math.random() * link.jitterMs : 0);
    // A chunk never overtakes the one before it: the stream stays in order, as TCP keeps it.
    const releaseAtMs = Math.max(Date.now() + delay, this.#lastReleaseMs);
    this.#lastReleaseMs = releaseAtMs;
    this.#queue.push({ data, releaseAtMs });
    this.#queuedBytes += data.length;
    if (this.#queuedBytes >= MAX_QUEUED_BYTES) this.source.pause();
    this.pump();
  }

  /** Sends what is due; reschedules itself for the rest. Called again on any fault change. */
  pump(): void {
    if (this.#closed) return;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const sink = this.sink();
    const faults = this.faults();
    if (sink === undefined || faults.blackhole || this.#waitingDrain) return;
    if (sink.destroyed || sink.writableEnded) {
      this.close();
      return;
    }
    const link = faults[this.direction];
    while (this.#queue.length > 0) {
      const now = Date.now();
      const head = this.#queue[0];
      const waitMs = Math.max(head.releaseAtMs - now, link.bandwidthBytesPerS > 0 ? this.#nextSendMs - now : 0);
      if (waitMs > 0) {
        this.#timer = setTimeout(() => this.pump(), Math.ceil(waitMs));
        return;
      }
      let data = head.data;
      if (link.bandwidthBytesPerS > 0) {
        // Send a slice worth ~50 ms of the link at a time, so a slow link trickles rather than bursts.
        const slice = Math.max(1, Math.floor(link.bandwidthBytesPerS / 20));
        if (data.length > slice) {
          head.data = data.subarray(slice);
          data = data.subarray(0, slice);
        } else this.#queue.shift();
        this.#nextSendMs = Math.max(now, this.#nextSendMs) + (data.length * 1000) / link.bandwidthBytesPerS;
      } else this.#queue.shift();
      this.#queuedBytes -= data.length;
      this.count(data.length);
      if (this.#queuedBytes < MAX_QUEUED_BYTES / 2) this.source.resume();
      if (!sink.write(data)) {
        this.#waitingDrain = true;
        sink.once("drain", () => {
          this.#waitingDrain = false;
          this.pump();
        });
        return;
      }
    }
    if (this.#sourceEnded && !sink.writableEnded) sink.end();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
  }
}

/** One proxied connection: the accepted client socket, the socket to the target, two pipes. */
class Link {
  readonly #pipes: Pipe[] = [];
  #target: net.Socket | undefined;
  #targetConnected = false;
  #resetTimer: NodeJS.Timeout | undefined;
  #done = false;

  constructor(
    private readonly client: net.Socket,
    private readonly proxy: FaultProxyCore,
  ) {
    client.on("error", () => this.reset());
    client.on("close", () => this.#finish());
    this.#pipes.push(new Pipe("toTarget", client, () => (this.#targetConnected ? this.#target : undefined), () => proxy.faults, (n) => (proxy.stats.bytesToTarget += n)));
    const faults = proxy.faults;
    if (faults.resetRate > 0 && Math.random() < faults.resetRate) {
      this.#resetTimer = setTimeout(() => this.reset(true), Math.random() * faults.resetWindowMs);
    }
    if (!faults.blackhole) this.connectTarget();
  }

  /** Connects to the target (deferred while black-holed: a partition lets no SYN through either). */
  connectTarget(): void {
    if (this.#target !== undefined || this.#done) return;
    // Half-open allowed on both sides: each direction ends on its own, after its last delayed byte.
    const target = net.connect({ host: this.proxy.target.host, port: this.proxy.target.port, allowHalfOpen: true });
    this.#target = target;
    target.setNoDelay(true);
    target.on("error", () => this.reset());
    target.on("close", () => this.#finish());
    target.once("connect", () => {
      this.#targetConnected = true;
      this.#pipes[0].pump();
    });
    this.#pipes.push(new Pipe("fromTarget", target, () => this.client, () => this.proxy.faults, (n) => (this.proxy.stats.bytesFromTarget += n)));
  }

  get queuedBytes(): number {
    return this.#pipes.reduce((sum, pipe) => sum + pipe.queuedBytes, 0);
  }

  pump(): void {
    if (!this.proxy.faults.blackhole) this.connectTarget();
    for (const pipe of this.#pipes) pipe.pump();
  }

  /** Resets both sides (TCP RST): what a middlebox dropping the connection does. */
  reset(counted = false): void {
    if (this.#done) return;
    if (counted) this.proxy.stats.resets++;
    this.#done = true;
    for (const socket of [this.client, this.#target]) {
      if (socket !== undefined && !socket.destroyed) socket.resetAndDestroy();
    }
    this.#cleanup();
  }

  #finish(): void {
    // A clean close travels through the pipes (end after the last byte); here only the
    // bookkeeping: the link is over once both sockets are gone (or the target never existed).
    if (this.client.destroyed && (this.#target === undefined || this.#target.destroyed)) {
      this.#done = true;
      this.#cleanup();
    }
  }

  #cleanup(): void {
    if (this.#resetTimer !== undefined) clearTimeout(this.#resetTimer);
    this.#resetTimer = undefined;
    for (const pipe of this.#pipes) pipe.close();
    this.proxy.links.delete(this);
  }

  destroy(): void {
    this.#done = true;
    this.client.destroy();
    this.#target?.destroy();
    this.#cleanup();
  }
}

/** The proxy's state the links share (internal). */
interface FaultProxyCore {
  faults: ProxyFaults;
  readonly target: { host: string; port: number };
  readonly links: Set<Link>;
  readonly stats: ProxyStats;
}

export interface FaultProxyOptions {
  /** "ip:port" to listen on (port 0 picks one). Loopback in tests. */
  listen: string;
  /** "ip:port" of the HSM (or other server) behind the proxy. */
  target: string;
  faults?: FaultChange;
}

export class FaultProxy {
  readonly #core: FaultProxyCore;
  readonly #server: net.Server;
  readonly #host: string;
  #port = 0;
  #listening = false;
  #closed = false;

  private constructor(host: string, target: { host: string; port: number }, faults: ProxyFaults) {
    this.#host = host;
    this.#core = { faults, target, links: new Set(), stats: { accepted: 0, open: 0, resets: 0, bytesToTarget: 0, bytesFromTarget: 0, queuedBytes: 0 } };
    this.#server = net.createServer({ allowHalfOpen: true }, (socket) => this.#accept(socket));
    this.#server.on("error", () => undefined); // a listen error is reported by #listen's promise
  }

  /** Starts a proxy listening on `options.listen` and forwarding to `options.target`. */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    if (typeof options !== "object" || options === null) throw new NetError("INVALID_ARGUMENT", "FaultProxy.start takes { listen, target, faults? }");
    const listen = parseListen(options.listen);
    const target = parseAddress(options.target);
    const proxy = new FaultProxy(listen.host, target, applyChange(HEALED, options.faults ?? {}));
    proxy.#port = listen.port;
    if (!proxy.#core.faults.refuse) await proxy.#listen();
    else if (listen.port === 0) throw new NetError("INVALID_ARGUMENT", "a proxy that starts refusing needs a fixed port");
    return proxy;
  }

  /** The "ip:port" clients connect to. */
  get address(): string {
    return formatAddress(this.#host, this.#port);
  }

  get faults(): ProxyFaults {
    return cloneFaults(this.#core.faults);
  }

  get stats(): ProxyStats {
    let queuedBytes = 0;
    for (const link of this.#core.links) queuedBytes += link.queuedBytes;
    return { ...this.#core.stats, open: this.#core.links.size, queuedBytes };
  }

  /** Changes some faults; the rest stay. Takes effect at once on open connections too. */
  async set(change: FaultChange): Promise<void> {
    if (this.#closed) throw new NetError("INVALID_ARGUMENT", "the proxy is closed");
    this.#core.faults = applyChange(this.#core.faults, change);
    await this.#apply();
  }

  /** Added latency (and jitter) on one direction or both. */
  latency(latencyMs: number, jitterMs = 0, direction: Direction | "both" = "both"): Promise<void> {
    return this.set(Object.fromEntries(directionsOf(direction).map((d) => [d, { latencyMs, jitterMs }])));
  }

  /** A slow link: bytes per second on one direction or both (0: unlimited). */
  bandwidth(bytesPerS: number, direction: Direction | "both" = "both"): Promise<void> {
    return this.set(Object.fromEntries(directionsOf(direction).map((d) => [d, { bandwidthBytesPerS: bytesPerS }])));
  }

  blackhole(on = true): Promise<void> {
    return this.set({ blackhole: on });
  }

  refuse(on = true): Promise<void> {
    return this.set({ refuse: on });
  }

  resetRate(probability: number, windowMs?: number): Promise<void> {
    return this.set(windowMs === undefined ? { resetRate: probability } : { resetRate: probability, resetWindowMs: windowMs });
  }

  /** Resets every open connection now. */
  resetAll(): number {
    const links = [...this.#core.links];
    for (const link of links) link.reset(true);
    return links.length;
  }

  /** Removes every fault: no delay, full speed, forwarding, listening, no resets. */
  heal(): Promise<void> {
    return this.set(cloneFaults(HEALED));
  }

  /** Stops listening and destroys every connection and timer. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const link of [...this.#core.links]) link.destroy();
    if (this.#listening) {
      this.#listening = false;
      await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    }
  }

  async #apply(): Promise<void> {
    const faults = this.#core.faults;
    if (faults.refuse && this.#listening) {
      this.#listening = false;
      // close() stops accepting at once; its callback waits for connections we keep open, so do not await it.
      this.#server.close();
    } else if (!faults.refuse && !this.#listening) {
      await this.#listen();
    }
    for (const link of this.#core.links) link.pump();
  }

  #listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => {
        reject(new NetError("CONNECTION_FAILED", `the fault proxy cannot listen on ${formatAddress(this.#host, this.#port)}: ${error.code ?? error.message}`));
      };
      this.#server.once("error", onError);
      this.#server.listen({ host: this.#host, port: this.#port, exclusive: true }, () => {
        this.#server.off("error", onError);
        this.#port = (this.#server.address() as net.AddressInfo).port;
        this.#listening = true;
        resolve();
      });
    });
  }

  #accept(socket: net.Socket): void {
    if (this.#closed || !this.#listening) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    this.#core.stats.accepted++;
    this.#core.links.add(new Link(socket, this.#core));
  }
}

function directionsOf(direction: Direction | "both"): Direction[] {
  if (direction === "both") return DIRECTIONS;
  if (!DIRECTIONS.includes(direction)) throw new NetError("INVALID_ARGUMENT", `direction must be "toTarget", "fromTarget" or "both"; got ${String(direction)}`);
  return [direction];
}

function parseListen(listen: unknown): { host: string; port: number } {
  if (typeof listen === "string" && /:0$/.test(listen)) return { host: parseAddress(listen.replace(/:0$/, ":1")).host, port: 0 };
  return parseAddress(listen);
}
