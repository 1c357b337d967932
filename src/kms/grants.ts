// Grants: which operations a grant can carry for which key, its constraints, its token, whether
// one allows a request, and who may retire or revoke it.
import { timingSafeEqual } from "node:crypto";

import { KmsError } from "./errors.js";
import { type AccessRequest, type ParsedPolicy, checkedContext, evaluatePolicy } from "./policy.js";
import type { Caller, GrantConstraints, GrantRecord, KeyRecord } from "./types.js";

/** Every operation a grant can name (AWS's GrantOperation values). */
export const GRANTABLE_OPERATIONS: readonly string[] = Object.freeze([
  "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
  "GenerateDataKeyPairWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo", "CreateGrant", "RetireGrant",
  "DescribeKey", "Sign", "Verify", "GetPublicKey", "GenerateMac", "VerifyMac", "DeriveSharedSecret",
]);

const ANY_KEY = ["CreateGrant", "RetireGrant", "DescribeKey"];
/** The operations that take an encryption context: the only ones grant constraints apply to. */
const CONTEXT_OPERATIONS: ReadonlySet<string> = new Set([
  "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
  "GenerateDataKeyPairWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo",
]);
/** AWS: up to 8 pairs per constraint, values up to 384 characters. */
const MAX_CONSTRAINT_PAIRS = 8;
const MAX_CONSTRAINT_VALUE_CHARS = 384;

/** The grant operations a key of this spec and usage supports (AWS's key type table). */
export function grantOperationsFor(key: Pick<KeyRecord, "keySpec" | "keyUsage">): readonly string[] {
  if (key.keySpec === "SYMMETRIC_DEFAULT") return [...ANY_KEY, ...CONTEXT_OPERATIONS];
  if (key.keySpec.startsWith("HMAC_")) return [...ANY_KEY, "GenerateMac", "VerifyMac"];
  if (key.keyUsage === "ENCRYPT_DECRYPT") return [...ANY_KEY, "Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey"];
  return [...ANY_KEY, "Sign", "Verify", "GetPublicKey"];
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

function invalid(message: string): KmsError {
  return new KmsError("ValidationException", message);
}

function checkConstraintMap(map: unknown, member: string): void {
  if (!isObject(map)) throw invalid(`${member} must be a map of strings to strings`);
  const pairs = Object.entries(map);
  if (pairs.length > MAX_CONSTRAINT_PAIRS) throw invalid(`${member} has ${pairs.length} pairs; at most ${MAX_CONSTRAINT_PAIRS} are allowed`);
  for (const [name, value] of pairs) {
    if (name.length === 0) throw invalid(`${member} has an empty key`);
    if (typeof value !== "string") throw invalid(`${member}.${name} must be a string`);
    if (value.length > MAX_CONSTRAINT_VALUE_CHARS) throw invalid(`${member}.${name} is longer than ${MAX_CONSTRAINT_VALUE_CHARS} characters`);
  }
}

/** Whether `constraints` constrain anything (AWS treats an empty map as not given). */
export function hasConstraints(constraints: GrantConstraints | null | undefined): boolean {
  if (!constraints) return false;
  const size = (map: Record<string, string> | undefined): number => (map ? Object.keys(map).length : 0);
  return size(constraints.EncryptionContextEquals) + size(constraints.EncryptionContextSubset) > 0;
}

/** Throws KmsError ValidationException when `operations` or `constraints` do not fit `key` (a MAC op on a symmetric key, constraints on Sign, …). */
export function checkGrantShape(key: KeyRecord, operations: string[], constraints: GrantRecord["constraints"]): void {
  if (!Array.isArray(operations) || operations.length === 0) throw invalid("Operations must name at least one grant operation");
  const supported = grantOperationsFor(key);
  for (const operation of operations) {
    if (typeof operation !== "string" || !GRANTABLE_OPERATIONS.includes(operation)) {
      throw invalid(`Operations has ${JSON.stringify(operation)}, which is not a grant operation (${GRANTABLE_OPERATIONS.join(", ")})`);
    }
    if (!supported.includes(operation)) {
      throw invalid(`Operations has ${operation}, which a ${key.keySpec} key with KeyUsage ${key.keyUsage} does not support (it supports ${supported.join(", ")})`);
    }
  }
  if (constraints === null || constraints === undefined) return;
  if (!isObject(constraints)) throw invalid("Constraints must be an object");
  for (const member of Object.keys(constraints)) {
    if (member !== "EncryptionContextEquals" && member !== "EncryptionContextSubset") throw invalid(`Constraints has an unknown member ${JSON.stringify(member)}`);
  }
  if (constraints.EncryptionContextEquals !== undefined) checkConstraintMap(constraints.EncryptionContextEquals, "Constraints.EncryptionContextEquals");
  if (constraints.EncryptionContextSubset !== undefined) checkConstraintMap(constraints.EncryptionContextSubset, "Constraints.EncryptionContextSubset");
  if (hasConstraints(constraints) && key.keySpec !== "SYMMETRIC_DEFAULT") {
    throw invalid(`Constraints: encryption context constraints are only for symmetric encryption keys; a ${key.keySpec} key's operations take no encryption context`);
  }
}

const ACCOUNT_ROOT = /^arn:aws:iam::(\d{12}):root$/;
const PRINCIPAL = /^(arn:aws:iam::\d{12}:(root|user\/[\w+=,.@/-]{1,512}|role\/[\w+=,.@/-]{1,512})|arn:aws:sts::\d{12}:assumed-role\/[\w+=,.@-]{1,64}\/[\w+=,.@-]{2,64})$/;

/** Throws ValidationException unless `value` is a principal ARN a grant can name (GranteePrincipal, RetiringPrincipal). */
export function checkGrantPrincipal(member: string, value: unknown): void {
  if (typeof value !== "string" || !PRINCIPAL.test(value)) {
    throw invalid(`${member} must be the ARN of an account (arn:aws:iam::ACCOUNT:root), an IAM user or role, or an assumed role`);
  }
}

/**
 * Whether a grant naming `principal` (its grantee or retiring principal) names `caller`: its
 * exact ARN, or its account's root, which, as in a key policy, stands for every principal of
 * that account (there is no IAM here to narrow it).
 */
export function principalNames(principal: string | null, caller: Pick<Caller, "arn" | "accountId">): boolean {
  if (principal === null) return false;
  if (principal === caller.arn) return true;
  const root = ACCOUNT_ROOT.exec(principal);
  return root !== null && root[1] === caller.accountId;
}

type Context = Record<string, string>;

/** Every pair of `constraint` is in `context`: keys without regard to case, values exactly (AWS's rule for grant constraints). */
function containsPairs(context: Context, constraint: Context): boolean {
  const pairs = Object.entries(context);
  return Object.entries(constraint).every(([name, value]) => {
    const lower = name.toLowerCase();
    return pairs.some(([n, v]) => n.toLowerCase() === lower && v === value);
  });
}

/** Whether an encryption context satisfies a grant's constraints. */
export function contextSatisfies(constraints: GrantConstraints | null | undefined, context: Context | undefined): boolean {
  if (!hasConstraints(constraints)) return true;
  const given = context ?? {};
  const equals = constraints!.EncryptionContextEquals;
  if (equals && Object.keys(equals).length > 0 && !(containsPairs(given, equals) && containsPairs(equals, given))) return false;
  const subset = constraints!.EncryptionContextSubset;
  if (subset && Object.keys(subset).length > 0 && !containsPairs(given, subset)) return false;
  return true;
}

/** Whether every context `child` allows, `parent` allows too (a grant created through a grant is no wider). */
export function constraintsAtLeastAsStrict(parent: GrantConstraints | null | undefined, child: GrantConstraints | null | undefined): boolean {
  if (!hasConstraints(parent)) return true;
  if (!hasConstraints(child)) return false;
  const childEquals = child!.EncryptionContextEquals;
  // The child allows at most one context: its Equals map. The parent must allow that one.
  if (childEquals && Object.keys(childEquals).length > 0) return contextSatisfies(parent, childEquals);
  // The child allows every superset of its Subset map: an Equals parent allows only one context.
  const parentEquals = parent!.EncryptionContextEquals;
  if (parentEquals && Object.keys(parentEquals).length > 0) return false;
  return containsPairs(child!.EncryptionContextSubset ?? {}, parent!.EncryptionContextSubset ?? {});
}

/** A new grant asked for through `grant` takes no operation and no context `grant` does not have. */
function noWider(grant: GrantRecord, request: AccessRequest): boolean {
  const operations = request.grantOperations;
  if (!Array.isArray(operations) || operations.length === 0) return false;
  return operations.every((operation) => grant.operations.includes(operation)) && constraintsAtLeastAsStrict(grant.constraints, request.grantConstraints);
}

/** Whether `grant` allows `request`. */
function oneGrantAllows(grant: GrantRecord, request: AccessRequest): boolean {
  if (typeof request.action !== "string") return false;
  if (grant.keyId !== request.key.keyId) return false; // a token for another key's grant allows nothing here
  if (!principalNames(grant.granteePrincipal, request.caller)) return false;
  if (!request.action.startsWith("kms:")) return false;
  const operation = request.action.slice("kms:".length);
  if (!grant.operations.includes(operation)) return false;
  if (CONTEXT_OPERATIONS.has(operation) && !contextSatisfies(grant.constraints, checkedContext(request.encryptionContext))) return false;
  if (operation === "CreateGrant" && !noWider(grant, request)) return false;
  return true;
}

/** Whether one of `grants` (the key's, plus any named by the request's grant tokens) allows `request`. */
export function grantAllows(grants: readonly GrantRecord[], request: AccessRequest): boolean {
  return grants.some((grant) => oneGrantAllows(grant, request));
}

/** AWS's AccessDeniedException for `request`, with or without an explicit deny. */
export function accessDenied(request: AccessRequest, explicitDeny: boolean): KmsError {
  const head = `User: ${request.caller.arn} is not authorized to perform: ${request.action} on resource: ${request.key.arn}`;
  return new KmsError(
    "AccessDeniedException",
    explicitDeny ? `${head} with an explicit deny in a resource-based policy` : `${head} because no resource-based policy allows the ${request.action} action`,
  );
}

/**
 * The whole decision for a key request: policy Deny → AccessDeniedException; policy Allow or a
 * grant → allowed; else AccessDeniedException with AWS's message ("User: ARN is not authorized
 * to perform: kms:Encrypt on resource: KEYARN because no resource-based policy allows the kms:Encrypt action").
 */
export function authorize(policy: ParsedPolicy, grants: readonly GrantRecord[] | (() => readonly GrantRecord[]), request: AccessRequest): void {
  const verdict = evaluatePolicy(policy, request);
  if (verdict === "DENY") throw accessDenied(request, true);
  if (verdict === "ALLOW") return;
  // Grants are read only when the policy leaves the request undecided (a key may have 50,000).
  if (grantAllows(typeof grants === "function" ? grants() : grants, request)) return;
  throw accessDenied(request, false);
}

// ---- grant tokens --------------------------------------------------------------------------
// A token is base64url(version ‖ grant id (32 bytes) ‖ HMAC-SHA-256 under KMS's record key).
// The MAC input starts with a label of its own, so no store row's MAC (same key) is ever a
// valid token MAC, nor the other way round.

const TOKEN_VERSION = 1;
const TOKEN_LABEL = Buffer.from("hsmsim kms grant token v1\0", "utf8");
const GRANT_ID = /^[0-9a-f]{64}$/;
const MAC_BYTES = 32;
/** AWS's limit on one grant token. */
const MAX_TOKEN_CHARS = 8192;

function tokenMac(id: Buffer, mac: (data: Buffer) => Buffer): Buffer {
  const tag = mac(Buffer.concat([TOKEN_LABEL, id]));
  if (!Buffer.isBuffer(tag) || tag.length !== MAC_BYTES) throw new KmsError("KMSInternalException", "the record MAC is not HMAC-SHA-256");
  return tag;
}

/** A new grant token naming `grantId` (opaque, unforgeable: MAC'ed by the fleet). */
export function makeGrantToken(grantId: string, mac: (data: Buffer) => Buffer): string {
  if (typeof grantId !== "string" || !GRANT_ID.test(grantId)) throw new KmsError("KMSInternalException", "a grant id is 64 lower-case hex digits");
  const id = Buffer.from(grantId, "hex");
  return Buffer.concat([Buffer.from([TOKEN_VERSION]), id, tokenMac(id, mac)]).toString("base64url");
}

/** The grant id a token names; KmsError InvalidGrantTokenException when it is malformed or its MAC is wrong. */
export function readGrantToken(token: string, mac: (data: Buffer) => Buffer): string {
  const refuse = (): KmsError => new KmsError("InvalidGrantTokenException", "The grant token is not valid");
  if (typeof token !== "string" || token.length === 0 || token.length > MAX_TOKEN_CHARS || !/^[A-Za-z0-9_-]+$/.test(token)) throw refuse();
  const bytes = Buffer.from(token, "base64url");
  // Only the canonical spelling: a token whose spare bits were changed is an altered token.
  if (bytes.length !== 1 + 32 + MAC_BYTES || bytes[0] !== TOKEN_VERSION || bytes.toString("base64url") !== token) throw refuse();
  const id = bytes.subarray(1, 33);
  if (!timingSafeEqual(bytes.subarray(33), tokenMac(id, mac))) throw refuse();
  return id.toString("hex");
}

/** AWS's limit on a request's GrantTokens. */
export const MAX_GRANT_TOKENS = 10;

/**
 * The grants a request may use: the key's own, plus the live grants its tokens name. Every
 * token is checked first (a forged or altered one fails the request with
 * InvalidGrantTokenException, as AWS does); a token of a retired or revoked grant names
 * nothing; a token of another key's grant is kept but allows nothing on this key.
 */
export function grantsForRequest(
  keyGrants: readonly GrantRecord[],
  grantTokens: readonly string[] | undefined,
  mac: (data: Buffer) => Buffer,
  getGrant: (grantId: string) => GrantRecord | null,
): GrantRecord[] {
  const grants = [...keyGrants];
  if (grantTokens === undefined) return grants;
  if (!Array.isArray(grantTokens) || grantTokens.length > MAX_GRANT_TOKENS) throw invalid(`GrantTokens must be a list of at most ${MAX_GRANT_TOKENS} grant tokens`);
  const ids = grantTokens.map((token) => readGrantToken(token, mac));
  for (const id of ids) {
    if (grants.some((grant) => grant.grantId === id)) continue;
    const grant = getGrant(id);
    if (grant) grants.push(grant);
  }
  return grants;
}

/**
 * Whether the caller (`principalArn` of account `accountId`) may retire `grant` (AWS): its
 * retiring principal; its grantee when the grant has RetireGrant; the account the grant was
 * created in; and the key's account. An account root named anywhere stands for every
 * principal of that account.
 */
export function mayRetire(grant: GrantRecord, principalArn: string, accountId: string): boolean {
  const caller = { arn: principalArn, accountId };
  if (principalNames(grant.retiringPrincipal, caller)) return true;
  if (grant.operations.includes("RetireGrant") && principalNames(grant.granteePrincipal, caller)) return true;
  if (principalNames(grant.issuingAccount, caller)) return true;
  return grant.accountId === accountId;
}
