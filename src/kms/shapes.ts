// The operations' input shapes as the KMS API reference gives them: which members, their types,
// lengths and patterns, which are required. Input arrives as parsed JSON; blobs (base64 on the
// wire) come out as Buffers. [helper: wire]
import type { KmsError } from "./errors.js";

/** Every operation the endpoint serves (X-Amz-Target: TrentService.<name>). */
export const OPERATIONS: readonly string[] = [];

/**
 * The validated input of `operation`: members checked and typed, blob members decoded to
 * Buffers, unknown members dropped. Throws KmsError: SerializationException (not a JSON object,
 * a member of the wrong JSON type, a blob that is not base64), ValidationException (a missing
 * required member, a length or range or enum violated: AWS's "1 validation error detected: Value
 * … at 'keyId' failed to satisfy constraint: …" message).
 */
export function validateInput(operation: string, body: unknown): Record<string, unknown> {
  void operation, body;
  throw new Error("not built yet");
}

/** An operation's output as JSON: Buffers to base64, Dates to epoch seconds, undefined members dropped. */
export function encodeOutput(value: Record<string, unknown>): Record<string, unknown> {
  void value;
  throw new Error("not built yet");
}

export type { KmsError };
