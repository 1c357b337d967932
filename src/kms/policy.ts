// Key policies: the default policy, checking a policy document when it is put, and evaluating
// one for a request. There is no IAM here: a key policy statement that names an account (its
// root, or the bare account id) allows every principal of that account, as an IAM policy that
// allows everything would. Cross-account principals need a statement naming them (or their
// account) or a grant. An explicit Deny always wins. [helper: auth]
import type { Caller, KeyRecord } from "./types.js";

/** The policy CreateKey gives a key when none is given: the key's account has kms:* on it. */
export function defaultKeyPolicy(accountId: string): string {
  void accountId;
  throw new Error("not built yet");
}

/** A checked policy. Throws KmsError MalformedPolicyDocumentException with the reason. */
export interface ParsedPolicy {
  readonly text: string;
}
export function parsePolicy(text: string): ParsedPolicy {
  void text;
  throw new Error("not built yet");
}

/** What a request asks of a key, for policy and grant evaluation. */
export interface AccessRequest {
  caller: Caller;
  /** kms:Encrypt, kms:Decrypt, kms:CreateGrant, … */
  action: string;
  key: KeyRecord;
  /** The request's encryption context (crypto operations), for kms:EncryptionContext:* conditions and grant constraints. */
  encryptionContext?: Record<string, string>;
  /** The request's grant tokens. */
  grantTokens?: string[];
}

export type PolicyVerdict = "ALLOW" | "DENY" | "NONE";

/** What the key policy says of `request`: an explicit Deny, an Allow, or nothing. */
export function evaluatePolicy(policy: ParsedPolicy, request: AccessRequest): PolicyVerdict {
  void policy, request;
  throw new Error("not built yet");
}
