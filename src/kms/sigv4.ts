// SigV4 verification of incoming requests with the AWS SDK's own signer (@smithy/signature-v4):
// the request is re-signed with the stored secret over the headers it says it signed, and the
// two signatures are compared in constant time. [helper: wire]
import type { CredentialSet } from "./identity.js";
import type { KmsCredential } from "./types.js";

/** An incoming HTTP request as the server read it. */
export interface SignedRequest {
  method: string;
  /** The path with its query string, as sent. */
  path: string;
  /** Header names lower-case; repeated headers joined with ",". */
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * The credential whose secret signed `request`, or a KmsError: MissingAuthenticationTokenException
 * (no Authorization), IncompleteSignatureException (malformed), UnrecognizedClientException
 * (unknown access key), InvalidSignatureException (wrong signature, wrong region or service in
 * the scope, or X-Amz-Date more than 5 minutes from `nowMs`: "Signature expired").
 */
export async function verifyRequest(request: SignedRequest, credentials: CredentialSet, region: string, nowMs: number): Promise<KmsCredential> {
  void request, credentials, region, nowMs;
  throw new Error("not built yet");
}
