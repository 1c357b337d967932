// Attacks on the KMS trail: an editor of the data folder (edit, drop, truncate, forge or replay a
// digest, re-sign with a key of their own, plant garbage) is caught by verifyTrail, and the KMS
// refuses to chain onto a folder it cannot trust.
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

import { KmsError } from "../../src/kms/errors.js";
import { KmsTrail, TRAIL_DIGESTS_FILE, TRAIL_FILE, TRAIL_PUBLIC_KEY_FILE, verifyTrail } from "../../src/kms/trail.js";
import { KEY_ARN, fakeTrailFleet, finished } from "../kms/trail-fixture.js";

const open: KmsTrail[] = [];
afterEach(() => { for (const t of open.splice(0)) t.close(); });

function trail(path: string, fleet = fakeTrailFleet()): KmsTrail {
  const t = KmsTrail.open({ path, fleet, region: "us-east-1", nowMs: () => 1_764_633_601_000, newEventId: () => "event" });
  open.push(t);
  return t;
}
function lines(dir: string, file = TRAIL_FILE): string[] {
  return readFileSync(join(dir, file), "utf8").split("\n").filter((l) => l.length > 0);
}
function writeLines(dir: string, ls: string[], file = TRAIL_FILE): void {
  writeFileSync(join(dir, file), ls.map((l) => `${l}\n`).join(""));
}
/** A trail of `count` Encrypt records, closed (so written and signed). */
function written(count: number, fleet = fakeTrailFleet()): string {
  const dir = mkdtempSync(join(tmpdir(), "kms-trail-attack-"));
  const t = KmsTrail.open({ path: join(dir, TRAIL_FILE), fleet, region: "us-east-1", nowMs: () => 1_764_633_601_000, newEventId: () => "event" });
  for (let i = 0; i < count; i++) t.record(finished("Encrypt", { KeyId: KEY_ARN, Plaintext: Buffer.from("x") }));
  t.close();
  return dir;
}

describe("an editor of the data folder", () => {
  it("who changes a record breaks the chain at the record after it", () => {
    const dir = written(4);
    const ls = lines(dir);
    ls[1] = ls[1]!.replace('"eventName":"Encrypt"', '"eventName":"Decrypt"');
    writeLines(dir, ls);
    const v = verifyTrail(dir);
    expect(v.ok).toBe(false);
    expect(v.chain).toMatchObject({ ok: false, brokenAt: 3 });
  });

  it("who changes the last record is caught by the digest", () => {
    const dir = written(3);
    const ls = lines(dir);
    ls[2] = ls[2]!.replace('"sourceIPAddress":"127.0.0.1"', '"sourceIPAddress":"10.9.9.9"');
    writeLines(dir, ls);
    const v = verifyTrail(dir);
    expect(v.chain.ok).toBe(true);
    expect(v.ok).toBe(false);
    expect(v.signatureFailures).toEqual([{ digest: 1, reason: "record 3 is not the record it signed (edited)" }]);
  });

  it("who removes a record in the middle, or the newest ones, is caught", () => {
    const middle = written(4);
    writeLines(middle, lines(middle).filter((_, i) => i !== 1));
    expect(verifyTrail(middle)).toMatchObject({ ok: false, chain: { ok: false, brokenAt: 2 } });

    const newest = written(4);
    writeLines(newest, lines(newest).slice(0, 2));
    const v = verifyTrail(newest);
    expect(v.chain.ok).toBe(true);
    expect(v.ok).toBe(false);
    expect(v.signatureFailures[0]!.reason).toMatch(/signs record 4, which the trail lacks/);
  });

  it("who forges or replays a digest is caught", () => {
    const dir = written(2);
    const [d] = lines(dir, TRAIL_DIGESTS_FILE);
    const forged = { ...(JSON.parse(d!) as Record<string, unknown>), time: "2030-01-01T00:00:00.000Z" };
    writeLines(dir, [d!, d!, JSON.stringify(forged)], TRAIL_DIGESTS_FILE);
    const v = verifyTrail(dir);
    expect(v.ok).toBe(false);
    expect(v.signatureFailures.map((f) => f.digest)).toEqual([2, 3]);
    expect(v.signatureFailures[0]!.reason).toMatch(/replayed/);
    expect(v.signatureFailures[1]!.reason).toMatch(/does not verify/);
  });

  it("who re-signs the whole trail with a key of their own fails against the pinned key, and the KMS refuses the folder", () => {
    const fleet = fakeTrailFleet();
    const dir = written(2, fleet);
    const mallory = fakeTrailFleet();
    writeFileSync(join(dir, TRAIL_PUBLIC_KEY_FILE), mallory.trailPublicKeyPem());
    expect(() => trail(join(dir, TRAIL_FILE), fleet)).toThrow(KmsError);
    expect(verifyTrail(dir).ok).toBe(false);
    expect(verifyTrail(dir, { publicKeyPem: fleet.trailPublicKeyPem() }).ok).toBe(true);
  });

  it("who leaves garbage as the last record makes the KMS refuse to chain onto it", () => {
    const fleet = fakeTrailFleet();
    const dir = written(1, fleet);
    appendFileSync(join(dir, TRAIL_FILE), "not a record\n");
    expect(() => trail(join(dir, TRAIL_FILE), fleet)).toThrow(/not a trail record/);
    expect(verifyTrail(dir).chain).toMatchObject({ ok: false, brokenAt: 2, reason: "not JSON" });
  });
});

describe("a planted file", () => {
  it("in the trail's place is never followed: the trail refuses to open with KMS's error", async () => {
    const { symlinkSync } = await import("node:fs");
    const dir = mkdtempSync(join(tmpdir(), "kms-trail-plant-"));
    writeFileSync(join(dir, "victim"), "");
    symlinkSync(join(dir, "victim"), join(dir, TRAIL_FILE));
    let thrown: unknown;
    try {
      trail(join(dir, TRAIL_FILE));
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(KmsError);
    expect((thrown as KmsError).message).toMatch(/cannot be opened \(ELOOP\)/);
    expect(readFileSync(join(dir, "victim"), "utf8")).toBe("");
  });
});

describe("an editor who deletes the digests", () => {
  it("leaves every record unsigned, which the verdict and audit --kms say", () => {
    const dir = written(3);
    writeFileSync(join(dir, TRAIL_DIGESTS_FILE), "");
    expect(verifyTrail(dir)).toMatchObject({ chain: { ok: true }, digests: 0, lastSignedSeq: 0, unsignedTail: 3 });
  });
});

describe("an editor who changes the records a crash left unsigned", () => {
  it("is not vouched for: the next start signs them as found, and says they were unsigned", () => {
    const fleet = fakeTrailFleet();
    const dir = written(2, fleet);
    // A KMS that dies (kill -9) after writing two more records and before its next digest.
    const crashed = KmsTrail.open({ path: join(dir, TRAIL_FILE), fleet, region: "us-east-1", nowMs: () => 0, newEventId: () => "event", flushIntervalMs: 1e9, digestIntervalMs: 1e9 });
    crashed.record(finished("Encrypt", {}));
    crashed.record(finished("Encrypt", {}));
    crashed.records(); // written, not signed
    // While it is down, the editor rewrites the last record (the chain is a plain hash: still links).
    const ls = lines(dir);
    ls[3] = ls[3]!.replace('"sourceIPAddress":"127.0.0.1"', '"sourceIPAddress":"10.6.6.6"');
    writeLines(dir, ls);
    const restarted = trail(join(dir, TRAIL_FILE), fleet);
    restarted.record(finished("Decrypt", {}));
    restarted.close();
    const v = verifyTrail(dir);
    expect(v).toMatchObject({ ok: true, records: 5, unsignedTail: 0, unvouched: [{ from: 3, to: 4 }] });
  });

  it("cannot hide records behind a planted digest: only digests the trail key signed count", () => {
    const fleet = fakeTrailFleet();
    const dir = written(2, fleet);
    const crashed = KmsTrail.open({ path: join(dir, TRAIL_FILE), fleet, region: "us-east-1", nowMs: () => 0, newEventId: () => "event", flushIntervalMs: 1e9, digestIntervalMs: 1e9 });
    crashed.record(finished("Encrypt", {}));
    crashed.records();
    const mallory = fakeTrailFleet();
    appendFileSync(join(dir, TRAIL_DIGESTS_FILE), `${JSON.stringify({ lastSeq: 3, lastHash: "a".repeat(64), time: "t", signature: mallory.signTrail(Buffer.from("x")).toString("base64") })}\n`);
    trail(join(dir, TRAIL_FILE), fleet).close();
    const v = verifyTrail(dir);
    expect(v.unvouched).toEqual([{ from: 3, to: 3 }]);
    expect(v.ok).toBe(false); // the planted digest itself fails
  });
});
