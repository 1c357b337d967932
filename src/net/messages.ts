// The top-level shape of what each side may receive, checked on the decoded payload before it
// reaches a node or a client: a client sends requests only, an HSM answers with responses to
// clients and sends peer envelopes to peers. The node's own checks (requests.ts,
// replication.ts: the MAC, the membership, the arguments) remain the second line; this one
// keeps a malformed or misdirected message from ever reaching them.
import { FrameError } from "./frame.js";

/** Who opened a connection, as its hello frame says. */
export type Hello = { role: "client" } | { role: "hsm"; address: string };

/** Which messages a side accepts on a connection. */
export type Accepts = "req" | "res" | "peer";

const MAX_NAME_CHARS = 256;
const MAX_ARGS = 64;
const MAX_HEADS = 4096;
const REQUEST_KINDS = new Set(["hello", "call", "manage", "close"]);
const FAILURE_KINDS = new Set(["pkcs11", "hsm", "busy", "stale", "no-connection"]);
const ADDRESS = /^[0-9A-Za-z.:[\]_-]{1,255}$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
const isInteger = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v);
const isCount = (v: unknown): v is number => isInteger(v) && v >= 0;
const isName = (v: unknown): v is string => typeof v === "string" && v.length > 0 && v.length <= MAX_NAME_CHARS;

function bad(what: string): never {
  throw new FrameError("BAD_MESSAGE", what);
}

/** A hello payload; FrameError BAD_MESSAGE otherwise. */
export function checkHello(value: unknown): Hello {
  if (!isObject(value)) bad("a hello that is not an object");
  if (value.role === "client") return { role: "client" };
  if (value.role === "hsm" && typeof value.address === "string" && ADDRESS.test(value.address)) return { role: "hsm", address: value.address };
  bad("a hello naming neither a client nor an HSM address");
}

/** A message of the kind `accepts`, by its top-level fields; FrameError BAD_MESSAGE or WRONG_DIRECTION otherwise. */
export function checkMessage(value: unknown, accepts: Accepts): void {
  if (!isObject(value)) bad("a message that is not an object");
  if (value.t !== accepts) {
    if (value.t === "req" || value.t === "res" || value.t === "peer") throw new FrameError("WRONG_DIRECTION", `a "${value.t}" message where only "${accepts}" is accepted`);
    bad(`a message of unknown type ${JSON.stringify(String(value.t)).slice(0, 40)}`);
  }
  if (accepts === "req") checkRequest(value);
  else if (accepts === "res") checkResponse(value);
  else checkPeerEnvelope(value);
}

function checkRequest(r: Record<string, unknown>): void {
  if (!isInteger(r.id)) bad("a request without an integer id");
  if (!isName(r.conn)) bad("a request without a connection name");
  if (!Array.isArray(r.after) || r.after.length > MAX_HEADS) bad("a request without its journal heads");
  for (const pair of r.after) if (!Array.isArray(pair) || pair.length !== 2 || !isCount(pair[0]) || !isCount(pair[1])) bad("a malformed journal head");
  const op = r.op;
  if (!isObject(op) || !REQUEST_KINDS.has(op.kind as string)) bad("a request without a known operation");
  if (op.kind === "call" || op.kind === "manage") {
    if (!isName(op.method)) bad("a call without a method name");
    if (!Array.isArray(op.args) || op.args.length > MAX_ARGS) bad("a call without an argument list");
  }
  // A management request's credentials are the HSM's to check (a wrong type gets its typed error from the HSM, not a closed connection).
  if (op.kind === "call" && op.session !== undefined) {
    const s = op.session;
    if (!isObject(s) || !isCount(s.id) || !isCount(s.flags) || typeof s.continuation !== "boolean" || !(s.login === null || typeof s.login === "string")) {
      bad("a malformed session context");
    }
    if (s.operation !== undefined && !(isObject(s.operation) && isCount(s.operation.n) && isCount(s.operation.step))) bad("a malformed operation step");
    if (s.objectsHere !== undefined && typeof s.objectsHere !== "boolean") bad("a malformed session context");
  }
}

function checkResponse(r: Record<string, unknown>): void {
  if (!isInteger(r.id) || typeof r.ok !== "boolean" || !isName(r.hsmId) || !isCount(r.spareCapacity) || !isCount(r.membershipEpoch)) {
    bad("a response without its id, status or HSM state");
  }
  if (r.error !== undefined) {
    const e = r.error;
    if (!isObject(e) || !FAILURE_KINDS.has(e.kind as string) || typeof e.message !== "string") bad("a malformed failure");
    if ((e.kind === "pkcs11" && !isCount(e.code)) || (e.kind === "hsm" && typeof e.code !== "string")) bad("a failure without its code");
  }
  if (r.wrote !== undefined) {
    const w = r.wrote;
    if (!isObject(w) || !isCount(w.origin) || !isCount(w.seq) || !isCount(w.version) || typeof w.subject !== "string") bad("a malformed write position");
  }
}

function checkPeerEnvelope(e: Record<string, unknown>): void {
  if (!isName(e.cluster) || !isName(e.from) || !isName(e.to) || typeof e.body !== "string" || !Buffer.isBuffer(e.mac)) bad("a malformed peer envelope");
}
