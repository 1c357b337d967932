// CloudHSM key stores through the API: Create, Describe, Connect, Disconnect, Update, Delete.
// The connection work is custom-key-stores.ts's; this adds what needs the keys (a store with
// keys cannot be deleted) and the trail's notes.
import { KmsError } from "./errors.js";
import { type Handler, QUOTAS, limitExceeded, purgeIfDue } from "./kms-context.js";

function storeId(input: Record<string, unknown>): string {
  return input.CustomKeyStoreId as string;
}

const createCustomKeyStore: Handler = (parts, input, context) => {
  const type = input.CustomKeyStoreType ?? "AWS_CLOUDHSM";
  if (type !== "AWS_CLOUDHSM") throw new KmsError("UnsupportedOperationException", `CustomKeyStoreType ${String(type)} is not supported by this endpoint (AWS_CLOUDHSM).`);
  const accountId = context.caller.accountId;
  const existing = parts.store.listCustomKeyStores(accountId);
  // A repeat of an existing store's create is answered by the store itself (AWS's idempotence), not refused here.
  if (existing.length >= QUOTAS.customKeyStoresPerAccount && !existing.some((s) => s.name === input.CustomKeyStoreName)) {
    throw limitExceeded(`Account ${accountId} has as many custom key stores as an account may`, QUOTAS.customKeyStoresPerAccount);
  }
  const out = parts.customKeyStores.create(accountId, input);
  context.notes.additionalEventData.customKeyStoreId = out.CustomKeyStoreId;
  return out;
};

const describeCustomKeyStores: Handler = (parts, input, context) => parts.customKeyStores.describe(context.caller.accountId, input);

const connectCustomKeyStore: Handler = (parts, input, context) => {
  context.notes.additionalEventData.customKeyStoreId = storeId(input);
  parts.customKeyStores.connect(context.caller.accountId, storeId(input));
  return {};
};

const disconnectCustomKeyStore: Handler = async (parts, input, context) => {
  context.notes.additionalEventData.customKeyStoreId = storeId(input);
  await parts.customKeyStores.disconnect(context.caller.accountId, storeId(input));
  return {};
};

const updateCustomKeyStore: Handler = (parts, input, context) => {
  context.notes.additionalEventData.customKeyStoreId = storeId(input);
  parts.customKeyStores.update(context.caller.accountId, input);
  return {};
};

const deleteCustomKeyStore: Handler = async (parts, input, context) => {
  const id = storeId(input);
  context.notes.additionalEventData.customKeyStoreId = id;
  // Keys whose waiting period is over are deleted now (they no longer count), keys being created do count.
  let keyCount = parts.creatingInStore.get(id) ?? 0;
  for (const key of parts.store.listKeys(context.caller.accountId).filter((k) => k.customKeyStoreId === id)) {
    if ((await purgeIfDue(parts, key)) !== null) keyCount++;
  }
  parts.customKeyStores.delete(context.caller.accountId, id, keyCount);
  return {};
};

export const KEY_STORE_OPERATIONS: Record<string, Handler> = {
  CreateCustomKeyStore: createCustomKeyStore, DescribeCustomKeyStores: describeCustomKeyStores, ConnectCustomKeyStore: connectCustomKeyStore,
  DisconnectCustomKeyStore: disconnectCustomKeyStore, UpdateCustomKeyStore: updateCustomKeyStore, DeleteCustomKeyStore: deleteCustomKeyStore,
};
