// Frame payloads in MessagePack (msgpackr), set up for input from a hostile peer: maps decode
// to plain objects (msgpackr renames a `__proto__` key, so no prototype is ever set from the
// wire), no records or structured-clone references, binary decodes to a Buffer of its own
// (never a view into the socket's chunk), and whatever the decoder still builds from its
// extension types (Date, Set, RegExp, Error, BigInt, most typed arrays…) is refused afterwards: a
// payload must be plain data — null, booleans, numbers, strings, Buffers (and Uint8Arrays),
// Float64Arrays (a call's mechanism travels as one: [type, hasParameter, a, b, c], see
// src/pkcs11/mechanism.ts), arrays and plain objects — within a depth limit. Everything else
// closes the connection.
import { Packr, Unpackr } from "msgpackr";

import { FrameError } from "./frame.js";

// moreTypes: typed arrays travel as their own type (a Float64Array arrives as one, not as bytes).
const packr = new Packr({ useRecords: false, structuredClone: false, moreTypes: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false, copyBuffers: true });

/** Deeper than any protocol message (a call's template of mechanism parameters is about 8 levels). */
export const MAX_DEPTH = 32;

export function encodePayload(value: unknown): Buffer {
  return packr.pack(value);
}

/** The value in `payload`, checked to be plain data; FrameError BAD_PAYLOAD otherwise. */
export function decodePayload(payload: Buffer): unknown {
  let value: unknown;
  try {
    value = unpackr.unpack(payload);
  } catch (e) {
    throw new FrameError("BAD_PAYLOAD", `undecodable MessagePack: ${e instanceof Error ? e.message : String(e)}`);
  }
  const problem = notPlainData(value);
  if (problem !== null) throw new FrameError("BAD_PAYLOAD", problem);
  return value;
}

const OBJECT_PROTOTYPE = Object.prototype;

const isLeaf = (v: unknown): boolean => v === null || v === undefined || typeof v === "string" || typeof v === "number" || typeof v === "boolean";

/**
 * Why `root` is not plain data, or null when it is. Iterative, so a deep value cannot overflow
 * the stack here; leaves are checked where they stand, never stacked, so a frame of millions of
 * small values costs about what decoding it did (not seconds of the HSM's event loop).
 */
export function notPlainData(root: unknown): string | null {
  const values: unknown[] = [root];
  const depths: number[] = [0];
  while (values.length > 0) {
    const value = values.pop();
    const depth = depths.pop()!;
    if (isLeaf(value)) continue;
    const type = typeof value;
    if (type !== "object") return `a ${type} value`;
    if (depth >= MAX_DEPTH) return `nested deeper than ${MAX_DEPTH}`;
    if (Buffer.isBuffer(value)) continue;
    if (ArrayBuffer.isView(value)) {
      const prototype = Object.getPrototypeOf(value);
      if (prototype === Uint8Array.prototype || prototype === Float64Array.prototype) continue;
      return `a ${String((value as object).constructor?.name ?? "typed array")}`;
    }
    if (Array.isArray(value)) {
      if (Object.getPrototypeOf(value) !== Array.prototype) return "an array with a foreign prototype";
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i];
        if (isLeaf(item)) continue;
        values.push(item);
        depths.push(depth + 1);
      }
      continue;
    }
    const prototype = Object.getPrototypeOf(value);
    if (prototype !== OBJECT_PROTOTYPE && prototype !== null) return `an instance of ${String((value as object).constructor?.name ?? "a class")}`;
    for (const key of Object.keys(value as object)) {
      const item = (value as Record<string, unknown>)[key];
      if (isLeaf(item)) continue;
      values.push(item);
      depths.push(depth + 1);
    }
  }
  return null;
}
