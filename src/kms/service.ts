// The operations table: one handler per KMS operation, over the endpoint's parts.
import { KmsError } from "./errors.js";
import type { Handler, KmsParts } from "./kms-context.js";
import { ALIAS_OPERATIONS } from "./ops-aliases.js";
import { ASYMMETRIC_OPERATIONS } from "./ops-asymmetric.js";
import { CRYPTO_OPERATIONS } from "./ops-crypto.js";
import { GRANT_OPERATIONS } from "./ops-grants.js";
import { KEY_OPERATIONS } from "./ops-keys.js";
import { KEY_STORE_OPERATIONS } from "./ops-key-stores.js";
import type { RequestContext } from "./types.js";

const HANDLERS: ReadonlyMap<string, Handler> = new Map(Object.entries({
  ...KEY_OPERATIONS, ...ALIAS_OPERATIONS, ...CRYPTO_OPERATIONS, ...ASYMMETRIC_OPERATIONS, ...GRANT_OPERATIONS, ...KEY_STORE_OPERATIONS,
}));

/** The operations this endpoint serves. */
export const SERVED_OPERATIONS: readonly string[] = [...HANDLERS.keys()];

/** Runs one validated operation for its caller. */
export function handleOperation(parts: KmsParts, operation: string, input: Record<string, unknown>, context: RequestContext): Promise<Record<string, unknown>> {
  const handler = HANDLERS.get(operation);
  if (handler === undefined) return Promise.reject(new KmsError("UnknownOperationException", `Operation ${operation} is not served by this endpoint.`));
  return Promise.resolve().then(() => handler(parts, input, context));
}
