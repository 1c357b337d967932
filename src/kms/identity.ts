// Who may call the endpoint: the configured access keys, each mapped to an account and a
// principal ARN (there is no IAM here: an access key names its principal directly).
// Every field is validated with a message naming it; a set with a repeated access key id is
// refused (two secrets for one key id would make the principal depend on lookup order).
import { freezeClass } from "../primordials.js";
import type { KmsCredential } from "./types.js";

const ACCESS_KEY_ID = /^[A-Z0-9]{16,128}$/;
const ACCOUNT_ID = /^[0-9]{12}$/;
// IAM user names: 1–64 of [\w+=,.@-]; a user may sit under a path (user/path/NAME).
const PRINCIPAL_ARN = /^arn:aws:iam::([0-9]{12}):(root|user\/(?:[\w+=,.@-]+\/)*[\w+=,.@-]{1,64})$/;

/** `credential` checked field by field; throws an Error naming the first bad field (configuration errors, not requests). */
function validated(credential: KmsCredential, index: number): KmsCredential {
  const where = `credentials[${index}]`;
  if (credential === null || typeof credential !== "object") throw new Error(`${where} must be an object`);
  const { accessKeyId, secretAccessKey, accountId, arn } = credential;
  if (typeof accessKeyId !== "string" || !ACCESS_KEY_ID.test(accessKeyId)) {
    throw new Error(`${where}.accessKeyId must be 16–128 characters of A–Z and 0–9`);
  }
  // The secret is never echoed, not even in part.
  if (typeof secretAccessKey !== "string" || secretAccessKey.length < 16 || secretAccessKey.length > 128 || !/^[\x21-\x7e]+$/.test(secretAccessKey)) {
    throw new Error(`${where}.secretAccessKey must be 16–128 printable characters without spaces`);
  }
  if (typeof accountId !== "string" || !ACCOUNT_ID.test(accountId)) throw new Error(`${where}.accountId must be 12 digits`);
  const match = typeof arn === "string" ? PRINCIPAL_ARN.exec(arn) : null;
  if (!match) throw new Error(`${where}.arn must be arn:aws:iam::ACCOUNT:root or arn:aws:iam::ACCOUNT:user/NAME`);
  if (match[1] !== accountId) throw new Error(`${where}.arn names account ${match[1]}, not its accountId ${accountId}`);
  return Object.freeze({ accessKeyId, secretAccessKey, accountId, arn });
}

export class CredentialSet {
  readonly #byAccessKeyId = new Map<string, KmsCredential>();

  constructor(credentials: readonly KmsCredential[]) {
    if (!Array.isArray(credentials)) throw new Error("credentials must be an array");
    credentials.forEach((credential, index) => {
      const checked = validated(credential, index);
      if (this.#byAccessKeyId.has(checked.accessKeyId)) throw new Error(`credentials[${index}].accessKeyId ${checked.accessKeyId} is configured twice`);
      this.#byAccessKeyId.set(checked.accessKeyId, checked);
    });
  }

  /** The credential of `accessKeyId`, or undefined. */
  find(accessKeyId: string): KmsCredential | undefined {
    return this.#byAccessKeyId.get(accessKeyId);
  }

  /** How many access keys are configured. */
  get size(): number {
    return this.#byAccessKeyId.size;
  }
}

/** The user name an IAM principal ARN names (its last path segment), or null for an account's root. */
export function userNameOf(arn: string): string | null {
  const match = PRINCIPAL_ARN.exec(arn);
  if (!match || match[2] === "root") return null;
  return match[2].slice(match[2].lastIndexOf("/") + 1);
}

const KEY_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** `length` characters of `alphabet` (a power-of-two size, so each byte maps without bias). */
function drawn(randomBytes: (n: number) => Buffer, alphabet: string, length: number): string {
  const bytes = randomBytes(length);
  if (!Buffer.isBuffer(bytes) || bytes.length < length) throw new Error(`randomBytes(${length}) must return ${length} bytes`);
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[bytes[i] % alphabet.length];
  return out;
}

/**
 * The embedded defaults (for `npm start` and `hsmsim up --kms` when no credentials file exists):
 * two accounts, a key owner (111122223333) and a SaaS provider (444455556666), each with an IAM
 * user and its root; secrets drawn from `randomBytes` (the caller's randomness).
 */
export function defaultCredentials(randomBytes: (n: number) => Buffer): KmsCredential[] {
  const principals: [accountId: string, arn: string][] = [
    ["111122223333", "arn:aws:iam::111122223333:user/alice"],
    ["111122223333", "arn:aws:iam::111122223333:root"],
    ["444455556666", "arn:aws:iam::444455556666:user/saas"],
    ["444455556666", "arn:aws:iam::444455556666:root"],
  ];
  const credentials = principals.map(([accountId, arn]) => ({
    // AKIA and 16 characters: the shape of an IAM user's long-term access key id.
    accessKeyId: `AKIA${drawn(randomBytes, KEY_ID_ALPHABET, 16)}`,
    secretAccessKey: drawn(randomBytes, SECRET_ALPHABET, 40),
    accountId,
    arn,
  }));
  new CredentialSet(credentials); // refuses the (astronomically unlikely, or a broken randomBytes's) repeated key id
  return credentials;
}

freezeClass(CredentialSet);
