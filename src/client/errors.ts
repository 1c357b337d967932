// The client's own failures (the network and the cluster's health, not an HSM's refusal):
// a stable `code` and a message that says what the client saw. Through the PKCS11 facade they
// surface as Pkcs11Error (CKR_FUNCTION_FAILED, CKR_DEVICE_REMOVED) with this text as `detail`.
import { freezeClass } from "../primordials.js";
import { CodedError } from "../coded-error.js";

export type ClientErrorCode =
  | "NO_REACHABLE_HSM" // no HSM of the list answers (see the message for NAT and load balancers)
  | "HSM_BUSY" // busy or lagging after every retry
  | "HSM_UNREACHABLE" // the HSM a session's operation lives on stopped answering
  | "OUTCOME_UNKNOWN" // a write got no answer: it may or may not have happened
  | "NO_CONNECTION" // the HSM does not know this client's sessions (it restarted)
  | "INVALID_ARGUMENT"
  | "INVALID_TARGET" // a cloudhsm:// target or connect() options that cannot work (the message says which part)
  | "CLOSED"; // the connection was closed

export class ClientError extends CodedError<ClientErrorCode> {
  constructor(code: ClientErrorCode, message: string) {
    super("ClientError", code, message);
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(ClientError);
