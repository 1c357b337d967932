import { appendFileSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

import { KmsError } from "../../src/kms/errors.js";
import { KmsTrail, TRAIL_DIGESTS_FILE, TRAIL_FILE, TRAIL_PUBLIC_KEY_FILE, type TrailOptions, verifyTrail } from "../../src/kms/trail.js";
import { ALICE, KEY_ARN, ROOT_B, fakeTrailFleet, finished } from "./trail-fixture.js";

const open: KmsTrail[] = [];
afterEach(() => { for (const t of open.splice(0)) t.close(); });

let ids = 0;
function trail(path: string | null, fleet = fakeTrailFleet(), more: Partial<TrailOptions> = {}): KmsTrail {
  const t = KmsTrail.open({ path, fleet, region: "us-east-1", nowMs: () => 1_764_633_601_000, newEventId: () => `event-${++ids}`, ...more });
  open.push(t);
  return t;
}
function folder(): string {
  return mkdtempSync(join(tmpdir(), "kms-trail-"));
}
function lines(dir: string, file = TRAIL_FILE): string[] {
  return readFileSync(join(dir, file), "utf8").split("\n").filter((l) => l.length > 0);
}
/** A trail of `count` Encrypt records, closed (so flushed and signed). */
function written(count: number, fleet = fakeTrailFleet()): string {
  const dir = folder();
  const t = trail(join(dir, TRAIL_FILE), fleet);
  for (let i = 0; i < count; i++) t.record(finished("Encrypt", { KeyId: KEY_ARN, Plaintext: Buffer.from("x") }));
  t.close();
  return dir;
}

describe("trail records", () => {
  it("are CloudTrail's fields for an IAM user's Encrypt, without the plaintext", () => {
    const t = trail(null);
    const r = t.record(finished("Encrypt", { KeyId: KEY_ARN, Plaintext: Buffer.from("secret data"), EncryptionContext: { Department: "Eng" }, EncryptionAlgorithm: "SYMMETRIC_DEFAULT", GrantTokens: ["tok"] },
      { notes: { resources: [{ ARN: KEY_ARN, accountId: "111122223333", type: "AWS::KMS::Key" }], additionalEventData: {} } }));
    expect(r).toMatchObject({
      eventVersion: "1.11",
      userIdentity: { type: "IAMUser", arn: ALICE.arn, accountId: "111122223333", accessKeyId: ALICE.accessKeyId, userName: "alice" },
      eventTime: "2025-12-02T00:00:00Z", eventSource: "kms.amazonaws.com", eventName: "Encrypt", awsRegion: "us-east-1",
      sourceIPAddress: "127.0.0.1", userAgent: "aws-sdk-js/3",
      requestParameters: { keyId: KEY_ARN, encryptionContext: { Department: "Eng" }, encryptionAlgorithm: "SYMMETRIC_DEFAULT" },
      responseElements: null, readOnly: true, resources: [{ ARN: KEY_ARN, accountId: "111122223333", type: "AWS::KMS::Key" }],
      eventType: "AwsApiCall", managementEvent: true, recipientAccountId: "111122223333", eventCategory: "Management",
      hsmsimSeq: 1, hsmsimPrevHash: "0".repeat(64), hsmsimTiming: { startMs: 1_764_633_600_123, endMs: 1_764_633_600_126 },
    });
    expect((r.userIdentity as { principalId: string }).principalId).toMatch(/^AIDA[0-9A-F]{17}$/);
    expect(r).not.toHaveProperty("errorCode");
    // A grant token is a bearer credential: never in a record.
    expect(JSON.stringify(r.requestParameters)).not.toContain("tok");
    expect(JSON.stringify(r)).not.toContain("secret data");
    expect(JSON.stringify(r)).not.toContain(Buffer.from("secret data").toString("base64"));
  });

  it("never carry secrets or binary members, whatever the operation", () => {
    const t = trail(null);
    const r = t.record(finished("CreateCustomKeyStore", { CustomKeyStoreName: "store", CloudHsmClusterId: "cluster-1", KeyStorePassword: "kmsuser-pass-123", TrustAnchorCertificate: "PEM" }));
    expect(r.requestParameters).toEqual({ customKeyStoreName: "store", cloudHsmClusterId: "cluster-1", trustAnchorCertificate: "PEM" });
    expect(JSON.stringify(r)).not.toContain("kmsuser-pass-123");
    const d = t.record(finished("Decrypt", { CiphertextBlob: Buffer.from("blob"), Recipient: { AttestationDocument: Buffer.from("a") } as never, SomethingBinary: new Uint8Array([1]) }));
    expect(d.requestParameters).toEqual({});
    expect(d.readOnly).toBe(true);
    expect(t.record(finished("ScheduleKeyDeletion", { KeyId: "k", PendingWindowInDays: 7 })).readOnly).toBe(false);
  });

  it("name the root, the error, and what the handler noted", () => {
    const t = trail(null);
    const r = t.record(finished("Decrypt", { KeyId: KEY_ARN }, {
      caller: ROOT_B, error: new KmsError("AccessDeniedException", "not allowed"),
      notes: { resources: [], additionalEventData: { customKeyStoreId: "cks-1234567890abcdef0", backingKeyId: "42", hsmKeyIds: [42] } },
    }));
    expect(r.userIdentity).toEqual({ type: "Root", principalId: "444455556666", arn: ROOT_B.arn, accountId: "444455556666", accessKeyId: ROOT_B.accessKeyId });
    expect(r).toMatchObject({ errorCode: "AccessDeniedException", errorMessage: "not allowed", recipientAccountId: "444455556666",
      additionalEventData: { customKeyStoreId: "cks-1234567890abcdef0", backingKeyId: "42", hsmKeyIds: [42] } });
    expect(r).not.toHaveProperty("resources");
  });

  it("record a request refused before authentication, with what is known", () => {
    const t = trail(null);
    const r = t.record(finished("Encrypt", null, { caller: null, error: new KmsError("InvalidSignatureException", "bad signature") }));
    expect(r).toMatchObject({ userIdentity: { type: "Unknown" }, requestParameters: null, errorCode: "InvalidSignatureException", sourceIPAddress: null });
  });

  it("chain in memory too, and records() gives them back oldest first", () => {
    const t = trail(null);
    const a = t.record(finished("ListKeys", {}));
    const b = t.record(finished("ListAliases", {}));
    expect(b.hsmsimSeq).toBe(2);
    expect(b.hsmsimPrevHash).not.toBe(a.hsmsimPrevHash);
    expect(t.records().map((r) => r.eventName)).toEqual(["ListKeys", "ListAliases"]);
  });
});

describe("the trail file", () => {
  it("is written later (buffered), whole at close, 0600, with a signed digest that verifies", () => {
    const dir = folder();
    const t = trail(join(dir, TRAIL_FILE));
    t.record(finished("GenerateDataKey", { KeyId: KEY_ARN, NumberOfBytes: 32 }));
    expect(readFileSync(join(dir, TRAIL_FILE), "utf8")).toBe(""); // not on the request path
    t.close();
    expect(lines(dir)).toHaveLength(1);
    expect(statSync(join(dir, TRAIL_FILE)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, TRAIL_PUBLIC_KEY_FILE), "utf8")).toContain("BEGIN PUBLIC KEY");
    const digest = JSON.parse(lines(dir, TRAIL_DIGESTS_FILE)[0]!) as Record<string, unknown>;
    expect(digest).toMatchObject({ lastSeq: 1, time: "2025-12-02T00:00:01.000Z" });
    expect(verifyTrail(dir)).toEqual({ ok: true, records: 1, chain: { ok: true }, digests: 1, signatureFailures: [], lastSignedSeq: 1, unsignedTail: 0, partialLastLine: false, unvouched: [] });
  });

  it("goes on across a restart: the chain continues and records() reads the file's records too", () => {
    const fleet = fakeTrailFleet();
    const dir = written(3, fleet);
    const t = trail(join(dir, TRAIL_FILE), fleet);
    const r = t.record(finished("Decrypt", {}));
    expect(r.hsmsimSeq).toBe(4);
    expect(t.records().map((x) => x.hsmsimSeq)).toEqual([1, 2, 3, 4]);
    t.close();
    expect(verifyTrail(dir)).toMatchObject({ ok: true, records: 4, digests: 2, lastSignedSeq: 4, unsignedTail: 0 });
  });

  it("reports records after the last digest as an unsigned tail", () => {
    const fleet = fakeTrailFleet();
    const dir = written(2, fleet);
    const t = trail(join(dir, TRAIL_FILE), fleet);
    t.record(finished("Encrypt", {}));
    (t as unknown as { records(): unknown }).records(); // flushes, signs nothing
    expect(verifyTrail(dir)).toMatchObject({ ok: true, records: 3, lastSignedSeq: 2, unsignedTail: 1 });
  });

  it("cuts off a line half written by a crash and keeps the chain whole", () => {
    const fleet = fakeTrailFleet();
    const dir = written(2, fleet);
    appendFileSync(join(dir, TRAIL_FILE), '{"eventVersion":"1.11","userIdent');
    expect(verifyTrail(dir)).toMatchObject({ ok: true, records: 2, partialLastLine: true });
    const t = trail(join(dir, TRAIL_FILE), fleet);
    expect(t.record(finished("Encrypt", {})).hsmsimSeq).toBe(3);
    t.close();
    expect(verifyTrail(dir)).toMatchObject({ ok: true, records: 3, partialLastLine: false, unsignedTail: 0 });
  });
});

describe("a crash while a digest is written", () => {
  it("leaves a partial digest line that signs nothing, and the next open drops it", () => {
    const fleet = fakeTrailFleet();
    const dir = written(2, fleet);
    appendFileSync(join(dir, TRAIL_DIGESTS_FILE), '{"lastSeq":2,"lastHa');
    expect(verifyTrail(dir)).toMatchObject({ ok: true, digests: 1, lastSignedSeq: 2 });
    const t = trail(join(dir, TRAIL_FILE), fleet);
    t.record(finished("Encrypt", {}));
    t.close();
    expect(lines(dir, TRAIL_DIGESTS_FILE)).toHaveLength(2);
    expect(verifyTrail(dir)).toMatchObject({ ok: true, digests: 2, lastSignedSeq: 3, unsignedTail: 0 });
  });
});

describe("a trail in memory", () => {
  it("keeps only the newest records (a long benchmark), and the chain goes on", () => {
    const t = trail(null, fakeTrailFleet(), { memoryRecordsMax: 3 });
    for (let i = 0; i < 6; i++) t.record(finished("Encrypt", {}));
    const kept = t.records().map((r) => r.hsmsimSeq);
    expect(kept).toEqual([4, 5, 6]);
    expect(t.record(finished("Encrypt", {})).hsmsimSeq).toBe(7);
  });
});
