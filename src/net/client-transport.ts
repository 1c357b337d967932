// An application's Transport over TLS 1.3: it never listens. `send(from, to)` connects on
// demand to the HSM at `to` ("ip:port"), verifying its certificate against the trust anchor and
// its address (the TLS options come from src/net/tls-options.ts), optionally presenting a client
// certificate (mutual TLS); frames written while the handshake runs wait for it. A connection
// that fails drops what it held and reports a typed error (onError, errors()) with the messages
// it never sent: a connection refused or a handshake failed delivered none of them, so the client
// may send those elsewhere even when repeating is unsafe. The client's own timeouts and failover
// take the rest from there, and the next send connects again. Each local address
// has its own connections, so two clients sharing the transport never see each other's answers.
import * as tls from "node:tls";

import { freezeClass } from "../primordials.js";
import type { MessageHandler, Transport } from "../runtime/transport.js";
import { CLOSED_BY_PEER, FramedSocket } from "./framed-socket.js";
import { closedAfterHandshakeError } from "./tls-options.js";
import { TransportError } from "./transport-error.js";
import { type WireLogger, type WireStats, newWireStats, silentLogger } from "./wire-stats.js";

export interface ClientTls {
  /** tls.connect options for the HSM at `address`: TLS 1.3, the trust anchor, the address check. */
  connect(address: string): tls.ConnectionOptions;
  /** A clear, typed error for a failed connection (src/net/tls-options.ts toTlsError); default: a TransportError. */
  describeError?(error: unknown, address: string): Error;
}

export interface ClientTransportOptions {
  tls: ClientTls;
  logger?: WireLogger;
  /**
   * Called for each failed connection, with its typed error (a wrong trust anchor, a refused
   * connection…) and the messages given to send() that certainly never reached the HSM: those
   * waiting for a TLS handshake that never completed (the same objects send() was given).
   */
  onError?: (error: Error, address: string, undelivered: readonly unknown[]) => void;
  /** A handshake not done within this fails the connection (default 5 s). */
  connectTimeoutMs?: number;
  /** Bytes waiting to be written (the handshake running, or the HSM not reading) beyond which a connection is dropped (default 32 MiB). */
  maxWriteQueueBytes?: number;
  /** Reuse TLS sessions on reconnection (default true): a reconnect costs no full handshake. */
  resumeSessions?: boolean;
}

export interface ConnectionFailure {
  address: string;
  error: Error;
  atMs: number;
}

const RECENT_ERRORS = 32;

export class ClientTransport implements Transport {
  readonly stats: WireStats = newWireStats();
  private readonly logger: WireLogger;
  private readonly handlers = new Map<string, MessageHandler>();
  private readonly links = new Map<string, { from: string; link: FramedSocket }>();
  /** Per connection whose TLS handshake has not completed: the messages written to it so far (all still in node's buffer). */
  private readonly unsent = new Map<FramedSocket, unknown[]>();
  private readonly sessions = new Map<string, Buffer>();
  private readonly recent: ConnectionFailure[] = [];
  private closed = false;

  constructor(private readonly options: ClientTransportOptions) {
    this.logger = options.logger ?? silentLogger;
  }

  attach(address: string, handler: MessageHandler): void {
    if (this.handlers.has(address)) throw new TransportError("ALREADY_ATTACHED", `${address} already has a receiver`);
    this.handlers.set(address, handler);
  }

  detach(address: string): void {
    this.handlers.delete(address);
    for (const [key, { from, link }] of this.links) {
      if (from !== address) continue;
      this.links.delete(key);
      link.close("DETACHED", "the client closed", "info");
    }
  }

  send(from: string, to: string, message: unknown): void {
    if (this.closed) {
      this.stats.undeliverable++;
      return;
    }
    const link = this.linkTo(from, to, message);
    if (link === null) return;
    if (!link.sendMessage(message)) {
      this.stats.undeliverable++;
      return;
    }
    this.unsent.get(link)?.push(message);
  }

  /** The latest connection failures, oldest first (at most 32). */
  errors(): ConnectionFailure[] {
    return this.recent.map((f) => ({ ...f }));
  }

  /** Closes every connection; later sends are dropped. */
  close(): void {
    this.closed = true;
    for (const { link } of this.links.values()) link.close("SHUTDOWN", "the client transport closed", "info");
    this.links.clear();
  }

  /** The open connection from `from` to `to`, or a new one; null (reported with `message` as unsent) if none can be begun. */
  private linkTo(from: string, to: string, message: unknown): FramedSocket | null {
    const key = `${from}\n${to}`;
    const existing = this.links.get(key)?.link;
    if (existing?.isOpen) return existing;
    let options: tls.ConnectionOptions;
    try {
      options = { ...this.options.tls.connect(to) };
    } catch (e) {
      this.stats.undeliverable++;
      this.fail(to, e, [message]);
      return null;
    }
    const session = this.options.resumeSessions === false ? undefined : this.sessions.get(to);
    if (session) options.session = session;
    this.stats.connects++;
    const socket = tls.connect(options);
    let secured = false;
    const timeoutMs = this.options.connectTimeoutMs ?? 5_000;
    socket.setTimeout(timeoutMs, () => {
      if (secured) return;
      const error = Object.assign(new Error(`no TLS handshake with ${to} within ${timeoutMs} ms`), { code: "ETIMEDOUT" });
      socket.destroy(error);
    });
    let answered = false, failed = false;
    socket.once("secureConnect", () => {
      secured = true;
      this.unsent.delete(link); // from here on what was written may have arrived
      socket.setTimeout(0);
    });
    socket.once("data", () => { answered = true; });
    socket.on("session", (ticket: Buffer) => this.sessions.set(to, ticket));
    socket.once("error", (error) => {
      failed = true;
      if (!secured) {
        this.stats.connectFailures++;
        this.sessions.delete(to);
      }
      this.fail(to, error, this.takeUnsent(link));
    });
    const link: FramedSocket = new FramedSocket(socket, {
      label: `hsm ${to}`, expectHello: false, accepts: "res", maxWriteQueueBytes: this.options.maxWriteQueueBytes ?? 32 * 1024 * 1024,
      logger: this.logger, stats: this.stats,
      onMessage: (message) => this.handlers.get(from)?.(to, message),
      onClose: (reason) => {
        if (this.links.get(key)?.link === link) this.links.delete(key);
        const unsent = this.takeUnsent(link);
        if (failed || this.closed || !this.handlers.has(from)) return; // reported already, or closed by this side's close/detach
        // TLS 1.3: the HSM checks a client certificate after the client's handshake is done, and
        // may close without an alert node reports: say what that most likely means.
        if (reason === CLOSED_BY_PEER && secured && !answered) {
          this.fail(to, closedAfterHandshakeError({ address: to, presentedClientCertificate: options.cert !== undefined }), []);
        } else if (!secured) {
          // Closed (by the peer, or dropped here) before the handshake completed: nothing written reached the HSM.
          this.fail(to, new TransportError("CONNECTION_FAILED", `connection to the HSM at ${to} closed before its TLS handshake completed (${reason})`), unsent);
        }
      },
    });
    this.links.set(key, { from, link });
    this.unsent.set(link, []);
    link.sendHello({ role: "client" });
    return link;
  }

  private takeUnsent(link: FramedSocket): unknown[] {
    const unsent = this.unsent.get(link) ?? [];
    this.unsent.delete(link);
    return unsent;
  }

  private fail(address: string, cause: unknown, undelivered: readonly unknown[]): void {
    const error = this.describe(cause, address);
    this.recent.push({ address, error, atMs: Date.now() });
    if (this.recent.length > RECENT_ERRORS) this.recent.shift();
    this.logger.warn({ hsm: address, code: (error as { code?: string }).code }, error.message);
    try {
      this.options.onError?.(error, address, undelivered);
    } catch (e) {
      this.logger.error({ err: String(e) }, "onError threw");
    }
  }

  private describe(cause: unknown, address: string): Error {
    if (this.options.tls.describeError) {
      try {
        return this.options.tls.describeError(cause, address);
      } catch {
        // fall through to the plain description
      }
    }
    if (cause instanceof TransportError) return cause;
    const code = String((cause as { code?: unknown })?.code ?? "");
    const text = cause instanceof Error ? cause.message : String(cause);
    return new TransportError("CONNECTION_FAILED", `connection to the HSM at ${address} failed: ${text}${code ? ` (${code})` : ""}`);
  }
}

freezeClass(ClientTransport);
