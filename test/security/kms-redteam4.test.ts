// Red team 4 of the KMS endpoint (issue 11): the policy engine against AWS's documented
// evaluation, grants, the trail's records, cross-account leaks. Each test is an attack that
// succeeded when written; all were fixed, and stand as regression tests.
import {
  CreateAliasCommand, CreateGrantCommand, CreateKeyCommand, DescribeKeyCommand, EncryptCommand, KMSClient, RetireGrantCommand,
} from "@aws-sdk/client-kms";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

import { startKms } from "../../src/kms/endpoint.js";
import { TRAIL_FILE } from "../../src/kms/trail.js";
import { OWNER, SAAS, STRANGER, failure, outcome, policyAllowing, startKmsFixture } from "../kms/kms-fixture.js";

const X = Buffer.from("x");

describe("red team 4: the policy engine against AWS's evaluation", () => {
  it("ArnEquals takes wildcards, as ArnLike does (IAM's ARN operators): a Deny naming another account's principals by ARN pattern applies", async () => {
    // IAM: "ArnEquals, ArnLike — Case-sensitive matching of the ARN. Each of the six colon-delimited
    // components … can include multi-character match wildcards (*) or single-character match wildcards (?)".
    // Here ArnEquals compares literally: the Deny never matches, and the policy fails open.
    const kms = await startKmsFixture({ durable: false });
    const owner = kms.client(OWNER);
    const policy = policyAllowing([
      { Sid: "anyone encrypts", Effect: "Allow", Principal: "*", Action: "kms:Encrypt", Resource: "*" },
      { Sid: "but never the stranger's account", Effect: "Deny", Principal: "*", Action: "kms:*", Resource: "*",
        Condition: { ArnEquals: { "aws:PrincipalArn": `arn:aws:iam::${STRANGER.accountId}:*` } } },
    ]);
    const key = (await owner.send(new CreateKeyCommand({ Policy: policy }))).KeyMetadata!.Arn!;
    expect(await outcome(kms.client(SAAS).send(new EncryptCommand({ KeyId: key, Plaintext: X })))).toBe("ok");
    expect(await outcome(kms.client(STRANGER).send(new EncryptCommand({ KeyId: key, Plaintext: X })))).toBe("AccessDeniedException");
  });
  it("ArnLike's wildcards do not span ARN segments (IAM): a pattern with too few segments matches no principal, not every one", async () => {
    // IAM: "Wildcards cannot be used to span ARN segments, so the partition, service, region, account and
    // resource must all be present". Here the pattern is a plain glob: arn:aws:iam::4444* (five segments)
    // matches arn:aws:iam::444455556666:user/saas, and any other account whose id starts 4444.
    const kms = await startKmsFixture({ durable: false });
    const owner = kms.client(OWNER);
    const policy = policyAllowing([
      { Sid: "malformed pattern", Effect: "Allow", Principal: "*", Action: "kms:Encrypt", Resource: "*",
        Condition: { ArnLike: { "aws:PrincipalArn": "arn:aws:iam::4444*" } } },
    ]);
    const key = (await owner.send(new CreateKeyCommand({ Policy: policy }))).KeyMetadata!.Arn!;
    expect(await outcome(kms.client(SAAS).send(new EncryptCommand({ KeyId: key, Plaintext: X })))).toBe("AccessDeniedException");
  });
});

describe("red team 4: the trail's records", () => {
  it("no grant token enters the trail (GrantTokens of a crypto request, GrantToken of RetireGrant)", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const saas = kms.client(SAAS);
    const key = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const grant = await owner.send(new CreateGrantCommand({ KeyId: key, GranteePrincipal: SAAS.arn, Operations: ["Encrypt"] }));
    const token = grant.GrantToken!;
    await saas.send(new EncryptCommand({ KeyId: key, Plaintext: X, GrantTokens: [token] }));
    // The stranger's refused RetireGrant, and the grantee's (refused: the grant has no RetireGrant).
    await failure(kms.client(STRANGER).send(new RetireGrantCommand({ GrantToken: token })));
    await kms.endpoint.close();
    const trail = readFileSync(join(kms.dataDir, "kms", TRAIL_FILE), "utf8");
    expect(trail).toContain('"eventName":"Encrypt"');
    expect(trail.includes(token)).toBe(false);
  });
});

describe("red team 4: information across accounts", () => {
  it("another account's alias names are not an oracle, nor is the key id behind one disclosed, to a principal no policy names", async () => {
    const kms = await startKmsFixture({ durable: false });
    const owner = kms.client(OWNER);
    const stranger = kms.client(STRANGER);
    const key = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    await owner.send(new CreateAliasCommand({ AliasName: "alias/acquisition-target-2027", TargetKeyId: key }));
    const aliasArn = (name: string) => `arn:aws:kms:us-east-1:${OWNER.accountId}:alias/${name}`;
    const existing = await failure(stranger.send(new DescribeKeyCommand({ KeyId: aliasArn("acquisition-target-2027") })));
    const missing = await failure(stranger.send(new DescribeKeyCommand({ KeyId: aliasArn("no-such-alias") })));
    // Today: AccessDeniedException naming key/<the owner's key id> for the one, NotFoundException for the other.
    expect(existing.message).not.toContain(key);
    expect(existing.name).toBe(missing.name);
  });
});
