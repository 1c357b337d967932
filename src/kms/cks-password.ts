// What the fleet seals for a custom key store: kmsuser's password, and during a rotation the
// password it is being changed to. The rotation records `next` before it changes the password in
// the cluster and `current: next` after, so a process that stops (or a connection cancelled)
// between the two still knows one password that logs in.
import { KmsError } from "./errors.js";
import type { Fleet } from "./fleet.js";
import type { CustomKeyStoreRecord } from "./types.js";

export interface KmsuserPasswords {
  /** The password KMS logs kmsuser in with. */
  current: string;
  /** Set while a rotation is under way: the password kmsuser may have in the cluster already. */
  next?: string;
}

/**
 * 0xFF never occurs in UTF-8, so it cannot start a password sealed in the first format (the
 * password's bytes alone); the byte after it is the format's version.
 */
const MARKER = 0xff;
const VERSION = 1;

function corrupt(): KmsError {
  return new KmsError("KMSInternalException", "The custom key store's sealed kmsuser password record is not in a format this KMS reads");
}

/** The bytes to seal: marker, version, then JSON {current, next?}. The caller zeroes them once sealed. */
export function encodePasswords(passwords: KmsuserPasswords): Buffer {
  const body = JSON.stringify(passwords.next === undefined ? { current: passwords.current } : { current: passwords.current, next: passwords.next });
  return Buffer.concat([Buffer.from([MARKER, VERSION]), Buffer.from(body, "utf8")]);
}

/** The passwords in unsealed bytes: the current format, or the first one (the password alone). */
export function decodePasswords(bytes: Buffer): KmsuserPasswords {
  if (bytes.length === 0 || bytes[0] !== MARKER) return { current: bytes.toString("utf8") };
  if (bytes.length < 2 || bytes[1] !== VERSION) throw corrupt();
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.subarray(2).toString("utf8"));
  } catch {
    throw corrupt();
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw corrupt();
  const { current, next } = parsed as Record<string, unknown>;
  if (typeof current !== "string" || current === "") throw corrupt();
  if (next === undefined) return { current };
  if (typeof next !== "string" || next === "") throw corrupt();
  return { current, next };
}

/** The fleet seals each store's kmsuser password for that store alone: a sealed blob moved to another row does not open. */
function passwordPurpose(customKeyStoreId: string): string {
  return `kms/custom-key-store/${customKeyStoreId}/kmsuser-password`;
}

/** The passwords sealed by the fleet for store `customKeyStoreId` (the plain bytes zeroed at once). */
export function sealPasswords(fleet: Pick<Fleet, "seal">, customKeyStoreId: string, passwords: KmsuserPasswords): Buffer {
  const bytes = encodePasswords(passwords);
  try {
    return fleet.seal(bytes, passwordPurpose(customKeyStoreId));
  } finally {
    bytes.fill(0);
  }
}

/** A store record's passwords, unsealed. */
export function openPasswords(fleet: Pick<Fleet, "unseal">, record: CustomKeyStoreRecord): KmsuserPasswords {
  const bytes = fleet.unseal(record.sealedPassword, passwordPurpose(record.customKeyStoreId));
  try {
    return decodePasswords(bytes);
  } finally {
    bytes.fill(0);
  }
}
