// An application's Transport over TLS 1.3: it never listens. `send(from, to)` connects on
// demand to the HSM at `to` ("ip:port"), verifying its certificate against the trust anchor and
// its address (the TLS options come from src/net/tls-options.ts), optionally presenting a client
// certificate (mutual TLS). Messages sent while the handshake runs are held here, not written,
// until it completes: a connection that fails before then reports a typed error (onError,
// errors()) with every message it held, none of which left, and a request that times out
// meanwhile can be taken back (withdraw) — so the client may send those elsewhere even when
// repeating is unsafe. A connection lost later is reported too (with nothing unsent): the answers
// still awaited on it cannot come. The client's own timeouts and failover take the rest from
// there, and the next send connects again. Each local address
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
   * waiting for a TLS handshake that never completed (the same objects send() was given) — and
   * the local address whose connection it was (clients sharing a transport each have their own).
   */
  onError?: (error: Error, address: string, undelivered: readonly unknown[], from: string) => void;
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
  private readonly maxWriteQueueBytes: number;
  private readonly handlers = new Map<string, MessageHandler>();
  private readonly links = new Map<string, { from: string; link: FramedSocket }>();
  /** Per connection whose TLS handshake has not completed: the messages sent to it so far, encoded, none written yet. */
  private readonly held = new Map<FramedSocket, { messages: { message: unknown; payload: Buffer }[]; bytes: number }>();
  private readonly sessions = new Map<string, Buffer>();
  private readonly recent: ConnectionFailure[] = [];
  private closed = false;

  constructor(private readonly options: ClientTransportOptions) {
    this.logger = options.logger ?? silentLogger;
    this.maxWriteQueueBytes = options.maxWriteQueueBytes ?? 32 * 1024 * 1024;
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
    const held = this.held.get(link);
    if (held === undefined) {
      if (!link.sendMessage(message)) this.stats.undeliverable++;
      return;
    }
    const payload = link.encodeMessage(message);
    if (payload === null) {
      this.stats.undeliverable++;
      return;
    }
    held.messages.push({ message, payload });
    held.bytes += payload.length;
    // An HSM that accepts TCP and never finishes the handshake must not grow this without bound.
    if (held.bytes > this.maxWriteQueueBytes) {
      this.stats.connectFailures++;
      link.close("HANDSHAKE_BACKLOG", `${held.bytes} bytes wait for a TLS handshake that does not complete`);
    }
  }

  /** Takes back a message still held for a handshake (it will never be written): true if it was. */
  withdraw(from: string, to: string, message: unknown): boolean {
    const link = this.links.get(`${from}\n${to}`)?.link;
    const held = link === undefined ? undefined : this.held.get(link);
    const index = held?.messages.findIndex((h) => h.message === message) ?? -1;
    if (held === undefined || index < 0) return false;
    held.bytes -= held.messages[index].payload.length;
    held.messages.splice(index, 1);
    return true;
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
    let socket: tls.TLSSocket;
    try {
      options = { ...this.options.tls.connect(to) };
      const session = this.options.resumeSessions === false ? undefined : this.sessions.get(to);
      if (session) options.session = session;
      socket = tls.connect(options); // throws at once on a client key that does not match its certificate
    } catch (e) {
      this.stats.undeliverable++;
      this.fail(from, to, e, [message]);
      return null;
    }
    this.stats.connects++;
    let secured = false;
    const timeoutMs = this.options.connectTimeoutMs ?? 5_000;
    // A deadline of its own: socket.setTimeout counts writes as activity, and would let a handshake run twice as long.
    const handshakeTimer = setTimeout(() => {
      if (secured) return;
      const error = Object.assign(new Error(`no TLS handshake with ${to} within ${timeoutMs} ms`), { code: "ETIMEDOUT" });
      socket.destroy(error);
    }, timeoutMs);
    handshakeTimer.unref();
    let answered = false, failed = false;
    socket.once("secureConnect", () => {
      secured = true;
      clearTimeout(handshakeTimer);
      // From here on what is written may arrive: the held messages go out, in the order they were sent.
      const held = this.held.get(link);
      this.held.delete(link);
      for (const { payload } of held?.messages ?? []) if (!link.sendEncoded(payload, true)) this.stats.undeliverable++;
    });
    socket.once("data", () => { answered = true; });
    socket.on("session", (ticket: Buffer) => this.sessions.set(to, ticket));
    socket.once("error", (error: Error & { code?: string }) => {
      failed = true;
      // After the handshake: a TLS alert (TLS 1.3: the HSM refusing this client's certificate) keeps its own
      // description; a reset before any answer most likely means the same refusal; one after answers is a
      // connection that worked, lost (an HSM killed with bytes unread), not a failure to connect.
      if (secured && !String(error.code ?? "").startsWith("ERR_SSL")) {
        const lost = answered
          ? new TransportError("CONNECTION_LOST", `connection to the HSM at ${to} lost (${error.code ?? error.message})`)
          : closedAfterHandshakeError({ address: to, presentedClientCertificate: options.cert !== undefined });
        this.fail(from, to, lost, []);
        return;
      }
      this.stats.connectFailures++;
      this.sessions.delete(to);
      this.fail(from, to, error, this.takeHeld(link));
    });
    const link: FramedSocket = new FramedSocket(socket, {
      label: `hsm ${to}`, expectHello: false, accepts: "res", maxWriteQueueBytes: this.maxWriteQueueBytes,
      logger: this.logger, stats: this.stats,
      onMessage: (message) => this.handlers.get(from)?.(to, message),
      onClose: (reason) => {
        if (this.links.get(key)?.link === link) this.links.delete(key);
        clearTimeout(handshakeTimer);
        const unsent = this.takeHeld(link);
        if (failed || this.closed || !this.handlers.has(from)) return; // reported already, or closed by this side's close/detach
        // TLS 1.3: the HSM checks a client certificate after the client's handshake is done, and
        // may close without an alert node reports: say what that most likely means.
        if (reason === CLOSED_BY_PEER && secured && !answered) {
          this.fail(from, to, closedAfterHandshakeError({ address: to, presentedClientCertificate: options.cert !== undefined }), []);
        } else if (secured) {
          // Answers come back on the connection their request went out on: none waiting on this one can arrive now.
          this.fail(from, to, new TransportError("CONNECTION_LOST", `connection to the HSM at ${to} closed (${reason})`), []);
        } else {
          // Closed (by the peer, or dropped here) before the handshake completed: nothing written reached the HSM.
          this.fail(from, to, new TransportError("CONNECTION_FAILED", `connection to the HSM at ${to} closed before its TLS handshake completed (${reason})`), unsent);
        }
      },
    });
    this.links.set(key, { from, link });
    this.held.set(link, { messages: [], bytes: 0 });
    link.sendHello({ role: "client" }); // written now: node holds it until the handshake, and it carries no request
    return link;
  }

  private takeHeld(link: FramedSocket): unknown[] {
    const held = this.held.get(link);
    this.held.delete(link);
    return held?.messages.map((h) => h.message) ?? [];
  }

  private fail(from: string, address: string, cause: unknown, undelivered: readonly unknown[]): void {
    const error = this.describe(cause, address);
    this.recent.push({ address, error, atMs: Date.now() });
    if (this.recent.length > RECENT_ERRORS) this.recent.shift();
    this.logger.warn({ hsm: address, code: (error as { code?: string }).code }, error.message);
    try {
      this.options.onError?.(error, address, undelivered, from);
    } catch (e) {
      this.logger.error({ err: String(e) }, "onError threw");
    }
  }

  private describe(cause: unknown, address: string): Error {
    if (cause instanceof TransportError) return cause; // this transport's own words: nothing TLS said to translate
    if (this.options.tls.describeError) {
      try {
        return this.options.tls.describeError(cause, address);
      } catch {
        // fall through to the plain description
      }
    }
    const code = String((cause as { code?: unknown })?.code ?? "");
    const text = cause instanceof Error ? cause.message : String(cause);
    return new TransportError("CONNECTION_FAILED", `connection to the HSM at ${address} failed: ${text}${code ? ` (${code})` : ""}`);
  }
}

freezeClass(ClientTransport);
