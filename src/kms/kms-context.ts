// What every operation shares: the parts of the endpoint, finding the key a request names (by
// id, ARN, alias or alias ARN; across accounts only where AWS allows it), the key-state rules,
// authorization through the key policy and grants, the deletion of keys whose waiting period
// is over, and KeyMetadata as AWS shows it.
import type { CustomKeyStores } from "./custom-key-stores.js";
import { KmsError } from "./errors.js";
import type { Fleet } from "./fleet.js";
import { authorize, grantsForRequest } from "./grants.js";
import { parsePolicy } from "./policy.js";
import type { KmsStore } from "./store.js";
import type { RateLimiter } from "./throttle.js";
import type { KeyRecord, KeyState, RequestContext } from "./types.js";

export interface KmsParts {
  store: KmsStore;
  fleet: Fleet;
  customKeyStores: CustomKeyStores;
  region: string;
  nowMs: () => number;
  randomBytes: (n: number) => Buffer;
  /** The per-account limiter of cryptographic operations. */
  accountLimiter: (accountId: string) => RateLimiter;
  /** Whether an IAM user ARN names a configured principal (a policy naming one that does not is refused when put). */
  principalExists: (arn: string) => boolean;
  /** Keys being created in each custom key store right now (a store with one on its way cannot be deleted). */
  creatingInStore: Map<string, number>;
}

/** AWS's resource quotas that bound what one caller can pile up (LimitExceededException past them). */
export const QUOTAS = Object.freeze({ keysPerAccount: 100_000, aliasesPerKey: 50, grantsPerKey: 50_000, customKeyStoresPerAccount: 10 });

export function limitExceeded(what: string, quota: number): KmsError {
  return new KmsError("LimitExceededException", `${what}: the quota is ${quota.toLocaleString("en-US")}.`);
}

/**
 * DryRun: a request that would succeed stops here with DryRunOperationException and changes
 * nothing; one that would fail has already failed with its own error (checks run first).
 */
export function stopIfDryRun(input: Input): void {
  if (input.DryRun === true) throw new KmsError("DryRunOperationException", "The request would have succeeded, but the DryRun option is set.");
}

export type Input = Record<string, unknown>;
export type Handler = (parts: KmsParts, input: Input, context: RequestContext) => Promise<Record<string, unknown>> | Record<string, unknown>;

/**
 * Keys a request named by another account's alias ARN: refused, such a request is answered as if
 * the alias did not exist (the key id behind it, and whether it exists, are not the caller's to learn).
 */
const crossAccountAliases = new WeakMap<RequestContext, { keyId: string; aliasArn: string }>();

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const KEY_ARN = /^arn:aws:kms:([a-z0-9-]+):(\d{12}):key\/(.+)$/;
const ALIAS_ARN = /^arn:aws:kms:([a-z0-9-]+):(\d{12}):(alias\/.+)$/;
const DAY_MS = 86_400_000;

/** The label of an AWS_KMS key's material in the fleet. */
export function fleetLabel(keyId: string): string {
  return `kms-key/${keyId}`;
}

export function keyArn(region: string, accountId: string, keyId: string): string {
  return `arn:aws:kms:${region}:${accountId}:key/${keyId}`;
}

export function aliasArn(region: string, accountId: string, aliasName: string): string {
  return `arn:aws:kms:${region}:${accountId}:${aliasName}`;
}

/** A new key id: a version-4 UUID from the injected randomness. */
export function newKeyId(parts: KmsParts): string {
  return uuidFrom(parts.randomBytes);
}

/** A version-4 UUID from `randomBytes`. */
export function uuidFrom(randomBytes: (n: number) => Buffer): string {
  const b = randomBytes(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function notFound(what: string): KmsError {
  return new KmsError("NotFoundException", `Key '${what}' does not exist`);
}

export interface ResolveOptions {
  /** Whether an alias (name or ARN) may name the key (false for CreateAlias's target, UpdateAlias's, …). */
  alias?: boolean;
  /** Whether a key of another account may be named (by key ARN or alias ARN): AWS's "cross-account use". */
  crossAccount?: boolean;
}

/**
 * The key `keyIdInput` names, as the caller may name it: a key id or an alias name in the
 * caller's own account; a key ARN or alias ARN of another account only where `crossAccount`.
 * A key whose waiting period is over is deleted here first (and so not found).
 */
export async function resolveKey(parts: KmsParts, context: RequestContext, keyIdInput: unknown, options: ResolveOptions = {}): Promise<KeyRecord> {
  if (typeof keyIdInput !== "string" || keyIdInput.length === 0) throw new KmsError("ValidationException", "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null");
  const caller = context.caller.accountId;
  let accountId = caller;
  let keyId: string | null = null;
  let arnRegion: string | null = null;
  let aliasName: string | null = null;
  let match: RegExpExecArray | null;
  if ((match = KEY_ARN.exec(keyIdInput))) {
    [, arnRegion, accountId, keyId] = match;
  } else if ((match = ALIAS_ARN.exec(keyIdInput))) {
    [, arnRegion, accountId, aliasName] = match;
  } else if (keyIdInput.startsWith("alias/")) {
    aliasName = keyIdInput;
  } else if (keyIdInput.startsWith("arn:")) {
    throw new KmsError("NotFoundException", `Invalid arn ${keyIdInput}`);
  } else {
    keyId = keyIdInput;
  }
  if (aliasName !== null && options.alias === false) throw new KmsError("ValidationException", `${keyIdInput} is an alias: this operation takes a key id or key ARN`);
  if (arnRegion !== null && arnRegion !== parts.region) throw new KmsError("NotFoundException", `Invalid arn ${keyIdInput}: this endpoint serves ${parts.region}`);
  if (accountId !== caller && !options.crossAccount) {
    // Management operations work only in the caller's own account: another account's key is not there.
    throw notFound(keyIdInput);
  }
  if (aliasName !== null) {
    const alias = parts.store.getAlias(accountId, aliasName);
    if (alias === null) throw new KmsError("NotFoundException", `Alias ${aliasArn(parts.region, accountId, aliasName)} is not found.`);
    keyId = alias.targetKeyId;
    if (accountId !== caller) crossAccountAliases.set(context, { keyId, aliasArn: aliasArn(parts.region, accountId, aliasName) });
  }
  if (keyId === null || !UUID.test(keyId)) throw new KmsError("NotFoundException", `Invalid keyId '${keyIdInput}'`);
  const key = await purgeIfDue(parts, parts.store.getKey(keyId));
  if (key === null || key.accountId !== accountId) throw notFound(keyArn(parts.region, accountId, keyId));
  context.notes.resources.push({ ARN: key.arn, accountId: key.accountId, type: "AWS::KMS::Key" });
  return key;
}

/** A key found by id (a ciphertext blob names it): null when there is none, or it was deleted now. */
export async function keyById(parts: KmsParts, keyId: string): Promise<KeyRecord | null> {
  return purgeIfDue(parts, parts.store.getKey(keyId));
}

/**
 * Deletes a key whose waiting period is over (its material, its aliases and grants), as KMS does
 * at the deletion date; returns null then. A custom key store's backing key is deleted from the
 * cluster when the store is connected, and otherwise stays there, orphaned, as AWS's does.
 */
export async function purgeIfDue(parts: KmsParts, key: KeyRecord | null): Promise<KeyRecord | null> {
  if (key === null || key.state !== "PendingDeletion" || key.deletionDateMs === null || parts.nowMs() < key.deletionDateMs) return key;
  parts.store.deleteKey(key.keyId);
  if (key.origin === "AWS_KMS") {
    parts.fleet.destroyKey(fleetLabel(key.keyId));
  } else if (key.customKeyStoreId !== null) {
    try {
      await parts.customKeyStores.destroyBackingKey(key.customKeyStoreId, key.materialRef);
    } catch {
      // Disconnected or the cluster failed: the backing key stays in the cluster, orphaned (AWS documents the same).
    }
  }
  return null;
}

const lastSweepMs = new WeakMap<KmsParts, number>();
/** Deletes every key whose waiting period is over, at most once a second of the injected clock. */
export async function sweepDueDeletions(parts: KmsParts, accountIds: Iterable<string>): Promise<void> {
  const now = parts.nowMs();
  const last = lastSweepMs.get(parts);
  if (last !== undefined && now - last < 1000 && now >= last) return;
  lastSweepMs.set(parts, now);
  for (const accountId of accountIds) {
    for (const key of parts.store.listKeys(accountId)) await purgeIfDue(parts, key);
  }
}

/** The key's state as AWS reports it: a key of a custom key store that is not connected is Unavailable (unless pending deletion). */
export function keyState(parts: KmsParts, key: KeyRecord): KeyState {
  if (key.state !== "PendingDeletion" && key.customKeyStoreId !== null && parts.customKeyStores.connectionState(key.customKeyStoreId) !== "CONNECTED") return "Unavailable";
  return key.state;
}

/** Refuses a cryptographic operation on a key that is not Enabled, with AWS's errors. */
export function checkUsable(parts: KmsParts, key: KeyRecord): void {
  const state = keyState(parts, key);
  if (state === "Enabled") return;
  if (state === "Disabled") throw new KmsError("DisabledException", `${key.arn} is disabled.`);
  throw new KmsError("KMSInvalidStateException", `${key.arn} is ${state === "PendingDeletion" ? "pending deletion" : "unavailable"}.`);
}

/** Refuses a management operation on a key pending deletion (KMSInvalidStateException). */
export function checkNotPendingDeletion(key: KeyRecord): void {
  if (key.state === "PendingDeletion") throw new KmsError("KMSInvalidStateException", `${key.arn} is pending deletion.`);
}

/** Allows `action` on `key` for the caller (key policy, then grants), or throws AccessDeniedException. */
export function authorizeKey(parts: KmsParts, context: RequestContext, key: KeyRecord, action: string,
  extra: { encryptionContext?: Record<string, string>; grantTokens?: string[] } & Record<string, unknown> = {}): void {
  const grantsNow = () => grantsForRequest(parts.store.listGrants(key.keyId), extra.grantTokens, (data) => parts.fleet.recordMac(data), (id) => parts.store.getGrant(id));
  // Grant tokens are checked whatever the policy says (a forged one is refused); the key's grants are read only if needed.
  const grants = extra.grantTokens === undefined ? grantsNow : grantsNow();
  // parsePolicy keeps the policies it saw last: a key's stored policy is parsed once, not per request.
  try {
    authorize(parsePolicy(key.policy), grants, { ...extra, caller: context.caller, action, key });
  } catch (e) {
    const named = crossAccountAliases.get(context);
    if (e instanceof KmsError && e.code === "AccessDeniedException" && named?.keyId === key.keyId) {
      throw new KmsError("NotFoundException", `Alias ${named.aliasArn} is not found.`);
    }
    throw e;
  }
}

/** The account's quota of cryptographic operations (ThrottlingException past it). */
export function takeCryptoQuota(parts: KmsParts, context: RequestContext): void {
  if (!parts.accountLimiter(context.caller.accountId).tryTake()) {
    throw new KmsError("ThrottlingException", "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.");
  }
}

const ENCRYPTION_ALGORITHMS: Record<string, string[]> = {
  SYMMETRIC_DEFAULT: ["SYMMETRIC_DEFAULT"],
  RSA_2048: ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"], RSA_3072: ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"], RSA_4096: ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"],
};
export const SIGNING_ALGORITHMS: Record<string, string[]> = {
  ECC_NIST_P256: ["ECDSA_SHA_256"], ECC_NIST_P384: ["ECDSA_SHA_384"],
  RSA_2048: ["RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512", "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512"],
};
SIGNING_ALGORITHMS.RSA_3072 = SIGNING_ALGORITHMS.RSA_2048;
SIGNING_ALGORITHMS.RSA_4096 = SIGNING_ALGORITHMS.RSA_2048;
export const MAC_ALGORITHMS: Record<string, string> = { HMAC_256: "HMAC_SHA_256", HMAC_384: "HMAC_SHA_384", HMAC_512: "HMAC_SHA_512" };

export function encryptionAlgorithms(key: KeyRecord): string[] | undefined {
  return key.keyUsage === "ENCRYPT_DECRYPT" ? ENCRYPTION_ALGORITHMS[key.keySpec] : undefined;
}

/** KeyMetadata as DescribeKey, CreateKey and friends answer it. */
export function keyMetadata(parts: KmsParts, key: KeyRecord): Record<string, unknown> {
  const state = keyState(parts, key);
  const cks = key.customKeyStoreId;
  return {
    AWSAccountId: key.accountId, KeyId: key.keyId, Arn: key.arn, CreationDate: new Date(key.creationDateMs),
    Enabled: state === "Enabled", Description: key.description, KeyUsage: key.keyUsage, KeyState: state,
    DeletionDate: key.deletionDateMs === null ? undefined : new Date(key.deletionDateMs),
    PendingDeletionWindowInDays: key.pendingWindowInDays ?? undefined,
    Origin: key.origin, CustomKeyStoreId: cks ?? undefined,
    CloudHsmClusterId: cks === null ? undefined : parts.store.getCustomKeyStore(cks)?.cloudHsmClusterId,
    KeyManager: "CUSTOMER", CustomerMasterKeySpec: key.keySpec, KeySpec: key.keySpec,
    EncryptionAlgorithms: encryptionAlgorithms(key),
    SigningAlgorithms: key.keyUsage === "SIGN_VERIFY" ? SIGNING_ALGORITHMS[key.keySpec] : undefined,
    MacAlgorithms: key.keyUsage === "GENERATE_VERIFY_MAC" ? [MAC_ALGORITHMS[key.keySpec]] : undefined,
    MultiRegion: false,
  };
}

export function days(n: number): number {
  return n * DAY_MS;
}

/** A list page: `limit` items after the marker (an opaque position), and the next marker when more remain. */
export function page<T>(items: readonly T[], input: Input, defaultLimit = 100): { items: T[]; NextMarker?: string; Truncated: boolean } {
  const limit = typeof input.Limit === "number" ? input.Limit : defaultLimit;
  let start = 0;
  if (typeof input.Marker === "string") {
    const decoded = /^p([0-9]{1,9})$/.exec(Buffer.from(input.Marker, "base64url").toString("latin1"));
    if (decoded === null || Number(decoded[1]) > items.length) throw new KmsError("InvalidMarkerException", "The marker that specifies where pagination should next begin is not valid.");
    start = Number(decoded[1]);
  }
  const end = Math.min(items.length, start + limit);
  const truncated = end < items.length;
  return { items: items.slice(start, end), NextMarker: truncated ? Buffer.from(`p${end}`, "latin1").toString("base64url") : undefined, Truncated: truncated };
}

/** A request's encryption context (validated as a string map by the shapes), or undefined. */
export function contextOf(value: unknown): Record<string, string> | undefined {
  return value === undefined ? undefined : (value as Record<string, string>);
}

export function tokensOf(value: unknown): string[] | undefined {
  return value === undefined ? undefined : (value as string[]);
}
