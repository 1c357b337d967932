// Input shapes (members, types, limits, AWS's messages), output encoding, and the credentials.
import { describe, expect, it } from "vitest";
import { KmsError } from "../../src/kms/errors.js";
import { CredentialSet, defaultCredentials, userNameOf } from "../../src/kms/identity.js";
import { encodeOutput, OPERATIONS, validateInput } from "../../src/kms/shapes.js";

/** The KmsError `run` throws (fails if it returns). */
function thrown(run: () => unknown): KmsError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(KmsError);
    return error as KmsError;
  }
  throw new Error("expected a KmsError");
}

const b64 = (n: number) => Buffer.alloc(n, 7).toString("base64");

describe("validateInput", () => {
  it("serves every operation of the issue", () => {
    const issue = [
      "CreateKey", "DescribeKey", "ListKeys", "CreateAlias", "ListAliases", "UpdateAlias", "DeleteAlias", "Encrypt", "Decrypt", "ReEncrypt",
      "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateRandom", "EnableKey", "DisableKey", "ScheduleKeyDeletion",
      "CancelKeyDeletion", "GetKeyPolicy", "PutKeyPolicy", "ListKeyPolicies", "CreateGrant", "ListGrants", "ListRetirableGrants",
      "RetireGrant", "RevokeGrant", "TagResource", "UntagResource", "ListResourceTags", "UpdateKeyDescription", "Sign", "Verify",
      "GetPublicKey", "GenerateMac", "VerifyMac", "CreateCustomKeyStore", "DescribeCustomKeyStores", "ConnectCustomKeyStore",
      "DisconnectCustomKeyStore", "UpdateCustomKeyStore", "DeleteCustomKeyStore",
    ];
    expect([...OPERATIONS].sort()).toEqual([...issue].sort());
    expect(thrown(() => validateInput("ImportKeyMaterial", {})).code).toBe("UnknownOperationException");
    expect(thrown(() => validateInput("toString", {})).code).toBe("UnknownOperationException");
    expect(thrown(() => validateInput("__proto__", {})).code).toBe("UnknownOperationException");
  });

  it("decodes blobs to Buffers, keeps known members, drops unknown ones", () => {
    const input = validateInput("Encrypt", { KeyId: "alias/a", Plaintext: "AAEC/w==", EncryptionContext: { b: "2", a: "1" }, GrantTokens: ["t"], Extra: 1, DryRun: false });
    expect(input).toEqual({ KeyId: "alias/a", Plaintext: Buffer.from([0, 1, 2, 255]), EncryptionContext: { a: "1", b: "2" }, GrantTokens: ["t"], DryRun: false });
    expect(Buffer.isBuffer(input.Plaintext)).toBe(true);
    // JSON null reads as absent.
    expect(validateInput("Decrypt", { CiphertextBlob: b64(10), KeyId: null })).toEqual({ CiphertextBlob: Buffer.alloc(10, 7) });
    const grant = validateInput("CreateGrant", {
      KeyId: "k", GranteePrincipal: "arn:aws:iam::444455556666:root", Operations: ["Decrypt", "Encrypt"],
      Constraints: { EncryptionContextSubset: { Dept: "IT" } },
    });
    expect(grant.Constraints).toEqual({ EncryptionContextSubset: { Dept: "IT" } });
  });

  it("answers each limit with AWS's message naming the member", () => {
    const cases: [string, unknown, string][] = [
      ["GenerateRandom", { NumberOfBytes: 1025 }, "Value at 'numberOfBytes' failed to satisfy constraint: Member must have value less than or equal to 1024"],
      ["GenerateRandom", { NumberOfBytes: 0 }, "Value at 'numberOfBytes' failed to satisfy constraint: Member must have value greater than or equal to 1"],
      ["DescribeKey", { KeyId: "" }, "Value at 'keyId' failed to satisfy constraint: Member must have length greater than or equal to 1"],
      ["DescribeKey", { KeyId: "k".repeat(2049) }, "Value at 'keyId' failed to satisfy constraint: Member must have length less than or equal to 2048"],
      ["Encrypt", { KeyId: "k", Plaintext: "" }, "Value at 'plaintext' failed to satisfy constraint: Member must have length greater than or equal to 1"],
      ["Encrypt", { KeyId: "k", Plaintext: b64(4097) }, "Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096"],
      ["Decrypt", { CiphertextBlob: b64(6145) }, "Value at 'ciphertextBlob' failed to satisfy constraint: Member must have length less than or equal to 6144"],
      ["DescribeKey", { KeyId: "k", GrantTokens: Array(11).fill("t") }, "Value at 'grantTokens' failed to satisfy constraint: Member must have length less than or equal to 10"],
      ["DescribeKey", { KeyId: "k", GrantTokens: ["t".repeat(8193)] }, "Value at 'grantTokens.1.member' failed to satisfy constraint: Member must have length less than or equal to 8192"],
      ["GenerateDataKey", { KeyId: "k", KeySpec: "AES_512" }, "Value at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]"],
      ["CreateKey", { Description: "d".repeat(8193) }, "Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 8192"],
      ["PutKeyPolicy", { KeyId: "k", Policy: "p".repeat(32769) }, "Value at 'policy' failed to satisfy constraint: Member must have length less than or equal to 32768"],
      ["CreateAlias", { AliasName: "alias/bad name", TargetKeyId: "k" }, "Value at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"],
      ["CreateAlias", { AliasName: "a".repeat(257), TargetKeyId: "k" }, "Value at 'aliasName' failed to satisfy constraint: Member must have length less than or equal to 256"],
      ["ListKeys", { Limit: 1001 }, "Value at 'limit' failed to satisfy constraint: Member must have value less than or equal to 1000"],
      ["ListKeys", { Marker: "m".repeat(1025) }, "Value at 'marker' failed to satisfy constraint: Member must have length less than or equal to 1024"],
      ["ScheduleKeyDeletion", { KeyId: "k", PendingWindowInDays: 6 }, "Value at 'pendingWindowInDays' failed to satisfy constraint: Member must have value greater than or equal to 7"],
      ["ScheduleKeyDeletion", { KeyId: "k", PendingWindowInDays: 31 }, "Value at 'pendingWindowInDays' failed to satisfy constraint: Member must have value less than or equal to 30"],
      ["TagResource", { KeyId: "k", Tags: [{ TagKey: "", TagValue: "v" }] }, "Value at 'tags.1.member.tagKey' failed to satisfy constraint: Member must have length greater than or equal to 1"],
      ["TagResource", { KeyId: "k", Tags: [{ TagKey: "k", TagValue: "v".repeat(257) }] }, "Value at 'tags.1.member.tagValue' failed to satisfy constraint: Member must have length less than or equal to 256"],
      ["Sign", { KeyId: "k", Message: b64(4097), SigningAlgorithm: "ECDSA_SHA_256" }, "Value at 'message' failed to satisfy constraint: Member must have length less than or equal to 4096"],
      ["GenerateMac", { KeyId: "k", Message: b64(1), MacAlgorithm: "HMAC_MD5" }, "Value at 'macAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [HMAC_SHA_224, HMAC_SHA_256, HMAC_SHA_384, HMAC_SHA_512]"],
      ["CreateGrant", { KeyId: "k", GranteePrincipal: "p", Operations: ["Destroy"] }, "Value at 'operations.1.member' failed to satisfy constraint: Member must satisfy enum value set: [Decrypt, Encrypt, GenerateDataKey, GenerateDataKeyWithoutPlaintext, ReEncryptFrom, ReEncryptTo, Sign, Verify, GetPublicKey, CreateGrant, RetireGrant, DescribeKey, GenerateDataKeyPair, GenerateDataKeyPairWithoutPlaintext, GenerateMac, VerifyMac, DeriveSharedSecret]"],
      ["CreateCustomKeyStore", { CustomKeyStoreName: "s", KeyStorePassword: "short" }, "Value at 'keyStorePassword' failed to satisfy constraint: Member must have length greater than or equal to 7"],
      ["RevokeGrant", { KeyId: "k" }, "Value at 'grantId' failed to satisfy constraint: Member must not be null"],
    ];
    for (const [operation, body, message] of cases) {
      const error = thrown(() => validateInput(operation, body));
      expect(error.code, `${operation} ${message}`).toBe("ValidationException");
      expect(error.message).toBe(`1 validation error detected: ${message}`);
    }
  });

  it("reports every violation at once, and never quotes a value (a plaintext, a password)", () => {
    const error = thrown(() => validateInput("CreateCustomKeyStore", { KeyStorePassword: "pw-is-way-too-long-to-be-accepted-here!!" }));
    expect(error.message).toMatch(/^2 validation errors detected: /);
    expect(error.message).toContain("'customKeyStoreName' failed to satisfy constraint: Member must not be null");
    expect(error.message).toContain("'keyStorePassword' failed to satisfy constraint: Member must have length less than or equal to 32");
    expect(error.message).not.toContain("pw-is-way");
  });

  it("takes exactly one of KeySpec or NumberOfBytes for data keys", () => {
    expect(validateInput("GenerateDataKey", { KeyId: "k", NumberOfBytes: 64 }).NumberOfBytes).toBe(64);
    expect(validateInput("GenerateDataKeyWithoutPlaintext", { KeyId: "k", KeySpec: "AES_128" }).KeySpec).toBe("AES_128");
    expect(thrown(() => validateInput("GenerateDataKey", { KeyId: "k" })).code).toBe("ValidationException");
    expect(thrown(() => validateInput("GenerateDataKey", { KeyId: "k", KeySpec: "AES_256", NumberOfBytes: 32 })).code).toBe("ValidationException");
  });

  it("refuses wrong JSON types with SerializationException naming the member", () => {
    const cases: [string, unknown, string][] = [
      ["DescribeKey", { KeyId: 5 }, "keyId"],
      ["GenerateRandom", { NumberOfBytes: "16" }, "numberOfBytes"],
      ["GenerateRandom", { NumberOfBytes: 1.5 }, "numberOfBytes"],
      ["Encrypt", { KeyId: "k", Plaintext: [1, 2] }, "plaintext"],
      ["Encrypt", { KeyId: "k", Plaintext: "not base64!" }, "plaintext"],
      ["Encrypt", { KeyId: "k", Plaintext: "AAE" }, "plaintext"],
      ["Encrypt", { KeyId: "k", Plaintext: "AA==", EncryptionContext: { a: 1 } }, "encryptionContext.value"],
      ["Encrypt", { KeyId: "k", Plaintext: "AA==", EncryptionContext: { a: null } }, "encryptionContext.value"],
      ["Encrypt", { KeyId: "k", Plaintext: "AA==", EncryptionContext: ["a"] }, "encryptionContext"],
      ["DescribeKey", { KeyId: "k", GrantTokens: "t" }, "grantTokens"],
      ["DescribeKey", { KeyId: "k", GrantTokens: [null] }, "grantTokens.1.member"],
      ["PutKeyPolicy", { KeyId: "k", Policy: "{}", BypassPolicyLockoutSafetyCheck: "true" }, "bypassPolicyLockoutSafetyCheck"],
      ["TagResource", { KeyId: "k", Tags: ["k=v"] }, "tags.1.member"],
    ];
    for (const [operation, body, member] of cases) {
      const error = thrown(() => validateInput(operation, body));
      expect(error.code, `${operation} ${JSON.stringify(body)}`).toBe("SerializationException");
      expect(error.message).toContain(`'${member}'`);
    }
    for (const body of [null, [], "{}", 5, true]) expect(thrown(() => validateInput("ListKeys", body)).code).toBe("SerializationException");
  });

  it("is not fooled by prototype names in maps or members", () => {
    const body = JSON.parse('{"KeyId":"k","Plaintext":"AA==","EncryptionContext":{"__proto__":"x","constructor":"y"}}');
    const input = validateInput("Encrypt", body);
    const context = input.EncryptionContext as Record<string, string>;
    expect(Object.keys(context).sort()).toEqual(["__proto__", "constructor"]);
    expect(context["__proto__"]).toBe("x");
    expect(({} as Record<string, unknown>).x).toBeUndefined();
    // A member named only on the prototype chain is absent, not found.
    expect(thrown(() => validateInput("DescribeKey", Object.create({ KeyId: "k" }))).code).toBe("ValidationException");
  });
});

describe("encodeOutput", () => {
  it("turns Buffers into base64, Dates into epoch seconds, drops undefined, recursing", () => {
    const out = encodeOutput({
      CiphertextBlob: Buffer.from([1, 2, 3]),
      KeyMetadata: { CreationDate: new Date(1_700_000_000_500), DeletionDate: undefined, Tags: [{ TagKey: "a", TagValue: "b" }] },
      Keys: [{ KeyId: "1" }, { KeyId: "2" }],
      Truncated: false,
      Raw: new Uint8Array([255]),
    });
    expect(out).toEqual({
      CiphertextBlob: "AQID",
      KeyMetadata: { CreationDate: 1_700_000_000.5, Tags: [{ TagKey: "a", TagValue: "b" }] },
      Keys: [{ KeyId: "1" }, { KeyId: "2" }],
      Truncated: false,
      Raw: "/w==",
    });
    expect("DeletionDate" in (out.KeyMetadata as object)).toBe(false);
  });
});

describe("credentials", () => {
  const alice = { accessKeyId: "AKIAALICE0000000TEST", secretAccessKey: "s".repeat(40), accountId: "111122223333", arn: "arn:aws:iam::111122223333:user/alice" };

  it("finds a credential by its access key id, and nothing else", () => {
    const set = new CredentialSet([alice]);
    expect(set.find(alice.accessKeyId)).toEqual(alice);
    expect(set.find("AKIAUNKNOWN000000000")).toBeUndefined();
    expect(set.find("constructor")).toBeUndefined();
    expect(set.find("__proto__")).toBeUndefined();
  });

  it("refuses bad fields naming them, duplicates, and a principal of another account", () => {
    const bad: [Partial<typeof alice>, RegExp][] = [
      [{ accessKeyId: "akia-lower" }, /credentials\[0\]\.accessKeyId/],
      [{ accessKeyId: "AKIA" }, /credentials\[0\]\.accessKeyId/],
      [{ secretAccessKey: "short" }, /credentials\[0\]\.secretAccessKey/],
      [{ secretAccessKey: "has a space in it, 40 characters long...." }, /secretAccessKey/],
      [{ accountId: "1111" }, /credentials\[0\]\.accountId/],
      [{ arn: "arn:aws:iam::111122223333:role/admin" }, /credentials\[0\]\.arn/],
      [{ arn: "arn:aws:iam::444455556666:user/alice" }, /names account 444455556666/],
    ];
    for (const [change, message] of bad) expect(() => new CredentialSet([{ ...alice, ...change }])).toThrow(message);
    expect(() => new CredentialSet([alice, { ...alice, secretAccessKey: "t".repeat(40) }])).toThrow(/configured twice/);
    // The secret never appears in an error.
    try {
      new CredentialSet([{ ...alice, accountId: "x", secretAccessKey: "do-not-print-me-0000000000" }]);
    } catch (error) {
      expect(String(error)).not.toContain("do-not-print-me");
    }
  });

  it("defaults: two accounts, a user and the root of each, key ids and secrets from the given randomness", () => {
    let counter = 0;
    const random = (n: number) => Buffer.from(Array.from({ length: n }, () => counter++ & 0xff));
    const credentials = defaultCredentials(random);
    expect(credentials.map((c) => c.arn)).toEqual([
      "arn:aws:iam::111122223333:user/alice",
      "arn:aws:iam::111122223333:root",
      "arn:aws:iam::444455556666:user/saas",
      "arn:aws:iam::444455556666:root",
    ]);
    for (const c of credentials) {
      expect(c.accessKeyId).toMatch(/^AKIA[A-Z2-7]{16}$/);
      expect(c.secretAccessKey).toMatch(/^[A-Za-z0-9+/]{40}$/);
    }
    expect(new Set(credentials.map((c) => c.accessKeyId)).size).toBe(4);
    counter = 0;
    expect(defaultCredentials(random)).toEqual(credentials);
    expect(new CredentialSet(credentials).size).toBe(4);
    expect(() => defaultCredentials(() => Buffer.alloc(40))).toThrow(/configured twice/);
    expect(userNameOf("arn:aws:iam::111122223333:user/ops/alice")).toBe("alice");
    expect(userNameOf("arn:aws:iam::111122223333:root")).toBeNull();
  });
});
