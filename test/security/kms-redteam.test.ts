// Red team of the KMS endpoint (issue 11): each test is an attack that worked when it was
// written, stated as what AWS KMS (and DESIGN.md) promise. A failing test here is a finding.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import {
  ConnectCustomKeyStoreCommand, CreateAliasCommand, CreateCustomKeyStoreCommand, CreateGrantCommand, CreateKeyCommand, DecryptCommand, DeleteCustomKeyStoreCommand,
  DescribeCustomKeyStoresCommand, DescribeKeyCommand, DisconnectCustomKeyStoreCommand, EncryptCommand, KMSClient, ListGrantsCommand, ListKeysCommand, RetireGrantCommand, RevokeGrantCommand,
  ScheduleKeyDeletionCommand, SignCommand, UpdateAliasCommand,
} from "@aws-sdk/client-kms";
import { describe, expect, it } from "vitest";

import { simClusterDirectory, simTrustAnchorPem } from "../../src/kms/cluster-directory.js";
import { CksLink, type LinkConnection } from "../../src/kms/cks-link.js";
import type { ClusterDirectory } from "../../src/kms/cluster-directory.js";
import { type KmsEndpoint, startKms } from "../../src/kms/endpoint.js";
import { verifyTrail } from "../../src/kms/trail.js";
import { CO, activeWorld } from "../cluster/fixture.js";
import { CREDENTIALS, OWNER, OWNER_ADMIN, SAAS, STRANGER, policyAllowing, startKmsFixture } from "../kms/kms-fixture.js";

const X = Buffer.from("x");

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

/** The world's cluster, but kmsuser's first random-bytes call (the rotation's new password) waits for `release()`. */
function slowRotationDirectory(world: ReturnType<typeof activeWorld>) {
  const sim = simClusterDirectory(world);
  let reachedResolve!: () => void;
  let releaseResolve!: () => void;
  const reached = new Promise<void>((r) => (reachedResolve = r));
  const gate = new Promise<void>((r) => (releaseResolve = r));
  let held = false;
  let opened = 0;
  class SlowLink extends CksLink {
    override async random(length: number): Promise<Buffer> {
      if (!held) {
        held = true;
        reachedResolve();
        await gate;
      }
      return super.random(length);
    }
  }
  const directory: ClusterDirectory = {
    describe: (id) => sim.describe(id),
    open: async () => new SlowLink(world.connect(`kred-kms-${++opened}`) as unknown as LinkConnection, { blocking: true }),
  };
  return { directory, reached, release: () => releaseResolve() };
}

describe("red team: custom key stores across accounts (2)", () => {
  it("another account cannot lock kmsuser out of the owner's cluster by connecting a store of its own with made-up passwords", async () => {
    const world = activeWorld();
    world.connect("co").console(CO.username, CO.password).createUser("kmsuser", "CU", "kmsuser-pass-1");
    const kms = await startKmsFixture({ clusters: simClusterDirectory(world) });
    const stranger = kms.client(STRANGER);
    const { CustomKeyStoreId: squatId } = await stranger.send(new CreateCustomKeyStoreCommand({
      CustomKeyStoreName: "mine", CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world), KeyStorePassword: "made-up-1",
    })).catch(() => ({ CustomKeyStoreId: undefined }));
    if (squatId !== undefined) {
      // Lockout counters are per HSM (5 each): 15 failed logins spread over the cluster's HSMs lock every one.
      for (let i = 0; i < 15; i++) {
        await stranger.send(new ConnectCustomKeyStoreCommand({ CustomKeyStoreId: squatId }));
        await kms.endpoint.settled(squatId);
        await stranger.send(new DisconnectCustomKeyStoreCommand({ CustomKeyStoreId: squatId }));
      }
      await stranger.send(new DeleteCustomKeyStoreCommand({ CustomKeyStoreId: squatId }));
    }
    // The owner, with kmsuser's real password, connects its own store.
    const owner = kms.client(OWNER);
    const { CustomKeyStoreId: storeId } = await owner.send(new CreateCustomKeyStoreCommand({
      CustomKeyStoreName: "owners", CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world), KeyStorePassword: "kmsuser-pass-1",
    }));
    await owner.send(new ConnectCustomKeyStoreCommand({ CustomKeyStoreId: storeId }));
    await kms.endpoint.settled(storeId!);
    const after = (await owner.send(new DescribeCustomKeyStoresCommand({ CustomKeyStoreId: storeId }))).CustomKeyStores![0];
    expect({ state: after.ConnectionState, code: after.ConnectionErrorCode }).toEqual({ state: "CONNECTED", code: undefined });
  });
});

describe("red team: custom key store connection races", () => {
  it("a Disconnect that lands while Connect rotates kmsuser's password does not lose the password (the store connects again afterwards)", async () => {
    const world = activeWorld();
    world.connect("co").console(CO.username, CO.password).createUser("kmsuser", "CU", "kmsuser-pass-1");
    const slow = slowRotationDirectory(world);
    const kms = await startKmsFixture({ clusters: slow.directory });
    const owner = kms.client(OWNER);
    const { CustomKeyStoreId: storeId } = await owner.send(new CreateCustomKeyStoreCommand({
      CustomKeyStoreName: "s", CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world), KeyStorePassword: "kmsuser-pass-1",
    }));
    await owner.send(new ConnectCustomKeyStoreCommand({ CustomKeyStoreId: storeId }));
    await slow.reached; // logged in as kmsuser; fetching the new password from the HSMs (a network round trip on a real cluster)
    const disconnecting = owner.send(new DisconnectCustomKeyStoreCommand({ CustomKeyStoreId: storeId }));
    // The disconnect is under way (DISCONNECTING) before the HSMs answer.
    for (let i = 0; i < 100; i++) {
      const state = (await owner.send(new DescribeCustomKeyStoresCommand({ CustomKeyStoreId: storeId }))).CustomKeyStores![0].ConnectionState;
      if (state === "DISCONNECTING") break;
      await new Promise((r) => setTimeout(r, 5));
    }
    slow.release();
    await disconnecting;
    // The operator connects again: kmsuser's password must still be one KMS knows.
    await owner.send(new ConnectCustomKeyStoreCommand({ CustomKeyStoreId: storeId }));
    await kms.endpoint.settled(storeId!);
    const after = (await owner.send(new DescribeCustomKeyStoresCommand({ CustomKeyStoreId: storeId }))).CustomKeyStores![0];
    expect({ state: after.ConnectionState, code: after.ConnectionErrorCode }).toEqual({ state: "CONNECTED", code: undefined });
  });
});

describe("red team: custom key store races (2)", () => {
  it("a store disconnected and deleted while CreateKey waits for the cluster's answer leaves no key behind that cannot be described", async () => {
    const world = activeWorld();
    world.connect("co").console(CO.username, CO.password).createUser("kmsuser", "CU", "kmsuser-pass-1");
    const sim = simClusterDirectory(world);
    let reachedResolve!: () => void;
    let releaseResolve!: () => void;
    const reached = new Promise<void>((r) => (reachedResolve = r));
    const gate = new Promise<void>((r) => (releaseResolve = r));
    let opened = 0;
    // The HSMs make the key at once; their answer takes a while to come back (a real network).
    class SlowAnswerLink extends CksLink {
      override async generateAesKey(label: string): Promise<number> {
        const id = await super.generateAesKey(label);
        reachedResolve();
        await gate;
        return id;
      }
    }
    const directory: ClusterDirectory = {
      describe: (id) => sim.describe(id),
      open: async () => new SlowAnswerLink(world.connect(`kred-kms2-${++opened}`) as unknown as LinkConnection, { blocking: true }),
    };
    const kms = await startKmsFixture({ clusters: directory });
    const owner = kms.client(OWNER);
    const { CustomKeyStoreId: storeId } = await owner.send(new CreateCustomKeyStoreCommand({
      CustomKeyStoreName: "s", CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world), KeyStorePassword: "kmsuser-pass-1",
    }));
    await owner.send(new ConnectCustomKeyStoreCommand({ CustomKeyStoreId: storeId }));
    await kms.endpoint.settled(storeId!);
    const creating = owner.send(new CreateKeyCommand({ Origin: "AWS_CLOUDHSM", CustomKeyStoreId: storeId })).then(() => "created", (e: Error) => e.name);
    await reached;
    await owner.send(new DisconnectCustomKeyStoreCommand({ CustomKeyStoreId: storeId }));
    const deleted = await owner.send(new DeleteCustomKeyStoreCommand({ CustomKeyStoreId: storeId })).then(() => "deleted", (e: Error) => e.name);
    releaseResolve();
    const created = await creating;
    // Whatever the order, every key ListKeys shows can be described (no key points at a store that is gone).
    const keys = (await owner.send(new ListKeysCommand({}))).Keys ?? [];
    const described = await Promise.all(keys.map((k) => owner.send(new DescribeKeyCommand({ KeyId: k.KeyId })).then((d) => d.KeyMetadata!.KeyState!, (e: Error) => e.name)));
    expect({ created, deleted, described }).toEqual({ created, deleted, described: described.filter((d) => !d.endsWith("Exception")) });
  });
});

describe("red team: custom key store races (3)", () => {
  it("an Encrypt in flight when the store is disconnected gets an AWS state error, not a 500 KMSInternalException", async () => {
    const world = activeWorld();
    world.connect("co").console(CO.username, CO.password).createUser("kmsuser", "CU", "kmsuser-pass-1");
    const sim = simClusterDirectory(world);
    let reachedResolve!: () => void;
    let releaseResolve!: () => void;
    const reached = new Promise<void>((r) => (reachedResolve = r));
    const gate = new Promise<void>((r) => (releaseResolve = r));
    let opened = 0;
    // The IVs Encrypt fetches from the HSMs take a network round trip.
    class SlowIvLink extends CksLink {
      override async random(length: number): Promise<Buffer> {
        if (length !== 24) {
          reachedResolve();
          await gate;
        }
        return super.random(length);
      }
    }
    const directory: ClusterDirectory = {
      describe: (id) => sim.describe(id),
      open: async () => new SlowIvLink(world.connect(`kred-kms3-${++opened}`) as unknown as LinkConnection, { blocking: true }),
    };
    const kms = await startKmsFixture({ clusters: directory });
    const owner = kms.client(OWNER);
    const { CustomKeyStoreId: storeId } = await owner.send(new CreateCustomKeyStoreCommand({
      CustomKeyStoreName: "s", CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world), KeyStorePassword: "kmsuser-pass-1",
    }));
    await owner.send(new ConnectCustomKeyStoreCommand({ CustomKeyStoreId: storeId }));
    await kms.endpoint.settled(storeId!);
    const key = (await owner.send(new CreateKeyCommand({ Origin: "AWS_CLOUDHSM", CustomKeyStoreId: storeId }))).KeyMetadata!;
    const encrypting = owner.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: X })).then(() => ({ name: "ok", status: 200 }),
      (e: { name: string; $metadata?: { httpStatusCode?: number } }) => ({ name: e.name, status: e.$metadata?.httpStatusCode }));
    await reached;
    await owner.send(new DisconnectCustomKeyStoreCommand({ CustomKeyStoreId: storeId }));
    releaseResolve();
    expect(await encrypting).toEqual({ name: "KMSInvalidStateException", status: 400 });
  });
});

describe("red team: the data folder", () => {
  it("kms.db put back to an older copy (fleet and trail untouched) does not bring a revoked grant back to life", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hsmsim-kred-"));
    const dataDir = join(dir, "kms");
    const start = () => startKms({ dataDir, credentials: CREDENTIALS });
    const clientOf = (endpoint: KmsEndpoint, who: typeof OWNER) => new KMSClient({
      endpoint: endpoint.url, region: "us-east-1", maxAttempts: 1, credentials: { accessKeyId: who.accessKeyId, secretAccessKey: who.secretAccessKey },
    });
    const saasEncrypts = async (endpoint: KmsEndpoint, keyArn: string) => {
      const saas = clientOf(endpoint, SAAS);
      try {
        return await saas.send(new EncryptCommand({ KeyId: keyArn, Plaintext: X })).then(() => "ok", (e: Error) => e.name);
      } finally {
        saas.destroy();
      }
    };
    try {
      // The owner grants the SaaS provider Encrypt; an editor of the data folder keeps a copy of kms.db.
      let endpoint = await start();
      let owner = clientOf(endpoint, OWNER);
      const key = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!;
      const grant = await owner.send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: SAAS.arn, Operations: ["Encrypt"] }));
      expect(await saasEncrypts(endpoint, key.Arn!)).toBe("ok");
      owner.destroy();
      await endpoint.close();
      const saved = new Map<string, Buffer>();
      for (const name of readdirSync(dataDir)) if (name.startsWith("kms.db")) saved.set(name, readFileSync(join(dataDir, name)));

      // The owner revokes the grant (and does more besides: the change counter moves on).
      endpoint = await start();
      owner = clientOf(endpoint, OWNER);
      await owner.send(new RevokeGrantCommand({ KeyId: key.KeyId, GrantId: grant.GrantId }));
      await owner.send(new CreateKeyCommand({ Description: "later" }));
      expect(await saasEncrypts(endpoint, key.Arn!)).toBe("AccessDeniedException");
      owner.destroy();
      await endpoint.close();

      // The editor puts the old kms.db back; nothing else in the folder is touched.
      for (const name of readdirSync(dataDir)) if (name.startsWith("kms.db")) rmSync(join(dataDir, name));
      for (const [name, bytes] of saved) writeFileSync(join(dataDir, name), bytes);
      const outcome = await start().then(async (e) => {
        try {
          return await saasEncrypts(e, key.Arn!);
        } finally {
          await e.close();
        }
      }, () => "refused to start");
      // Either the endpoint notices (the fleet token or the signed trail remembers the head) or the grant stays revoked.
      expect(outcome).not.toBe("ok");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("red team: the trail", () => {
  it("cutting the newest records and the digests that sign them (both files back to an earlier point) is caught", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hsmsim-kred-"));
    const dataDir = join(dir, "kms");
    const clientOf = (endpoint: KmsEndpoint, who: typeof OWNER) => new KMSClient({
      endpoint: endpoint.url, region: "us-east-1", maxAttempts: 1, credentials: { accessKeyId: who.accessKeyId, secretAccessKey: who.secretAccessKey },
    });
    const linesOf = (file: string) => readFileSync(join(dataDir, file), "utf8").split("\n").filter((l) => l.length > 0);
    try {
      let endpoint = await startKms({ dataDir, credentials: CREDENTIALS });
      const owner = clientOf(endpoint, OWNER);
      const key = (await owner.send(new CreateKeyCommand({ Policy: policyAllowing([
        { Sid: "saas", Effect: "Allow", Principal: { AWS: SAAS.arn }, Action: ["kms:Decrypt"], Resource: "*" },
      ]) }))).KeyMetadata!;
      const blob = (await owner.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.from("payroll") }))).CiphertextBlob!;
      owner.destroy();
      await endpoint.close();
      const kept = { records: linesOf("trail.jsonl").length, digests: linesOf("trail-digests.jsonl").length };

      // Later: the SaaS provider decrypts the payroll. The records say so, and a digest signs them.
      endpoint = await startKms({ dataDir, credentials: CREDENTIALS });
      const saas = clientOf(endpoint, SAAS);
      for (let i = 0; i < 3; i++) await saas.send(new DecryptCommand({ CiphertextBlob: blob }));
      saas.destroy();
      await endpoint.close();
      expect(linesOf("trail.jsonl").length).toBeGreaterThan(kept.records);

      // An editor of the folder cuts both files back to where they were before.
      writeFileSync(join(dataDir, "trail.jsonl"), linesOf("trail.jsonl").slice(0, kept.records).map((l) => `${l}\n`).join(""));
      writeFileSync(join(dataDir, "trail-digests.jsonl"), linesOf("trail-digests.jsonl").slice(0, kept.digests).map((l) => `${l}\n`).join(""));
      const verdict = verifyTrail(dataDir);
      const restarted = await startKms({ dataDir, credentials: CREDENTIALS }).then(async (e) => {
        await e.close();
        return "started";
      }, () => "refused");
      // The KMS knows how far its trail went (it could anchor the last sequence number in its fleet or store):
      // either the verifier or the next start must notice the records are gone.
      expect({ verified: verdict.ok, restarted }).not.toEqual({ verified: true, restarted: "started" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("red team: resource quotas", () => {
  it("a key takes at most 50 aliases (AWS's resource quota: LimitExceededException); no quota at all bounds aliases, grants or keys", async () => {
    const kms = await startKmsFixture({ durable: false });
    const owner = kms.client(OWNER);
    const key = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!;
    for (let i = 0; i < 50; i++) await owner.send(new CreateAliasCommand({ AliasName: `alias/a${i}`, TargetKeyId: key.KeyId }));
    const fiftyFirst = await owner.send(new CreateAliasCommand({ AliasName: "alias/a50", TargetKeyId: key.KeyId })).then(() => "created", (e: Error) => e.name);
    expect(fiftyFirst).toBe("LimitExceededException");
  });
});

describe("red team: odd inputs", () => {
  it("Sign with MessageType EXTERNAL_MU on an ECC key is refused (AWS: EXTERNAL_MU is for ML-DSA keys only), not signed as RAW", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const key = (await owner.send(new CreateKeyCommand({ KeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY" }))).KeyMetadata!;
    const out = await owner.send(new SignCommand({ KeyId: key.KeyId, Message: Buffer.alloc(64, 1), MessageType: "EXTERNAL_MU", SigningAlgorithm: "ECDSA_SHA_256" }))
      .then(() => "signed", (e: Error) => e.name);
    expect(out).toBe("ValidationException");
  });
});

describe("red team: key deletion and key stores", () => {
  it("a custom key store whose keys' waiting periods are over can be deleted (the keys are gone, as ListKeys shows)", async () => {
    const world = activeWorld();
    world.connect("co").console(CO.username, CO.password).createUser("kmsuser", "CU", "kmsuser-pass-1");
    const kms = await startKmsFixture({ clusters: simClusterDirectory(world) });
    const owner = kms.client(OWNER);
    const { CustomKeyStoreId: storeId } = await owner.send(new CreateCustomKeyStoreCommand({
      CustomKeyStoreName: "s", CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world), KeyStorePassword: "kmsuser-pass-1",
    }));
    await owner.send(new ConnectCustomKeyStoreCommand({ CustomKeyStoreId: storeId }));
    await kms.endpoint.settled(storeId!);
    const key = (await owner.send(new CreateKeyCommand({ Origin: "AWS_CLOUDHSM", CustomKeyStoreId: storeId }))).KeyMetadata!;
    await owner.send(new ScheduleKeyDeletionCommand({ KeyId: key.KeyId, PendingWindowInDays: 7 }));
    await owner.send(new DisconnectCustomKeyStoreCommand({ CustomKeyStoreId: storeId }));
    kms.advance(8 * 86_400_000);
    // The key's deletion date has passed: it no longer exists (DescribeKey would say NotFoundException).
    const later = kms.client(OWNER); // signs on the moved clock
    const deleted = await later.send(new DeleteCustomKeyStoreCommand({ CustomKeyStoreId: storeId })).then(() => "deleted", (e: Error) => e.name);
    expect(deleted).toBe("deleted");
  });
});
