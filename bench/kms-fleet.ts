// Quick loop: µs per op of the fleet's symmetric calls (1 KiB, 60-byte AAD) on a memory: token.
// Run: npx tsx bench/kms-fleet.ts
import { Fleet } from "../src/kms/fleet.js";
const f = await Fleet.open({ target: "memory:" });
await f.createKey("k", "SYMMETRIC_DEFAULT");
const pt = Buffer.alloc(1024, 7);
const aad = Buffer.alloc(60, 1);
function time(name: string, n: number, fn: () => void) {
  for (let i = 0; i < 2000; i++) fn();
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) { const t = performance.now(); for (let i = 0; i < n; i++) fn(); runs.push((performance.now() - t) * 1000 / n); }
  console.log(name, "µs/op (median of 5 runs of", n, "):", runs.sort((a, b) => a - b)[2].toFixed(2));
}
time("fleet.encrypt 1KiB", 20000, () => f.encrypt("k", pt, aad));
const e = f.encrypt("k", pt, aad);
time("fleet.decrypt 1KiB", 20000, () => f.decrypt("k", e.iv, e.ciphertext, aad));
f.close();
