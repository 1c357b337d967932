// The KMS data folder's files as an editor may leave them (not a regular file: refused with
// KMS's error, and said plainly by `hsmsim audit --kms`), and what audit --kms prints of the
// strings a caller chose (controls escaped, the JSON still the caller's strings).
// (A planted FIFO, which would block the test's own process on regression, is attacked from a
// child process in test/security/kms-redteam2.test.ts.)
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

import { main } from "../../src/cli/main.js";
import { runKmsAudit } from "../../src/cli/kms-audit.js";
import { readCredentials } from "../../src/kms/credentials-file.js";
import { KmsError } from "../../src/kms/errors.js";
import { escapeControls } from "../../src/kms/printable.js";
import { KmsTrail, TRAIL_DIGESTS_FILE, TRAIL_FILE, TRAIL_PUBLIC_KEY_FILE, verifyTrail } from "../../src/kms/trail.js";
import { fakeTrailFleet, finished } from "./trail-fixture.js";

async function cli(...args: string[]) {
  let stdout = "", stderr = "";
  const code = await main(args, { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) }, env: process.env });
  return { code, stdout, stderr };
}

/** A cluster folder whose kms/ holds a trail of `inputs` (one DescribeKey each), closed (so signed). */
function clusterWithTrail(inputs: Record<string, unknown>[], fleet = fakeTrailFleet()): string {
  const dir = mkdtempSync(join(tmpdir(), "kms-data-file-"));
  mkdirSync(join(dir, "kms"));
  const trail = KmsTrail.open({ path: join(dir, "kms", TRAIL_FILE), fleet, region: "us-east-1", nowMs: Date.now, newEventId: () => "e" });
  for (const input of inputs) trail.record(finished("DescribeKey", input));
  trail.close();
  return dir;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe("a data-folder file that is not a regular file", () => {
  it("credentials.json as a directory: ValidationException naming it", () => {
    const dir = mkdtempSync(join(tmpdir(), "kms-data-file-"));
    mkdirSync(join(dir, "credentials.json"), { mode: 0o700 });
    const e = thrown(() => readCredentials(join(dir, "credentials.json")));
    expect(e).toBeInstanceOf(KmsError);
    expect([(e as KmsError).code, (e as KmsError).message]).toEqual(["ValidationException", `${join(dir, "credentials.json")} is a directory, not a regular file: refused`]);
  });

  it("trail-digests.jsonl or trail-public.pem as a directory: the trail refuses to open, the verifier too", () => {
    const fleet = fakeTrailFleet();
    for (const name of [TRAIL_DIGESTS_FILE, TRAIL_PUBLIC_KEY_FILE]) {
      const dir = clusterWithTrail([{ KeyId: "k" }], fleet);
      const kmsDir = join(dir, "kms");
      rmSync(join(kmsDir, name));
      mkdirSync(join(kmsDir, name));
      const opening = thrown(() => KmsTrail.open({ path: join(kmsDir, TRAIL_FILE), fleet, region: "us-east-1", nowMs: Date.now, newEventId: () => "e" }));
      expect([(opening as KmsError).code, (opening as KmsError).message]).toEqual(["KMSInternalException", expect.stringMatching(/( is a directory, not a regular file: refused| cannot be opened \(EISDIR\): it must be a regular file)$/)]);
      expect((thrown(() => verifyTrail(kmsDir)) as KmsError).code).toBe("KMSInternalException");
    }
  });

  it("hsmsim audit --kms says so plainly (exit 2), for a symlink in the trail's place too", async () => {
    const dir = clusterWithTrail([{ KeyId: "k" }]);
    rmSync(join(dir, "kms", TRAIL_DIGESTS_FILE));
    mkdirSync(join(dir, "kms", TRAIL_DIGESTS_FILE));
    const digests = await cli("audit", "--kms", dir);
    expect([digests.code, digests.stderr]).toEqual([2, `hsmsim audit --kms: ${join(dir, "kms", TRAIL_DIGESTS_FILE)} is a directory, not a regular file: refused\n`]);

    const other = clusterWithTrail([{ KeyId: "k" }]);
    rmSync(join(other, "kms", TRAIL_FILE));
    writeFileSync(join(other, "victim.jsonl"), "");
    symlinkSync(join(other, "victim.jsonl"), join(other, "kms", TRAIL_FILE));
    const linked = await cli("audit", "--kms", other);
    expect(linked.code).toBe(2);
    expect(linked.stderr).toMatch(/trail\.jsonl cannot be opened \(ELOOP\)/);
  });
});

describe("what audit --kms prints of a caller's strings", () => {
  const HOSTILE = "alias/\u009b2J\u202eevil\u2066\u200f\u061c\u007f\u2028x";

  it("--json escapes every control and bidi character, and still parses back to the caller's exact string", () => {
    const dir = clusterWithTrail([{ KeyId: HOSTILE, EncryptionContext: { [HOSTILE]: HOSTILE } }]);
    const out: string[] = [];
    expect(runKmsAudit(dir, { json: true }, (t) => out.push(t))).toBe(0);
    const text = out.join("");
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/); // eslint-disable-line no-control-regex
    expect(text).toContain("alias/\\u009b2J\\u202eevil\\u2066\\u200f\\u061c\\u007f\\u2028x");
    const parsed = JSON.parse(text) as { records: { requestParameters: { keyId: string; encryptionContext: Record<string, string> } }[] };
    expect(parsed.records[0]!.requestParameters).toEqual({ keyId: HOSTILE, encryptionContext: { [HOSTILE]: HOSTILE } });
  });

  it("escapeControls leaves ordinary text, non-Latin scripts and emoji alone", () => {
    const ordinary = "alias/prod-key_1 · 東京 · كلمة · 🔑 \\u009b";
    expect(escapeControls(ordinary)).toBe(ordinary);
    expect(escapeControls("a\nb\u0000c\u009fd\u202ae")).toBe("a\\u000ab\\u0000c\\u009fd\\u202ae");
  });
});
