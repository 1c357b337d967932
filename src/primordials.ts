// Built-ins captured when the package loads ("primordials", as Node's own library does), for
// the device's internal paths: a bound function keeps the method it was bound to, so code
// that later replaces Object.freeze or WeakMap.prototype.get (an application in the same
// process) does not see the Hsm, an Actor's credential or the Hsm's internals pass by.
// This is a same-realm defence only: see the README's threat model for what it does not cover.
const { bind, call } = Function.prototype;
const uncurryThis = bind.bind(call) as <T, A extends unknown[], R>(fn: (this: T, ...args: A) => R) => (self: T, ...args: A) => R;

export const ObjectFreeze = Object.freeze;
export const WeakMapGet = uncurryThis(WeakMap.prototype.get) as <K extends object, V>(map: WeakMap<K, V>, key: K) => V | undefined;
export const WeakMapSet = uncurryThis(WeakMap.prototype.set) as <K extends object, V>(map: WeakMap<K, V>, key: K, value: V) => WeakMap<K, V>;
export const WeakMapHas = uncurryThis(WeakMap.prototype.has) as <K extends object>(map: WeakMap<K, unknown>, key: K) => boolean;
export const WeakMapDelete = uncurryThis(WeakMap.prototype.delete) as <K extends object>(map: WeakMap<K, unknown>, key: K) => boolean;
export const MapGet = uncurryThis(Map.prototype.get) as <K, V>(map: Map<K, V>, key: K) => V | undefined;
export const MapSet = uncurryThis(Map.prototype.set) as <K, V>(map: Map<K, V>, key: K, value: V) => Map<K, V>;
export const MapDelete = uncurryThis(Map.prototype.delete) as <K>(map: Map<K, unknown>, key: K) => boolean;
export const SetHas = uncurryThis(Set.prototype.has) as <T>(set: Set<T>, value: T) => boolean;
export const StringIndexOf = uncurryThis(String.prototype.indexOf) as (s: string, search: string) => number;
export const StringSlice = uncurryThis(String.prototype.slice) as (s: string, start?: number, end?: number) => string;
export const StringToLowerCase = uncurryThis(String.prototype.toLowerCase) as (s: string) => string;
export const BufferToString = uncurryThis(Buffer.prototype.toString) as (b: Buffer, encoding?: BufferEncoding) => string;
const bufferFrom = Buffer.from;
export const BufferFromString = (s: string): Buffer => (bufferFrom as (s: string, e: BufferEncoding) => Buffer)(s, "utf8");
export const BufferCopy = (b: Buffer): Buffer => (bufferFrom as (b: Buffer) => Buffer)(b);
export const BufferEquals = uncurryThis(Buffer.prototype.equals) as (a: Buffer, b: Uint8Array) => boolean;

/**
 * Freezes an exported class: its prototype (so no one patches a method every instance shares),
 * the constructor's own statics, and the prototype chain up to (not including) the built-in base.
 */
export function freezeClass(constructor: Function): void {
  for (let proto = constructor.prototype; proto && proto !== Object.prototype && proto !== Error.prototype; proto = Object.getPrototypeOf(proto)) {
    ObjectFreeze(proto);
    ObjectFreeze(proto.constructor);
  }
}
