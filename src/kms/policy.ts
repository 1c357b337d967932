// Key policies: the default policy, checking a policy document when it is put, and evaluating
// one for a request. There is no IAM here: a key policy statement that names an account (its
// root, or the bare account id) allows every principal of that account, as an IAM policy that
// allows everything would. Cross-account principals need a statement naming them (or their
// account) or a grant. An explicit Deny always wins. [helper: auth]
// Supported: Principal/NotPrincipal ("*", AWS account ids, account roots, IAM users and roles,
// assumed roles; Service principals, which match no caller here), Action/NotAction and
// Resource/NotResource with * and ? wildcards, and Condition with the String*, Arn*, Bool and
// Null operators (ForAnyValue:/ForAllValues:, …IfExists) on the keys in CONDITION_KEYS and
// kms:EncryptionContext:KEY. Anything else is refused when the policy is put.
import { KmsError } from "./errors.js";
import type { Caller, GrantConstraints, KeyRecord } from "./types.js";

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

interface ConditionTest {
  /** The base operator, e.g. "stringequals". */
  operator: BaseOperator;
  set: "none" | "anyvalue" | "allvalues";
  ifExists: boolean;
  /** The condition key, lower case. */
  key: string;
  values: string[];
}

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

const BASE_OPERATORS = [
  "stringequals", "stringnotequals", "stringequalsignorecase", "stringnotequalsignorecase",
  "stringlike", "stringnotlike", "arnequals", "arnnotequals", "arnlike", "arnnotlike", "bool", "null",
] as const;
type BaseOperator = (typeof BASE_OPERATORS)[number];
const NEGATED: ReadonlySet<BaseOperator> = new Set(["stringnotequals", "stringnotequalsignorecase", "stringnotlike", "arnnotequals", "arnnotlike"]);

/** Condition keys this endpoint knows (lower case), and whether they are multivalued. */
const CONDITION_KEYS: ReadonlyMap<string, "single" | "multi"> = new Map([
  ["kms:encryptioncontextkeys", "multi"],
  ["kms:calleraccount", "single"],
  ["aws:principalarn", "single"],
  ["aws:principalaccount", "single"],
  ["aws:principaltype", "single"],
  ["aws:username", "single"],
  ["aws:securetransport", "single"],
  ["kms:grantisforawsresource", "single"],
  ["kms:viaservice", "single"],
  ["kms:grantoperations", "multi"],
  ["kms:granteeprincipal", "single"],
  ["kms:retiringprincipal", "single"],
  ["kms:grantconstrainttype", "single"],
  ["kms:keyspec", "single"],
  ["kms:keyusage", "single"],
  ["kms:keyorigin", "single"],
]);
const CONTEXT_KEY_PREFIX = "kms:encryptioncontext:";

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

function parseOperator(name: string, where: string): Pick<ConditionTest, "operator" | "set" | "ifExists"> {
  let rest = name.toLowerCase();
  let set: ConditionTest["set"] = "none";
  if (rest.startsWith("foranyvalue:")) [set, rest] = ["anyvalue", rest.slice("foranyvalue:".length)];
  else if (rest.startsWith("forallvalues:")) [set, rest] = ["allvalues", rest.slice("forallvalues:".length)];
  let ifExists = false;
  if (rest.endsWith("ifexists")) [ifExists, rest] = [true, rest.slice(0, -"ifexists".length)];
  const operator = BASE_OPERATORS.find((op) => op === rest);
  if (!operator) throw malformed(`${where} has an unsupported condition operator ${JSON.stringify(name)}`);
  if (operator === "null" && (set !== "none" || ifExists)) throw malformed(`${where}: the Null operator takes no prefix or IfExists (${JSON.stringify(name)})`);
  if (operator === "bool" && set !== "none") throw malformed(`${where}: the Bool operator takes no ForAnyValue/ForAllValues prefix (${JSON.stringify(name)})`);
  return { operator, set, ifExists };
}

function conditionValues(value: unknown, where: string): string[] {
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) throw malformed(`${where} must have at least one value`);
  return list.map((item) => {
    if (typeof item === "string") return item;
    if (typeof item === "boolean" || (typeof item === "number" && Number.isFinite(item))) return String(item);
    throw malformed(`${where} values must be strings, booleans or numbers`);
  });
}

function parseConditions(value: unknown, where: string): ConditionTest[] {
  if (!isObject(value)) throw malformed(`${where} must be an object of operators`);
  const tests: ConditionTest[] = [];
  for (const [operatorName, block] of Object.entries(value)) {
    const operator = parseOperator(operatorName, where);
    if (!isObject(block) || Object.keys(block).length === 0) throw malformed(`${where}.${operatorName} must be a non-empty object of condition keys`);
    for (const [keyName, keyValue] of Object.entries(block)) {
      const key = keyName.toLowerCase();
      const known = CONDITION_KEYS.has(key) || (key.startsWith(CONTEXT_KEY_PREFIX) && key.length > CONTEXT_KEY_PREFIX.length);
      if (!known) throw malformed(`${where}.${operatorName} has an unsupported condition key ${JSON.stringify(keyName)}`);
      const values = conditionValues(keyValue, `${where}.${operatorName}.${keyName}`);
      if (operator.operator === "null" || operator.operator === "bool") {
        for (const v of values) if (v.toLowerCase() !== "true" && v.toLowerCase() !== "false") throw malformed(`${where}.${operatorName}.${keyName} must be "true" or "false"`);
      }
      tests.push({ ...operator, key, values });
    }
  }
  return tests;
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
  compiled.set(parsed, Object.freeze(statements));
  return parsed;
}

// ---- evaluation ---------------------------------------------------------------------------

/**
 * IAM's wildcard match: `*` any run of characters, `?` any one. Linear in practice (the
 * classic backtrack-to-the-last-star walk), so a policy full of stars cannot stall a request
 * the way a regular expression built from it could.
 */
export function globMatches(pattern: string, value: string, ignoreCase: boolean): boolean {
  if (ignoreCase) [pattern, value] = [pattern.toLowerCase(), value.toLowerCase()];
  let p = 0;
  let v = 0;
  let star = -1;
  let resume = 0;
  while (v < value.length) {
    if (p < pattern.length && (pattern[p] === "?" || pattern[p] === value[v])) {
      p++;
      v++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      resume = v;
    } else if (star >= 0) {
      p = star + 1;
      v = ++resume;
    } else return false;
  }
  while (p < pattern.length && pattern[p] === "*") p++;
  return p === pattern.length;
}

/**
 * The request's encryption context, if it is a map of strings to strings (the wire layer has
 * checked it; this keeps a careless caller's mistake a KmsError rather than a TypeError).
 */
export function checkedContext(context: unknown): Record<string, string> | undefined {
  if (context === undefined || context === null) return undefined;
  if (typeof context !== "object" || Array.isArray(context) || !Object.values(context).every((value) => typeof value === "string")) {
    throw new KmsError("ValidationException", "EncryptionContext must be a map of strings to strings");
  }
  return context as Record<string, string>;
}

/** The request's values of the condition keys (lower case); a key absent from the map is absent from the request. */
function requestValues(request: AccessRequest): Map<string, string[]> {
  const { caller, key } = request;
  const values = new Map<string, string[]>([
    ["kms:calleraccount", [caller.accountId]],
    ["aws:principalarn", [caller.arn]],
    ["aws:principalaccount", [caller.accountId]],
    ["aws:principaltype", [caller.arn.endsWith(":root") ? "Account" : "User"]],
    ["aws:securetransport", ["false"]],
    ["kms:keyspec", [key.keySpec]],
    ["kms:keyusage", [key.keyUsage]],
    ["kms:keyorigin", [key.origin]],
  ]);
  if (typeof caller.userName === "string") values.set("aws:username", [caller.userName]);
  const context = checkedContext(request.encryptionContext);
  if (context) {
    const names = Object.keys(context);
    if (names.length > 0) values.set("kms:encryptioncontextkeys", names);
    // AWS: the context key named in kms:EncryptionContext:KEY is matched without regard to case.
    for (const name of names) {
      const condition = CONTEXT_KEY_PREFIX + name.toLowerCase();
      values.set(condition, [...(values.get(condition) ?? []), context[name]]);
    }
  }
  if (request.action === "kms:CreateGrant" || request.action === "kms:ListGrants" || request.action === "kms:RevokeGrant") {
    values.set("kms:grantisforawsresource", ["false"]);
  }
  if (request.action === "kms:CreateGrant") {
    if (Array.isArray(request.grantOperations)) values.set("kms:grantoperations", request.grantOperations.filter((op) => typeof op === "string"));
    if (typeof request.granteePrincipal === "string") values.set("kms:granteeprincipal", [request.granteePrincipal]);
    if (typeof request.retiringPrincipal === "string") values.set("kms:retiringprincipal", [request.retiringPrincipal]);
    const constraints = request.grantConstraints;
    const types = [
      ...(constraints?.EncryptionContextEquals && Object.keys(constraints.EncryptionContextEquals).length > 0 ? ["EncryptionContextEquals"] : []),
      ...(constraints?.EncryptionContextSubset && Object.keys(constraints.EncryptionContextSubset).length > 0 ? ["EncryptionContextSubset"] : []),
    ];
    if (types.length > 0) values.set("kms:grantconstrainttype", types);
  }
  return values;
}

/** Whether one request value satisfies the operator against the policy's values. */
function valueMatches(operator: BaseOperator, requestValue: string, policyValues: readonly string[]): boolean {
  switch (operator) {
    case "stringequals": case "stringnotequals": case "arnequals": case "arnnotequals":
      return policyValues.includes(requestValue);
    case "stringequalsignorecase": case "stringnotequalsignorecase": {
      const lower = requestValue.toLowerCase();
      return policyValues.some((v) => v.toLowerCase() === lower);
    }
    case "stringlike": case "stringnotlike": case "arnlike": case "arnnotlike":
      return policyValues.some((pattern) => globMatches(pattern, requestValue, false));
    case "bool":
      return policyValues.some((v) => v.toLowerCase() === requestValue.toLowerCase());
    case "null":
      return false; // handled by the caller
  }
}

function conditionHolds(test: ConditionTest, values: Map<string, string[]>): boolean {
  const present = values.get(test.key);
  if (test.operator === "null") {
    // "true": the key must be absent; "false": present. Several values: any of them.
    return test.values.some((v) => (v.toLowerCase() === "true") === (present === undefined));
  }
  const negated = NEGATED.has(test.operator);
  const one = (value: string): boolean => {
    const matched = valueMatches(test.operator, value, test.values);
    return negated ? !matched : matched;
  };
  if (present === undefined || present.length === 0) {
    if (test.ifExists) return true;
    if (test.set === "allvalues") return true;
    if (test.set === "anyvalue") return false;
    // A missing key matches no value: a positive operator fails, a negated one holds.
    return negated;
  }
  if (test.set === "allvalues") return present.every(one);
  if (test.set === "anyvalue") return present.some(one);
  // A plain operator on several values: a positive one holds when any value matches, a
  // negated one when none does.
  return negated ? present.every(one) : present.some(one);
}

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
  const statements = typeof policy === "object" && policy !== null ? compiled.get(policy) : undefined;
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
