// Key policies: the default policy, what parsePolicy refuses (naming the element), and how a
// policy evaluates: principals, actions with wildcards, resources, Not* elements, conditions
// (operators, set prefixes, IfExists, Null, missing keys), and the lockout safety check.
import { describe, expect, it } from "vitest";

import { type AccessRequest, defaultKeyPolicy, evaluatePolicy, globMatches, lockoutSafetyCheck, parsePolicy } from "../../src/kms/policy.js";
import { OWNER, SAAS, caller, expectKmsError, keyRecord, ownerAdmin, ownerRoot, policyText, saasOther, saasUser, stranger } from "./auth-fixture.js";

const key = keyRecord();
const request = (overrides: Partial<AccessRequest>): AccessRequest => ({ caller: ownerAdmin, action: "kms:Encrypt", key, ...overrides });
const verdict = (text: string, overrides: Partial<AccessRequest>) => evaluatePolicy(parsePolicy(text), request(overrides));
const allow = (extra: object = {}) => ({ Effect: "Allow", Principal: { AWS: "*" }, Action: "kms:*", Resource: "*", ...extra });

describe("the default key policy", () => {
  const policy = parsePolicy(defaultKeyPolicy(OWNER));

  it("is AWS's: one statement giving the key's account root kms:*", () => {
    const doc = JSON.parse(defaultKeyPolicy(OWNER));
    expect(doc).toEqual({
      Version: "2012-10-17",
      Id: "key-default-1",
      Statement: [{ Sid: "Enable IAM User Permissions", Effect: "Allow", Principal: { AWS: `arn:aws:iam::${OWNER}:root` }, Action: "kms:*", Resource: "*" }],
    });
  });

  it("allows every principal of the key's account, any action", () => {
    for (const who of [ownerAdmin, ownerRoot, caller(OWNER, "someone-else")]) {
      for (const action of ["kms:Encrypt", "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:CreateGrant"]) {
        expect(evaluatePolicy(policy, request({ caller: who, action }))).toBe("ALLOW");
      }
    }
  });

  it("says nothing of another account's principals, root or user", () => {
    for (const who of [saasUser, caller(SAAS, null), stranger]) expect(evaluatePolicy(policy, request({ caller: who }))).toBe("NONE");
  });

  it("refuses an account id that is not 12 digits", () => {
    expectKmsError(() => defaultKeyPolicy("12345"), "ValidationException");
  });
});

describe("parsePolicy refuses, naming what is wrong", () => {
  const cases: [string, string, RegExp][] = [
    ["empty", "", /empty/],
    ["not JSON", "{", /not valid JSON/],
    ["an array", "[]", /JSON object/],
    ["a bad Version", JSON.stringify({ Version: "2020-01-01", Statement: [allow()] }), /Version/],
    ["an unknown top member", JSON.stringify({ Version: "2012-10-17", Statement: [allow()], Extra: 1 }), /Extra/],
    ["no Statement", JSON.stringify({ Version: "2012-10-17" }), /Statement/],
    ["an empty Statement", policyText(), /Statement/],
    ["a bad Effect", policyText(allow({ Effect: "allow" })), /Statement\[0\]\.Effect/],
    ["no Principal", policyText({ Effect: "Allow", Action: "kms:*", Resource: "*" }), /Principal/],
    ["both Principal and NotPrincipal", policyText(allow({ NotPrincipal: { AWS: "*" } })), /exactly one of Principal and NotPrincipal/],
    ["no Action", policyText({ Effect: "Allow", Principal: "*", Resource: "*" }), /Action/],
    ["no Resource", policyText({ Effect: "Allow", Principal: "*", Action: "kms:*" }), /Resource/],
    ["an unknown statement member", policyText(allow({ Conditions: {} })), /Conditions/],
    ["a principal that is no ARN", policyText(allow({ Principal: { AWS: "bob" } })), /invalid principal: "bob"/],
    ["a wildcard inside a principal ARN", policyText(allow({ Principal: { AWS: "arn:aws:iam::*:root" } })), /invalid principal/],
    ["a short account id", policyText(allow({ Principal: { AWS: "11112222333" } })), /invalid principal/],
    ["a Federated principal", policyText(allow({ Principal: { Federated: "cognito-identity.amazonaws.com" } })), /unsupported principal type "Federated"/],
    ["an empty principal list", policyText(allow({ Principal: { AWS: [] } })), /Principal\.AWS/],
    ["an action without a service", policyText(allow({ Action: "Encrypt" })), /invalid action: "Encrypt"/],
    ["an action that is not a string", policyText(allow({ Action: [1] })), /Action/],
    ["a resource that is no ARN", policyText(allow({ Resource: "my-key" })), /invalid resource/],
    ["an unknown operator", policyText(allow({ Condition: { NumericLessThan: { "kms:CallerAccount": "1" } } })), /unsupported condition operator "NumericLessThan"/],
    ["an unknown condition key", policyText(allow({ Condition: { StringEquals: { "aws:RequestedRegion": "us-east-1" } } })), /unsupported condition key "aws:RequestedRegion"/],
    ["kms:EncryptionContext: with no key", policyText(allow({ Condition: { StringEquals: { "kms:EncryptionContext:": "x" } } })), /unsupported condition key/],
    ["Null with a set prefix", policyText(allow({ Condition: { "ForAnyValue:Null": { "kms:CallerAccount": "true" } } })), /Null/],
    ["Bool with a value that is no boolean", policyText(allow({ Condition: { Bool: { "kms:GrantIsForAWSResource": "yes" } } })), /"true" or "false"/],
    ["a condition with no values", policyText(allow({ Condition: { StringEquals: { "kms:CallerAccount": [] } } })), /at least one value/],
    ["a condition value that is an object", policyText(allow({ Condition: { StringEquals: { "kms:CallerAccount": { a: 1 } } } })), /strings, booleans or numbers/],
    ["duplicate Sids", policyText(allow({ Sid: "a" }), allow({ Sid: "a" })), /"a" is used twice/],
    ["a policy variable (it would be taken literally)", policyText(allow({ Effect: "Deny", Condition: { StringNotEquals: { "aws:PrincipalArn": "arn:aws:iam::111122223333:user/${aws:username}" } } })), /Policy variables/],
    ["characters outside Latin-1", policyText(allow({ Sid: "\u4e2d" })).replace("\\u4e2d", "\u4e2d"), /characters outside/],
  ];
  for (const [name, text, message] of cases) {
    it(name, () => {
      const error = expectKmsError(() => parsePolicy(text), "MalformedPolicyDocumentException");
      expect(error.message).toMatch(message);
    });
  }

  it("a document over 32 KB, even when it is valid JSON", () => {
    const big = policyText(allow({ Sid: "x".repeat(33_000) }));
    expectKmsError(() => parsePolicy(big), "MalformedPolicyDocumentException");
    // …and one just under the quota is accepted.
    const pad = 32_768 - Buffer.byteLength(policyText(allow({ Sid: "" })));
    expect(() => parsePolicy(policyText(allow({ Sid: "x".repeat(pad) })))).not.toThrow();
  });

  it("accepts Statement as a single object, Version 2008-10-17, and Service principals (which match no caller)", () => {
    const text = JSON.stringify({ Version: "2008-10-17", Statement: { Effect: "Allow", Principal: { Service: "s3.amazonaws.com" }, Action: "kms:*", Resource: "*" } });
    expect(verdict(text, {})).toBe("NONE");
  });

  it("a __proto__ member in a statement is refused, not merged into anything", () => {
    const text = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","__proto__":{"x":1}}]}`;
    expectKmsError(() => parsePolicy(text), "MalformedPolicyDocumentException");
  });
});

describe("principalExists (at CreateKey/PutKeyPolicy)", () => {
  it("refuses a user or role ARN that does not exist; account roots and ids need no check", () => {
    const known = new Set([saasUser.arn]);
    const options = { principalExists: (arn: string) => known.has(arn) };
    parsePolicy(policyText(allow({ Principal: { AWS: [saasUser.arn, SAAS, `arn:aws:iam::${OWNER}:root`] } })), options);
    const error = expectKmsError(() => parsePolicy(policyText(allow({ Principal: { AWS: saasOther.arn } })), options), "MalformedPolicyDocumentException");
    expect(error.message).toMatch(/invalid principals/);
    expect(error.message).toContain(saasOther.arn);
    // Read back without the check (a principal removed since does not break the key).
    expect(() => parsePolicy(policyText(allow({ Principal: { AWS: saasOther.arn } })))).not.toThrow();
  });

  it("a policy accepted from the cache is still checked when principalExists is given", () => {
    const text = policyText(allow({ Principal: { AWS: stranger.arn } }));
    parsePolicy(text);
    expectKmsError(() => parsePolicy(text, { principalExists: () => false }), "MalformedPolicyDocumentException");
  });

  it("the same text gives the same frozen result; a refused text is refused every time", () => {
    const text = defaultKeyPolicy(SAAS);
    expect(parsePolicy(text)).toBe(parsePolicy(text));
    expectKmsError(() => parsePolicy("{}"), "MalformedPolicyDocumentException");
    expectKmsError(() => parsePolicy("{}"), "MalformedPolicyDocumentException");
  });
});

describe("evaluation", () => {
  it("an account id and an account root ARN both stand for every principal of that account", () => {
    for (const principal of [SAAS, `arn:aws:iam::${SAAS}:root`]) {
      const text = policyText(allow({ Principal: { AWS: principal } }));
      expect(verdict(text, { caller: saasUser })).toBe("ALLOW");
      expect(verdict(text, { caller: saasOther })).toBe("ALLOW");
      expect(verdict(text, { caller: ownerAdmin })).toBe("NONE");
    }
  });

  it("a user ARN is that user only (exact, case-sensitive)", () => {
    const text = policyText(allow({ Principal: { AWS: [saasUser.arn] } }));
    expect(verdict(text, { caller: saasUser })).toBe("ALLOW");
    expect(verdict(text, { caller: saasOther })).toBe("NONE");
    expect(verdict(text, { caller: caller(SAAS, null) })).toBe("NONE");
    expect(verdict(text, { caller: caller(SAAS, "SAAS") })).toBe("NONE");
  });

  it('"*" is everyone, in every account', () => {
    expect(verdict(policyText(allow({ Principal: "*" })), { caller: stranger })).toBe("ALLOW");
  });

  it("actions: exact (without regard to case), kms:*, and wildcards", () => {
    const text = policyText(allow({ Action: ["kms:Generate*", "kms:decrypt", "kms:ReEncrypt?o"] }));
    expect(verdict(text, { action: "kms:GenerateDataKey" })).toBe("ALLOW");
    expect(verdict(text, { action: "kms:GenerateDataKeyWithoutPlaintext" })).toBe("ALLOW");
    expect(verdict(text, { action: "kms:Decrypt" })).toBe("ALLOW");
    expect(verdict(text, { action: "kms:ReEncryptTo" })).toBe("ALLOW");
    expect(verdict(text, { action: "kms:ReEncryptFrom" })).toBe("NONE");
    expect(verdict(text, { action: "kms:Encrypt" })).toBe("NONE");
    expect(verdict(text, { action: "kms:PutKeyPolicy" })).toBe("NONE");
    expect(verdict(policyText(allow({ Action: "s3:*" })), { action: "kms:Encrypt" })).toBe("NONE");
    expect(verdict(policyText(allow({ Action: "*" })), { action: "kms:Encrypt" })).toBe("ALLOW");
  });

  it("resources: * or this key's ARN (a pattern may match it); another key's ARN does not apply", () => {
    expect(verdict(policyText(allow({ Resource: key.arn })), {})).toBe("ALLOW");
    expect(verdict(policyText(allow({ Resource: "arn:aws:kms:us-east-1:111122223333:key/*" })), {})).toBe("ALLOW");
    expect(verdict(policyText(allow({ Resource: "arn:aws:kms:us-east-1:111122223333:key/other" })), {})).toBe("NONE");
  });

  it("an explicit Deny wins over any Allow, whatever the order", () => {
    const deny = { Effect: "Deny", Principal: { AWS: saasUser.arn }, Action: "kms:Decrypt", Resource: "*" };
    for (const text of [policyText(allow(), deny), policyText(deny, allow())]) {
      expect(verdict(text, { caller: saasUser, action: "kms:Decrypt" })).toBe("DENY");
      expect(verdict(text, { caller: saasUser, action: "kms:Encrypt" })).toBe("ALLOW");
      expect(verdict(text, { caller: saasOther, action: "kms:Decrypt" })).toBe("ALLOW");
    }
  });

  it("NotPrincipal, NotAction and NotResource apply to everything except what they list", () => {
    const text = policyText(allow(), { Effect: "Deny", NotPrincipal: { AWS: ownerAdmin.arn }, NotAction: ["kms:Describe*", "kms:Encrypt"], Resource: "*" });
    expect(verdict(text, { caller: ownerAdmin, action: "kms:Decrypt" })).toBe("ALLOW");
    expect(verdict(text, { caller: saasUser, action: "kms:Decrypt" })).toBe("DENY");
    expect(verdict(text, { caller: saasUser, action: "kms:Encrypt" })).toBe("ALLOW");
    expect(verdict(text, { caller: saasUser, action: "kms:DescribeKey" })).toBe("ALLOW");
    expect(verdict(policyText(allow({ Resource: undefined, NotResource: key.arn })), {})).toBe("NONE");
    expect(verdict(policyText(allow({ Resource: undefined, NotResource: "arn:aws:kms:*:*:key/else" })), {})).toBe("ALLOW");
  });

  it("a look-alike policy object that parsePolicy did not return is refused, not evaluated", () => {
    expectKmsError(() => evaluatePolicy({ text: policyText(allow()) }, request({})), "KMSInternalException");
  });
});

describe("conditions", () => {
  const withCondition = (condition: object) => policyText(allow({ Condition: condition }));
  const ec = (encryptionContext?: Record<string, string>) => ({ encryptionContext });

  it("kms:EncryptionContext:KEY with StringEquals: the value exactly; the key name without regard to case (AWS)", () => {
    const text = withCondition({ StringEquals: { "kms:EncryptionContext:Department": "IT" } });
    expect(verdict(text, ec({ Department: "IT" }))).toBe("ALLOW");
    expect(verdict(text, ec({ department: "IT" }))).toBe("ALLOW");
    expect(verdict(text, ec({ Department: "it" }))).toBe("NONE");
    expect(verdict(text, ec({ Team: "IT" }))).toBe("NONE");
    expect(verdict(text, ec(undefined))).toBe("NONE");
  });

  it("StringEqualsIgnoreCase, StringLike, StringNotEquals and several values (any of them)", () => {
    expect(verdict(withCondition({ StringEqualsIgnoreCase: { "kms:EncryptionContext:dept": "it" } }), ec({ dept: "IT" }))).toBe("ALLOW");
    const like = withCondition({ StringLike: { "kms:EncryptionContext:path": ["/home/*", "/tmp/?"] } });
    expect(verdict(like, ec({ path: "/home/alice/file" }))).toBe("ALLOW");
    expect(verdict(like, ec({ path: "/tmp/x" }))).toBe("ALLOW");
    expect(verdict(like, ec({ path: "/tmp/xy" }))).toBe("NONE");
    const notEquals = withCondition({ StringNotEquals: { "kms:EncryptionContext:dept": ["HR", "Legal"] } });
    expect(verdict(notEquals, ec({ dept: "IT" }))).toBe("ALLOW");
    expect(verdict(notEquals, ec({ dept: "HR" }))).toBe("NONE");
    // A negated operator holds when the key is absent (IAM's rule).
    expect(verdict(notEquals, ec(undefined))).toBe("ALLOW");
    expect(verdict(withCondition({ StringNotLike: { "kms:EncryptionContext:dept": "H*" } }), ec({ dept: "Hardware" }))).toBe("NONE");
  });

  it("kms:EncryptionContextKeys: ForAllValues (only these keys, none also passes) and ForAnyValue (at least one)", () => {
    const all = withCondition({ "ForAllValues:StringEquals": { "kms:EncryptionContextKeys": ["dept", "project"] } });
    expect(verdict(all, ec({ dept: "a" }))).toBe("ALLOW");
    expect(verdict(all, ec({ dept: "a", project: "b" }))).toBe("ALLOW");
    expect(verdict(all, ec({ dept: "a", extra: "c" }))).toBe("NONE");
    expect(verdict(all, ec({ Dept: "a" }))).toBe("NONE"); // kms:EncryptionContextKeys is case-sensitive
    expect(verdict(all, ec(undefined))).toBe("ALLOW");
    const any = withCondition({ "ForAnyValue:StringEquals": { "kms:EncryptionContextKeys": "dept" } });
    expect(verdict(any, ec({ dept: "a", extra: "b" }))).toBe("ALLOW");
    expect(verdict(any, ec({ extra: "b" }))).toBe("NONE");
    expect(verdict(any, ec({}))).toBe("NONE");
  });

  it("Null: true requires the key absent, false present", () => {
    const present = withCondition({ Null: { "kms:EncryptionContextKeys": "false" } });
    expect(verdict(present, ec({ a: "b" }))).toBe("ALLOW");
    expect(verdict(present, ec({}))).toBe("NONE");
    expect(verdict(withCondition({ Null: { "kms:ViaService": "true" } }), {})).toBe("ALLOW");
    expect(verdict(withCondition({ Null: { "kms:ViaService": "false" } }), {})).toBe("NONE");
  });

  it("IfExists holds when the key is absent and tests it when present", () => {
    const text = withCondition({ StringEqualsIfExists: { "kms:EncryptionContext:dept": "IT" } });
    expect(verdict(text, ec(undefined))).toBe("ALLOW");
    expect(verdict(text, ec({ dept: "IT" }))).toBe("ALLOW");
    expect(verdict(text, ec({ dept: "HR" }))).toBe("NONE");
  });

  it("caller keys: kms:CallerAccount, aws:PrincipalArn (ArnLike), aws:PrincipalAccount", () => {
    const text = policyText(allow({ Condition: { StringEquals: { "kms:CallerAccount": SAAS }, ArnLike: { "aws:PrincipalArn": "arn:aws:iam::*:user/saas" } } }));
    expect(verdict(text, { caller: saasUser })).toBe("ALLOW");
    expect(verdict(text, { caller: saasOther })).toBe("NONE");
    expect(verdict(text, { caller: caller(OWNER, "saas") })).toBe("NONE");
    expect(verdict(withCondition({ StringEquals: { "aws:PrincipalAccount": OWNER } }), { caller: ownerAdmin })).toBe("ALLOW");
  });

  it("kms:GrantIsForAWSResource is false, and only for the grant operations; kms:ViaService is never present", () => {
    const forAws = withCondition({ Bool: { "kms:GrantIsForAWSResource": "true" } });
    expect(verdict(forAws, { action: "kms:CreateGrant", grantOperations: ["Decrypt"], granteePrincipal: saasUser.arn })).toBe("NONE");
    const notForAws = withCondition({ Bool: { "kms:GrantIsForAWSResource": false } });
    expect(verdict(notForAws, { action: "kms:CreateGrant", grantOperations: ["Decrypt"], granteePrincipal: saasUser.arn })).toBe("ALLOW");
    expect(verdict(notForAws, { action: "kms:Encrypt" })).toBe("NONE");
    expect(verdict(withCondition({ StringLike: { "kms:ViaService": "*" } }), {})).toBe("NONE");
  });

  it("CreateGrant keys: kms:GrantOperations, kms:GranteePrincipal, kms:RetiringPrincipal, kms:GrantConstraintType", () => {
    const text = withCondition({
      "ForAllValues:StringEquals": { "kms:GrantOperations": ["Decrypt", "Encrypt"] },
      StringEquals: { "kms:GranteePrincipal": saasUser.arn },
      StringEqualsIfExists: { "kms:RetiringPrincipal": ownerAdmin.arn },
      Null: { "kms:GrantConstraintType": "false" },
    });
    const grant = { action: "kms:CreateGrant", grantOperations: ["Decrypt"], granteePrincipal: saasUser.arn, grantConstraints: { EncryptionContextSubset: { a: "b" } } };
    expect(verdict(text, grant)).toBe("ALLOW");
    expect(verdict(text, { ...grant, grantOperations: ["Decrypt", "CreateGrant"] })).toBe("NONE");
    expect(verdict(text, { ...grant, granteePrincipal: saasOther.arn })).toBe("NONE");
    expect(verdict(text, { ...grant, retiringPrincipal: saasUser.arn })).toBe("NONE");
    expect(verdict(text, { ...grant, grantConstraints: null })).toBe("NONE");
    const typed = withCondition({ StringEquals: { "kms:GrantConstraintType": "EncryptionContextEquals" } });
    expect(verdict(typed, { ...grant, grantConstraints: { EncryptionContextEquals: { a: "b" } } })).toBe("ALLOW");
    expect(verdict(typed, grant)).toBe("NONE");
  });

  it("key keys: kms:KeySpec, kms:KeyOrigin; every operator and every key of a statement must hold", () => {
    const text = withCondition({ StringEquals: { "kms:KeySpec": "SYMMETRIC_DEFAULT", "kms:KeyOrigin": "AWS_CLOUDHSM" } });
    expect(verdict(text, {})).toBe("NONE");
    expect(verdict(text, { key: keyRecord({ origin: "AWS_CLOUDHSM" }) })).toBe("ALLOW");
  });

  it("a condition on a Deny statement: deny only when it holds", () => {
    const text = policyText(allow(), { Effect: "Deny", Principal: "*", Action: "kms:Decrypt", Resource: "*", Condition: { StringNotEquals: { "kms:EncryptionContext:tenant": "acme" } } });
    expect(verdict(text, { action: "kms:Decrypt", ...ec({ tenant: "acme" }) })).toBe("ALLOW");
    expect(verdict(text, { action: "kms:Decrypt", ...ec({ tenant: "evil" }) })).toBe("DENY");
    expect(verdict(text, { action: "kms:Decrypt", ...ec(undefined) })).toBe("DENY");
  });
});

describe("the lockout safety check", () => {
  it("passes a policy that still lets the caller put a policy (directly or through its account)", () => {
    lockoutSafetyCheck(parsePolicy(defaultKeyPolicy(OWNER)), ownerAdmin, key);
    lockoutSafetyCheck(parsePolicy(policyText(allow({ Principal: { AWS: ownerAdmin.arn }, Action: "kms:Put*" }))), ownerAdmin, key);
  });

  it("refuses one that would lock the caller out: no statement for them, or a Deny of PutKeyPolicy", () => {
    const onlySaas = parsePolicy(policyText(allow({ Principal: { AWS: SAAS } })));
    const error = expectKmsError(() => lockoutSafetyCheck(onlySaas, ownerAdmin, key), "MalformedPolicyDocumentException");
    expect(error.message).toMatch(/will not allow you to update the key policy/);
    const denied = parsePolicy(policyText(allow(), { Effect: "Deny", Principal: { AWS: ownerAdmin.arn }, Action: "kms:PutKeyPolicy", Resource: "*" }));
    expectKmsError(() => lockoutSafetyCheck(denied, ownerAdmin, key), "MalformedPolicyDocumentException");
    const notPut = parsePolicy(policyText(allow({ Principal: { AWS: OWNER }, Action: ["kms:Encrypt", "kms:Decrypt"] })));
    expectKmsError(() => lockoutSafetyCheck(notPut, ownerAdmin, key), "MalformedPolicyDocumentException");
  });
});

describe("globMatches", () => {
  it("matches IAM wildcards", () => {
    expect(globMatches("a*c", "abbbc", false)).toBe(true);
    expect(globMatches("a*c", "abbbd", false)).toBe(false);
    expect(globMatches("a?c", "abc", false)).toBe(true);
    expect(globMatches("*", "", false)).toBe(true);
    expect(globMatches("", "x", false)).toBe(false);
    expect(globMatches("A*", "abc", false)).toBe(false);
    expect(globMatches("A*", "abc", true)).toBe(true);
    expect(globMatches("*.*", "a.b.c", false)).toBe(true);
  });

  it("a pattern of many stars against a long value ends at once (no exponential backtracking)", () => {
    const pattern = "*a".repeat(500) + "b";
    const value = "a".repeat(5000);
    expect(globMatches(pattern, value, false)).toBe(false);
    const text = withLongPattern(pattern);
    expect(evaluatePolicy(parsePolicy(text), request({ encryptionContext: { k: value } }))).toBe("NONE");
  });
});

function withLongPattern(pattern: string): string {
  return policyText(allow({ Condition: { StringLike: { "kms:EncryptionContext:k": pattern } } }));
}
