// The policy and grant matrix, attacked through the real AWS SDK: the key's own account, another
// account the policy allows, another it does not, a grantee, a grant retired or revoked, a
// constraint dodged, a forged grant token, management across accounts.
import {
  CreateGrantCommand, CreateKeyCommand, DecryptCommand, DescribeKeyCommand, DisableKeyCommand, EncryptCommand, GenerateDataKeyCommand, GetKeyPolicyCommand,
  type KMSClient, ListGrantsCommand, PutKeyPolicyCommand, RetireGrantCommand, RevokeGrantCommand, ScheduleKeyDeletionCommand,
} from "@aws-sdk/client-kms";
import { describe, expect, it } from "vitest";

import { OWNER, OWNER_ADMIN, SAAS, STRANGER, failure, startKmsFixture } from "../kms/kms-fixture.js";

const X = Buffer.from("x");

function policyAllowing(statements: object[]): string {
  return JSON.stringify({ Version: "2012-10-17", Statement: [
    { Sid: "owner", Effect: "Allow", Principal: { AWS: "arn:aws:iam::111122223333:root" }, Action: "kms:*", Resource: "*" }, ...statements,
  ] });
}

async function setup() {
  const kms = await startKmsFixture();
  const owner = kms.client(OWNER);
  const key = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!;
  return { kms, owner, key, saas: kms.client(SAAS), stranger: kms.client(STRANGER) };
}

async function canEncrypt(client: KMSClient, keyId: string, extra: object = {}): Promise<string> {
  try {
    await client.send(new EncryptCommand({ KeyId: keyId, Plaintext: X, ...extra }));
    return "ok";
  } catch (e) {
    return (e as Error).name;
  }
}

describe("key policy", () => {
  it("own account: allowed by the default policy; other accounts: denied, even knowing the ARN", async () => {
    const { owner, key, saas, stranger } = await setup();
    expect(await canEncrypt(owner, key.KeyId!)).toBe("ok");
    expect(await canEncrypt(saas, key.Arn!)).toBe("AccessDeniedException");
    expect(await canEncrypt(stranger, key.Arn!)).toBe("AccessDeniedException");
    const f = await failure(saas.send(new EncryptCommand({ KeyId: key.Arn, Plaintext: X })));
    expect(f.message).toContain(SAAS.arn);
    expect(f.message).toContain("kms:Encrypt");
    // By key id or alias, a key of another account is not even found.
    expect(await canEncrypt(saas, key.KeyId!)).toBe("NotFoundException");
  });

  it("another account the policy names may use the key by ARN; a third may not; management stays with the owner", async () => {
    const { owner, key, saas, stranger } = await setup();
    await owner.send(new PutKeyPolicyCommand({ KeyId: key.KeyId, Policy: policyAllowing([
      { Sid: "saas", Effect: "Allow", Principal: { AWS: "arn:aws:iam::444455556666:root" }, Action: ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"], Resource: "*" },
    ]) }));
    expect(await canEncrypt(saas, key.Arn!)).toBe("ok");
    expect(await canEncrypt(stranger, key.Arn!)).toBe("AccessDeniedException");
    const blob = (await owner.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.from("shared") }))).CiphertextBlob;
    expect(Buffer.from((await saas.send(new DecryptCommand({ CiphertextBlob: blob }))).Plaintext!).toString()).toBe("shared");
    expect((await failure(stranger.send(new DecryptCommand({ CiphertextBlob: blob })))).name).toBe("AccessDeniedException");
    // An action the statement does not list, and management, which never crosses accounts.
    expect((await failure(saas.send(new GenerateDataKeyCommand({ KeyId: key.Arn, KeySpec: "AES_256" })))).name).toBe("AccessDeniedException");
    expect((await failure(saas.send(new DisableKeyCommand({ KeyId: key.Arn })))).name).toBe("NotFoundException");
    expect((await failure(saas.send(new ScheduleKeyDeletionCommand({ KeyId: key.Arn })))).name).toBe("NotFoundException");
    expect((await failure(saas.send(new GetKeyPolicyCommand({ KeyId: key.Arn })))).name).toBe("NotFoundException");
  });

  it("an explicit Deny beats an Allow, for the owner's own users too", async () => {
    const { kms: kmsOf, owner, key, saas } = await setup();
    await owner.send(new PutKeyPolicyCommand({ KeyId: key.KeyId, Policy: policyAllowing([
      { Sid: "saas", Effect: "Allow", Principal: { AWS: SAAS.arn }, Action: "kms:*", Resource: "*" },
      { Sid: "no-saas-encrypt", Effect: "Deny", Principal: { AWS: SAAS.arn }, Action: "kms:Encrypt", Resource: "*" },
      { Sid: "no-admin-crypto", Effect: "Deny", Principal: { AWS: OWNER_ADMIN.arn }, Action: ["kms:Encrypt", "kms:Decrypt"], Resource: "*" },
    ]) }));
    expect(await canEncrypt(saas, key.Arn!)).toBe("AccessDeniedException");
    expect((await failure(saas.send(new EncryptCommand({ KeyId: key.Arn, Plaintext: X })))).message).toContain("explicit deny");
    expect(await canEncrypt(owner, key.KeyId!)).toBe("ok");
    const admin = kmsOf.client(OWNER_ADMIN);
    expect(await canEncrypt(admin, key.KeyId!)).toBe("AccessDeniedException");
    expect((await failure(admin.send(new DecryptCommand({ CiphertextBlob: (await owner.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: X }))).CiphertextBlob })))).name).toBe("AccessDeniedException");
  });

  it("a policy that would lock its caller out is refused unless the check is bypassed", async () => {
    const { owner, key } = await setup();
    const lockout = JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Principal: { AWS: SAAS.arn }, Action: "kms:*", Resource: "*" }] });
    expect((await failure(owner.send(new PutKeyPolicyCommand({ KeyId: key.KeyId, Policy: lockout })))).name).toBe("MalformedPolicyDocumentException");
    for (const bad of ["not json", "{}", JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Maybe", Principal: "*", Action: "kms:*", Resource: "*" }] })]) {
      expect((await failure(owner.send(new PutKeyPolicyCommand({ KeyId: key.KeyId, Policy: bad })))).name).toBe("MalformedPolicyDocumentException");
    }
    await owner.send(new PutKeyPolicyCommand({ KeyId: key.KeyId, Policy: lockout, BypassPolicyLockoutSafetyCheck: true }));
    expect(await canEncrypt(owner, key.KeyId!)).toBe("AccessDeniedException");
  });
});

describe("grants", () => {
  it("a grant lets another account in for its operations only, under its constraints; retired or revoked, it stops", async () => {
    const { owner, key, saas, stranger } = await setup();
    const grant = await owner.send(new CreateGrantCommand({
      KeyId: key.KeyId, GranteePrincipal: SAAS.arn, RetiringPrincipal: SAAS.arn, Operations: ["Encrypt", "Decrypt"],
      Constraints: { EncryptionContextSubset: { tenant: "saas" } },
    }));
    expect(await canEncrypt(saas, key.Arn!, { EncryptionContext: { tenant: "saas", file: "1" }, GrantTokens: [grant.GrantToken!] })).toBe("ok");
    expect(await canEncrypt(saas, key.Arn!, { EncryptionContext: { tenant: "saas" } })).toBe("ok");
    // The constraint: a context that lacks the pair, or differs in case.
    expect(await canEncrypt(saas, key.Arn!, { EncryptionContext: { tenant: "SAAS" } })).toBe("AccessDeniedException");
    expect(await canEncrypt(saas, key.Arn!)).toBe("AccessDeniedException");
    // Operations the grant does not carry, and a principal it does not name (even with the token).
    expect((await failure(saas.send(new GenerateDataKeyCommand({ KeyId: key.Arn, KeySpec: "AES_256", EncryptionContext: { tenant: "saas" } })))).name).toBe("AccessDeniedException");
    expect(await canEncrypt(stranger, key.Arn!, { EncryptionContext: { tenant: "saas" }, GrantTokens: [grant.GrantToken!] })).toBe("AccessDeniedException");

    // The grantee retires it (it is the retiring principal); then it no longer works.
    await saas.send(new RetireGrantCommand({ GrantToken: grant.GrantToken }));
    expect(await canEncrypt(saas, key.Arn!, { EncryptionContext: { tenant: "saas" } })).toBe("AccessDeniedException");
    expect(await canEncrypt(saas, key.Arn!, { EncryptionContext: { tenant: "saas" }, GrantTokens: [grant.GrantToken!] })).toBe("AccessDeniedException");

    const second = await owner.send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: SAAS.arn, Operations: ["Encrypt"] }));
    expect(await canEncrypt(saas, key.Arn!)).toBe("ok");
    // Only the owner revokes: the grantee and a stranger cannot.
    expect((await failure(saas.send(new RevokeGrantCommand({ KeyId: key.Arn, GrantId: second.GrantId })))).name).toBe("AccessDeniedException");
    expect((await failure(stranger.send(new RetireGrantCommand({ GrantToken: second.GrantToken })))).name).toBe("AccessDeniedException");
    await owner.send(new RevokeGrantCommand({ KeyId: key.KeyId, GrantId: second.GrantId }));
    expect(await canEncrypt(saas, key.Arn!)).toBe("AccessDeniedException");
    expect((await owner.send(new ListGrantsCommand({ KeyId: key.KeyId }))).Grants).toEqual([]);
  });

  it("EncryptionContextEquals is exact; a forged or altered grant token is refused", async () => {
    const { owner, key, saas } = await setup();
    const grant = await owner.send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: SAAS.arn, Operations: ["Encrypt"], Constraints: { EncryptionContextEquals: { a: "1" } } }));
    expect(await canEncrypt(saas, key.Arn!, { EncryptionContext: { a: "1" } })).toBe("ok");
    expect(await canEncrypt(saas, key.Arn!, { EncryptionContext: { a: "1", b: "2" } })).toBe("AccessDeniedException");
    const token = grant.GrantToken!;
    const altered = token.slice(0, 10) + (token[10] === "A" ? "B" : "A") + token.slice(11);
    for (const bad of [altered, "forged-token", token.slice(0, token.length - 4)]) {
      expect((await failure(saas.send(new EncryptCommand({ KeyId: key.Arn, Plaintext: X, EncryptionContext: { a: "1" }, GrantTokens: [bad] })))).name).toBe("InvalidGrantTokenException");
    }
  });

  it("a grantee cannot widen its grant, and cannot grant itself more through CreateGrant", async () => {
    const { owner, key, saas, stranger } = await setup();
    await owner.send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: SAAS.arn, Operations: ["Encrypt", "CreateGrant"] }));
    // A subset is allowed (to a third party), a superset is not.
    await saas.send(new CreateGrantCommand({ KeyId: key.Arn, GranteePrincipal: STRANGER.arn, Operations: ["Encrypt"] }));
    expect(await canEncrypt(stranger, key.Arn!)).toBe("ok");
    expect((await failure(saas.send(new CreateGrantCommand({ KeyId: key.Arn, GranteePrincipal: SAAS.arn, Operations: ["Decrypt"] })))).name).toBe("AccessDeniedException");
    expect((await failure(stranger.send(new CreateGrantCommand({ KeyId: key.Arn, GranteePrincipal: STRANGER.arn, Operations: ["Encrypt"] })))).name).toBe("AccessDeniedException");
    expect((await failure(saas.send(new DescribeKeyCommand({ KeyId: key.Arn })))).name).toBe("AccessDeniedException");
  });
});
