// An HSM's Transport over TLS 1.3: it listens on its own cluster address. An inbound socket is
// limited (clients per remote IP and in all, counted at their hello; sockets that have not said
// hello are bounded too, the oldest closed to make room), must finish its handshake and say hello in
// time, and is then a client (known by a per-socket id, `client/<ip>:<port>#<n>`: a reconnect,
// even from a port the OS handed out again to another application, is a new connection, and an
// answer to a request of the old one is never delivered on it) or a peer HSM (known by its
// cluster address, accepted only if its certificate from the cluster CA proves that address).
// Answers to a client go back on its socket; messages to a peer go over an outbound connection,
// opened on demand.
import * as net from "node:net";
import * as tls from "node:tls";

import { freezeClass } from "../primordials.js";
import type { GoneHandler, MessageHandler, Transport } from "../runtime/transport.js";
import { FramedSocket } from "./framed-socket.js";
import { FrameError } from "./frame.js";
import { type WireLogger, type WireStats, newWireStats, silentLogger } from "./wire-stats.js";
import { TransportError, splitAddress } from "./transport-error.js";

/** Who an inbound socket is, from its certificate alone (before its hello). */
export type InboundIdentity = { kind: "hsm"; address: string } | { kind: "client" };

/** The TLS side of an HSM (src/net/tls-options.ts builds one from the cluster's certificates). */
export interface HsmTls {
  /** tls.createServer options: TLS 1.3, the HSM's certificate, requestCert. */
  server: tls.TlsOptions;
  /** Who a handshaken inbound socket is; throws to refuse it (an untrusted certificate, mutual TLS without one). */
  classify(socket: tls.TLSSocket): InboundIdentity;
  /** tls.connect options to reach the peer HSM at `address`, verifying it is that HSM. */
  peer(address: string): tls.ConnectionOptions;
}

export interface HsmTransportLimits {
  /** Client connections from one IP address, counted at the client's hello (CloudHSM-like: 64, as src/cluster/connections.ts). */
  maxConnectionsPerAddress: number;
  /** Client connections in all (CloudHSM serves 900 client connections per cluster). Proven peer HSMs count in neither. */
  maxConnections: number;
  /**
   * Connections not yet past TLS and hello, from one IP address and in all. Past either, the
   * oldest such connection is closed to make room rather than the new one refused: no one holds
   * the slots of connections that have not said who they are (an honest handshake takes
   * milliseconds, a squatter's up to the handshake timeout).
   */
  maxPendingPerAddress: number;
  maxPending: number;
  handshakeTimeoutMs: number;
  /** After the handshake, the hello must come within this. */
  helloTimeoutMs: number;
  /** A connection that sends nothing this long is closed (clients heartbeat every second, peers gossip 5 times a second). */
  idleTimeoutMs: number;
  /** A frame begun must be complete within this, however slowly its bytes keep coming (a 17 MiB frame needs ~0.6 MB/s). */
  frameTimeoutMs: number;
  /** Bytes waiting to be written to one connection beyond which its reader counts as stalled and is dropped. */
  maxWriteQueueBytes: number;
  /** Bytes of incomplete frames held across all inbound connections. */
  maxBufferedBytes: number;
}

export const DEFAULT_HSM_LIMITS: HsmTransportLimits = {
  maxConnectionsPerAddress: 64, maxConnections: 900, maxPendingPerAddress: 64, maxPending: 256, handshakeTimeoutMs: 10_000, helloTimeoutMs: 10_000, idleTimeoutMs: 120_000, frameTimeoutMs: 30_000,
  maxWriteQueueBytes: 4 * 1024 * 1024, maxBufferedBytes: 256 * 1024 * 1024,
};

/** After a failed connection to a peer, the next attempt waits this long, doubling up to the maximum. */
const MIN_PEER_BACKOFF_MS = 100;
const MAX_PEER_BACKOFF_MS = 2_000;

export interface HsmTransportOptions {
  /** This HSM's cluster address, "ip:port": it listens there and names itself so to its peers. */
  address: string;
  /** Bind here instead of the address's host (for example "0.0.0.0" behind a fixed public address). */
  bindHost?: string;
  tls: HsmTls;
  logger?: WireLogger;
  limits?: Partial<HsmTransportLimits>;
}

export class HsmTransport implements Transport {
  readonly address: string;
  readonly stats: WireStats = newWireStats();
  private readonly logger: WireLogger;
  private readonly limits: HsmTransportLimits;
  private readonly netServer: net.Server;
  private readonly tlsServer: tls.Server;
  /** Client connections per remote IP (counted at their hello). */
  private readonly clientsPerAddress = new Map<string, number>();
  /** Connections not yet past TLS and hello ("ip:port" → socket, oldest first), and their keys per IP. */
  private readonly pending = new Map<string, net.Socket>();
  private readonly pendingPerAddress = new Map<string, Set<string>>();
  private open = 0;
  /** Numbers the secured sockets: a client's id names its socket, not its address and port (which the OS reuses). */
  private socketSerial = 0;
  private buffered = 0;
  private readonly clients = new Map<string, FramedSocket>();
  private readonly peersInbound = new Set<FramedSocket>();
  private readonly outbound = new Map<string, FramedSocket>();
  private readonly rawSockets = new Set<net.Socket>();
  private readonly peerBackoff = new Map<string, { delayMs: number; retryAtMs: number }>();
  private handler: MessageHandler | null = null;
  private onGone: GoneHandler | null = null;
  private closed = false;

  private constructor(private readonly options: HsmTransportOptions) {
    this.address = options.address;
    this.logger = options.logger ?? silentLogger;
    this.limits = { ...DEFAULT_HSM_LIMITS, ...options.limits };
    this.tlsServer = tls.createServer({ ...options.tls.server, handshakeTimeout: this.limits.handshakeTimeoutMs });
    this.tlsServer.on("secureConnection", (socket) => this.secured(socket));
    this.tlsServer.on("tlsClientError", (error: Error & { code?: string }, socket) => {
      this.stats.tlsRefused++;
      this.logger.info({ remote: `${socket.remoteAddress}:${socket.remotePort}`, code: error.code }, `TLS handshake failed: ${error.message}`);
      socket.destroy();
    });
    this.netServer = net.createServer((raw) => this.accept(raw));
    this.netServer.on("error", (error) => this.logger.error({ err: String(error) }, "listening socket error"));
  }

  /** Listens on the address; resolves once bound. */
  static async listen(options: HsmTransportOptions): Promise<HsmTransport> {
    const { host, port } = splitAddress(options.address);
    const transport = new HsmTransport(options);
    await new Promise<void>((resolve, reject) => {
      transport.netServer.once("error", reject);
      transport.netServer.listen({ host: options.bindHost ?? host, port, exclusive: true }, () => {
        transport.netServer.off("error", reject);
        resolve();
      });
    });
    return transport;
  }

  attach(address: string, handler: MessageHandler, onGone?: GoneHandler): void {
    if (address !== this.address) throw new TransportError("NOT_OWN_ADDRESS", `this transport receives as ${this.address}, not ${address}`);
    if (this.handler) throw new TransportError("ALREADY_ATTACHED", `${address} already has a receiver`);
    this.handler = handler;
    this.onGone = onGone ?? null;
  }

  detach(address: string): void {
    if (address !== this.address) return;
    this.handler = null;
    this.onGone = null;
  }

  send(from: string, to: string, message: unknown): void {
    if (from !== this.address || this.closed) {
      this.stats.undeliverable++;
      return;
    }
    if (to.startsWith("client/")) {
      const client = this.clients.get(to);
      if (!client?.sendMessage(message)) this.stats.undeliverable++;
      return;
    }
    if (!this.peerLink(to)?.sendMessage(message)) this.stats.undeliverable++;
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stopped = new Promise<void>((resolve) => this.netServer.close(() => resolve()));
    for (const link of [...this.clients.values(), ...this.peersInbound, ...this.outbound.values()]) link.close("SHUTDOWN", "the HSM transport closed", "info");
    for (const raw of this.rawSockets) raw.destroy();
    await stopped;
  }

  /** Connections open now: inbound clients, inbound peers, outbound peers. */
  get connections(): { clients: number; peersInbound: number; outbound: number; tcp: number } {
    return { clients: this.clients.size, peersInbound: this.peersInbound.size, outbound: this.outbound.size, tcp: this.open };
  }

  // ---- inbound ----
  private accept(raw: net.Socket): void {
    if (this.closed) {
      raw.destroy();
      return;
    }
    const ip = raw.remoteAddress ?? "?";
    const key = `${ip}:${raw.remotePort}`;
    const fromIp = this.pendingPerAddress.get(ip) ?? new Set<string>();
    if (fromIp.size >= this.limits.maxPendingPerAddress) this.evictPending(fromIp.values().next().value!, "per address");
    if (this.pending.size >= this.limits.maxPending) this.evictPending(this.pending.keys().next().value!, "in all");
    this.stats.accepted++;
    this.open++;
    this.pending.set(key, raw);
    fromIp.add(key);
    this.pendingPerAddress.set(ip, fromIp);
    this.rawSockets.add(raw);
    raw.on("error", () => {}); // the TLS socket reports it
    raw.once("close", () => {
      this.rawSockets.delete(raw);
      this.open--;
      this.endPending(key);
    });
    this.tlsServer.emit("connection", raw);
  }

  /** A connection no longer waiting for TLS and its hello (it said hello, or it closed). */
  private endPending(key: string): void {
    const raw = this.pending.get(key);
    if (raw === undefined) return;
    this.pending.delete(key);
    const ip = raw.remoteAddress ?? "?";
    const fromIp = this.pendingPerAddress.get(ip);
    fromIp?.delete(key);
    if (fromIp?.size === 0) this.pendingPerAddress.delete(ip);
  }

  private evictPending(key: string, scope: "per address" | "in all"): void {
    const raw = this.pending.get(key);
    this.endPending(key);
    if (scope === "per address") this.stats.refusedPerAddress++;
    else this.stats.refusedTotal++;
    this.logger.warn({ remote: key, scope }, "closed a connection that had not said hello, to make room for a new one");
    raw?.destroy();
  }

  private countClient(ip: string, delta: 1 | -1): void {
    const next = (this.clientsPerAddress.get(ip) ?? 0) + delta;
    if (next <= 0) this.clientsPerAddress.delete(ip);
    else this.clientsPerAddress.set(ip, next);
  }

  private secured(socket: tls.TLSSocket): void {
    const ip = socket.remoteAddress ?? "?";
    const remote = `${ip}:${socket.remotePort}`;
    let identity: InboundIdentity;
    try {
      identity = this.options.tls.classify(socket);
    } catch (e) {
      this.stats.tlsRefused++;
      this.logger.warn({ remote, code: (e as { code?: string }).code }, `inbound connection refused: ${(e as Error).message}`);
      socket.destroy();
      return;
    }
    const clientId = `client/${remote}#${++this.socketSerial}`;
    let from: string | null = null;
    let role: "client" | "peer" | null = null;
    const helloTimer = setTimeout(() => {
      this.stats.helloTimeouts++;
      link.close("HELLO_TIMEOUT", `no hello within ${this.limits.helloTimeoutMs} ms`);
    }, this.limits.helloTimeoutMs);
    helloTimer.unref();
    socket.setTimeout(this.limits.idleTimeoutMs, () => {
      this.stats.idleTimeouts++;
      link.close("IDLE_TIMEOUT", `nothing received for ${this.limits.idleTimeoutMs} ms`, "info");
    });
    const link: FramedSocket = new FramedSocket(socket, {
      label: remote, expectHello: true, accepts: "req", maxWriteQueueBytes: this.limits.maxWriteQueueBytes, logger: this.logger, stats: this.stats,
      frameTimeoutMs: this.limits.frameTimeoutMs,
      onHello: (hello) => {
        clearTimeout(helloTimer);
        this.endPending(remote);
        if (hello.role === "hsm") {
          if (identity.kind !== "hsm" || identity.address !== hello.address) {
            this.stats.peerRefused++;
            const proven = identity.kind === "hsm" ? `a certificate for ${identity.address}` : "no cluster certificate";
            throw new FrameError("PEER_NOT_PROVEN", `claims HSM address ${hello.address} with ${proven}`);
          }
          from = hello.address;
          role = "peer";
          this.peersInbound.add(link);
          return "peer";
        }
        if ((this.clientsPerAddress.get(ip) ?? 0) >= this.limits.maxConnectionsPerAddress) {
          this.stats.refusedPerAddress++;
          throw new FrameError("TOO_MANY_CONNECTIONS", `${this.limits.maxConnectionsPerAddress} client connections from ${ip} already`);
        }
        if (this.clients.size >= this.limits.maxConnections) {
          this.stats.refusedTotal++;
          throw new FrameError("TOO_MANY_CONNECTIONS", `${this.limits.maxConnections} client connections already`);
        }
        from = clientId;
        role = "client";
        this.clients.set(clientId, link);
        this.countClient(ip, 1);
        return "req";
      },
      onMessage: (message) => {
        if (from !== null) this.handler?.(from, message);
      },
      onClose: () => {
        clearTimeout(helloTimer);
        if (role === "peer") this.peersInbound.delete(link);
        if (role === "client" && this.clients.get(clientId) === link) {
          this.clients.delete(clientId);
          this.countClient(ip, -1);
          this.clientGone(clientId);
        }
      },
      onBuffered: (delta) => {
        this.buffered += delta;
        if (delta > 0 && this.buffered > this.limits.maxBufferedBytes) {
          this.stats.memoryRefused++;
          link.close("MEMORY_BUDGET", `incomplete frames across connections passed ${this.limits.maxBufferedBytes} bytes`);
        }
      },
    });
  }

  private clientGone(clientId: string): void {
    try {
      this.onGone?.(clientId);
    } catch (e) {
      this.logger.error({ connection: clientId, err: String(e) }, "gone handler threw");
    }
  }

  // ---- outbound, to peers ----
  private peerLink(address: string): FramedSocket | null {
    const existing = this.outbound.get(address);
    if (existing?.isOpen) return existing;
    // A peer that is down is not dialled on every gossip round: after a failure, wait (doubling, up to a limit).
    const backoff = this.peerBackoff.get(address);
    if (backoff !== undefined && Date.now() < backoff.retryAtMs) return null;
    let options: tls.ConnectionOptions;
    try {
      options = this.options.tls.peer(address);
    } catch (e) {
      this.logger.warn({ peer: address }, `no connection to the peer: ${(e as Error).message}`);
      return null;
    }
    this.stats.connects++;
    const socket = tls.connect(options);
    let secured = false;
    // A peer that accepts TCP but never finishes the handshake (stopped, overloaded) fails like one that refuses.
    socket.setTimeout(this.limits.handshakeTimeoutMs, () => {
      if (!secured) socket.destroy(Object.assign(new Error(`no TLS handshake within ${this.limits.handshakeTimeoutMs} ms`), { code: "ETIMEDOUT" }));
    });
    socket.once("secureConnect", () => {
      secured = true;
      this.peerBackoff.delete(address);
      socket.setTimeout(this.limits.idleTimeoutMs, () => link.close("IDLE_TIMEOUT", "idle outbound connection", "info"));
    });
    socket.once("error", (error: Error & { code?: string }) => {
      if (secured) {
        this.logger.warn({ peer: address, code: error.code }, `connection to the peer failed: ${error.message}`);
        return;
      }
      this.stats.connectFailures++;
      const delayMs = Math.min(MAX_PEER_BACKOFF_MS, (this.peerBackoff.get(address)?.delayMs ?? MIN_PEER_BACKOFF_MS / 2) * 2);
      this.peerBackoff.set(address, { delayMs, retryAtMs: Date.now() + delayMs });
      this.logger.warn({ peer: address, code: error.code, retryInMs: delayMs }, `cannot connect to the peer: ${error.message}`);
    });
    const link: FramedSocket = new FramedSocket(socket, {
      label: `peer ${address} (outbound)`, expectHello: false, accepts: null, maxWriteQueueBytes: this.limits.maxWriteQueueBytes,
      logger: this.logger, stats: this.stats, onMessage: () => {},
      onClose: () => {
        if (this.outbound.get(address) === link) this.outbound.delete(address);
      },
    });
    this.outbound.set(address, link);
    link.sendHello({ role: "hsm", address: this.address });
    return link;
  }
}

freezeClass(HsmTransport);
