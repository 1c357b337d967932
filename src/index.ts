// hsmsim public exports.
import type { CallLogOptions } from "./pkcs11/call-log.js";
import { PKCS11 } from "./pkcs11/pkcs11.js";

export * from "./pkcs11/index.js";
export * from "./hsm/index.js";
export * from "./cluster/index.js";
export * from "./client/index.js";
export * from "./sim/index.js";
export * from "./sizing/index.js";
export * from "./kms/index.js";

/**
 * A PKCS11 with `target` loaded, e.g. load('memory:'); call C_Initialize() next, as with pkcs11js.
 * `options.log` logs every PKCS#11 call (see PKCS11.load).
 */
export function load(target: string, options?: CallLogOptions): PKCS11 {
  return new PKCS11(target, options);
}
