// Client requests as an HSM node receives them: their shape checked before anything reads
// them, their connection bound to the sender's address, and failures turned into answers.
import { SetHas } from "../primordials.js";
import { HsmError } from "../hsm/errors.js";
import { CKR_FUNCTION_FAILED } from "../pkcs11/constants.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import { NodeFailure } from "./connections.js";
import type { Failure, Request } from "./protocol.js";

const REQUEST_KINDS = new Set(["hello", "call", "manage", "close"]);
const MAX_CONNECTION_NAME = 256;
const MAX_HEADS = 4096;

/** A request's shape, checked before anything reads it: a client is not trusted to send one. */
export function isWellFormedRequest(message: unknown): message is Request {
  const r = message as Partial<Request>;
  if (typeof r.id !== "number" || !Number.isSafeInteger(r.id)) return false;
  if (typeof r.conn !== "string" || r.conn.length === 0 || r.conn.length > MAX_CONNECTION_NAME) return false;
  const op = r.op as { kind?: unknown; method?: unknown; args?: unknown } | undefined;
  if (op === null || typeof op !== "object" || !SetHas(REQUEST_KINDS, op.kind as string)) return false;
  if ((op.kind === "call" || op.kind === "manage") && (typeof op.method !== "string" || !Array.isArray(op.args))) return false;
  if (!Array.isArray(r.after) || r.after.length > MAX_HEADS) return false;
  return r.after.every((pair) => Array.isArray(pair) && pair.length === 2 && Number.isSafeInteger(pair[0]) && Number.isSafeInteger(pair[1]));
}

/**
 * A connection is named by the client, but it belongs to the address the network delivered its
 * requests from: another client naming it reaches a connection of its own, never the victim's.
 */
export function scopeToSender(from: string, request: Request): Request {
  return { ...request, conn: `${from}|${request.conn}` };
}

/** The answer for a request that failed. */
export function failureOf(e: unknown): Failure {
  if (e instanceof NodeFailure) return e.failure;
  if (e instanceof Pkcs11Error) return { kind: "pkcs11", code: e.code, message: e.detail ?? e.message };
  if (e instanceof HsmError) return { kind: "hsm", code: e.code, message: e.message };
  return { kind: "pkcs11", code: CKR_FUNCTION_FAILED, message: e instanceof Error ? e.message : String(e) };
}
