// The wire's framing: every frame is `u32 length | u8 version | u8 type | u32 sequence | payload`
// (big-endian; `length` counts the bytes after itself). A connection's frames carry sequence
// numbers 0, 1, 2, … in each direction: an out-of-order, repeated or skipped frame is refused,
// so a replayed or spliced stream cannot pass. The decoder takes a byte stream in whatever
// chunks TCP/TLS delivers (a frame split over many, many frames in one) and refuses, before it
// buffers anything, a frame larger than the largest legitimate message.
import { freezeClass } from "../primordials.js";
import { CodedError } from "../coded-error.js";
import { MAX_CALL_BUFFER_BYTES } from "../cluster/protocol.js";

export const WIRE_VERSION = 1;

/** The first frame of the connecting side: who it is (a client, or an HSM with its cluster address). */
export const FRAME_HELLO = 1;
/** A protocol message (a request, an answer, a peer envelope). */
export const FRAME_MESSAGE = 2;
const FRAME_TYPES = new Set([FRAME_HELLO, FRAME_MESSAGE]);

/** The length field, then version, type and sequence. */
export const HEADER_BYTES = 4 + 1 + 1 + 4;
const AFTER_LENGTH_BYTES = HEADER_BYTES - 4;

/**
 * The largest payload: a request or answer carries at most one call buffer of
 * MAX_CALL_BUFFER_BYTES (16 MiB, the node refuses larger output lengths), and a peer push at
 * most 16 MiB of body (replication.ts); 1 MiB more leaves room for the message around it.
 */
export const MAX_PAYLOAD_BYTES = MAX_CALL_BUFFER_BYTES + 1024 * 1024;
const MAX_SEQUENCE = 0xffff_ffff;

export type FrameErrorCode =
  | "FRAME_TOO_LARGE" | "FRAME_TOO_SHORT" | "UNKNOWN_VERSION" | "UNKNOWN_TYPE" | "OUT_OF_ORDER" | "SEQUENCE_EXHAUSTED"
  | "HELLO_EXPECTED" | "UNEXPECTED_HELLO" | "BAD_PAYLOAD" | "BAD_MESSAGE" | "WRONG_DIRECTION"
  /** A hello claiming an HSM address the connection's certificate does not prove. */
  | "PEER_NOT_PROVEN"
  /** A client's hello past the connection limits (per remote IP, in all). */
  | "TOO_MANY_CONNECTIONS";

/** A frame refused: the connection it came on is closed with this reason. */
export class FrameError extends CodedError<FrameErrorCode> {
  constructor(code: FrameErrorCode, message: string) {
    super("FrameError", code, message);
  }
}

export interface Frame {
  type: number;
  sequence: number;
  payload: Buffer;
}

/** Numbers a connection's outgoing frames 0, 1, 2, … */
export class FrameEncoder {
  private next = 0;

  constructor(private readonly maxPayloadBytes = MAX_PAYLOAD_BYTES) {}

  encode(type: number, payload: Buffer): Buffer {
    if (payload.length > this.maxPayloadBytes) throw new FrameError("FRAME_TOO_LARGE", `a ${payload.length}-byte payload exceeds the ${this.maxPayloadBytes}-byte frame limit`);
    if (this.next > MAX_SEQUENCE) throw new FrameError("SEQUENCE_EXHAUSTED", "this connection has sent 2^32 frames: open a new one");
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    header.writeUInt32BE(AFTER_LENGTH_BYTES + payload.length, 0);
    header.writeUInt8(WIRE_VERSION, 4);
    header.writeUInt8(type, 5);
    header.writeUInt32BE(this.next++, 6);
    return Buffer.concat([header, payload]);
  }
}

export interface DecoderLimits {
  /** Largest payload accepted (default MAX_PAYLOAD_BYTES). */
  maxPayloadBytes?: number;
}

/**
 * Turns a byte stream into frames, checking each header as soon as its 10 bytes are in: the
 * version, the type, the length against the limit (so an oversized frame is refused before its
 * body is buffered) and the sequence number. After the first error the decoder is dead: the
 * connection must be closed.
 */
export class FrameDecoder {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private expected = 0;
  private failed: FrameError | null = null;
  private readonly maxPayloadBytes: number;

  constructor(limits: DecoderLimits = {}) {
    this.maxPayloadBytes = limits.maxPayloadBytes ?? MAX_PAYLOAD_BYTES;
  }

  /** Bytes held for a frame not yet complete. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** The frames `chunk` completes, in order; throws FrameError at the first bad one (frames before it are lost with the connection). */
  push(chunk: Buffer): Frame[] {
    if (this.failed) throw this.failed;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames: Frame[] = [];
    try {
      for (;;) {
        if (this.buffered < HEADER_BYTES) break;
        const header = this.peek(HEADER_BYTES);
        const length = header.readUInt32BE(0);
        this.checkHeader(length, header);
        if (this.buffered < 4 + length) break;
        const bytes = this.take(4 + length);
        this.expected++;
        frames.push({ type: header.readUInt8(5), sequence: header.readUInt32BE(6), payload: bytes.subarray(HEADER_BYTES) });
      }
    } catch (e) {
      this.failed = e instanceof FrameError ? e : new FrameError("BAD_PAYLOAD", String(e));
      this.chunks.length = 0;
      this.buffered = 0;
      throw this.failed;
    }
    return frames;
  }

  private checkHeader(length: number, header: Buffer): void {
    const version = header.readUInt8(4), type = header.readUInt8(5), sequence = header.readUInt32BE(6);
    if (version !== WIRE_VERSION) throw new FrameError("UNKNOWN_VERSION", `wire version ${version} (this side speaks ${WIRE_VERSION})`);
    if (!FRAME_TYPES.has(type)) throw new FrameError("UNKNOWN_TYPE", `frame type ${type}`);
    if (length < AFTER_LENGTH_BYTES) throw new FrameError("FRAME_TOO_SHORT", `frame length ${length} is shorter than its header`);
    if (length - AFTER_LENGTH_BYTES > this.maxPayloadBytes) throw new FrameError("FRAME_TOO_LARGE", `a ${length - AFTER_LENGTH_BYTES}-byte payload exceeds the ${this.maxPayloadBytes}-byte limit`);
    if (sequence !== this.expected) throw new FrameError("OUT_OF_ORDER", `frame ${sequence} where ${this.expected} was due`);
  }

  /** The first `n` buffered bytes, joined only as far as needed. */
  private peek(n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0];
    const joined = Buffer.concat(this.chunks);
    this.chunks.length = 0;
    this.chunks.push(joined);
    return joined;
  }

  private take(n: number): Buffer {
    const head = this.peek(n);
    const taken = head.subarray(0, n);
    if (head.length === n) this.chunks.shift();
    else this.chunks[0] = head.subarray(n);
    this.buffered -= n;
    return taken;
  }
}

freezeClass(FrameError);
freezeClass(FrameEncoder);
freezeClass(FrameDecoder);
