// The facade's hot calls, once their arguments are checked: one native method each, chosen by
// a switch (a computed property lookup on the backend would be megamorphic and cost more than
// the work on small inputs), with pkcs11js's output-buffer convention.
import { Buffer } from "node:buffer";

import type { NativeChip } from "./addon.js";
import * as C from "./constants.js";
import { Pkcs11Error } from "./errors.js";
import { type Callback, callback, relay } from "./facade-args.js";

export type InOutMethod = "C_Encrypt" | "C_EncryptUpdate" | "C_Decrypt" | "C_DecryptUpdate" | "C_Digest" | "C_Sign";
export type OutMethod = "C_EncryptFinal" | "C_DecryptFinal" | "C_DigestFinal" | "C_SignFinal";

/** A call that reads `inData` and writes into `outData`; with a callback, the answer arrives through it. */
export function callInOut(chip: NativeChip, method: InOutMethod, s: number, inData: Buffer, outData: Buffer, cb?: Callback<Buffer>): Buffer | void {
  if (cb !== undefined) {
    if (method === "C_EncryptUpdate" || method === "C_DecryptUpdate") throw new TypeError(`${method} has no callback form`);
    const done = relay(callback<Buffer>(cb)!, (n: number) => outData.subarray(0, n));
    return void (method === "C_Encrypt" ? chip.encrypt(s, inData, outData, done)
      : method === "C_Decrypt" ? chip.decrypt(s, inData, outData, done)
      : method === "C_Sign" ? chip.sign(s, inData, outData, done)
      : chip.digest(s, inData, outData, done));
  }
  let n: number;
  switch (method) {
    case "C_Encrypt": n = chip.encrypt(s, inData, outData); break;
    case "C_Decrypt": n = chip.decrypt(s, inData, outData); break;
    case "C_Sign": n = chip.sign(s, inData, outData); break;
    case "C_Digest": n = chip.digest(s, inData, outData); break;
    case "C_EncryptUpdate": n = chip.encryptUpdate(s, inData, outData); break;
    default: n = chip.decryptUpdate(s, inData, outData); break;
  }
  // A caller who sized the buffer exactly gets it back: the same bytes, no new view.
  return n === outData.length ? outData : outData.subarray(0, n);
}

/** A Final call that writes into `outData`. */
export function callOut(chip: NativeChip, method: OutMethod, s: number, outData: Buffer, cb?: Callback<Buffer>): Buffer | void {
  const done = cb === undefined ? undefined : relay(callback<Buffer>(cb)!, (n: number) => outData.subarray(0, n));
  let n: number;
  switch (method) {
    case "C_EncryptFinal": n = chip.encryptFinal(s, outData, done); break;
    case "C_DecryptFinal": n = chip.decryptFinal(s, outData, done); break;
    case "C_DigestFinal": n = chip.digestFinal(s, outData, done); break;
    default: n = chip.signFinal(s, outData, done); break;
  }
  return done ? undefined : outData.subarray(0, n);
}

/** CKR_FUNCTION_NOT_SUPPORTED as pkcs11js gives it: thrown, or through the callback when there is one. */
export function answerNotSupported(method: string, done: Callback<Buffer> | undefined): void {
  const error = new Pkcs11Error(C.CKR_FUNCTION_NOT_SUPPORTED, method);
  if (done === undefined) throw error;
  process.nextTick(done, error, null);
}
