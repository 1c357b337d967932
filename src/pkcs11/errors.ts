// The one typed error of the PKCS#11 layers, shaped as pkcs11js's: `message` is the CKR
// name, `code` its number, `method` the C_ function that failed.
import * as C from "./constants.js";

const namesByCode = new Map<number, string>();
for (const [name, value] of Object.entries(C)) {
  if (name.startsWith("CKR_") && typeof value === "number" && !namesByCode.has(value)) namesByCode.set(value, name);
}

/** The CKR_ name of a return value, or `CKR_0x…` for values the standard does not name. */
export function ckrName(code: number): string {
  return namesByCode.get(code) ?? `CKR_0x${code.toString(16).toUpperCase()}`;
}

export class Pkcs11Error extends Error {
  readonly code: number;
  readonly method: string;
  readonly nativeStack = "";
  /** Why, in words, when the layer that failed knows more than the code says (the cluster client). */
  readonly detail?: string;

  constructor(code: number, method: string, detail?: string) {
    super(ckrName(code));
    this.name = "Pkcs11Error";
    this.code = code;
    this.method = method;
    if (detail !== undefined) this.detail = detail;
  }
}
