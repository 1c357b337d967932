// A key's life: CreateKey (in KMS's fleet or in a custom key store's cluster), DescribeKey,
// ListKeys, EnableKey, DisableKey, ScheduleKeyDeletion, CancelKeyDeletion, UpdateKeyDescription,
// the key policy (GetKeyPolicy, PutKeyPolicy, ListKeyPolicies) and tags.
import { KmsError } from "./errors.js";
import {
  type Handler, type Input, type KmsParts, QUOTAS, authorizeKey, checkNotPendingDeletion, days, fleetLabel, keyArn, keyMetadata, keyState, limitExceeded,
  newKeyId, page, resolveKey, sweepDueDeletions,
} from "./kms-context.js";
import { defaultKeyPolicy, lockoutSafetyCheck, parsePolicy } from "./policy.js";
import type { KeyRecord, KeySpec, KeyUsage, RequestContext, Tag } from "./types.js";

const USAGES: Record<KeySpec, readonly KeyUsage[]> = {
  SYMMETRIC_DEFAULT: ["ENCRYPT_DECRYPT"],
  ECC_NIST_P256: ["SIGN_VERIFY"], ECC_NIST_P384: ["SIGN_VERIFY"],
  RSA_2048: ["ENCRYPT_DECRYPT", "SIGN_VERIFY"], RSA_3072: ["ENCRYPT_DECRYPT", "SIGN_VERIFY"], RSA_4096: ["ENCRYPT_DECRYPT", "SIGN_VERIFY"],
  HMAC_256: ["GENERATE_VERIFY_MAC"], HMAC_384: ["GENERATE_VERIFY_MAC"], HMAC_512: ["GENERATE_VERIFY_MAC"],
};
const MAX_TAGS = 50;

/** The key spec and usage CreateKey asks for, checked against each other. */
function specAndUsage(input: Input): { keySpec: KeySpec; keyUsage: KeyUsage } {
  if (input.KeySpec !== undefined && input.CustomerMasterKeySpec !== undefined && input.KeySpec !== input.CustomerMasterKeySpec) {
    throw new KmsError("ValidationException", "KeySpec and CustomerMasterKeySpec differ: give only KeySpec (CustomerMasterKeySpec is deprecated).");
  }
  const spec = (input.KeySpec ?? input.CustomerMasterKeySpec ?? "SYMMETRIC_DEFAULT") as string;
  if (!Object.hasOwn(USAGES, spec)) throw new KmsError("UnsupportedOperationException", `KeySpec ${spec} is not supported by this endpoint (it serves ${Object.keys(USAGES).join(", ")}).`);
  const keySpec = spec as KeySpec;
  const allowed = USAGES[keySpec];
  if (input.KeyUsage === undefined) {
    if (keySpec.startsWith("RSA_")) throw new KmsError("ValidationException", `KeyUsage is required for KeySpec ${keySpec}: ENCRYPT_DECRYPT or SIGN_VERIFY.`);
    return { keySpec, keyUsage: allowed[0] };
  }
  const keyUsage = input.KeyUsage as KeyUsage;
  if (!allowed.includes(keyUsage)) throw new KmsError("ValidationException", `KeyUsage ${String(keyUsage)} is not compatible with KeySpec ${keySpec}.`);
  return { keySpec, keyUsage };
}

function checkTags(tags: unknown): Tag[] {
  const list = (tags ?? []) as Tag[];
  const seen = new Set<string>();
  for (const tag of list) {
    if (tag.TagKey.startsWith("aws:")) throw new KmsError("TagException", `Tag key ${tag.TagKey}: the aws: prefix is reserved for AWS.`);
    if (seen.has(tag.TagKey)) throw new KmsError("TagException", `Tag key ${tag.TagKey} appears twice.`);
    seen.add(tag.TagKey);
  }
  return list.map((t) => ({ TagKey: t.TagKey, TagValue: t.TagValue }));
}

/** A policy being put (CreateKey, PutKeyPolicy): checked, with AWS's lockout safety check unless the caller bypasses it. */
function checkNewPolicy(parts: KmsParts, policyText: string, context: RequestContext, key: KeyRecord, bypass: unknown): void {
  const parsed = parsePolicy(policyText, { principalExists: parts.principalExists });
  if (bypass !== true) lockoutSafetyCheck(parsed, context.caller, { ...key, policy: policyText });
}

const createKey: Handler = async (parts, input, context) => {
  const { keySpec, keyUsage } = specAndUsage(input);
  if (input.MultiRegion === true) throw new KmsError("UnsupportedOperationException", "Multi-Region keys are not supported by this endpoint.");
  const origin = (input.Origin ?? "AWS_KMS") as string;
  if (origin !== "AWS_KMS" && origin !== "AWS_CLOUDHSM") throw new KmsError("UnsupportedOperationException", `Origin ${origin} is not supported by this endpoint (AWS_KMS, AWS_CLOUDHSM).`);
  const storeId = input.CustomKeyStoreId as string | undefined;
  if (origin === "AWS_CLOUDHSM" && storeId === undefined) throw new KmsError("ValidationException", "CustomKeyStoreId is required when Origin is AWS_CLOUDHSM.");
  if (storeId !== undefined && origin !== "AWS_CLOUDHSM") throw new KmsError("ValidationException", "Origin must be AWS_CLOUDHSM when CustomKeyStoreId is given.");
  if (origin === "AWS_CLOUDHSM" && keySpec !== "SYMMETRIC_DEFAULT") throw new KmsError("UnsupportedOperationException", "A CloudHSM key store holds only SYMMETRIC_DEFAULT keys.");
  const tags = checkTags(input.Tags);
  if (tags.length > MAX_TAGS) throw new KmsError("TagException", `A key can have at most ${MAX_TAGS} tags.`);

  const accountId = context.caller.accountId;
  if (parts.store.listKeys(accountId).length >= QUOTAS.keysPerAccount) throw limitExceeded(`Account ${accountId} has as many KMS keys as an account may`, QUOTAS.keysPerAccount);
  const keyId = newKeyId(parts);
  const arn = keyArn(parts.region, accountId, keyId);
  const record: KeyRecord = {
    keyId, arn, accountId, keySpec, keyUsage, origin, customKeyStoreId: storeId ?? null, materialRef: fleetLabel(keyId),
    description: (input.Description as string | undefined) ?? "", creationDateMs: parts.nowMs(), state: "Enabled",
    deletionDateMs: null, pendingWindowInDays: null, policy: defaultKeyPolicy(accountId), tags,
  };
  if (input.Policy !== undefined) {
    checkNewPolicy(parts, input.Policy as string, context, record, input.BypassPolicyLockoutSafetyCheck);
    record.policy = input.Policy as string;
  }
  if (storeId !== undefined) {
    if (parts.customKeyStores.accountOf(storeId) !== accountId) throw new KmsError("CustomKeyStoreNotFoundException", `Custom key store ${storeId} does not exist.`);
    if (parts.customKeyStores.connectionState(storeId) !== "CONNECTED") {
      throw new KmsError("CustomKeyStoreInvalidStateException", `Custom key store ${storeId} is not connected (its connection state is ${parts.customKeyStores.connectionState(storeId)}).`);
    }
    context.notes.additionalEventData.customKeyStoreId = storeId;
    // A key on its way counts as the store's: DeleteCustomKeyStore refuses a store with one.
    parts.creatingInStore.set(storeId, (parts.creatingInStore.get(storeId) ?? 0) + 1);
    try {
      record.materialRef = await parts.customKeyStores.createBackingKey(storeId, arn, context.notes);
    } finally {
      const left = (parts.creatingInStore.get(storeId) ?? 1) - 1;
      if (left > 0) parts.creatingInStore.set(storeId, left);
      else parts.creatingInStore.delete(storeId);
    }
  } else {
    await parts.fleet.createKey(record.materialRef, keySpec, keyUsage);
  }
  try {
    parts.store.putKey(record);
  } catch (e) {
    // The record did not land: no material stays behind it.
    if (storeId === undefined) parts.fleet.destroyKey(record.materialRef);
    else await parts.customKeyStores.destroyBackingKey(storeId, record.materialRef).catch(() => false);
    throw e;
  }
  context.notes.resources.push({ ARN: arn, accountId, type: "AWS::KMS::Key" });
  return { KeyMetadata: keyMetadata(parts, record) };
};

const describeKey: Handler = async (parts, input, context) => {
  const key = await resolveKey(parts, context, input.KeyId, { crossAccount: true });
  authorizeKey(parts, context, key, "kms:DescribeKey", { grantTokens: input.GrantTokens as string[] | undefined });
  return { KeyMetadata: keyMetadata(parts, key) };
};

const listKeys: Handler = async (parts, input, context) => {
  await sweepDueDeletions(parts, [context.caller.accountId]);
  const { items, NextMarker, Truncated } = page(parts.store.listKeys(context.caller.accountId), input);
  return { Keys: items.map((k) => ({ KeyId: k.keyId, KeyArn: k.arn })), NextMarker, Truncated };
};

/** The caller's own key, after the policy allowed `action` on it. */
async function ownKey(parts: KmsParts, input: Input, context: RequestContext, action: string): Promise<KeyRecord> {
  const key = await resolveKey(parts, context, input.KeyId, { crossAccount: false });
  authorizeKey(parts, context, key, action);
  return key;
}

function save(parts: KmsParts, key: KeyRecord, change: Partial<KeyRecord>): KeyRecord {
  const updated = { ...key, ...change };
  parts.store.putKey(updated);
  return updated;
}

/** EnableKey and DisableKey: neither on a key pending deletion or unavailable (its key store not connected). */
function setEnabled(target: "Enabled" | "Disabled", action: string): Handler {
  return async (parts, input, context) => {
    const key = await ownKey(parts, input, context, action);
    const state = keyState(parts, key);
    if (state === "PendingDeletion" || state === "Unavailable") throw new KmsError("KMSInvalidStateException", `${key.arn} is ${state === "Unavailable" ? "unavailable" : "pending deletion"}.`);
    if (key.state !== target) save(parts, key, { state: target });
    return {};
  };
}

const enableKey = setEnabled("Enabled", "kms:EnableKey");
const disableKey = setEnabled("Disabled", "kms:DisableKey");

const scheduleKeyDeletion: Handler = async (parts, input, context) => {
  const key = await ownKey(parts, input, context, "kms:ScheduleKeyDeletion");
  checkNotPendingDeletion(key);
  const windowDays = (input.PendingWindowInDays as number | undefined) ?? 30;
  const deletionDateMs = parts.nowMs() + days(windowDays);
  save(parts, key, { state: "PendingDeletion", deletionDateMs, pendingWindowInDays: windowDays });
  return { KeyId: key.arn, DeletionDate: new Date(deletionDateMs), KeyState: "PendingDeletion", PendingWindowInDays: windowDays };
};

const cancelKeyDeletion: Handler = async (parts, input, context) => {
  const key = await ownKey(parts, input, context, "kms:CancelKeyDeletion");
  if (key.state !== "PendingDeletion") throw new KmsError("KMSInvalidStateException", `${key.arn} is not pending deletion.`);
  // A key whose deletion is cancelled comes back disabled, as AWS's does.
  save(parts, key, { state: "Disabled", deletionDateMs: null, pendingWindowInDays: null });
  return { KeyId: key.arn };
};

const updateKeyDescription: Handler = async (parts, input, context) => {
  const key = await ownKey(parts, input, context, "kms:UpdateKeyDescription");
  checkNotPendingDeletion(key);
  save(parts, key, { description: input.Description as string });
  return {};
};

function checkPolicyName(name: unknown): void {
  if (name !== undefined && name !== "default") throw new KmsError("NotFoundException", `No such policy: ${String(name)} (a key has one policy, named default).`);
}

const getKeyPolicy: Handler = async (parts, input, context) => {
  checkPolicyName(input.PolicyName);
  const key = await ownKey(parts, input, context, "kms:GetKeyPolicy");
  return { Policy: key.policy, PolicyName: "default" };
};

const putKeyPolicy: Handler = async (parts, input, context) => {
  checkPolicyName(input.PolicyName);
  const key = await ownKey(parts, input, context, "kms:PutKeyPolicy");
  checkNotPendingDeletion(key);
  const text = input.Policy as string;
  checkNewPolicy(parts, text, context, key, input.BypassPolicyLockoutSafetyCheck);
  save(parts, key, { policy: text });
  return {};
};

const listKeyPolicies: Handler = async (parts, input, context) => {
  await ownKey(parts, input, context, "kms:ListKeyPolicies");
  return { PolicyNames: ["default"], Truncated: false };
};

const tagResource: Handler = async (parts, input, context) => {
  const key = await ownKey(parts, input, context, "kms:TagResource");
  checkNotPendingDeletion(key);
  const tags = new Map(key.tags.map((t) => [t.TagKey, t.TagValue]));
  for (const t of checkTags(input.Tags)) tags.set(t.TagKey, t.TagValue);
  if (tags.size > MAX_TAGS) throw new KmsError("TagException", `A key can have at most ${MAX_TAGS} tags.`);
  save(parts, key, { tags: [...tags].map(([TagKey, TagValue]) => ({ TagKey, TagValue })) });
  return {};
};

const untagResource: Handler = async (parts, input, context) => {
  const key = await ownKey(parts, input, context, "kms:UntagResource");
  checkNotPendingDeletion(key);
  const remove = new Set(input.TagKeys as string[]);
  save(parts, key, { tags: key.tags.filter((t) => !remove.has(t.TagKey)) });
  return {};
};

const listResourceTags: Handler = async (parts, input, context) => {
  const key = await ownKey(parts, input, context, "kms:ListResourceTags");
  const { items, NextMarker, Truncated } = page(key.tags, input, 50);
  return { Tags: items, NextMarker, Truncated };
};

export const KEY_OPERATIONS: Record<string, Handler> = {
  CreateKey: createKey, DescribeKey: describeKey, ListKeys: listKeys, EnableKey: enableKey, DisableKey: disableKey,
  ScheduleKeyDeletion: scheduleKeyDeletion, CancelKeyDeletion: cancelKeyDeletion, UpdateKeyDescription: updateKeyDescription,
  GetKeyPolicy: getKeyPolicy, PutKeyPolicy: putKeyPolicy, ListKeyPolicies: listKeyPolicies,
  TagResource: tagResource, UntagResource: untagResource, ListResourceTags: listResourceTags,
};
