// Key policy conditions: the operators and condition keys a policy may use, checking a
// Condition block when a policy is put, the request's values of the keys, and whether a
// condition holds (IAM's rules: a missing key fails a positive operator and satisfies a
// negated one; ForAllValues holds on no values, ForAnyValue does not).
import { KmsError } from "./errors.js";
import type { AccessRequest } from "./policy.js";

const malformed = (reason: string): KmsError => new KmsError("MalformedPolicyDocumentException", reason);
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

export interface ConditionTest {
  /** The base operator, e.g. "stringequals". */
  operator: BaseOperator;
  set: "none" | "anyvalue" | "allvalues";
  ifExists: boolean;
  /** The condition key, lower case. */
  key: string;
  values: string[];
}

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

export function parseConditions(value: unknown, where: string): ConditionTest[] {
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
export function requestValues(request: AccessRequest): Map<string, string[]> {
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

/** ARN's six parts (arn:partition:service:region:account:resource; the resource may hold colons), or null. */
function arnParts(value: string): string[] | null {
  const parts = value.split(":");
  if (parts.length < 6) return null;
  return [...parts.slice(0, 5), parts.slice(5).join(":")];
}

/** IAM's ARN match: part by part, a wildcard never spanning a colon; a pattern of fewer than six parts matches nothing. */
function arnMatches(pattern: string, value: string): boolean {
  const p = arnParts(pattern);
  const v = arnParts(value);
  if (p === null || v === null) return false;
  return p.every((part, i) => globMatches(part, v[i], false));
}

/** Whether one request value satisfies the operator against the policy's values. */
function valueMatches(operator: BaseOperator, requestValue: string, policyValues: readonly string[]): boolean {
  switch (operator) {
    case "stringequals": case "stringnotequals":
      return policyValues.includes(requestValue);
    case "arnequals": case "arnnotequals": case "arnlike": case "arnnotlike":
      // IAM's ARN operators are one: wildcards allowed, matched segment by segment.
      return policyValues.some((pattern) => arnMatches(pattern, requestValue));
    case "stringequalsignorecase": case "stringnotequalsignorecase": {
      const lower = requestValue.toLowerCase();
      return policyValues.some((v) => v.toLowerCase() === lower);
    }
    case "stringlike": case "stringnotlike":
      return policyValues.some((pattern) => globMatches(pattern, requestValue, false));
    case "bool":
      return policyValues.some((v) => v.toLowerCase() === requestValue.toLowerCase());
    case "null":
      return false; // handled by the caller
  }
}

export function conditionHolds(test: ConditionTest, values: Map<string, string[]>): boolean {
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
