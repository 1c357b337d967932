// Red team 3 of the KMS endpoint (issue 11): the fixes of rounds 1 and 2 (the anchor in the fleet's
// token, the KMS port held by the supervisor, the written-ahead kmsuser password, DryRun, quotas,
// data-folder files). Each test is an attack that succeeds today: it fails until fixed.
import { CreateAliasCommand, CreateKeyCommand, EncryptCommand, ReEncryptCommand } from "@aws-sdk/client-kms";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

import { TRAIL_DIGESTS_FILE, TRAIL_FILE } from "../../src/kms/trail.js";
import { OWNER, failure, startKmsFixture } from "../kms/kms-fixture.js";

const outcome = (p: Promise<unknown>) => p.then(() => "started", (e: Error) => `${e.name}: ${e.message}`);

describe("red team 3: the anchor in the fleet's token", () => {
  it("a cut trail refused once is accepted at the next start: the refused start moved the anchor back", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const key = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    for (let i = 0; i < 5; i++) await owner.send(new CreateAliasCommand({ AliasName: `alias/kred3-${i}`, TargetKeyId: key }));
    await kms.endpoint.close(); // close signs a digest of every record: the anchor holds the trail's length
    const dir = join(kms.dataDir, "kms");
    const lines = readFileSync(join(dir, TRAIL_FILE), "utf8").split("\n").filter(Boolean);
    expect(lines.length).toBeGreaterThanOrEqual(6);
    // The editor cuts the trail after the CreateKey record (the alias records go) and the digests with it.
    writeFileSync(join(dir, TRAIL_FILE), `${lines[0]}\n`);
    writeFileSync(join(dir, TRAIL_DIGESTS_FILE), "");
    const first = await outcome(kms.restart());
    // The operator (or the supervisor) starts KMS again.
    const second = await outcome(kms.restart());
    expect({ first: first.startsWith("KmsStoreError") || first.includes("records were removed"), second })
      .toEqual({ first: true, second: expect.stringContaining("records were removed") });
  });
});

describe("red team 3: DryRun", () => {
  it("a ReEncrypt with DryRun changes nothing: it takes none of the account's request quota (nor decrypts the source)", async () => {
    const kms = await startKmsFixture({ durable: false, frozenClock: true, limits: { accountCryptoPerSecond: 2 } });
    const owner = kms.client(OWNER);
    const a = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const b = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const blob = (await owner.send(new EncryptCommand({ KeyId: a, Plaintext: Buffer.from("x") }))).CiphertextBlob!; // 1 of 2 this second
    const dry = await failure(owner.send(new ReEncryptCommand({ CiphertextBlob: blob, DestinationKeyId: b, DryRun: true })));
    expect(dry.name).toBe("DryRunOperationException");
    // The clock has not moved: the second request of this second is still the caller's to make.
    const next = await owner.send(new EncryptCommand({ KeyId: a, Plaintext: Buffer.from("y") })).then(() => "ok", (e: Error) => e.name);
    expect(next).toBe("ok");
  });
});
