// Key policies: the default policy, checking a policy document when it is put, and evaluating
// one for a request. There is no IAM here: a key policy statement that names an account (its
// root, or the bare account id) allows every principal of that account, as an IAM policy that
// allows everything would. Cross-account principals need a statement naming them (or their
// account) or a grant. An explicit Deny always wins.
// Supported: Principal/NotPrincipal ("*", AWS account ids, account roots, IAM users and roles,
// assumed roles; Service principals, which match no caller here), Action/NotAction and
// Resource/NotResource with * and ? wildcards, and Condition with the String*, Arn*, Bool and
// Null operators (ForAnyValue:/ForAllValues:, …IfExists) on the keys in policy-conditions.ts and
// kms:EncryptionContext:KEY. Anything else is refused when the policy is put.
import { WeakMapGet, WeakMapSet } from "../primordials.js";
import { KmsError } from "./errors.js";
import { type ConditionTest, conditionHolds, globMatches, parseConditions, requestValues } from "./policy-conditions.js";
import type { Caller, GrantConstraints, KeyRecord } from "./types.js";

export { checkedContext, globMatches } from "./policy-conditions.js";

/** AWS's quota on a key policy document: 32 KB. */
export const MAX_POLICY_BYTES = 32_768;

/** The policy CreateKey gives a key when none is given: the key's account has kms:* on it. */
export function defaultKeyPolicy(accountId: string): string {
  if (typeof accountId !== "string" || !/^\d{12}$/.test(accountId)) throw new KmsError("ValidationException", "accountId must be 12 digits");
  return JSON.stringify(
    {
      Version: "2012-10-17",
      Id: "key-default-1",
      Statement: [
        {
          Sid: "Enable IAM User Permissions",
          Effect: "Allow",
          Principal: { AWS: `arn:aws:iam::${accountId}:root` },
          Action: "kms:*",
          Resource: "*",
        },
      ],
    },
    null,
    2,
  );
}

/** A checked policy. Throws KmsError MalformedPolicyDocumentException with the reason. */
export interface ParsedPolicy {
  readonly text: string;
}

/** What a request asks of a key, for policy and grant evaluation. */
export interface AccessRequest {
  caller: Caller;
  /** kms:Encrypt, kms:Decrypt, kms:CreateGrant, … */
  action: string;
  key: KeyRecord;
  /** The request's encryption context (crypto operations), for kms:EncryptionContext:* conditions and grant constraints. */
  encryptionContext?: Record<string, string>;
  /** The request's grant tokens. */
  grantTokens?: string[];
  /**
   * For kms:CreateGrant, the grant asked for: its operations, grantee, retiring principal and
   * constraints (the kms:GrantOperations, kms:GranteePrincipal, kms:RetiringPrincipal and
   * kms:GrantConstraintType condition keys; and, when a grant is what allows the request, the
   * check that the new grant is no wider than it).
   */
  grantOperations?: string[];
  granteePrincipal?: string;
  retiringPrincipal?: string | null;
  grantConstraints?: GrantConstraints | null;
}

export type PolicyVerdict = "ALLOW" | "DENY" | "NONE";

// ---- the parsed form ------------------------------------------------------------------------

/** A principal entry: every principal, an account's principals, one exact principal, or a service (matches no caller here). */
type PrincipalEntry = { kind: "any" } | { kind: "account"; accountId: string } | { kind: "arn"; arn: string } | { kind: "service" };

interface Statement {
  effect: "Allow" | "Deny";
  principals: PrincipalEntry[];
  principalNegated: boolean;
  actions: string[];
  actionNegated: boolean;
  resources: string[];
  resourceNegated: boolean;
  conditions: ConditionTest[];
}

// The statements of every policy parsePolicy returned, keyed by the object it returned: a
// look-alike `{ text }` made elsewhere is never evaluated (it allows nothing and throws).
const compiled = new WeakMap<ParsedPolicy, readonly Statement[]>();

function malformed(reason: string): KmsError {
  return new KmsError("MalformedPolicyDocumentException", reason);
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);
const own = (object: Record<string, unknown>, name: string): boolean => Object.prototype.hasOwnProperty.call(object, name);

/** A string or a non-empty array of strings, as `where` names it. */
function stringList(value: unknown, where: string): string[] {
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || list.length === 0) throw malformed(`${where} must be a string or a non-empty array of strings`);
  for (const item of list) if (typeof item !== "string" || item.length === 0) throw malformed(`${where} must hold only non-empty strings`);
  return list as string[];
}

const ACCOUNT_ID = /^\d{12}$/;
const ACCOUNT_ROOT = /^arn:aws:iam::(\d{12}):root$/;
const IAM_PRINCIPAL = /^arn:aws:iam::\d{12}:(user|role)\/[\w+=,.@/-]{1,512}$/;
const ASSUMED_ROLE = /^arn:aws:sts::\d{12}:assumed-role\/[\w+=,.@-]{1,64}\/[\w+=,.@-]{2,64}$/;

export interface ParsePolicyOptions {
  /**
   * Whether an IAM user or role ARN names a principal that exists (AWS refuses a policy naming
   * one that does not). Give it when a policy is put (CreateKey, PutKeyPolicy), not when a
   * stored policy is read back: a principal removed since must not make the key unusable.
   */
  principalExists?: (arn: string) => boolean;
}

function awsPrincipal(value: string, where: string, options: ParsePolicyOptions): PrincipalEntry {
  if (value === "*") return { kind: "any" };
  if (ACCOUNT_ID.test(value)) return { kind: "account", accountId: value };
  const root = ACCOUNT_ROOT.exec(value);
  if (root) return { kind: "account", accountId: root[1] };
  if (IAM_PRINCIPAL.test(value) || ASSUMED_ROLE.test(value)) {
    if (options.principalExists && !options.principalExists(value)) throw malformed(`Policy contains a statement with one or more invalid principals: ${where} names ${JSON.stringify(value)}, which does not exist`);
    return { kind: "arn", arn: value };
  }
  throw malformed(`${where} has an invalid principal: ${JSON.stringify(value)} (use "*", an account id, arn:aws:iam::ACCOUNT:root, or an IAM user or role ARN)`);
}

function parsePrincipal(value: unknown, where: string, options: ParsePolicyOptions): PrincipalEntry[] {
  if (value === "*") return [{ kind: "any" }];
  if (!isObject(value) || Object.keys(value).length === 0) throw malformed(`${where} must be "*" or an object with "AWS" or "Service"`);
  const entries: PrincipalEntry[] = [];
  for (const [type, names] of Object.entries(value)) {
    if (type === "AWS") for (const name of stringList(names, `${where}.AWS`)) entries.push(awsPrincipal(name, `${where}.AWS`, options));
    else if (type === "Service") {
      for (const name of stringList(names, `${where}.Service`)) {
        if (!/^[a-z0-9.-]+\.amazonaws\.com(\.cn)?$/.test(name)) throw malformed(`${where}.Service has an invalid service principal: ${JSON.stringify(name)}`);
        entries.push({ kind: "service" });
      }
    } else throw malformed(`${where} has an unsupported principal type ${JSON.stringify(type)} (only "AWS" and "Service")`);
  }
  return entries;
}

function parseActions(value: unknown, where: string): string[] {
  const actions = stringList(value, where);
  for (const action of actions) {
    if (action !== "*" && !/^[A-Za-z0-9-]+:[A-Za-z0-9*?]+$/.test(action)) throw malformed(`${where} has an invalid action: ${JSON.stringify(action)}`);
  }
  return actions;
}

function parseResources(value: unknown, where: string): string[] {
  const resources = stringList(value, where);
  for (const resource of resources) {
    if (resource !== "*" && !/^arn:[^\s]+$/.test(resource)) throw malformed(`${where} has an invalid resource: ${JSON.stringify(resource)} (use "*" or the key's ARN)`);
  }
  return resources;
}

const STATEMENT_MEMBERS = new Set(["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"]);

/** Exactly one of `name` and `notName`. */
function oneOf(raw: Record<string, unknown>, name: string, where: string): { value: unknown; negated: boolean } {
  const has = own(raw, name);
  const hasNot = own(raw, `Not${name}`);
  if (has === hasNot) throw malformed(`${where} must have exactly one of ${name} and Not${name}`);
  return has ? { value: raw[name], negated: false } : { value: raw[`Not${name}`], negated: true };
}

function parseStatement(raw: unknown, where: string, options: ParsePolicyOptions): Statement & { sid: string | null } {
  if (!isObject(raw)) throw malformed(`${where} must be an object`);
  for (const member of Object.keys(raw)) if (!STATEMENT_MEMBERS.has(member)) throw malformed(`${where} has an unknown member ${JSON.stringify(member)}`);
  let sid: string | null = null;
  if (own(raw, "Sid")) {
    if (typeof raw.Sid !== "string") throw malformed(`${where}.Sid must be a string`);
    sid = raw.Sid;
  }
  if (raw.Effect !== "Allow" && raw.Effect !== "Deny") throw malformed(`${where}.Effect must be "Allow" or "Deny"`);
  const principal = oneOf(raw, "Principal", where);
  const action = oneOf(raw, "Action", where);
  const resource = oneOf(raw, "Resource", where);
  return {
    sid,
    effect: raw.Effect,
    principals: parsePrincipal(principal.value, `${where}.${principal.negated ? "NotPrincipal" : "Principal"}`, options),
    principalNegated: principal.negated,
    actions: parseActions(action.value, `${where}.${action.negated ? "NotAction" : "Action"}`),
    actionNegated: action.negated,
    resources: parseResources(resource.value, `${where}.${resource.negated ? "NotResource" : "Resource"}`),
    resourceNegated: resource.negated,
    conditions: own(raw, "Condition") ? parseConditions(raw.Condition, `${where}.Condition`) : [],
  };
}

/**
 * Checks a key policy document (at CreateKey and PutKeyPolicy): size, characters, JSON, and
 * every element this endpoint evaluates. Unknown members, operators and condition keys are
 * refused rather than ignored, so a policy never silently means less than it says.
 */
export function parsePolicy(text: string, options: ParsePolicyOptions = {}): ParsedPolicy {
  // A stored policy is parsed again for every request on its key: keep the last few (the
  // result is immutable, and a policy checked with principalExists is never cached).
  const cacheable = options.principalExists === undefined;
  if (cacheable && typeof text === "string") {
    const hit = recent.get(text);
    if (hit) return hit;
  }
  const parsed = parseUncached(text, options);
  if (cacheable) {
    if (recent.size >= RECENT_POLICIES) recent.delete(recent.keys().next().value as string);
    recent.set(text, parsed);
  }
  return parsed;
}

const RECENT_POLICIES = 256;
const recent = new Map<string, ParsedPolicy>();

function parseUncached(text: string, options: ParsePolicyOptions): ParsedPolicy {
  if (typeof text !== "string" || text.length === 0) throw malformed("The policy document is empty");
  if (Buffer.byteLength(text, "utf8") > MAX_POLICY_BYTES) throw malformed(`The policy document is larger than the key policy quota of ${MAX_POLICY_BYTES} bytes`);
  // AWS's key policy character set: tab, line feed, carriage return and U+0020–U+00FF.
  if (/[^\t\n\r\u0020-\u00ff]/.test(text)) throw malformed("The policy document has characters outside printable ASCII, Latin-1, tab, line feed and carriage return");
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw malformed("The policy document is not valid JSON");
  }
  if (!isObject(document)) throw malformed("The policy document must be a JSON object");
  for (const member of Object.keys(document)) if (member !== "Version" && member !== "Id" && member !== "Statement") throw malformed(`The policy document has an unknown member ${JSON.stringify(member)}`);
  if (own(document, "Version") && document.Version !== "2012-10-17" && document.Version !== "2008-10-17") throw malformed('Version must be "2012-10-17" or "2008-10-17"');
  if (own(document, "Id") && typeof document.Id !== "string") throw malformed("Id must be a string");
  const raw = document.Statement;
  const list = Array.isArray(raw) ? raw : isObject(raw) ? [raw] : null;
  if (!list || list.length === 0) throw malformed("Statement must be an object or a non-empty array of statements");
  // Policy variables (${aws:username}, …) are not substituted here; under 2012-10-17 they would
  // be taken literally, and a Deny that never matches fails open. Refuse them instead.
  if (document.Version === "2012-10-17" && text.includes("${")) throw malformed("Policy variables (${…}) are not supported by this endpoint");
  const sids = new Set<string>();
  const statements = list.map((item, index) => {
    const { sid, ...statement } = parseStatement(item, `Statement[${index}]`, options);
    if (sid !== null && sid !== "") {
      if (sids.has(sid)) throw malformed(`Statement ids must be unique: ${JSON.stringify(sid)} is used twice`);
      sids.add(sid);
    }
    return Object.freeze(statement);
  });
  const parsed: ParsedPolicy = Object.freeze({ text });
  WeakMapSet(compiled, parsed, Object.freeze(statements));
  return parsed;
}

// ---- evaluation ---------------------------------------------------------------------------

function principalMatches(entry: PrincipalEntry, caller: Caller): boolean {
  switch (entry.kind) {
    case "any": return true;
    case "account": return caller.accountId === entry.accountId;
    case "arn": return caller.arn === entry.arn;
    case "service": return false;
  }
}

function statementApplies(statement: Statement, request: AccessRequest, values: Map<string, string[]>): boolean {
  const principal = statement.principals.some((entry) => principalMatches(entry, request.caller));
  if (principal === statement.principalNegated) return false;
  const action = statement.actions.some((pattern) => globMatches(pattern, request.action, true));
  if (action === statement.actionNegated) return false;
  const resource = statement.resources.some((pattern) => pattern === "*" || globMatches(pattern, request.key.arn, false));
  if (resource === statement.resourceNegated) return false;
  return statement.conditions.every((test) => conditionHolds(test, values));
}

function statementsOf(policy: ParsedPolicy): readonly Statement[] {
  const statements = typeof policy === "object" && policy !== null ? WeakMapGet(compiled, policy) : undefined;
  if (!statements) throw new KmsError("KMSInternalException", "a key policy was evaluated without having been checked");
  return statements;
}

/** What the key policy says of `request`: an explicit Deny, an Allow, or nothing. */
export function evaluatePolicy(policy: ParsedPolicy, request: AccessRequest): PolicyVerdict {
  const statements = statementsOf(policy);
  const values = requestValues(request);
  let allowed = false;
  for (const statement of statements) {
    if (!statementApplies(statement, request, values)) continue;
    if (statement.effect === "Deny") return "DENY";
    allowed = true;
  }
  return allowed ? "ALLOW" : "NONE";
}

/**
 * AWS's key policy lockout safety check, for PutKeyPolicy and CreateKey with a policy (unless
 * BypassPolicyLockoutSafetyCheck): the new policy must still let `caller` put a key policy on
 * `key`. MalformedPolicyDocumentException otherwise.
 */
export function lockoutSafetyCheck(policy: ParsedPolicy, caller: Caller, key: KeyRecord): void {
  if (evaluatePolicy(policy, { caller, action: "kms:PutKeyPolicy", key }) !== "ALLOW") {
    throw malformed("The new key policy will not allow you to update the key policy in the future.");
  }
}
