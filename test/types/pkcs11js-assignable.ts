// Type-level proof (checked by `npm run typecheck`, never run): an hsmsim PKCS11 is a
// pkcs11js PKCS11, so pkcs11js code and graphene-pk11 take it without a cast.
import * as graphene from "graphene-pk11";
import type * as pkcs11js from "pkcs11js";

import { PKCS11, load } from "../../src/index.js";

export const asPkcs11js: pkcs11js.PKCS11 = new PKCS11();
export const loaded: pkcs11js.PKCS11 = load("memory:");
export const grapheneModule = (): graphene.Module => new graphene.Module(load("memory:"));

// pkcs11js's mechanism parameter objects pass as they are.
export function encryptInit(p: PKCS11, session: pkcs11js.Handle, key: pkcs11js.Handle, parameter: pkcs11js.GcmParams): void {
  const mechanism: pkcs11js.Mechanism = { mechanism: 0x1087, parameter };
  p.C_EncryptInit(session, mechanism, key);
}
