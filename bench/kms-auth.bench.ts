// What authorization costs a KMS request: checking a policy (first sight of its text, and the
// cached parse every later request gets), evaluating the default policy and a 60-statement
// one with encryption-context conditions, a grant decision, and reading a grant token.
// Run: npx tsx bench/kms-auth.bench.ts
import { createHmac } from "node:crypto";

import { Bench } from "tinybench";

import { authorize, grantAllows, makeGrantToken, readGrantToken } from "../src/kms/grants.js";
import { defaultKeyPolicy, evaluatePolicy, parsePolicy } from "../src/kms/policy.js";
import type { Caller, GrantRecord, KeyRecord } from "../src/kms/types.js";

const OWNER = "111122223333";
const caller = (accountId: string, user: string): Caller => ({ accountId, arn: `arn:aws:iam::${accountId}:user/${user}`, accessKeyId: "AKIA", userName: user, sourceIp: "127.0.0.1", userAgent: "bench" });
const admin = caller(OWNER, "admin");
const saas = caller("444455556666", "saas");
const key: KeyRecord = {
  keyId: "1234abcd-12ab-34cd-56ef-1234567890ab", arn: `arn:aws:kms:us-east-1:${OWNER}:key/1234abcd-12ab-34cd-56ef-1234567890ab`, accountId: OWNER,
  keySpec: "SYMMETRIC_DEFAULT", keyUsage: "ENCRYPT_DECRYPT", origin: "AWS_KMS", customKeyStoreId: null, materialRef: "x", description: "",
  creationDateMs: 0, state: "Enabled", deletionDateMs: null, pendingWindowInDays: null, policy: "", tags: [],
};
const defaultText = defaultKeyPolicy(OWNER);
const bigText = JSON.stringify({
  Version: "2012-10-17",
  Statement: Array.from({ length: 60 }, (_, i) => ({
    Sid: `tenant${i}`, Effect: "Allow", Principal: { AWS: `arn:aws:iam::4444555566${String(i).padStart(2, "0")}:root` },
    Action: ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"], Resource: "*", Condition: { StringEquals: { "kms:EncryptionContext:tenant": `t${i}` } },
  })),
});
const defaultPolicy = parsePolicy(defaultText);
const bigPolicy = parsePolicy(bigText);
const mac = (data: Buffer) => createHmac("sha256", "bench").update(data).digest();
const grant: GrantRecord = {
  grantId: "ab".repeat(32), keyId: key.keyId, keyArn: key.arn, accountId: OWNER, name: null, granteePrincipal: saas.arn, retiringPrincipal: null,
  operations: ["Decrypt", "Encrypt"], constraints: { EncryptionContextSubset: { tenant: "acme" } }, issuingAccount: `arn:aws:iam::${OWNER}:root`,
  creationDateMs: 0, grantToken: "",
};
const token = makeGrantToken(grant.grantId, mac);
let fresh = 0;

const bench = new Bench({ time: 500 });
bench
  .add("parsePolicy, first sight of the default policy", () => void parsePolicy(defaultText + " ".repeat(1 + (fresh++ % 4096))))
  .add("parsePolicy, cached", () => void parsePolicy(defaultText))
  .add("authorize: default policy, own account", () => authorize(defaultPolicy, [], { caller: admin, action: "kms:Decrypt", key, encryptionContext: { tenant: "acme" } }))
  .add("evaluatePolicy: 60 statements, last one matches", () => void evaluatePolicy(bigPolicy, { caller: caller("444455556659", "u"), action: "kms:Decrypt", key, encryptionContext: { tenant: "t59" } }))
  .add("grantAllows: one constrained grant", () => void grantAllows([grant], { caller: saas, action: "kms:Decrypt", key, encryptionContext: { tenant: "acme" } }))
  .add("readGrantToken", () => void readGrantToken(token, mac));
await bench.run();
console.table(bench.tasks.map((task) => ({ task: task.name, "µs/op": task.result && "latency" in task.result ? (task.result.latency.mean * 1000).toFixed(2) : "?" })));
