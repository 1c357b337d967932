// Aliases: CreateAlias, ListAliases, UpdateAlias, DeleteAlias. An alias belongs to an account
// and points at one of that account's keys; alias/aws/ is AWS's own prefix.
import { KmsError } from "./errors.js";
import {
  type Handler, type KmsParts, QUOTAS, aliasArn, authorizeKey, checkNotPendingDeletion, limitExceeded, page, resolveKey, sweepDueDeletions,
} from "./kms-context.js";
import type { KeyRecord, RequestContext } from "./types.js";

function checkAliasName(name: unknown): string {
  const aliasName = name as string;
  if (!aliasName.startsWith("alias/") || aliasName.length <= "alias/".length) {
    throw new KmsError("ValidationException", `Alias must start with the prefix "alias/". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html`);
  }
  if (aliasName.startsWith("alias/aws/")) throw new KmsError("InvalidAliasNameException", "Cannot create or change an alias whose name starts with alias/aws/: the prefix is reserved for AWS managed keys.");
  return aliasName;
}

/** The key an alias is to point at: one of the caller's keys, named by key id or key ARN, not pending deletion. */
async function targetKey(parts: KmsParts, context: RequestContext, targetKeyId: unknown, action: string): Promise<KeyRecord> {
  const key = await resolveKey(parts, context, targetKeyId, { alias: false, crossAccount: false });
  authorizeKey(parts, context, key, action);
  checkNotPendingDeletion(key);
  return key;
}

/** Whether two keys may share an alias in turn (UpdateAlias): the same kind and the same usage. */
function sameKind(a: KeyRecord, b: KeyRecord): boolean {
  const kind = (k: KeyRecord) => (k.keySpec === "SYMMETRIC_DEFAULT" ? "symmetric" : k.keySpec.startsWith("HMAC") ? "hmac" : "asymmetric");
  return kind(a) === kind(b) && a.keyUsage === b.keyUsage;
}

const createAlias: Handler = async (parts, input, context) => {
  const aliasName = checkAliasName(input.AliasName);
  const key = await targetKey(parts, context, input.TargetKeyId, "kms:CreateAlias");
  const accountId = context.caller.accountId;
  if (parts.store.getAlias(accountId, aliasName) !== null) {
    throw new KmsError("AlreadyExistsException", `An alias with the name ${aliasArn(parts.region, accountId, aliasName)} already exists`);
  }
  if (parts.store.listAliases(accountId, key.keyId).length >= QUOTAS.aliasesPerKey) throw limitExceeded(`${key.arn} has as many aliases as a key may`, QUOTAS.aliasesPerKey);
  const now = parts.nowMs();
  parts.store.putAlias({ accountId, aliasName, targetKeyId: key.keyId, creationDateMs: now, lastUpdatedDateMs: now });
  return {};
};

const updateAlias: Handler = async (parts, input, context) => {
  const aliasName = checkAliasName(input.AliasName);
  const accountId = context.caller.accountId;
  const alias = parts.store.getAlias(accountId, aliasName);
  if (alias === null) throw new KmsError("NotFoundException", `Alias ${aliasArn(parts.region, accountId, aliasName)} is not found.`);
  const key = await targetKey(parts, context, input.TargetKeyId, "kms:UpdateAlias");
  const current = parts.store.getKey(alias.targetKeyId);
  // AWS asks kms:UpdateAlias of both keys: the one the alias leaves as well as the one it goes to.
  if (current !== null) authorizeKey(parts, context, current, "kms:UpdateAlias");
  if (key.keyId !== alias.targetKeyId && parts.store.listAliases(accountId, key.keyId).length >= QUOTAS.aliasesPerKey) throw limitExceeded(`${key.arn} has as many aliases as a key may`, QUOTAS.aliasesPerKey);
  if (current !== null && !sameKind(current, key)) {
    throw new KmsError("ValidationException", `${key.arn} is not the same type or key usage as the alias's current key ${current.arn}.`);
  }
  parts.store.putAlias({ ...alias, targetKeyId: key.keyId, lastUpdatedDateMs: parts.nowMs() });
  return {};
};

const deleteAlias: Handler = async (parts, input, context) => {
  const aliasName = checkAliasName(input.AliasName);
  const accountId = context.caller.accountId;
  const alias = parts.store.getAlias(accountId, aliasName);
  if (alias === null) throw new KmsError("NotFoundException", `Alias ${aliasArn(parts.region, accountId, aliasName)} is not found.`);
  const key = parts.store.getKey(alias.targetKeyId);
  if (key !== null) authorizeKey(parts, context, key, "kms:DeleteAlias");
  parts.store.deleteAlias(accountId, aliasName);
  return {};
};

const listAliases: Handler = async (parts, input, context) => {
  const accountId = context.caller.accountId;
  await sweepDueDeletions(parts, [accountId]);
  let keyId: string | undefined;
  if (input.KeyId !== undefined) keyId = (await resolveKey(parts, context, input.KeyId, { alias: false, crossAccount: false })).keyId;
  const { items, NextMarker, Truncated } = page(parts.store.listAliases(accountId, keyId), input);
  return {
    Aliases: items.map((a) => ({
      AliasName: a.aliasName, AliasArn: aliasArn(parts.region, accountId, a.aliasName), TargetKeyId: a.targetKeyId,
      CreationDate: new Date(a.creationDateMs), LastUpdatedDate: new Date(a.lastUpdatedDateMs),
    })),
    NextMarker, Truncated,
  };
};

export const ALIAS_OPERATIONS: Record<string, Handler> = {
  CreateAlias: createAlias, UpdateAlias: updateAlias, DeleteAlias: deleteAlias, ListAliases: listAliases,
};
