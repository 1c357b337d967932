// `hsmsim audit --kms`: the trail of a cluster folder, filtered and verified, and for one request
// the HSM audit entries by kmsuser it caused, read from every HSM's folder.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { main } from "../../src/cli/main.js";
import { type HsmEntriesOfRequest, runKmsAudit } from "../../src/cli/kms-audit.js";
import { KmsTrail, TRAIL_FILE } from "../../src/kms/trail.js";
import { ClusterFolder } from "../../src/net/cluster-folder.js";
import { FAST, H, cuSession, tokenAesKey } from "../hsm/fixture.js";
import { KEY_ARN, ROOT_B, fakeTrailFleet, finished } from "../kms/trail-fixture.js";

async function cli(...args: string[]) {
  let stdout = "", stderr = "";
  const code = await main(args, { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) }, env: process.env });
  return { code, stdout, stderr };
}
const nextMs = async (after: number) => { while (Date.now() <= after) await new Promise((r) => setTimeout(r, 1)); };

const HSM_IDS = ["hsm-00000000000000a1", "hsm-00000000000000a2"];
let dir: string;
let keyId: number;
const window = { startMs: 0, endMs: 0 };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "kms-audit-"));
  const folder = new ClusterFolder(dir);
  folder.makeTree();
  const hsms = HSM_IDS.map((_, i) => {
    const hsm = H.Hsm.create(folder.abs(folder.hsmFolder(i + 1)), FAST);
    hsm.changePassword(hsm.login("admin", "password"), "admin", "co-password-1");
    const co = hsm.login("admin", "co-password-1");
    hsm.createUser(co, "kmsuser", "CU", "kmsuser-pass");
    hsm.createUser(co, "alice", "CU", "alice-password");
    return hsm;
  });
  await nextMs(Date.now());
  // The request: kmsuser logs in on both HSMs and creates the backing key on the first; alice works meanwhile.
  window.startMs = Date.now();
  const k = cuSession(hsms[0]!, "kmsuser", "kmsuser-pass");
  keyId = hsms[0]!.keyIdOf(tokenAesKey(k.pkcs11, k.session, "arn:aws:kms:us-east-1:111122223333:key/x"));
  cuSession(hsms[1]!, "kmsuser", "kmsuser-pass");
  const a = cuSession(hsms[0]!, "alice", "alice-password");
  tokenAesKey(a.pkcs11, a.session, "alice's");
  window.endMs = Date.now();
  await nextMs(window.endMs);
  tokenAesKey(k.pkcs11, k.session, "a later request's"); // outside the window
  for (const h of hsms) h.close();
  folder.write({
    version: 1, clusterId: "cluster-0123456789ab", lineageId: "lineage-0123456789ab", state: "ACTIVE", hsmType: "hsm2m.medium",
    zones: ["az-a", "az-b"], nextOrigin: 3, baseAddress: "127.0.0.2", port: 2223, mtls: false,
    hsms: HSM_IDS.map((hsmId, i) => ({ hsmId, origin: i + 1, address: `127.0.0.${i + 2}:2223`, availabilityZone: i ? "az-b" : "az-a", state: "ACTIVE", folder: folder.hsmFolder(i + 1) })),
  });
  mkdirSync(join(dir, "kms"), { mode: 0o700 });
  const trail = KmsTrail.open({ path: join(dir, "kms", TRAIL_FILE), fleet: fakeTrailFleet(), region: "us-east-1", nowMs: Date.now, newEventId: () => "e" });
  trail.record(finished("ListKeys", {}, { startMs: window.startMs - 50 }));
  const create = finished("CreateKey", { Origin: "AWS_CLOUDHSM", CustomKeyStoreId: "cks-1234567890abcdef0" }, {
    notes: { resources: [{ ARN: KEY_ARN, accountId: "111122223333", type: "AWS::KMS::Key" }], additionalEventData: { customKeyStoreId: "cks-1234567890abcdef0", backingKeyId: String(keyId) } },
  });
  trail.record({ ...create, requestId: "11111111-2222-4333-8444-555555555555", startMs: window.startMs, endMs: window.endMs });
  trail.record(finished("Decrypt", { KeyId: KEY_ARN }, { caller: ROOT_B }));
  trail.close();
});
afterAll(() => void 0);

describe("hsmsim audit --kms", () => {
  it("lists the records and verifies the trail", async () => {
    const r = await cli("audit", "--kms", dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ListKeys/);
    expect(r.stdout).toMatch(/CreateKey .*1234abcd-12ab-34cd-56ef-1234567890ab/);
    expect(r.stdout).toMatch(/trail chain verified: 3 records/);
    const byRoot = await cli("audit", "--kms", dir, "--principal", "444455556666", "--json");
    const parsed = JSON.parse(byRoot.stdout) as { records: { eventName: string }[]; verified: { ok: boolean } };
    expect(parsed.records.map((x) => x.eventName)).toEqual(["Decrypt"]);
    expect(parsed.verified.ok).toBe(true);
    const byOp = JSON.parse((await cli("audit", "--kms", dir, "--op", "createkey", "--json")).stdout) as { records: unknown[] };
    expect(byOp.records).toHaveLength(1);
    const byKey = JSON.parse((await cli("audit", "--kms", dir, "--key", "1234abcd-12ab-34cd-56ef-1234567890ab", "--json")).stdout) as { records: unknown[] };
    expect(byKey.records).toHaveLength(2);
  });

  it("shows one request with the kmsuser entries it caused on each HSM, and nothing else's", () => {
    let out = "";
    const code = runKmsAudit(dir, { json: true, request: "11111111-2222-4333-8444-555555555555" }, (t) => (out += t));
    expect(code).toBe(0);
    const { records, hsm } = JSON.parse(out) as { records: { eventName: string }[]; hsm: HsmEntriesOfRequest[] };
    expect(records.map((r) => r.eventName)).toEqual(["CreateKey"]);
    expect(hsm.map((h) => h.hsmId)).toEqual(HSM_IDS);
    expect(hsm.every((h) => h.verified?.ok)).toBe(true);
    const first = hsm[0]!.entries.map((e) => [e.operation, e.actor, e.keys]);
    expect(first).toEqual([["LOGIN", "kmsuser", []], [expect.stringMatching(/GENERATE|CREATE/), "kmsuser", [keyId]]]);
    expect(hsm[1]!.entries.map((e) => [e.operation, e.actor])).toEqual([["LOGIN", "kmsuser"]]);
  });

  it("prints both parts as text", async () => {
    const r = await cli("audit", "--kms", dir, "--request", "11111111-2222-4333-8444-555555555555");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("KMS request 11111111-2222-4333-8444-555555555555");
    expect(r.stdout).toContain('"backingKeyId"');
    expect(r.stdout).toMatch(/HSM audit entries by kmsuser it caused/);
    expect(r.stdout).toMatch(new RegExp(`${HSM_IDS[0]} \\(its audit chain verifies\\)`));
  });

  it("refuses what is not there, and fails on an edited trail", async () => {
    expect((await cli("audit", "--kms", dir, "--request", "nope")).code).toBe(2);
    expect((await cli("audit", "--request", "x", dir)).code).toBe(2); // --request needs --kms
    const empty = mkdtempSync(join(tmpdir(), "kms-audit-none-"));
    const none = await cli("audit", "--kms", empty);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no KMS trail/);
    const path = join(dir, "kms", TRAIL_FILE);
    const original = readFileSync(path, "utf8");
    try {
      writeFileSync(path, original.replace('"eventName":"ListKeys"', '"eventName":"ListAliases"'));
      const r = await cli("audit", "--kms", dir);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/TRAIL CHAIN BROKEN at record 2/);
    } finally {
      writeFileSync(path, original);
    }
  });
});

describe("a trail re-signed by an editor", () => {
  it("verifies with the folder's key but not with the key kept elsewhere (--trail-key)", async () => {
    const dir2 = mkdtempSync(join(tmpdir(), "kms-audit-resigned-"));
    mkdirSync(join(dir2, "kms"));
    const honest = fakeTrailFleet();
    const kept = join(dir2, "kept-trail-public.pem");
    writeFileSync(kept, honest.trailPublicKeyPem());
    const mallory = fakeTrailFleet(); // the editor rewrote the trail and its digests, and put their own public key in the folder
    const trail = KmsTrail.open({ path: join(dir2, "kms", TRAIL_FILE), fleet: mallory, region: "us-east-1", nowMs: Date.now, newEventId: () => "e" });
    trail.record(finished("ListKeys", {}));
    trail.close();
    expect((await cli("audit", "--kms", dir2)).code).toBe(0);
    const pinned = await cli("audit", "--kms", dir2, "--trail-key", kept);
    expect(pinned.code).toBe(1);
    expect(pinned.stdout).toMatch(/DIGEST 1 FAILS: the signature does not verify/);
    expect((await cli("audit", "--kms", dir2, "--trail-key", join(dir2, "none.pem"))).code).toBe(2);
  });
});

describe("hostile strings in the trail", () => {
  it("reach the terminal without control characters", async () => {
    const hostile = mkdtempSync(join(tmpdir(), "kms-audit-hostile-"));
    mkdirSync(join(hostile, "kms"));
    const trail = KmsTrail.open({ path: join(hostile, "kms", TRAIL_FILE), fleet: fakeTrailFleet(), region: "us-east-1", nowMs: Date.now, newEventId: () => "e" });
    trail.record(finished("DescribeKey", { KeyId: "alias/\u001b[2J\u001b]0;pwned\u0007x" }));
    trail.close();
    const r = await cli("audit", "--kms", hostile);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/); // eslint-disable-line no-control-regex
    expect(r.stdout).toContain("alias/?[2J?]0;pwned?x");
  });
});
