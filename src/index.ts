// hsmsim public exports.
import { PKCS11 } from "./pkcs11/pkcs11.js";

export * from "./pkcs11/index.js";
export * from "./hsm/index.js";
export * from "./cluster/index.js";
export * from "./client/index.js";
export * from "./sim/index.js";

/** A PKCS11 with `target` loaded, e.g. load('memory:'); call C_Initialize() next, as with pkcs11js. */
export function load(target: string): PKCS11 {
  return new PKCS11(target);
}
