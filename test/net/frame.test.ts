// The framing: frames split over chunks and merged into one, and every refusal.
import { describe, expect, it } from "vitest";

import { FRAME_HELLO, FRAME_MESSAGE, FrameDecoder, FrameEncoder, FrameError, HEADER_BYTES, MAX_PAYLOAD_BYTES, WIRE_VERSION } from "../../src/net/frame.js";
import { MAX_CALL_BUFFER_BYTES } from "../../src/cluster/protocol.js";

function header(length: number, version: number, type: number, sequence: number): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  b.writeUInt32BE(length, 0);
  b.writeUInt8(version, 4);
  b.writeUInt8(type, 5);
  b.writeUInt32BE(sequence, 6);
  return b;
}

function refusal(bytes: Buffer[], decoder = new FrameDecoder()): string {
  try {
    for (const b of bytes) decoder.push(b);
  } catch (e) {
    expect(e).toBeInstanceOf(FrameError);
    return (e as FrameError).code;
  }
  return "accepted";
}

describe("frames", () => {
  const payloads = [Buffer.from("hello"), Buffer.alloc(0), Buffer.alloc(70_000, 7), Buffer.from([1, 2, 3])];
  const encoder = new FrameEncoder();
  const stream = Buffer.concat([encoder.encode(FRAME_HELLO, payloads[0]), ...payloads.slice(1).map((p) => encoder.encode(FRAME_MESSAGE, p))]);

  it("decodes frames merged into one chunk, in order, with sequences 0, 1, 2, …", () => {
    const frames = new FrameDecoder().push(stream);
    expect(frames.map((f) => [f.type, f.sequence])).toEqual([[FRAME_HELLO, 0], [FRAME_MESSAGE, 1], [FRAME_MESSAGE, 2], [FRAME_MESSAGE, 3]]);
    expect(frames.every((f, i) => f.payload.equals(payloads[i]))).toBe(true);
  });

  it("decodes the same stream split at every size, down to one byte per chunk", () => {
    for (const size of [1, 3, 9, 10, 11, 4096, 65_537]) {
      const decoder = new FrameDecoder();
      const frames = [];
      for (let i = 0; i < stream.length; i += size) frames.push(...decoder.push(stream.subarray(i, i + size)));
      expect(frames.length, `chunks of ${size}`).toBe(payloads.length);
      expect(frames.every((f, i) => f.payload.equals(payloads[i])), `chunks of ${size}`).toBe(true);
      expect(decoder.bufferedBytes).toBe(0);
    }
  });

  it("refuses an unknown version, an unknown type, a short or oversized length", () => {
    expect(refusal([header(6, WIRE_VERSION + 1, FRAME_MESSAGE, 0)])).toBe("UNKNOWN_VERSION");
    expect(refusal([header(6, 0, FRAME_MESSAGE, 0)])).toBe("UNKNOWN_VERSION");
    for (const type of [0, 3, 255]) expect(refusal([header(6, WIRE_VERSION, type, 0)])).toBe("UNKNOWN_TYPE");
    expect(refusal([header(5, WIRE_VERSION, FRAME_MESSAGE, 0)])).toBe("FRAME_TOO_SHORT");
    expect(refusal([header(0, WIRE_VERSION, FRAME_MESSAGE, 0)])).toBe("FRAME_TOO_SHORT");
    expect(refusal([header(6 + MAX_PAYLOAD_BYTES + 1, WIRE_VERSION, FRAME_MESSAGE, 0)])).toBe("FRAME_TOO_LARGE");
    expect(refusal([header(0xffff_ffff, WIRE_VERSION, FRAME_MESSAGE, 0)])).toBe("FRAME_TOO_LARGE");
    // The limit is the header's: nothing of the oversized body is buffered.
    const decoder = new FrameDecoder({ maxPayloadBytes: 100 });
    expect(refusal([header(6 + 101, WIRE_VERSION, FRAME_MESSAGE, 0)], decoder)).toBe("FRAME_TOO_LARGE");
    expect(decoder.bufferedBytes).toBe(0);
  });

  it("the frame limit holds the largest call buffer the node accepts, with room for the message around it", () => {
    expect(MAX_PAYLOAD_BYTES).toBeGreaterThan(MAX_CALL_BUFFER_BYTES);
    expect(() => new FrameEncoder().encode(FRAME_MESSAGE, Buffer.alloc(MAX_PAYLOAD_BYTES + 1))).toThrow(FrameError);
  });

  it("refuses a repeated, skipped or out-of-order sequence number", () => {
    const e = new FrameEncoder();
    const [f0, f1, f2] = [e.encode(FRAME_MESSAGE, Buffer.from("a")), e.encode(FRAME_MESSAGE, Buffer.from("b")), e.encode(FRAME_MESSAGE, Buffer.from("c"))];
    expect(refusal([f0, f1, f2])).toBe("accepted");
    expect(refusal([f0, f0])).toBe("OUT_OF_ORDER");
    expect(refusal([f0, f2])).toBe("OUT_OF_ORDER");
    expect(refusal([f1])).toBe("OUT_OF_ORDER");
    expect(refusal([f0, f2, f1])).toBe("OUT_OF_ORDER");
  });

  it("a decoder that refused stays dead (the connection must close)", () => {
    const decoder = new FrameDecoder();
    expect(refusal([header(6, 9, FRAME_MESSAGE, 0)], decoder)).toBe("UNKNOWN_VERSION");
    expect(() => decoder.push(new FrameEncoder().encode(FRAME_MESSAGE, Buffer.from("fine")))).toThrow(FrameError);
  });

  it("a truncated frame stays buffered, nothing is delivered until it completes", () => {
    const frame = new FrameEncoder().encode(FRAME_MESSAGE, Buffer.alloc(1000, 1));
    const decoder = new FrameDecoder();
    expect(decoder.push(frame.subarray(0, 999))).toEqual([]);
    expect(decoder.bufferedBytes).toBe(999);
    expect(decoder.push(frame.subarray(999))).toHaveLength(1);
  });
});
