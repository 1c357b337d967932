// The cost of persistence on the file: target: a token key created (sealed and fsynced before
// C_GenerateKey returns) against memory:, as the token grows; and loading a folder.
// Run: npx tsx bench/file-token.bench.ts
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import * as P from "../src/pkcs11/index.js";

const template = (i: number) => [{ type: P.CKA_TOKEN, value: true }, { type: P.CKA_LABEL, value: `k${i}` }, { type: P.CKA_VALUE_LEN, value: 32 }];

function createRate(target: string, already: number, count: number): { opsPerSecond: number; pkcs11: P.PKCS11 } {
  const pkcs11 = new P.PKCS11(target);
  pkcs11.C_Initialize();
  const { session } = P.openUserSession(pkcs11, { soPin: "so-pin-1", userPin: "user-pin-1" });
  for (let i = 0; i < already; i++) pkcs11.C_GenerateKey(session, { mechanism: P.CKM_AES_KEY_GEN }, template(i));
  const start = performance.now();
  for (let i = 0; i < count; i++) pkcs11.C_GenerateKey(session, { mechanism: P.CKM_AES_KEY_GEN }, template(already + i));
  return { opsPerSecond: Math.round(count / ((performance.now() - start) / 1000)), pkcs11 };
}

const root = mkdtempSync(join(tmpdir(), "hsmsim-file-bench-"));
try {
  const rows: Record<string, unknown>[] = [];
  for (const already of [0, 100, 1000]) {
    const memory = createRate("memory:", already, 200);
    memory.pkcs11.close();
    const folder = join(root, `t${already}`);
    const file = createRate(`file:${folder}`, already, 200);
    file.pkcs11.close();
    const start = performance.now();
    const loaded = new P.PKCS11(`file:${folder}`);
    const loadMs = performance.now() - start;
    loaded.close();
    rows.push({ "token keys before": already, "memory: creates/s": memory.opsPerSecond, "file: creates/s": file.opsPerSecond, "ratio": +(file.opsPerSecond / memory.opsPerSecond).toFixed(4), "load ms (keys after)": `${loadMs.toFixed(1)} (${already + 200})` });
  }
  console.table(rows);
} finally {
  rmSync(root, { recursive: true, force: true });
}
