// How the cluster's failures become KMS's: a refused kmsuser login becomes a connection error
// code, a failing cluster or a missing backing key becomes KMSInvalidStateException, a tag that
// does not verify InvalidCiphertextException. Nothing raw (Pkcs11Error, ClientError, HsmError)
// leaves the custom key store module.
import { ClientError } from "../client/errors.js";
import { HsmError } from "../hsm/errors.js";
import * as C from "../pkcs11/constants.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import { KmsError } from "./errors.js";
import type { ConnectionErrorCode } from "./types.js";

/** A call on a cluster link after it was closed (its key store disconnected meanwhile). */
export class ClusterLinkClosedError extends Error {
  constructor() {
    super("the cluster link is closed (its custom key store was disconnected)");
    this.name = "ClusterLinkClosedError";
  }
}

/** The connection to the cluster is gone (closed here, or the HSMs no longer know its sessions), not a refusal. */
export function isConnectionGone(error: unknown): boolean {
  if (error instanceof ClusterLinkClosedError) return true;
  if (error instanceof ClientError) return error.code === "CLOSED" || error.code === "NO_CONNECTION";
  if (error instanceof Pkcs11Error) return error.code === C.CKR_SESSION_HANDLE_INVALID || error.code === C.CKR_SESSION_CLOSED || error.code === C.CKR_CRYPTOKI_NOT_INITIALIZED;
  return false;
}

/** What a key operation answers when its store's connection went away under it (a disconnection while the request was in flight). */
export function connectionGoneError(customKeyStoreId: string, code: "KMSInvalidStateException" | "CustomKeyStoreInvalidStateException"): KmsError {
  return new KmsError(code, code === "KMSInvalidStateException"
    ? `The KMS key is unavailable: its custom key store ${customKeyStoreId} was disconnected from its AWS CloudHSM cluster while the request was in flight; connect the key store and retry`
    : `Custom key store ${customKeyStoreId} was disconnected from its AWS CloudHSM cluster while the request was in flight; this operation needs it CONNECTED`);
}

/** The connection error code of a failed kmsuser login (or password rotation). */
export function loginFailureCode(error: unknown): ConnectionErrorCode {
  if (error instanceof Pkcs11Error) {
    switch (error.code) {
      // The HSM answers an unknown user exactly as a wrong password (it hides which accounts
      // exist), so a missing kmsuser shows as INVALID_CREDENTIALS here.
      case C.CKR_PIN_INCORRECT: return "INVALID_CREDENTIALS";
      case C.CKR_PIN_LOCKED: return "USER_LOCKED_OUT";
      case C.CKR_USER_ANOTHER_ALREADY_LOGGED_IN: return "USER_LOGGED_IN";
      // kmsuser exists but is not a crypto user (a CO of that name): there is no CU kmsuser.
      case C.CKR_USER_TYPE_INVALID: return "USER_NOT_FOUND";
      case C.CKR_USER_PIN_NOT_INITIALIZED: return "INSUFFICIENT_CLOUDHSM_HSMS"; // not activated: no HSM can serve
      case C.CKR_DEVICE_REMOVED: case C.CKR_FUNCTION_FAILED: case C.CKR_DEVICE_ERROR: return "NETWORK_ERRORS";
      default: return "INTERNAL_ERROR";
    }
  }
  if (error instanceof HsmError) {
    if (error.code === "LOGIN_FAILED") return "INVALID_CREDENTIALS";
    if (error.code === "ACCOUNT_LOCKED") return "USER_LOCKED_OUT";
    if (error.code === "USER_NOT_FOUND") return "USER_NOT_FOUND";
    return "INTERNAL_ERROR";
  }
  if (error instanceof ClientError) return error.code === "NO_REACHABLE_HSM" || error.code === "HSM_UNREACHABLE" || error.code === "HSM_BUSY" || error.code === "OUTCOME_UNKNOWN" ? "NETWORK_ERRORS" : "INTERNAL_ERROR";
  return "NETWORK_ERRORS";
}

/** True for a failure of the cluster itself (no HSM answers, the HSM went away), not a refusal. */
export function isClusterFailure(error: unknown): boolean {
  if (error instanceof ClientError) return true;
  if (error instanceof Pkcs11Error) return error.code === C.CKR_DEVICE_REMOVED || error.code === C.CKR_FUNCTION_FAILED || error.code === C.CKR_DEVICE_ERROR;
  return false;
}

/** A key operation's failure in the cluster, as KMS answers it. */
export function keyOperationError(error: unknown, operation: "encrypt" | "decrypt" | "generate" | "random" | "destroy"): KmsError {
  if (error instanceof KmsError) return error;
  if (error instanceof Pkcs11Error) {
    if (operation === "decrypt" && (error.code === C.CKR_ENCRYPTED_DATA_INVALID || error.code === C.CKR_ENCRYPTED_DATA_LEN_RANGE)) {
      return new KmsError("InvalidCiphertextException", "The ciphertext does not decrypt under this KMS key and encryption context");
    }
    if (error.code === C.CKR_KEY_HANDLE_INVALID || error.code === C.CKR_OBJECT_HANDLE_INVALID || error.code === C.CKR_KEY_FUNCTION_NOT_PERMITTED
      || error.code === C.CKR_KEY_TYPE_INCONSISTENT) {
      return new KmsError("KMSInvalidStateException",
        "The key material for this KMS key is not in its custom key store's AWS CloudHSM cluster: kmsuser no longer has its backing key (deleted, or no longer kmsuser's). The KMS key's state is unchanged; restore the backing key from a backup of the cluster to use it again");
    }
    if (error.code === C.CKR_USER_NOT_LOGGED_IN || error.code === C.CKR_PIN_INCORRECT || error.code === C.CKR_PIN_LOCKED) {
      return new KmsError("KMSInvalidStateException", "The custom key store's AWS CloudHSM cluster no longer accepts kmsuser's login (its password was changed or the account locked); disconnect and reconnect the key store");
    }
  }
  if (isConnectionGone(error)) {
    return new KmsError("KMSInvalidStateException",
      "The custom key store's connection to its AWS CloudHSM cluster is gone (closed by a disconnection, or its sessions lost with an HSM that restarted); retry, after connecting the key store if it is disconnected");
  }
  if (isClusterFailure(error)) {
    return new KmsError("KMSInvalidStateException",
      "The custom key store's AWS CloudHSM cluster could not serve the request (no active HSM answered); the key store stays connected and the request can be retried once an HSM is active");
  }
  return new KmsError("KMSInternalException", "The custom key store's AWS CloudHSM cluster failed the request; it can be retried");
}
