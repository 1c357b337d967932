// Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant. A grant gives
// one principal (often of another account) some operations on one key, under optional
// encryption-context constraints; its token makes it usable at once.
import { KmsError } from "./errors.js";
import { checkGrantShape, makeGrantToken, mayRetire, readGrantToken } from "./grants.js";
import { type Handler, type KmsParts, QUOTAS, authorizeKey, checkNotPendingDeletion, limitExceeded, page, resolveKey, stopIfDryRun } from "./kms-context.js";
import type { GrantConstraints, GrantRecord, RequestContext } from "./types.js";

const PRINCIPAL = /^arn:aws:iam::\d{12}:(root|user\/[\w+=,.@/-]{1,512}|role\/[\w+=,.@/-]{1,512})$|^[a-z0-9.-]+\.amazonaws\.com$/;
const GRANT_ID = /^[0-9a-f]{64}$/;

function checkPrincipal(value: unknown, member: string): string {
  if (typeof value !== "string" || !PRINCIPAL.test(value)) {
    throw new KmsError("ValidationException", `1 validation error detected: Value '${String(value)}' at '${member}' failed to satisfy constraint: Member must be an IAM principal ARN (arn:aws:iam::ACCOUNT:root, :user/NAME or :role/NAME)`);
  }
  return value;
}

function sameConstraints(a: GrantConstraints | null, b: GrantConstraints | null): boolean {
  return JSON.stringify(normalize(a)) === JSON.stringify(normalize(b));
}

function normalize(c: GrantConstraints | null): unknown {
  if (c === null) return null;
  const sorted = (m?: Record<string, string>) => (m === undefined ? null : Object.keys(m).sort().map((k) => [k, m[k]]));
  return [sorted(c.EncryptionContextSubset), sorted(c.EncryptionContextEquals)];
}

function grantOutput(grant: GrantRecord): Record<string, unknown> {
  return {
    KeyId: grant.keyArn, GrantId: grant.grantId, Name: grant.name ?? undefined, CreationDate: new Date(grant.creationDateMs),
    GranteePrincipal: grant.granteePrincipal, RetiringPrincipal: grant.retiringPrincipal ?? undefined, IssuingAccount: grant.issuingAccount,
    Operations: grant.operations, Constraints: grant.constraints ?? undefined,
  };
}

const tokenMac = (parts: KmsParts) => (data: Buffer) => parts.fleet.recordMac(data);

const createGrant: Handler = async (parts, input, context) => {
  const key = await resolveKey(parts, context, input.KeyId, { crossAccount: true });
  const granteePrincipal = checkPrincipal(input.GranteePrincipal, "granteePrincipal");
  const retiringPrincipal = input.RetiringPrincipal === undefined ? null : checkPrincipal(input.RetiringPrincipal, "retiringPrincipal");
  const operations = [...new Set(input.Operations as string[])];
  if (operations.length === 0) throw new KmsError("ValidationException", "1 validation error detected: Value '[]' at 'operations' failed to satisfy constraint: Member must have length greater than or equal to 1");
  const constraints = (input.Constraints as GrantConstraints | undefined) ?? null;
  checkGrantShape(key, operations, constraints);
  authorizeKey(parts, context, key, "kms:CreateGrant", {
    grantTokens: input.GrantTokens as string[] | undefined, grantOperations: operations, granteePrincipal, retiringPrincipal: retiringPrincipal ?? undefined,
    grantConstraints: constraints ?? undefined,
  });
  checkNotPendingDeletion(key);
  const name = (input.Name as string | undefined) ?? null;
  if (name !== null) {
    // CreateGrant is idempotent by name: the same grant asked again is the grant already made.
    const same = parts.store.listGrants(key.keyId).find((g) => g.name === name && g.granteePrincipal === granteePrincipal &&
      g.retiringPrincipal === retiringPrincipal && JSON.stringify([...g.operations].sort()) === JSON.stringify([...operations].sort()) &&
      sameConstraints(g.constraints, constraints));
    if (same) {
      stopIfDryRun(input);
      return { GrantToken: same.grantToken, GrantId: same.grantId };
    }
  }
  if (parts.store.listGrants(key.keyId).length >= QUOTAS.grantsPerKey) throw limitExceeded(`${key.arn} has as many grants as a key may`, QUOTAS.grantsPerKey);
  stopIfDryRun(input);
  const grantId = parts.randomBytes(32).toString("hex");
  const grant: GrantRecord = {
    grantId, keyId: key.keyId, keyArn: key.arn, accountId: key.accountId, name, granteePrincipal, retiringPrincipal, operations, constraints,
    issuingAccount: `arn:aws:iam::${context.caller.accountId}:root`, creationDateMs: parts.nowMs(), grantToken: makeGrantToken(grantId, tokenMac(parts)),
  };
  parts.store.putGrant(grant);
  return { GrantToken: grant.grantToken, GrantId: grantId };
};

const listGrants: Handler = async (parts, input, context) => {
  const key = await resolveKey(parts, context, input.KeyId, { crossAccount: true });
  authorizeKey(parts, context, key, "kms:ListGrants", { grantTokens: input.GrantTokens as string[] | undefined });
  const grants = parts.store.listGrants(key.keyId).filter((g) =>
    (input.GrantId === undefined || g.grantId === input.GrantId) && (input.GranteePrincipal === undefined || g.granteePrincipal === input.GranteePrincipal));
  const { items, NextMarker, Truncated } = page(grants, input, 50);
  return { Grants: items.map(grantOutput), NextMarker, Truncated };
};

const listRetirableGrants: Handler = async (parts, input, context) => {
  const principal = checkPrincipal(input.RetiringPrincipal, "retiringPrincipal");
  // Only a principal of the caller's own account (IAM decides who may ask; here, its account).
  const grants = principal.split(":")[4] === context.caller.accountId ? parts.store.listRetirableGrants(principal) : [];
  const { items, NextMarker, Truncated } = page(grants, input, 50);
  return { Grants: items.map(grantOutput), NextMarker, Truncated };
};

function checkGrantId(value: unknown): string {
  if (typeof value !== "string" || !GRANT_ID.test(value)) throw new KmsError("InvalidGrantIdException", `Grant ID ${String(value)} is not valid.`);
  return value;
}

async function grantOfKey(parts: KmsParts, context: RequestContext, keyIdInput: unknown, grantIdInput: unknown): Promise<GrantRecord> {
  const key = await resolveKey(parts, context, keyIdInput, { crossAccount: true, alias: false });
  const grantId = checkGrantId(grantIdInput);
  const grant = parts.store.getGrant(grantId);
  if (grant === null || grant.keyId !== key.keyId) throw new KmsError("NotFoundException", `Grant ID ${grantId} not found for ${key.arn}.`);
  return grant;
}

const retireGrant: Handler = async (parts, input, context) => {
  let grant: GrantRecord;
  if (input.GrantToken !== undefined) {
    const grantId = readGrantToken(input.GrantToken as string, tokenMac(parts));
    const found = parts.store.getGrant(grantId);
    if (found === null) throw new KmsError("NotFoundException", `Grant ID ${grantId} not found (retired or revoked already).`);
    if (input.GrantId !== undefined && input.GrantId !== grantId) throw new KmsError("InvalidGrantIdException", "The grant ID does not match the grant token.");
    grant = found;
  } else {
    if (input.KeyId === undefined || input.GrantId === undefined) throw new KmsError("ValidationException", "RetireGrant needs a GrantToken, or both KeyId and GrantId.");
    grant = await grantOfKey(parts, context, input.KeyId, input.GrantId);
  }
  // The token proves nothing about who may retire: the caller must be the grant's retiring
  // principal, its grantee when the grant has RetireGrant, or the key's account.
  if (!mayRetire(grant, context.caller.arn, context.caller.accountId)) {
    throw new KmsError("AccessDeniedException", `User: ${context.caller.arn} is not authorized to retire grant ${grant.grantId}.`);
  }
  stopIfDryRun(input);
  parts.store.deleteGrant(grant.grantId);
  return {};
};

const revokeGrant: Handler = async (parts, input, context) => {
  const grant = await grantOfKey(parts, context, input.KeyId, input.GrantId);
  const key = parts.store.getKey(grant.keyId)!;
  authorizeKey(parts, context, key, "kms:RevokeGrant");
  stopIfDryRun(input);
  parts.store.deleteGrant(grant.grantId);
  return {};
};

export const GRANT_OPERATIONS: Record<string, Handler> = {
  CreateGrant: createGrant, ListGrants: listGrants, ListRetirableGrants: listRetirableGrants, RetireGrant: retireGrant, RevokeGrant: revokeGrant,
};
