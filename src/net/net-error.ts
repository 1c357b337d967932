// The real-time layer's errors: certificates, TLS verification, addresses, the fault proxy.
// A stable `code` a program can test; the message names the address and the trust anchor.
import { freezeClass } from "../primordials.js";
import { CodedError } from "../coded-error.js";

export type NetErrorCode =
  | "INVALID_ARGUMENT"
  | "INVALID_ADDRESS" // not "host:port", or a bad host or port
  | "INVALID_CERTIFICATE" // a PEM that does not parse, a CA that is not a CA, a key that is not the certificate's
  | "UNTRUSTED_HSM_CERTIFICATE" // the HSM presented a certificate the trust anchor did not issue
  | "HSM_ADDRESS_MISMATCH" // the HSM's certificate is for another address
  | "HSM_CERTIFICATE_EXPIRED" // or not yet valid
  | "CLIENT_CERTIFICATE_REQUIRED" // mutual TLS is enforced and the client presented no certificate
  | "CLIENT_CERTIFICATE_REJECTED" // the client's certificate is not from the registered client trust anchor (or expired)
  | "TLS_HANDSHAKE_FAILED" // any other TLS failure
  | "CONNECTION_FAILED"; // refused, reset, unreachable, timed out

export class NetError extends CodedError<NetErrorCode> {
  constructor(code: NetErrorCode, message: string) {
    super("NetError", code, message);
  }
}

/** TLS verification failures (a NetError, so `instanceof NetError` catches both). */
export class TlsError extends NetError {
  constructor(code: NetErrorCode, message: string) {
    super(code, message);
    this.name = "TlsError";
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(NetError);
freezeClass(TlsError);
