// Who may call the endpoint: the configured access keys, each mapped to an account and a
// principal ARN (there is no IAM here: an access key names its principal directly).
// [helper: wire] Validate every field with a message naming it (accessKeyId 16–128 [A-Z0-9],
// secret 16–128 chars, accountId 12 digits, arn of the account's root or an IAM user of it).
import type { KmsCredential } from "./types.js";

export class CredentialSet {
  constructor(credentials: readonly KmsCredential[]) {
    void credentials;
    throw new Error("not built yet");
  }
  /** The credential of `accessKeyId`, or undefined. */
  find(accessKeyId: string): KmsCredential | undefined {
    void accessKeyId;
    throw new Error("not built yet");
  }
}

/**
 * The embedded defaults (for `npm start` and `hsmsim up --kms` when no credentials file exists):
 * two accounts, a key owner (111122223333) and a SaaS provider (444455556666), each with an IAM
 * user and its root; secrets drawn from `randomBytes` (the caller's randomness).
 */
export function defaultCredentials(randomBytes: (n: number) => Buffer): KmsCredential[] {
  void randomBytes;
  throw new Error("not built yet");
}
