// The KMS trail's costs: building, hashing and buffering one CloudTrail-style record (what each
// request adds after its answer is written), with the writes batched per event-loop turn or one
// per turn, and verifying a trail (hash chain and signed digests) per 100,000 records. The trail
// key here is node's ECDSA P-256, standing in for the fleet.
// Run: npx tsx bench/kms-trail.bench.ts
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { KmsTrail, TRAIL_FILE, verifyTrail } from "../src/kms/trail.js";
import { KEY_ARN, fakeTrailFleet, finished } from "../test/kms/trail-fixture.js";

const root = mkdtempSync(join(tmpdir(), "hsmsim-kms-trail-bench-"));
const request = finished("Encrypt", { KeyId: KEY_ARN, EncryptionContext: { Department: "Engineering", Project: "Alpha" }, EncryptionAlgorithm: "SYMMETRIC_DEFAULT" },
  { notes: { resources: [{ ARN: KEY_ARN, accountId: "111122223333", type: "AWS::KMS::Key" }], additionalEventData: {} } });
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

async function main(): Promise<void> {
  const trail = KmsTrail.open({ path: join(root, TRAIL_FILE), fleet: fakeTrailFleet(), region: "us-east-1", nowMs: Date.now, newEventId: () => "8d2b9e55-1b1f-4c9c-8a55-3f1f1e0d9a11" });
  const batched = 100_000;
  let start = performance.now();
  for (let i = 0; i < batched; i++) trail.record(request);
  const batchedUs = ((performance.now() - start) * 1000) / batched;

  const single = 20_000;
  start = performance.now();
  for (let i = 0; i < single; i++) await turn();
  const turnsMs = performance.now() - start;
  start = performance.now();
  for (let i = 0; i < single; i++) {
    trail.record(request);
    await turn();
  }
  const singleUs = ((performance.now() - start - turnsMs) * 1000) / single;
  trail.close();

  start = performance.now();
  const verdict = verifyTrail(root);
  const verifyMs = performance.now() - start;
  console.table([
    { measure: "record(), writes batched (many per turn)", value: `${batchedUs.toFixed(1)} µs` },
    { measure: "record() and its own write (one per turn)", value: `${singleUs.toFixed(1)} µs` },
    { measure: `verifyTrail, per 100,000 records (${verdict.records} verified: ${verdict.ok})`, value: `${((verifyMs * 100_000) / verdict.records).toFixed(0)} ms` },
  ]);
}

main().finally(() => rmSync(root, { recursive: true, force: true }));
