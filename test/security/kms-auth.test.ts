// Attacks on key policies and grants, made the way an adversary would: another account with no
// statement and no grant, a grantee after its grant was retired or revoked, a token of another
// key's grant, forged and altered tokens, a grantee widening its grant through CreateGrant,
// encryption contexts that differ by case or smuggle a second key, prototype-named keys, a
// look-alike parsed policy, and a policy author's hostile wildcards.
import { describe, expect, it } from "vitest";

import { authorize, checkGrantShape, grantsForRequest, makeGrantToken, mayRetire } from "../../src/kms/grants.js";
import { type AccessRequest, defaultKeyPolicy, evaluatePolicy, parsePolicy } from "../../src/kms/policy.js";
import type { GrantRecord } from "../../src/kms/types.js";
import { OWNER, SAAS, caller, expectKmsError, grantRecord, keyRecord, ownerAdmin, policyText, saasOther, saasUser, stranger, testMac } from "../kms/auth-fixture.js";

const key = keyRecord();
const otherKey = keyRecord({ keyId: "99999999-aaaa-bbbb-cccc-dddddddddddd" });
const mac = testMac();

/** A tiny stand-in for the lead's grant handling: a grant table, tokens resolved through it, retire and revoke. */
class Grants {
  readonly byId = new Map<string, GrantRecord>();
  add(record: GrantRecord): string {
    const token = makeGrantToken(record.grantId, mac);
    this.byId.set(record.grantId, { ...record, grantToken: token });
    return token;
  }
  /** The key's grants plus those the tokens name (the tokens are checked first: a bad one fails the request). */
  forRequest(keyId: string, tokens: string[] = []): GrantRecord[] {
    const keyGrants = [...this.byId.values()].filter((g) => g.keyId === keyId);
    return grantsForRequest(keyGrants, tokens, mac, (id) => this.byId.get(id) ?? null);
  }
  retire(grantId: string, who: { arn: string; accountId: string }): void {
    const grant = this.byId.get(grantId);
    if (!grant || !mayRetire(grant, who.arn, who.accountId)) throw new Error("not allowed to retire");
    this.byId.delete(grantId);
  }
  revoke(grantId: string): void {
    this.byId.delete(grantId);
  }
}

function attempt(policyTextValue: string, grants: readonly GrantRecord[], request: Partial<AccessRequest>): "allowed" | "denied" | "explicit deny" {
  try {
    authorize(parsePolicy(policyTextValue), grants, { caller: saasUser, action: "kms:Decrypt", key, ...request });
    return "allowed";
  } catch (error) {
    expect((error as Error).name).toBe("AccessDeniedException");
    return (error as Error).message.includes("explicit deny") ? "explicit deny" : "denied";
  }
}

describe("the policy/grant matrix", () => {
  const defaultPolicy = defaultKeyPolicy(OWNER);
  const sharedWithSaas = policyText(
    { Effect: "Allow", Principal: { AWS: `arn:aws:iam::${OWNER}:root` }, Action: "kms:*", Resource: "*" },
    { Effect: "Allow", Principal: { AWS: saasUser.arn }, Action: ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"], Resource: "*" },
  );

  it("own account: allowed by the default policy", () => {
    expect(attempt(defaultPolicy, [], { caller: ownerAdmin })).toBe("allowed");
  });

  it("another account allowed by the policy: only the named principal, only the named actions", () => {
    expect(attempt(sharedWithSaas, [], {})).toBe("allowed");
    expect(attempt(sharedWithSaas, [], { action: "kms:GenerateDataKeyWithoutPlaintext" })).toBe("allowed");
    expect(attempt(sharedWithSaas, [], { action: "kms:PutKeyPolicy" })).toBe("denied");
    expect(attempt(sharedWithSaas, [], { action: "kms:CreateGrant" })).toBe("denied");
    expect(attempt(sharedWithSaas, [], { caller: saasOther })).toBe("denied");
  });

  it("another account denied: no statement, no grant (root or user, same user name as an owner principal)", () => {
    expect(attempt(defaultPolicy, [], {})).toBe("denied");
    expect(attempt(defaultPolicy, [], { caller: caller(SAAS, null) })).toBe("denied");
    expect(attempt(defaultPolicy, [], { caller: caller(SAAS, "admin") })).toBe("denied");
    expect(attempt(defaultPolicy, [], { caller: stranger })).toBe("denied");
  });

  it("another account via a grant; then retired, and revoked: denied again, token or not", () => {
    const grants = new Grants();
    const retirable = grantRecord(key, { operations: ["Decrypt", "RetireGrant"] });
    const token = grants.add(retirable);
    expect(attempt(defaultPolicy, grants.forRequest(key.keyId), {})).toBe("allowed");
    expect(attempt(defaultPolicy, grants.forRequest(key.keyId, [token]), {})).toBe("allowed");
    expect(() => grants.retire(retirable.grantId, stranger)).toThrow();
    grants.retire(retirable.grantId, saasUser);
    expect(attempt(defaultPolicy, grants.forRequest(key.keyId, [token]), {})).toBe("denied");

    const revocable = grantRecord(key, { operations: ["Decrypt"] });
    const token2 = grants.add(revocable);
    expect(() => grants.retire(revocable.grantId, saasUser)).toThrow(); // no RetireGrant, not retiring principal
    grants.revoke(revocable.grantId);
    expect(attempt(defaultPolicy, grants.forRequest(key.keyId, [token2]), {})).toBe("denied");
  });

  it("constraint mismatch: a value that differs by case, a missing or extra pair", () => {
    const grant = grantRecord(key, { operations: ["Decrypt"], constraints: { EncryptionContextEquals: { tenant: "acme" } } });
    expect(attempt(defaultPolicy, [grant], { encryptionContext: { tenant: "acme" } })).toBe("allowed");
    expect(attempt(defaultPolicy, [grant], { encryptionContext: { tenant: "ACME" } })).toBe("denied");
    expect(attempt(defaultPolicy, [grant], { encryptionContext: {} })).toBe("denied");
    expect(attempt(defaultPolicy, [grant], { encryptionContext: { tenant: "acme", x: "y" } })).toBe("denied");
    // A second pair whose key differs only by case does not slip past Equals.
    expect(attempt(defaultPolicy, [grant], { encryptionContext: { tenant: "acme", Tenant: "evil" } })).toBe("denied");
  });

  it("explicit Deny beats the Allow and beats a grant", () => {
    const denying = policyText(
      { Effect: "Allow", Principal: "*", Action: "kms:*", Resource: "*" },
      { Effect: "Deny", Principal: { AWS: SAAS }, Action: "kms:Decrypt", Resource: "*" },
    );
    const grant = grantRecord(key, { operations: ["Decrypt"] });
    expect(attempt(denying, [grant], {})).toBe("explicit deny");
    expect(attempt(denying, [grant], { caller: saasOther })).toBe("explicit deny");
    expect(attempt(denying, [grant], { action: "kms:Encrypt" })).toBe("allowed");
  });

  it("wildcards in actions and conditions on the encryption context", () => {
    const text = policyText(
      { Effect: "Allow", Principal: { AWS: OWNER }, Action: "kms:*", Resource: "*" },
      { Effect: "Allow", Principal: { AWS: SAAS }, Action: "kms:Re*", Resource: "*", Condition: { StringEquals: { "kms:EncryptionContext:tenant": "acme" } } },
    );
    expect(attempt(text, [], { action: "kms:ReEncryptFrom", encryptionContext: { tenant: "acme" } })).toBe("allowed");
    expect(attempt(text, [], { action: "kms:ReEncryptFrom", encryptionContext: { tenant: "Acme" } })).toBe("denied");
    expect(attempt(text, [], { action: "kms:RetireGrant", encryptionContext: { tenant: "acme" } })).toBe("allowed"); // "Re*" is wide: the author's choice
    expect(attempt(text, [], { action: "kms:Decrypt", encryptionContext: { tenant: "acme" } })).toBe("denied");
  });
});

describe("grant tokens under attack", () => {
  it("a token minted with another key, a hand-made one for a real grant id, or an altered one: InvalidGrantTokenException", () => {
    const grants = new Grants();
    const grant = grantRecord(key, { operations: ["Decrypt"] });
    const token = grants.add(grant);
    expectKmsError(() => grants.forRequest(key.keyId, [makeGrantToken(grant.grantId, testMac())]), "InvalidGrantTokenException");
    const forged = Buffer.concat([Buffer.from([1]), Buffer.from(grant.grantId, "hex"), Buffer.alloc(32)]).toString("base64url");
    expectKmsError(() => grants.forRequest(key.keyId, [forged]), "InvalidGrantTokenException");
    const raw = Buffer.from(token, "base64url");
    raw[5] ^= 1; // names another grant id, keeps the MAC
    expectKmsError(() => grants.forRequest(key.keyId, [raw.toString("base64url")]), "InvalidGrantTokenException");
    expectKmsError(() => grants.forRequest(key.keyId, [token, "x"]), "InvalidGrantTokenException");
  });

  it("a valid token of a grant on another key allows nothing on this key", () => {
    const grants = new Grants();
    const elsewhere = grantRecord(otherKey, { operations: ["Decrypt"] });
    const token = grants.add(elsewhere);
    expect(attempt(defaultKeyPolicy(OWNER), grants.forRequest(key.keyId, [token]), {})).toBe("denied");
    expect(attempt(defaultKeyPolicy(OWNER), grants.forRequest(otherKey.keyId, [token]), { key: otherKey })).toBe("allowed");
  });

  it("a valid token does not make its bearer the grantee", () => {
    const grants = new Grants();
    const token = grants.add(grantRecord(key, { operations: ["Decrypt"] }));
    expect(attempt(defaultKeyPolicy(OWNER), grants.forRequest(key.keyId, [token]), { caller: stranger })).toBe("denied");
  });
});

describe("a grantee trying to widen its grant", () => {
  const parent = grantRecord(key, { operations: ["Decrypt", "CreateGrant"], constraints: { EncryptionContextSubset: { tenant: "acme" } } });
  const create = (grant: { operations: string[]; granteePrincipal: string; constraints: object | null }) =>
    attempt(defaultKeyPolicy(OWNER), [parent], { action: "kms:CreateGrant", grantOperations: grant.operations, granteePrincipal: grant.granteePrincipal, grantConstraints: grant.constraints });

  it("may hand on what it has, to anyone", () => {
    expect(create({ operations: ["Decrypt"], granteePrincipal: stranger.arn, constraints: { EncryptionContextSubset: { tenant: "acme" } } })).toBe("allowed");
    expect(create({ operations: ["Decrypt"], granteePrincipal: stranger.arn, constraints: { EncryptionContextSubset: { TENANT: "acme", more: "x" } } })).toBe("allowed");
  });

  it("may not add an operation, drop or loosen the constraint, or change its value's case", () => {
    expect(create({ operations: ["Decrypt", "Encrypt"], granteePrincipal: stranger.arn, constraints: { EncryptionContextSubset: { tenant: "acme" } } })).toBe("denied");
    expect(create({ operations: ["Decrypt", "RetireGrant"], granteePrincipal: stranger.arn, constraints: { EncryptionContextSubset: { tenant: "acme" } } })).toBe("denied");
    expect(create({ operations: ["Decrypt"], granteePrincipal: stranger.arn, constraints: null })).toBe("denied");
    expect(create({ operations: ["Decrypt"], granteePrincipal: stranger.arn, constraints: { EncryptionContextSubset: {} } })).toBe("denied");
    expect(create({ operations: ["Decrypt"], granteePrincipal: stranger.arn, constraints: { EncryptionContextSubset: { tenant: "ACME" } } })).toBe("denied");
    expect(create({ operations: ["Decrypt"], granteePrincipal: stranger.arn, constraints: { EncryptionContextSubset: { other: "acme" } } })).toBe("denied");
  });

  it("may not use CreateGrant from a grant that lacks it", () => {
    const noCreate = grantRecord(key, { operations: ["Decrypt"] });
    expect(attempt(defaultKeyPolicy(OWNER), [noCreate], { action: "kms:CreateGrant", grantOperations: ["Decrypt"], granteePrincipal: saasUser.arn })).toBe("denied");
  });

  it("cannot smuggle a grant that checkGrantShape refuses (constraints on a signing key)", () => {
    const signing = keyRecord({ keyId: "sign", keySpec: "ECC_NIST_P256", keyUsage: "SIGN_VERIFY" });
    expectKmsError(() => checkGrantShape(signing, ["Sign"], { EncryptionContextEquals: { a: "b" } }), "ValidationException");
  });
});

describe("hostile inputs to evaluation", () => {
  const allowIf = (condition: object) => parsePolicy(policyText({ Effect: "Allow", Principal: "*", Action: "kms:*", Resource: "*", Condition: condition }));
  const request = (encryptionContext: Record<string, string>): AccessRequest => ({ caller: saasUser, action: "kms:Decrypt", key, encryptionContext });

  it("context keys named like Object.prototype members are only what the request says", () => {
    const policy = allowIf({ StringLike: { "kms:EncryptionContext:constructor": "*" } });
    expect(evaluatePolicy(policy, request({}))).toBe("NONE");
    expect(evaluatePolicy(policy, request({ constructor: "x" }))).toBe("ALLOW");
    const proto = allowIf({ StringEquals: { "kms:EncryptionContext:__proto__": "x" } });
    expect(evaluatePolicy(proto, request(JSON.parse('{"__proto__":"x"}')))).toBe("ALLOW");
    expect(evaluatePolicy(proto, request({}))).toBe("NONE");
  });

  it("a parsed policy is frozen; a look-alike is never evaluated; a mutated text changes nothing", () => {
    const policy = parsePolicy(defaultKeyPolicy(OWNER));
    expect(Object.isFrozen(policy)).toBe(true);
    expect(() => ((policy as { text: string }).text = policyText({ Effect: "Allow", Principal: "*", Action: "kms:*", Resource: "*" }))).toThrow();
    expect(evaluatePolicy(policy, request({}))).toBe("NONE");
    expectKmsError(() => authorize({ text: defaultKeyPolicy(SAAS) }, [], request({})), "KMSInternalException");
  });

  it("a policy granting everyone, narrowed by kms:CallerAccount, admits only that account", () => {
    const policy = allowIf({ StringEquals: { "kms:CallerAccount": SAAS } });
    expect(evaluatePolicy(policy, request({}))).toBe("ALLOW");
    expect(evaluatePolicy(policy, { ...request({}), caller: stranger })).toBe("NONE");
  });

  it("a careless caller's context of non-strings is a ValidationException, not a TypeError", () => {
    const policy = allowIf({ StringEqualsIgnoreCase: { "kms:EncryptionContext:n": "1" } });
    const bad = { n: 1 } as unknown as Record<string, string>;
    expectKmsError(() => evaluatePolicy(policy, request(bad)), "ValidationException");
    const grant = grantRecord(key, { operations: ["Decrypt"], constraints: { EncryptionContextSubset: { n: "1" } } });
    expectKmsError(() => authorize(parsePolicy(defaultKeyPolicy(OWNER)), [grant], request(bad)), "ValidationException");
    expectKmsError(() => evaluatePolicy(policy, request(["x"] as unknown as Record<string, string>)), "ValidationException");
  });

  it("a grant whose grantee ARN merely starts like the caller's names no one else", () => {
    const grant = grantRecord(key, { granteePrincipal: `arn:aws:iam::${SAAS}:user/saas-admin`, operations: ["Decrypt"] });
    expect(attempt(defaultKeyPolicy(OWNER), [grant], {})).toBe("denied");
  });
});
