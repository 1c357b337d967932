// One TLS connection speaking the wire: outgoing frames numbered and written with a bounded
// write queue, incoming bytes decoded and every frame checked (header, sequence, hello first
// where one is due, payload decodable as plain data, message of the kind this side accepts).
// The first bad frame closes the connection with a logged, counted reason; nothing a peer
// sends makes a socket callback throw.
import type { TLSSocket } from "node:tls";

import { freezeClass } from "../primordials.js";
import { decodePayload, encodePayload } from "./codec.js";
import { FRAME_HELLO, FRAME_MESSAGE, FrameDecoder, FrameEncoder, FrameError } from "./frame.js";
import { type Accepts, type Hello, checkHello, checkMessage } from "./messages.js";
import type { WireLogger, WireStats } from "./wire-stats.js";

/** The reason onClose gets when the other side closed the connection (no error, no refusal here). */
export const CLOSED_BY_PEER = "closed by the other side";

export interface FramedSocketOptions {
  /** How the logs name this connection ("127.0.0.1:50000", "peer 127.0.0.3:2223 (outbound)"). */
  label: string;
  /** The other side must open with a hello frame (the accepting side of a connection). */
  expectHello: boolean;
  /** The messages the other side may send; null: none at all. */
  accepts: Accepts | null;
  /** Bytes waiting to be written beyond which the other side counts as not reading, and is dropped. */
  maxWriteQueueBytes: number;
  logger: WireLogger;
  stats: WireStats;
  /** The hello arrived (throw a FrameError to refuse it); it may return what the connection accepts from now on. */
  onHello?: (hello: Hello) => Accepts | void;
  onMessage: (message: unknown) => void;
  /** Called once, when the connection is gone for whatever reason. */
  onClose: (reason: string) => void;
  /** Bytes newly buffered (positive) or released (negative) by the decoder, for a budget across connections. */
  onBuffered?: (delta: number) => void;
  /**
   * A frame begun must be complete within this (absent: no limit): a peer that trickles a byte now
   * and then keeps the idle timeout from firing, but not this one (slowloris).
   */
  frameTimeoutMs?: number;
}

export class FramedSocket {
  private readonly encoder = new FrameEncoder();
  private readonly decoder = new FrameDecoder();
  private helloSeen = false;
  private closed = false;
  private buffered = 0;
  private frameTimer: NodeJS.Timeout | null = null;
  private accepts: Accepts | null;

  constructor(readonly socket: TLSSocket, private readonly options: FramedSocketOptions) {
    this.accepts = options.accepts;
    socket.setNoDelay(true); // a request or an answer goes out at once, not after Nagle's wait for an ACK
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("error", (error: Error & { code?: string }) => this.gone(`socket error: ${error.code ?? error.message}`));
    socket.on("close", () => this.gone(CLOSED_BY_PEER));
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  get helloReceived(): boolean {
    return this.helloSeen;
  }

  /** Writes a message; false if the connection is closed, or was just closed for not reading its queue. */
  sendMessage(message: unknown): boolean {
    const payload = this.encodeMessage(message);
    return payload !== null && this.sendEncoded(payload);
  }

  /** A message's payload for sendEncoded (held back until a handshake completes); null if it cannot be encoded. */
  encodeMessage(message: unknown): Buffer | null {
    try {
      return encodePayload(message);
    } catch (e) {
      // A value MessagePack cannot carry (a cycle, a function…): a bug of the sender, never thrown into its caller.
      this.options.stats.unsendable++;
      this.options.logger.error({ connection: this.options.label, err: String(e) }, "message not sent: it cannot be encoded");
      return null;
    }
  }

  /**
   * Writes a payload encodeMessage made; false as sendMessage. `held`: it waited for the handshake
   * under its own bound, and goes out whatever node still has to write (a flush of held messages
   * would otherwise trip the slow-reader check on its own writes and drop the rest).
   */
  sendEncoded(payload: Buffer, held = false): boolean {
    return this.send(FRAME_MESSAGE, payload, held);
  }

  sendHello(hello: Hello): boolean {
    return this.send(FRAME_HELLO, encodePayload(hello));
  }

  private send(type: number, payload: Buffer, held = false): boolean {
    if (this.closed) return false;
    if (!held && this.socket.writableLength > this.options.maxWriteQueueBytes) {
      this.options.stats.slowReaders++;
      this.close("SLOW_READER", `${this.socket.writableLength} bytes wait to be written: the other side does not read`, "warn");
      return false;
    }
    let frame: Buffer;
    try {
      frame = this.encoder.encode(type, payload);
    } catch (e) {
      // Too large to send, or sequence numbers exhausted: this message is dropped; for the latter the connection must go.
      const code = e instanceof FrameError ? e.code : "BAD_PAYLOAD";
      this.options.logger.warn({ connection: this.options.label, code }, `message not sent: ${String((e as Error).message)}`);
      this.options.stats.unsendable++;
      if (code === "SEQUENCE_EXHAUSTED") this.close(code, "sequence numbers exhausted", "info");
      return false;
    }
    this.socket.write(frame);
    this.options.stats.framesOut++;
    return true;
  }

  /** Closes the connection at once (pending writes are dropped): `code` is logged and counted. */
  close(code: string, detail: string, level: "info" | "warn" = "warn"): void {
    if (this.closed) return;
    this.options.logger[level]({ connection: this.options.label, code }, `connection closed: ${detail}`);
    this.socket.destroy();
    this.gone(`${code}: ${detail}`);
  }

  private gone(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.frameTimer !== null) clearTimeout(this.frameTimer);
    this.setBuffered(0);
    this.socket.destroy();
    try {
      this.options.onClose(reason);
    } catch (e) {
      this.options.logger.error({ connection: this.options.label, err: String(e) }, "close handler failed");
    }
  }

  private setBuffered(bytes: number): void {
    const delta = bytes - this.buffered;
    this.buffered = bytes;
    if (delta !== 0) this.options.onBuffered?.(delta);
    this.watchFrame(bytes > 0);
  }

  /** Starts the frame deadline when a frame is begun, ends it when none is pending. */
  private watchFrame(pending: boolean): void {
    const limitMs = this.options.frameTimeoutMs;
    if (limitMs === undefined || this.closed) return;
    if (!pending) {
      if (this.frameTimer !== null) clearTimeout(this.frameTimer);
      this.frameTimer = null;
      return;
    }
    if (this.frameTimer !== null) return;
    this.frameTimer = setTimeout(() => {
      this.frameTimer = null;
      this.options.stats.frameTimeouts++;
      this.close("FRAME_TIMEOUT", `a frame begun was not complete within ${limitMs} ms`);
    }, limitMs);
    this.frameTimer.unref();
  }

  private receive(chunk: Buffer): void {
    if (this.closed) return;
    try {
      const frames = this.decoder.push(chunk);
      if (frames.length > 0) this.watchFrame(false); // a frame completed: the next one gets its own deadline
      this.setBuffered(this.decoder.bufferedBytes);
      for (const frame of frames) {
        if (this.closed) return;
        this.options.stats.framesIn++;
        this.handle(frame.type, frame.payload);
      }
    } catch (e) {
      const error = e instanceof FrameError ? e : new FrameError("BAD_PAYLOAD", String(e));
      this.options.stats.badFrames[error.code] = (this.options.stats.badFrames[error.code] ?? 0) + 1;
      this.close(error.code, error.message);
    }
  }

  private handle(type: number, payload: Buffer): void {
    if (type === FRAME_HELLO) {
      if (!this.options.expectHello || this.helloSeen) throw new FrameError("UNEXPECTED_HELLO", "a hello where none is due");
      const hello = checkHello(decodePayload(payload));
      const accepts = this.options.onHello?.(hello);
      if (accepts !== undefined) this.accepts = accepts;
      this.helloSeen = true;
      return;
    }
    if (this.options.expectHello && !this.helloSeen) throw new FrameError("HELLO_EXPECTED", "a message before the hello");
    if (this.accepts === null) throw new FrameError("WRONG_DIRECTION", "a message on a connection that carries none this way");
    const message = decodePayload(payload);
    checkMessage(message, this.accepts);
    this.options.stats.messagesIn++;
    try {
      this.options.onMessage(message);
    } catch (e) {
      // The receiver's fault, not the sender's: logged, and the connection stays.
      this.options.stats.handlerErrors++;
      this.options.logger.error({ connection: this.options.label, err: String(e) }, "message handler threw");
    }
  }
}

freezeClass(FramedSocket);
