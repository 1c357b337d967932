// CloudHSM key stores through the API: Create, Describe, Connect, Disconnect, Update, Delete.
// The connection work is custom-key-stores.ts's; this adds what needs the keys (a store with
// keys cannot be deleted) and the trail's notes.
import { KmsError } from "./errors.js";
import type { Handler } from "./kms-context.js";

function storeId(input: Record<string, unknown>): string {
  return input.CustomKeyStoreId as string;
}

const createCustomKeyStore: Handler = (parts, input, context) => {
  const type = input.CustomKeyStoreType ?? "AWS_CLOUDHSM";
  if (type !== "AWS_CLOUDHSM") throw new KmsError("UnsupportedOperationException", `CustomKeyStoreType ${String(type)} is not supported by this endpoint (AWS_CLOUDHSM).`);
  const out = parts.customKeyStores.create(context.caller.accountId, input);
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

const deleteCustomKeyStore: Handler = (parts, input, context) => {
  const id = storeId(input);
  context.notes.additionalEventData.customKeyStoreId = id;
  const keyCount = parts.store.listKeys(context.caller.accountId).filter((k) => k.customKeyStoreId === id).length;
  parts.customKeyStores.delete(context.caller.accountId, id, keyCount);
  return {};
};

export const KEY_STORE_OPERATIONS: Record<string, Handler> = {
  CreateCustomKeyStore: createCustomKeyStore, DescribeCustomKeyStores: describeCustomKeyStores, ConnectCustomKeyStore: connectCustomKeyStore,
  DisconnectCustomKeyStore: disconnectCustomKeyStore, UpdateCustomKeyStore: updateCustomKeyStore, DeleteCustomKeyStore: deleteCustomKeyStore,
};
