// Grants: the operations each key type takes, constraint checks and matching (AWS: keys
// without regard to case, values exactly), who a grant names, CreateGrant through a grant,
// authorize's whole decision and messages, grant tokens, and who may retire.
import { describe, expect, it } from "vitest";

import {
  MAX_GRANT_TOKENS, authorize, checkGrantPrincipal, grantsForRequest, checkGrantShape, constraintsAtLeastAsStrict, contextSatisfies, grantAllows, grantOperationsFor,
  makeGrantToken, mayRetire, readGrantToken,
} from "../../src/kms/grants.js";
import { type AccessRequest, defaultKeyPolicy, parsePolicy } from "../../src/kms/policy.js";
import { OWNER, SAAS, caller, expectKmsError, grantRecord, keyRecord, ownerAdmin, ownerRoot, saasOther, saasUser, stranger, testMac } from "./auth-fixture.js";

const key = keyRecord();
const rsaEncrypt = keyRecord({ keyId: "rsa", keySpec: "RSA_2048", keyUsage: "ENCRYPT_DECRYPT" });
const eccSign = keyRecord({ keyId: "ecc", keySpec: "ECC_NIST_P256", keyUsage: "SIGN_VERIFY" });
const hmac = keyRecord({ keyId: "hmac", keySpec: "HMAC_256", keyUsage: "GENERATE_VERIFY_MAC" });

describe("checkGrantShape", () => {
  it("takes each key type's operations", () => {
    checkGrantShape(key, ["Encrypt", "Decrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo", "GenerateDataKeyPair", "CreateGrant", "RetireGrant", "DescribeKey"], null);
    checkGrantShape(rsaEncrypt, ["Encrypt", "Decrypt", "GetPublicKey", "DescribeKey"], null);
    checkGrantShape(eccSign, ["Sign", "Verify", "GetPublicKey", "CreateGrant"], null);
    checkGrantShape(hmac, ["GenerateMac", "VerifyMac", "RetireGrant"], null);
  });

  it("refuses operations a key type does not support, naming Operations and the operation", () => {
    const cases: [typeof key, string][] = [[key, "Sign"], [key, "GenerateMac"], [key, "GetPublicKey"], [rsaEncrypt, "Sign"], [rsaEncrypt, "GenerateDataKey"], [eccSign, "Decrypt"], [hmac, "Encrypt"], [hmac, "Verify"]];
    for (const [k, op] of cases) {
      const error = expectKmsError(() => checkGrantShape(k, ["DescribeKey", op], null), "ValidationException");
      expect(error.message).toContain("Operations");
      expect(error.message).toContain(op);
    }
  });

  it("refuses an empty list, unknown or mistyped operations", () => {
    expectKmsError(() => checkGrantShape(key, [], null), "ValidationException");
    expectKmsError(() => checkGrantShape(key, ["decrypt"], null), "ValidationException");
    expectKmsError(() => checkGrantShape(key, ["PutKeyPolicy"], null), "ValidationException");
    expectKmsError(() => checkGrantShape(key, [42 as unknown as string], null), "ValidationException");
  });

  it("constraints: only on symmetric keys; ≤ 8 pairs; values ≤ 384 characters; string values; known members", () => {
    checkGrantShape(key, ["Decrypt"], { EncryptionContextSubset: { a: "b" }, EncryptionContextEquals: { a: "b" } });
    checkGrantShape(eccSign, ["Sign"], { EncryptionContextSubset: {} }); // empty means none (AWS)
    expectKmsError(() => checkGrantShape(eccSign, ["Sign"], { EncryptionContextSubset: { a: "b" } }), "ValidationException");
    expectKmsError(() => checkGrantShape(hmac, ["GenerateMac"], { EncryptionContextEquals: { a: "b" } }), "ValidationException");
    const nine = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`k${i}`, "v"]));
    expectKmsError(() => checkGrantShape(key, ["Decrypt"], { EncryptionContextSubset: nine }), "ValidationException");
    expectKmsError(() => checkGrantShape(key, ["Decrypt"], { EncryptionContextSubset: { a: "x".repeat(385) } }), "ValidationException");
    checkGrantShape(key, ["Decrypt"], { EncryptionContextSubset: { a: "x".repeat(384) } });
    expectKmsError(() => checkGrantShape(key, ["Decrypt"], { EncryptionContextSubset: { a: 1 as unknown as string } }), "ValidationException");
    expectKmsError(() => checkGrantShape(key, ["Decrypt"], { EncryptionContextSubset: "a=b" as unknown as Record<string, string> }), "ValidationException");
    expectKmsError(() => checkGrantShape(key, ["Decrypt"], { Other: {} } as never), "ValidationException");
  });

  it("grantOperationsFor lists what each key supports", () => {
    expect(grantOperationsFor(hmac)).toEqual(["CreateGrant", "RetireGrant", "DescribeKey", "GenerateMac", "VerifyMac"]);
    expect(grantOperationsFor(eccSign)).not.toContain("Encrypt");
  });
});

describe("checkGrantPrincipal", () => {
  it("takes account roots, users, roles and assumed roles; refuses the rest", () => {
    for (const ok of [`arn:aws:iam::${SAAS}:root`, saasUser.arn, `arn:aws:iam::${SAAS}:role/app`, `arn:aws:sts::${SAAS}:assumed-role/app/session`]) checkGrantPrincipal("GranteePrincipal", ok);
    for (const bad of ["*", SAAS, "arn:aws:iam::*:root", "saas", "", 7]) {
      const error = expectKmsError(() => checkGrantPrincipal("GranteePrincipal", bad), "ValidationException");
      expect(error.message).toContain("GranteePrincipal");
    }
  });
});

describe("constraints", () => {
  it("Equals: the same pairs, no more, no fewer; keys without regard to case, values exactly", () => {
    const equals = { EncryptionContextEquals: { Tenant: "acme", Purpose: "backup" } };
    expect(contextSatisfies(equals, { Purpose: "backup", Tenant: "acme" })).toBe(true);
    expect(contextSatisfies(equals, { purpose: "backup", TENANT: "acme" })).toBe(true);
    expect(contextSatisfies(equals, { Purpose: "backup", Tenant: "ACME" })).toBe(false);
    expect(contextSatisfies(equals, { Tenant: "acme" })).toBe(false);
    expect(contextSatisfies(equals, { Tenant: "acme", Purpose: "backup", extra: "x" })).toBe(false);
    expect(contextSatisfies(equals, undefined)).toBe(false);
  });

  it("Subset: those pairs at least", () => {
    const subset = { EncryptionContextSubset: { Tenant: "acme" } };
    expect(contextSatisfies(subset, { Tenant: "acme", extra: "x" })).toBe(true);
    expect(contextSatisfies(subset, { tenant: "acme" })).toBe(true);
    expect(contextSatisfies(subset, { Tenant: "Acme" })).toBe(false);
    expect(contextSatisfies(subset, {})).toBe(false);
    expect(contextSatisfies(null, {})).toBe(true);
  });

  it("strictness: a child grant allows no context its parent does not", () => {
    const equals = { EncryptionContextEquals: { a: "1" } };
    const subset = { EncryptionContextSubset: { a: "1" } };
    expect(constraintsAtLeastAsStrict(null, null)).toBe(true);
    expect(constraintsAtLeastAsStrict(null, subset)).toBe(true);
    expect(constraintsAtLeastAsStrict(subset, null)).toBe(false);
    expect(constraintsAtLeastAsStrict(equals, null)).toBe(false);
    expect(constraintsAtLeastAsStrict(equals, { EncryptionContextEquals: { a: "1" } })).toBe(true);
    expect(constraintsAtLeastAsStrict(equals, { EncryptionContextEquals: { a: "1", b: "2" } })).toBe(false);
    expect(constraintsAtLeastAsStrict(equals, subset)).toBe(false);
    expect(constraintsAtLeastAsStrict(subset, { EncryptionContextSubset: { a: "1", b: "2" } })).toBe(true);
    expect(constraintsAtLeastAsStrict(subset, { EncryptionContextSubset: { b: "2" } })).toBe(false);
    expect(constraintsAtLeastAsStrict(subset, { EncryptionContextEquals: { a: "1", b: "2" } })).toBe(true);
    expect(constraintsAtLeastAsStrict(subset, { EncryptionContextEquals: { a: "2" } })).toBe(false);
  });
});

describe("grantAllows and authorize", () => {
  const policy = parsePolicy(defaultKeyPolicy(OWNER));
  const req = (overrides: Partial<AccessRequest>): AccessRequest => ({ caller: saasUser, action: "kms:Decrypt", key, ...overrides });

  it("a grant allows its grantee its operations on its key, and nothing else", () => {
    const grant = grantRecord(key, { operations: ["Decrypt"] });
    expect(grantAllows([grant], req({}))).toBe(true);
    expect(grantAllows([grant], req({ action: "kms:Encrypt" }))).toBe(false);
    expect(grantAllows([grant], req({ caller: saasOther }))).toBe(false);
    expect(grantAllows([grant], req({ caller: caller(SAAS, null) }))).toBe(false);
    expect(grantAllows([grant], req({ action: "kms:PutKeyPolicy" }))).toBe(false);
    expect(grantAllows([grant], req({ key: keyRecord({ keyId: "another" }) }))).toBe(false);
  });

  it("a grant to an account root names every principal of that account", () => {
    const grant = grantRecord(key, { granteePrincipal: `arn:aws:iam::${SAAS}:root`, operations: ["Decrypt"] });
    expect(grantAllows([grant], req({ caller: saasOther }))).toBe(true);
    expect(grantAllows([grant], req({ caller: stranger }))).toBe(false);
  });

  it("constraints apply to the operations that take a context, not to DescribeKey or RetireGrant", () => {
    const grant = grantRecord(key, { operations: ["Decrypt", "DescribeKey"], constraints: { EncryptionContextEquals: { tenant: "acme" } } });
    expect(grantAllows([grant], req({ encryptionContext: { tenant: "acme" } }))).toBe(true);
    expect(grantAllows([grant], req({ encryptionContext: { tenant: "Acme" } }))).toBe(false);
    expect(grantAllows([grant], req({}))).toBe(false);
    expect(grantAllows([grant], req({ action: "kms:DescribeKey" }))).toBe(true);
  });

  it("CreateGrant through a grant: only a subset of its operations, constraints at least as strict", () => {
    const parent = grantRecord(key, { operations: ["Decrypt", "CreateGrant"], constraints: { EncryptionContextSubset: { tenant: "acme" } } });
    const create = (operations: string[], constraints: object | null) =>
      grantAllows([parent], req({ action: "kms:CreateGrant", grantOperations: operations, granteePrincipal: saasOther.arn, grantConstraints: constraints }));
    expect(create(["Decrypt"], { EncryptionContextSubset: { tenant: "acme" } })).toBe(true);
    expect(create(["Decrypt", "CreateGrant"], { EncryptionContextEquals: { tenant: "acme", x: "1" } })).toBe(true);
    expect(create(["Decrypt", "Encrypt"], { EncryptionContextSubset: { tenant: "acme" } })).toBe(false);
    expect(create(["Decrypt"], null)).toBe(false);
    expect(create(["Decrypt"], { EncryptionContextSubset: { tenant: "other" } })).toBe(false);
    expect(grantAllows([parent], req({ action: "kms:CreateGrant" }))).toBe(false); // no grant asked for: nothing to compare
  });

  it("authorize: the owner by policy; another account by grant only; messages as AWS words them", () => {
    authorize(policy, [], req({ caller: ownerAdmin }));
    authorize(policy, [], req({ caller: ownerRoot, action: "kms:ScheduleKeyDeletion" }));
    const error = expectKmsError(() => authorize(policy, [], req({})), "AccessDeniedException");
    expect(error.message).toBe(`User: ${saasUser.arn} is not authorized to perform: kms:Decrypt on resource: ${key.arn} because no resource-based policy allows the kms:Decrypt action`);
    authorize(policy, [grantRecord(key, { operations: ["Decrypt"] })], req({}));
    expect(error.httpStatus).toBe(400);
  });

  it("authorize: an explicit Deny beats an Allow and a grant, with the explicit-deny message", () => {
    const denying = parsePolicy(JSON.stringify({
      Version: "2012-10-17",
      Statement: [
        { Effect: "Allow", Principal: { AWS: [OWNER, SAAS] }, Action: "kms:*", Resource: "*" },
        { Effect: "Deny", Principal: { AWS: saasUser.arn }, Action: "kms:Decrypt", Resource: "*" },
      ],
    }));
    const grant = grantRecord(key, { operations: ["Decrypt"] });
    const error = expectKmsError(() => authorize(denying, [grant], req({})), "AccessDeniedException");
    expect(error.message).toBe(`User: ${saasUser.arn} is not authorized to perform: kms:Decrypt on resource: ${key.arn} with an explicit deny in a resource-based policy`);
    authorize(denying, [grant], req({ action: "kms:Encrypt" }));
    authorize(denying, [], req({ caller: saasOther }));
  });
});

describe("grant tokens", () => {
  const mac = testMac();
  const grantId = "ab".repeat(32);

  it("round-trip to the grant id", () => {
    const token = makeGrantToken(grantId, mac);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(readGrantToken(token, mac)).toBe(grantId);
  });

  it("refuse a token MAC'ed under another key, altered anywhere, truncated, extended, or not base64url", () => {
    const token = makeGrantToken(grantId, mac);
    expectKmsError(() => readGrantToken(token, testMac()), "InvalidGrantTokenException");
    for (let i = 0; i < token.length; i++) {
      const altered = token.slice(0, i) + (token[i] === "A" ? "B" : "A") + token.slice(i + 1);
      expectKmsError(() => readGrantToken(altered, mac), "InvalidGrantTokenException");
    }
    for (const bad of [token.slice(0, -1), token + "A", token + "=", "", "not a token!", "A".repeat(9000), 12 as unknown as string]) {
      expectKmsError(() => readGrantToken(bad, mac), "InvalidGrantTokenException");
    }
  });

  it("refuse a token whose spare bits were changed (it decodes to the same bytes, but is not the token issued)", () => {
    const token = makeGrantToken(grantId, mac);
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = alphabet.indexOf(token[token.length - 1]);
    const respelled = token.slice(0, -1) + alphabet[last ^ 1];
    expect(Buffer.from(respelled, "base64url").equals(Buffer.from(token, "base64url"))).toBe(true);
    expectKmsError(() => readGrantToken(respelled, mac), "InvalidGrantTokenException");
  });

  it("a token's MAC is not the record MAC of the bare id (domain-separated)", () => {
    const bytes = Buffer.from(makeGrantToken(grantId, mac), "base64url");
    expect(bytes.subarray(33).equals(mac(Buffer.from(grantId, "hex")))).toBe(false);
  });

  it("refuses to make a token for an id that is not 64 hex digits", () => {
    expectKmsError(() => makeGrantToken("xyz", mac), "KMSInternalException");
  });
});

describe("grantsForRequest", () => {
  const mac = testMac();
  const own = grantRecord(key, { operations: ["Decrypt"] });
  const elsewhere = grantRecord(keyRecord({ keyId: "other" }), { operations: ["Decrypt"] });
  const table = new Map([own, elsewhere].map((g) => [g.grantId, g]));
  const get = (id: string) => table.get(id) ?? null;

  it("the key's grants, plus the live grants the tokens name, each once", () => {
    expect(grantsForRequest([own], undefined, mac, get)).toEqual([own]);
    expect(grantsForRequest([own], [makeGrantToken(own.grantId, mac)], mac, get)).toEqual([own]);
    expect(grantsForRequest([own], [makeGrantToken(elsewhere.grantId, mac)], mac, get)).toEqual([own, elsewhere]);
    expect(grantsForRequest([], [makeGrantToken("cd".repeat(32), mac)], mac, get)).toEqual([]); // retired: names nothing
  });

  it("one bad token fails the request; more than 10 tokens are refused", () => {
    expectKmsError(() => grantsForRequest([own], [makeGrantToken(own.grantId, mac), "bogus"], mac, get), "InvalidGrantTokenException");
    const many = Array.from({ length: MAX_GRANT_TOKENS + 1 }, () => makeGrantToken(own.grantId, mac));
    expectKmsError(() => grantsForRequest([own], many, mac, get), "ValidationException");
    expect(grantsForRequest([own], many.slice(1), mac, get)).toEqual([own]);
  });
});

describe("mayRetire", () => {
  it("the retiring principal, the grantee only with RetireGrant, the issuing account, the key's account; no one else", () => {
    const plain = grantRecord(key, { retiringPrincipal: `arn:aws:iam::${SAAS}:user/retirer`, operations: ["Decrypt"], issuingAccount: `arn:aws:iam::${OWNER}:root` });
    expect(mayRetire(plain, `arn:aws:iam::${SAAS}:user/retirer`, SAAS)).toBe(true);
    expect(mayRetire(plain, saasUser.arn, SAAS)).toBe(false);
    expect(mayRetire(plain, ownerAdmin.arn, OWNER)).toBe(true);
    expect(mayRetire(plain, stranger.arn, stranger.accountId)).toBe(false);
    expect(mayRetire({ ...plain, operations: ["Decrypt", "RetireGrant"] }, saasUser.arn, SAAS)).toBe(true);
    const crossIssued = grantRecord(key, { issuingAccount: `arn:aws:iam::${SAAS}:root`, operations: ["Decrypt"] });
    expect(mayRetire(crossIssued, saasOther.arn, SAAS)).toBe(true);
    expect(mayRetire(crossIssued, stranger.arn, stranger.accountId)).toBe(false);
    expect(mayRetire(crossIssued, ownerAdmin.arn, OWNER)).toBe(true); // the key's account, though it did not issue it
  });
});
