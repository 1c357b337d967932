// The setup every tool, test and benchmark starts from: initialize the first free slot's
// token, let the SO set the user PIN, and log the user in on a R/W session. Takes any
// pkcs11js-shaped module, so the same code prepares SoftHSMv2 in the benchmark.
import { CKF_RW_SESSION, CKF_SERIAL_SESSION, CKU_SO, CKU_USER } from "./constants.js";
import type { Handle } from "./handles.js";
import type { PKCS11 } from "./pkcs11.js";

type Pkcs11Calls = Pick<PKCS11, "C_GetSlotList" | "C_InitToken" | "C_OpenSession" | "C_Login" | "C_InitPIN" | "C_Logout">;

export interface UserSessionOptions {
  soPin: string;
  userPin: string;
  label?: string;
}

/** Returns the initialized slot and a R/W session with the user logged in. Call C_Initialize first. */
export function openUserSession(pkcs11: Pkcs11Calls, options: UserSessionOptions): { slot: Handle; session: Handle } {
  const slot = pkcs11.C_GetSlotList(true)[0];
  pkcs11.C_InitToken(slot, options.soPin, options.label ?? "hsmsim");
  const session = pkcs11.C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION);
  pkcs11.C_Login(session, CKU_SO, options.soPin);
  pkcs11.C_InitPIN(session, options.userPin);
  pkcs11.C_Logout(session);
  pkcs11.C_Login(session, CKU_USER, options.userPin);
  return { slot, session };
}
