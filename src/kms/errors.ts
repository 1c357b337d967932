// KMS's errors, in AWS's wire shape: `name` is the exception's AWS name (what the SDK raises as a
// class: NotFoundException, KMSInvalidStateException, …), `httpStatus` the status AWS answers it
// with. One class for every failure of the KMS layer; the server turns it into
// `{"__type": name, "message": …}`. Anything thrown that is not a KmsError reaches the caller as
// KMSInternalException (500), never as a crash.
import { freezeClass } from "../primordials.js";

/** Every exception the endpoint answers with, and its HTTP status. */
export const KMS_EXCEPTIONS = Object.freeze({
  // Protocol, authentication, throttling (every AWS JSON service).
  AccessDeniedException: 400,
  IncompleteSignatureException: 400,
  InvalidSignatureException: 400,
  MissingAuthenticationTokenException: 403,
  UnrecognizedClientException: 400,
  SerializationException: 400,
  ValidationException: 400,
  UnknownOperationException: 400,
  ThrottlingException: 400,
  RequestEntityTooLargeException: 413,
  // KMS's own.
  AlreadyExistsException: 400,
  CloudHsmClusterInUseException: 400,
  CloudHsmClusterInvalidConfigurationException: 400,
  CloudHsmClusterNotActiveException: 400,
  CloudHsmClusterNotFoundException: 400,
  CloudHsmClusterNotRelatedException: 400,
  CustomKeyStoreHasCMKsException: 400,
  CustomKeyStoreInvalidStateException: 400,
  CustomKeyStoreNameInUseException: 400,
  CustomKeyStoreNotFoundException: 400,
  DependencyTimeoutException: 503,
  DisabledException: 400,
  DryRunOperationException: 412,
  IncorrectKeyException: 400,
  IncorrectTrustAnchorException: 400,
  InvalidAliasNameException: 400,
  InvalidArnException: 400,
  InvalidCiphertextException: 400,
  InvalidGrantIdException: 400,
  InvalidGrantTokenException: 400,
  InvalidKeyUsageException: 400,
  InvalidMarkerException: 400,
  KeyUnavailableException: 500,
  KMSInternalException: 500,
  KMSInvalidMacException: 400,
  KMSInvalidSignatureException: 400,
  KMSInvalidStateException: 400,
  LimitExceededException: 400,
  MalformedPolicyDocumentException: 400,
  NotFoundException: 400,
  TagException: 400,
  UnsupportedOperationException: 400,
});

export type KmsExceptionName = keyof typeof KMS_EXCEPTIONS;

export class KmsError extends Error {
  /** The AWS exception name, as `name` (kept apart so a program can test it without string typos). */
  readonly code: KmsExceptionName;
  readonly httpStatus: number;

  constructor(code: KmsExceptionName, message: string) {
    super(message);
    this.name = code;
    this.code = code;
    this.httpStatus = KMS_EXCEPTIONS[code];
  }
}

/** Any failure as a KmsError: a KmsError as it is, anything else as KMSInternalException (its detail stays in the process). */
export function asKmsError(error: unknown): KmsError {
  return error instanceof KmsError ? error : new KmsError("KMSInternalException", "an internal error occurred; the request can be retried");
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(KmsError);
