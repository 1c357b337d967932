// The facade's argument checks and callback adapters: every argument is checked at the edge,
// with a message naming it, before a backend sees it.
import { Buffer } from "node:buffer";

import { BufferFromString } from "../primordials.js";

export type Callback<T> = (error: Error | null, result: T | null) => void;

export function buf(value: unknown, name: string): Buffer {
  if (!Buffer.isBuffer(value)) throw new TypeError(`${name} must be a Buffer`);
  return value;
}
export function num(value: unknown, name: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) throw new TypeError(`${name} must be a non-negative integer`);
  return value;
}
export function pin(value: unknown, name: string): Buffer {
  if (value === undefined || value === null) return Buffer.alloc(0);
  if (typeof value === "string") return BufferFromString(value); // captured: a replaced Buffer.from does not see PINs
  if (Buffer.isBuffer(value)) return value;
  throw new TypeError(`${name} must be a string`);
}
export function callback<T>(cb: unknown): Callback<T> | undefined {
  if (cb === undefined) return undefined;
  if (typeof cb !== "function") throw new TypeError("callback must be a function");
  return cb as Callback<T>;
}
/** Adapts a native (err, value) callback to pkcs11js's, mapping the value. */
export function relay<N, T>(cb: Callback<T>, map: (value: N) => T) {
  return (error: Error | null, value?: N) => (error ? cb(error, null) : cb(null, map(value as N)));
}
export function promise<T>(start: (cb: Callback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => start((error, value) => (error ? reject(error) : resolve(value as T))));
}
