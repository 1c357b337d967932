// Red team of the KMS endpoint (issue 11): each test is an attack that worked when it was
// written, stated as what AWS KMS (and DESIGN.md) promise. A failing test here is a finding.
import {
  CreateAliasCommand, CreateCustomKeyStoreCommand, CreateGrantCommand, CreateKeyCommand, DescribeKeyCommand, EncryptCommand, type KMSClient,
  ListGrantsCommand, PutKeyPolicyCommand, RetireGrantCommand, RevokeGrantCommand, UpdateAliasCommand,
} from "@aws-sdk/client-kms";
import { describe, expect, it } from "vitest";

import { simClusterDirectory, simTrustAnchorPem } from "../../src/kms/cluster-directory.js";
import { CO, activeWorld } from "../cluster/fixture.js";
import { OWNER, OWNER_ADMIN, SAAS, STRANGER, failure, startKmsFixture } from "../kms/kms-fixture.js";

const X = Buffer.from("x");

function policyAllowing(statements: object[]): string {
  return JSON.stringify({ Version: "2012-10-17", Statement: [
    { Sid: "owner", Effect: "Allow", Principal: { AWS: "arn:aws:iam::111122223333:root" }, Action: "kms:*", Resource: "*" }, ...statements,
  ] });
}

async function grantIds(client: KMSClient, keyId: string): Promise<string[]> {
  return ((await client.send(new ListGrantsCommand({ KeyId: keyId }))).Grants ?? []).map((g) => g.GrantId!);
}

describe("red team: DryRun", () => {
  it("RevokeGrant with DryRun: true answers DryRunOperationException and leaves the grant in place", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const key = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!;
    const grant = await owner.send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: SAAS.arn, Operations: ["Encrypt"] }));
    // A careless operator checking whether they *could* revoke: AWS does nothing and says DryRunOperationException.
    const revoke = await owner.send(new RevokeGrantCommand({ KeyId: key.KeyId, GrantId: grant.GrantId, DryRun: true })).then(() => "done", (e: Error) => e.name);
    expect(revoke).toBe("DryRunOperationException");
    expect(await grantIds(owner, key.KeyId!)).toContain(grant.GrantId);
  });

  it("RetireGrant with DryRun: true leaves the grant in place", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const saas = kms.client(SAAS);
    const key = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!;
    const grant = await owner.send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: SAAS.arn, RetiringPrincipal: SAAS.arn, Operations: ["Encrypt"] }));
    const retire = await saas.send(new RetireGrantCommand({ GrantToken: grant.GrantToken, DryRun: true })).then(() => "done", (e: Error) => e.name);
    expect(retire).toBe("DryRunOperationException");
    expect(await grantIds(owner, key.KeyId!)).toContain(grant.GrantId);
  });

  it("Encrypt with DryRun: true returns no ciphertext (DryRunOperationException)", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const key = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!;
    const out = await owner.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: X, DryRun: true })).then((o) => (o.CiphertextBlob ? "ciphertext" : "none"), (e: Error) => e.name);
    expect(out).toBe("DryRunOperationException");
  });
});

describe("red team: aliases", () => {
  it("UpdateAlias needs kms:UpdateAlias on the alias's current key too: a principal denied it there cannot repoint the alias", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const admin = kms.client(OWNER_ADMIN);
    // Key A: what producers encrypt under through alias/payments; admin is explicitly denied alias changes on it.
    const a = (await owner.send(new CreateKeyCommand({ Policy: policyAllowing([
      { Sid: "no-admin-alias", Effect: "Deny", Principal: { AWS: OWNER_ADMIN.arn }, Action: ["kms:UpdateAlias", "kms:DeleteAlias", "kms:CreateAlias"], Resource: "*" },
    ]) }))).KeyMetadata!;
    await owner.send(new CreateAliasCommand({ AliasName: "alias/payments", TargetKeyId: a.KeyId }));
    // Key B: admin's own (the default policy lets the whole account in).
    const b = (await admin.send(new CreateKeyCommand({}))).KeyMetadata!;
    const moved = await admin.send(new UpdateAliasCommand({ AliasName: "alias/payments", TargetKeyId: b.KeyId })).then(() => "moved", (e: Error) => e.name);
    expect(moved).toBe("AccessDeniedException");
    expect((await owner.send(new DescribeKeyCommand({ KeyId: "alias/payments" }))).KeyMetadata!.KeyId).toBe(a.KeyId);
  });
});

describe("red team: custom key stores across accounts", () => {
  it("another account cannot claim the owner's CloudHSM cluster for a key store of its own (AWS: the cluster must be in the caller's account)", async () => {
    const world = activeWorld();
    world.connect("co").console(CO.username, CO.password).createUser("kmsuser", "CU", "kmsuser-pass-1");
    const kms = await startKmsFixture({ clusters: simClusterDirectory(world) });
    const stranger = kms.client(STRANGER);
    // The trust anchor is a certificate (public); the stranger does not know kmsuser's password and makes one up.
    const squat = await stranger.send(new CreateCustomKeyStoreCommand({
      CustomKeyStoreName: "mine", CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world), KeyStorePassword: "made-up-1",
    })).then(() => "created", (e: Error) => e.name);
    expect(squat).toBe("CloudHsmClusterNotFoundException");
    // And so the owner can still associate its own cluster.
    const owner = kms.client(OWNER);
    const mine = await owner.send(new CreateCustomKeyStoreCommand({
      CustomKeyStoreName: "owners", CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world), KeyStorePassword: "kmsuser-pass-1",
    })).then(() => "created", (e: Error) => e.name);
    expect(mine).toBe("created");
  });
});

// keep imports used while the file grows
void PutKeyPolicyCommand;
void failure;
