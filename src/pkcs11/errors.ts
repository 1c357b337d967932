// The one typed error of the PKCS#11 layers, shaped as pkcs11js's: `message` is the CKR
// name, `code` its number, `method` the C_ function that failed.
import { freezeClass } from "../primordials.js";
import * as C from "./constants.js";

const namesByCode = new Map<number, string>();
for (const [name, value] of Object.entries(C)) {
  if (name.startsWith("CKR_") && typeof value === "number" && !namesByCode.has(value)) namesByCode.set(value, name);
}

/** The CKR_ name of a return value, or `CKR_0x…` for values the standard does not name. */
export function ckrName(code: number): string {
  return namesByCode.get(code) ?? `CKR_0x${code.toString(16).toUpperCase()}`;
}

/**
 * pkcs11js's base error: a failure that is not a PKCS#11 return value, such as a call on a
 * PKCS11 with no module loaded. `Pkcs11Error` extends it, as in pkcs11js, so code that
 * catches `NativeError` catches both.
 */
export class NativeError extends Error {
  readonly method: string;
  readonly nativeStack = "";

  constructor(message = "", method = "") {
    super(message);
    this.name = "NativeError";
    this.method = method;
  }
}

/** What every call answers before `load(target)` or after `close()` (pkcs11js's message, plus the cure). */
export function notLoadedError(method: string): NativeError {
  return new NativeError("PKCS11 module not loaded yet: call load(target) first, e.g. load('memory:')", method);
}

export class Pkcs11Error extends NativeError {
  readonly code: number;
  /** Why, in words, when the layer that failed knows more than the code says (the cluster client). */
  readonly detail?: string;

  constructor(code: number, method: string, detail?: string) {
    super(ckrName(code), method);
    this.name = "Pkcs11Error";
    this.code = code;
    if (detail !== undefined) this.detail = detail;
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(NativeError);
freezeClass(Pkcs11Error);
