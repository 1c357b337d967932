// The device's management API fails with HsmError: a stable `code` a program can test, and
// a message for people. PKCS#11 calls keep failing with Pkcs11Error.
import { freezeClass } from "../primordials.js";
import { CodedError } from "../coded-error.js";

export type HsmErrorCode =
  | "NOT_ACTIVATED" // only PRECO's password change works before activation
  | "ALREADY_ACTIVATED"
  | "ACCESS_DENIED" // the acting user's role may not do this
  | "NOT_LOGGED_IN"
  | "LOGIN_FAILED" // wrong name or password
  | "ACCOUNT_LOCKED"
  | "USER_EXISTS"
  | "USER_NOT_FOUND"
  | "INVALID_USERNAME"
  | "INVALID_PASSWORD"
  | "QUOTA_EXCEEDED"
  | "KEY_NOT_FOUND"
  | "NOT_OWNER"
  | "INVALID_ARGUMENT"
  | "NOT_REPLICATED" // a cluster change not confirmed on keyAvailabilityMin HSMs in time (it stands where it was made)
  | "DATA_FOLDER_INVALID" // missing, damaged, tampered or foreign data folder
  | "DATA_FOLDER_IN_USE" // another Hsm (this process or another) holds the data folder
  | "CLOSED"; // the Hsm was closed

export class HsmError extends CodedError<HsmErrorCode> {
  constructor(code: HsmErrorCode, message: string) {
    super("HsmError", code, message);
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(HsmError);
