// The KMS store's costs: the hot-path reads (from memory: no SQLite, no MAC), a write (one
// transaction: SQLite with synchronous FULL, two MACs, the head), and opening (every row and
// the head verified), as the store grows. The MAC here is node's HMAC, standing in for the fleet.
// Run: npx tsx bench/kms-store.bench.ts
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { KmsStore } from "../src/kms/store.js";
import type { GrantRecord, KeyRecord } from "../src/kms/types.js";

const mac = (data: Buffer): Buffer => createHmac("sha256", "bench-record-key").update(data).digest();
const ACCOUNT = "111122223333";
const keyId = (i: number): string => `${String(i).padStart(8, "0")}-0000-4000-8000-000000000000`;
const key = (i: number): KeyRecord => ({
  keyId: keyId(i), arn: `arn:aws:kms:us-east-1:${ACCOUNT}:key/${keyId(i)}`, accountId: ACCOUNT, keySpec: "SYMMETRIC_DEFAULT",
  keyUsage: "ENCRYPT_DECRYPT", origin: "AWS_KMS", customKeyStoreId: null, materialRef: `k${i}`, description: "", creationDateMs: 1_700_000_000_000 + i,
  state: "Enabled", deletionDateMs: null, pendingWindowInDays: null,
  policy: JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: "kms:*", Resource: "*" }] }),
  tags: [],
});
const grant = (i: number): GrantRecord => ({
  grantId: i.toString(16).padStart(64, "0"), keyId: keyId(i), keyArn: key(i).arn, accountId: ACCOUNT, name: null,
  granteePrincipal: "arn:aws:iam::444455556666:root", retiringPrincipal: null, operations: ["Decrypt"], constraints: null,
  issuingAccount: `arn:aws:iam::${ACCOUNT}:root`, creationDateMs: 1_700_000_000_000 + i, grantToken: `token-${i}`,
});
const perSecond = (count: number, fn: (i: number) => void): number => {
  const start = performance.now();
  for (let i = 0; i < count; i++) fn(i);
  return Math.round(count / ((performance.now() - start) / 1000));
};

const root = mkdtempSync(join(tmpdir(), "hsmsim-kms-store-bench-"));
try {
  const rows: Record<string, unknown>[] = [];
  for (const size of [100, 1000, 10_000]) {
    const path = join(root, `s${size}.db`);
    let store = KmsStore.open({ path, mac });
    store.transaction(() => {
      for (let i = 0; i < size; i++) {
        store.putKey(key(i));
        store.putGrant(grant(i));
      }
    });
    const writes = perSecond(200, (i) => store.putKey({ ...key(i), description: `changed ${i}` }));
    store.close();
    const start = performance.now();
    store = KmsStore.open({ path, mac });
    const openMs = performance.now() - start;
    const ids = Array.from({ length: 1000 }, (_, i) => keyId(i % size));
    const getKey = perSecond(500_000, (i) => store.getKey(ids[i % 1000]!));
    const listGrants = perSecond(500_000, (i) => store.listGrants(ids[i % 1000]!));
    const byToken = perSecond(500_000, (i) => store.grantByToken(`token-${i % size}`));
    store.close();
    rows.push({ "keys + grants": `${size} + ${size}`, "getKey/s": getKey, "listGrants/s": listGrants, "grantByToken/s": byToken,
      "putKey/s (durable)": writes, "open+verify ms": +openMs.toFixed(1) });
  }
  console.table(rows);
} finally {
  rmSync(root, { recursive: true, force: true });
}
