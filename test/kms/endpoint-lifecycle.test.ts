// A key's life through the real AWS SDK: states and their errors, scheduled deletion on the
// injected clock, aliases, tags, the default policy, and all of it across a restart.
import {
  CancelKeyDeletionCommand, CreateAliasCommand, CreateGrantCommand, CreateKeyCommand, DecryptCommand, DeleteAliasCommand, DescribeKeyCommand,
  DisableKeyCommand, EnableKeyCommand, EncryptCommand, GetKeyPolicyCommand, ListAliasesCommand, ListGrantsCommand, ListKeysCommand,
  ListResourceTagsCommand, PutKeyPolicyCommand, ScheduleKeyDeletionCommand, TagResourceCommand, UntagResourceCommand, UpdateAliasCommand,
} from "@aws-sdk/client-kms";
import { describe, expect, it } from "vitest";

import { OWNER, SAAS, failure, startKmsFixture } from "./kms-fixture.js";

const DAY_MS = 86_400_000;

describe("key states", () => {
  it("Disabled refuses crypto with DisabledException until enabled again", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const keyId = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    await owner.send(new DisableKeyCommand({ KeyId: keyId }));
    expect((await owner.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata).toMatchObject({ KeyState: "Disabled", Enabled: false });
    expect((await failure(owner.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("x") })))).name).toBe("DisabledException");
    await owner.send(new EnableKeyCommand({ KeyId: keyId }));
    await owner.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("x") }));
  });

  it("ScheduleKeyDeletion: 7–30 days (default 30), crypto refused meanwhile, cancel leaves it Disabled, the deletion date deletes it", async () => {
    const kms = await startKmsFixture({ frozenClock: true });
    const owner = kms.client(OWNER);
    const keyId = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const blob = (await owner.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("kept") }))).CiphertextBlob;
    for (const days of [6, 31]) {
      expect((await failure(owner.send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: days })))).name).toBe("ValidationException");
    }
    const scheduled = await owner.send(new ScheduleKeyDeletionCommand({ KeyId: keyId }));
    expect(scheduled.PendingWindowInDays).toBe(30);
    expect(scheduled.KeyState).toBe("PendingDeletion");
    // The endpoint's clock stands still: the date is exactly its now plus 30 days.
    expect(scheduled.DeletionDate!.getTime()).toBe(kms.nowMs() + 30 * DAY_MS);
    expect((await failure(owner.send(new DecryptCommand({ CiphertextBlob: blob })))).name).toBe("KMSInvalidStateException");
    expect((await failure(owner.send(new EnableKeyCommand({ KeyId: keyId })))).name).toBe("KMSInvalidStateException");
    expect((await failure(owner.send(new ScheduleKeyDeletionCommand({ KeyId: keyId })))).name).toBe("KMSInvalidStateException");
    await owner.send(new CancelKeyDeletionCommand({ KeyId: keyId }));
    expect((await owner.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata!.KeyState).toBe("Disabled");
    expect((await failure(owner.send(new CancelKeyDeletionCommand({ KeyId: keyId })))).name).toBe("KMSInvalidStateException");

    await owner.send(new CreateAliasCommand({ AliasName: "alias/doomed", TargetKeyId: keyId }));
    await owner.send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 7 }));
    kms.advance(7 * DAY_MS - 60_000);
    expect((await kms.client(OWNER).send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata!.KeyState).toBe("PendingDeletion");
    kms.advance(120_000);
    const later = kms.client(OWNER);
    expect((await failure(later.send(new DescribeKeyCommand({ KeyId: keyId })))).name).toBe("NotFoundException");
    expect((await failure(later.send(new DecryptCommand({ CiphertextBlob: blob })))).name).toBe("InvalidCiphertextException");
    expect((await later.send(new ListAliasesCommand({}))).Aliases!.map((a) => a.AliasName)).not.toContain("alias/doomed");
    expect((await later.send(new ListKeysCommand({}))).Keys!.map((k) => k.KeyId)).not.toContain(keyId);
  });
});

describe("aliases and tags", () => {
  it("an alias names a key in the crypto calls; create, list, update, delete with AWS's errors", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const a = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!;
    const b = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!;
    await owner.send(new CreateAliasCommand({ AliasName: "alias/app", TargetKeyId: a.KeyId }));
    expect((await failure(owner.send(new CreateAliasCommand({ AliasName: "alias/app", TargetKeyId: b.KeyId })))).name).toBe("AlreadyExistsException");
    expect((await failure(owner.send(new CreateAliasCommand({ AliasName: "alias/aws/mine", TargetKeyId: b.KeyId })))).name).toBe("InvalidAliasNameException");
    expect((await failure(owner.send(new CreateAliasCommand({ AliasName: "app2", TargetKeyId: b.KeyId })))).name).toBe("ValidationException");
    const enc = await owner.send(new EncryptCommand({ KeyId: "alias/app", Plaintext: Buffer.from("x") }));
    expect(enc.KeyId).toBe(a.Arn);
    const byAliasArn = await owner.send(new EncryptCommand({ KeyId: "arn:aws:kms:us-east-1:111122223333:alias/app", Plaintext: Buffer.from("x") }));
    expect(byAliasArn.KeyId).toBe(a.Arn);
    await owner.send(new UpdateAliasCommand({ AliasName: "alias/app", TargetKeyId: b.KeyId }));
    expect((await owner.send(new EncryptCommand({ KeyId: "alias/app", Plaintext: Buffer.from("x") }))).KeyId).toBe(b.Arn);
    const listed = (await owner.send(new ListAliasesCommand({ KeyId: b.KeyId }))).Aliases!;
    expect(listed.map((x) => [x.AliasName, x.TargetKeyId, x.AliasArn])).toEqual([["alias/app", b.KeyId, "arn:aws:kms:us-east-1:111122223333:alias/app"]]);
    await owner.send(new DeleteAliasCommand({ AliasName: "alias/app" }));
    expect((await failure(owner.send(new EncryptCommand({ KeyId: "alias/app", Plaintext: Buffer.from("x") })))).name).toBe("NotFoundException");
    expect((await failure(owner.send(new DeleteAliasCommand({ AliasName: "alias/app" })))).name).toBe("NotFoundException");
  });

  it("tags: set, replace, remove; aws: keys refused", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const keyId = (await owner.send(new CreateKeyCommand({ Tags: [{ TagKey: "team", TagValue: "red" }] }))).KeyMetadata!.KeyId!;
    await owner.send(new TagResourceCommand({ KeyId: keyId, Tags: [{ TagKey: "team", TagValue: "blue" }, { TagKey: "env", TagValue: "test" }] }));
    await owner.send(new UntagResourceCommand({ KeyId: keyId, TagKeys: ["env"] }));
    expect((await owner.send(new ListResourceTagsCommand({ KeyId: keyId }))).Tags).toEqual([{ TagKey: "team", TagValue: "blue" }]);
    expect((await failure(owner.send(new TagResourceCommand({ KeyId: keyId, Tags: [{ TagKey: "aws:x", TagValue: "y" }] })))).name).toBe("TagException");
  });

  it("ListKeys pages with Limit and Marker; a forged marker is InvalidMarkerException", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const made: string[] = [];
    for (let i = 0; i < 5; i++) made.push((await owner.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!);
    const seen: string[] = [];
    let marker: string | undefined;
    do {
      const out = await owner.send(new ListKeysCommand({ Limit: 2, Marker: marker }));
      seen.push(...out.Keys!.map((k) => k.KeyId!));
      marker = out.Truncated ? out.NextMarker : undefined;
    } while (marker);
    expect(seen).toEqual(made);
    expect((await failure(owner.send(new ListKeysCommand({ Marker: "bm90LWEtbWFya2Vy" })))).name).toBe("InvalidMarkerException");
  });
});

describe("state across a restart", () => {
  it("keys, aliases, policies, grants and ciphertexts survive stop and start", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const key = (await owner.send(new CreateKeyCommand({ Description: "durable" }))).KeyMetadata!;
    await owner.send(new CreateAliasCommand({ AliasName: "alias/durable", TargetKeyId: key.KeyId }));
    const policy = JSON.stringify({ Version: "2012-10-17", Statement: [
      { Sid: "owner", Effect: "Allow", Principal: { AWS: "arn:aws:iam::111122223333:root" }, Action: "kms:*", Resource: "*" },
      { Sid: "saas", Effect: "Allow", Principal: { AWS: SAAS.arn }, Action: ["kms:Decrypt", "kms:DescribeKey"], Resource: "*" },
    ] });
    await owner.send(new PutKeyPolicyCommand({ KeyId: key.KeyId, Policy: policy }));
    const grant = await owner.send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: SAAS.arn, Operations: ["Encrypt"] }));
    const blob = (await owner.send(new EncryptCommand({ KeyId: "alias/durable", Plaintext: Buffer.from("across restarts"), EncryptionContext: { k: "v" } }))).CiphertextBlob;

    await kms.restart();
    const after = kms.client(OWNER);
    expect((await after.send(new DescribeKeyCommand({ KeyId: "alias/durable" }))).KeyMetadata).toMatchObject({ KeyId: key.KeyId, Description: "durable", KeyState: "Enabled" });
    expect((await after.send(new GetKeyPolicyCommand({ KeyId: key.KeyId }))).Policy).toBe(policy);
    expect((await after.send(new ListGrantsCommand({ KeyId: key.KeyId }))).Grants!.map((g) => g.GrantId)).toEqual([grant.GrantId]);
    const saas = kms.client(SAAS);
    const dec = await saas.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: { k: "v" } }));
    expect(Buffer.from(dec.Plaintext!).toString()).toBe("across restarts");
    await saas.send(new EncryptCommand({ KeyId: key.Arn, Plaintext: Buffer.from("by grant") }));
  });

  it("the default key policy gives the key's account kms:*", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const keyId = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const policy = JSON.parse((await owner.send(new GetKeyPolicyCommand({ KeyId: keyId }))).Policy!);
    expect(JSON.stringify(policy)).toContain("arn:aws:iam::111122223333:root");
    expect(JSON.stringify(policy)).toContain("kms:*");
  });
});
