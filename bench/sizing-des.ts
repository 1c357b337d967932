// The discrete-event agreement tables, longer than the tests run them: AWS's published table
// against the model and the discrete-event saturation, then model versus discrete-event latency
// across loads and HSM counts at two network round trips (raw, and with the control variate),
// and the simulator's speed. Run: npx tsx bench/sizing-des.ts [--ops N] [--workers W] [--seed S]
import { cpus } from "node:os";

import { PUBLISHED, profileFor } from "../src/sizing/profiles.js";
import { parseOperation } from "../src/sizing/operations.js";
import { modelCluster } from "../src/sizing/queueing.js";
import { runDiscreteEvent } from "../src/sizing/des.js";
import { type AgreementTask, runAgreementGrid, runSaturations } from "../src/sizing/agreement.js";
import { numberOption } from "./peers.js";

const ops = numberOption("--ops", 6000);
const workers = numberOption("--workers", cpus().length);
const seed = numberOption("--seed", 7);
const pct = (x: number) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%`;

const started = performance.now();
const saturations = await runSaturations(PUBLISHED.map((p) => ({ type: p.type, opClass: p.operation, hsmCount: p.hsmCount, operations: p.operation === "rsa-2048-sign" ? 1500 : 3000, seed })), { workers });
console.log("\nPublished table (ops/s): published | model | discrete-event (saturated, stratified draws)");
for (const [i, p] of PUBLISHED.entries()) {
  const r = saturations[i];
  console.log(`${p.type.padEnd(13)} ${p.operation.padEnd(16)} ×${p.hsmCount}  ${String(p.opsPerSec).padStart(5)} | ${r.modelPerSec.toFixed(0).padStart(5)} (${pct(r.modelPerSec / p.opsPerSec - 1)}) | ${r.desPerSec.toFixed(0).padStart(5)} (${pct(r.desPerSec / p.opsPerSec - 1)}; model ${pct(r.desPerSec / r.modelPerSec - 1)})`);
}

let simulatedOps = 0;
let wallMs = 0;
for (const r of saturations) {
  simulatedOps += r.completed;
  wallMs += r.wallMs;
}
for (const latencyUs of [50, 250]) {
  const tasks: AgreementTask[] = [];
  for (const hsmCount of [2, 3, 6]) for (const utilisation of [0.3, 0.6, 0.85]) {
    tasks.push({ type: "hsm2m.medium", operation: "ecdsa-p256-sign", opClass: "ecdsa-p256-sign", inputBytes: 32, hsmCount, utilisation, operations: ops, networkLatencyUs: latencyUs, seed });
  }
  const rows = await runAgreementGrid(tasks, { workers });
  console.log(`\nModel vs discrete-event, hsm2m.medium ecdsa-p256-sign, ${2 * latencyUs} µs round trip, ${ops} operations a point (DES ÷ model − 1; control-variate estimate, raw in brackets)`);
  console.log("HSMs  load  throughput  mean              p50               p95               p99");
  for (const r of rows) {
    const cell = (k: "meanMs" | "p50Ms" | "p95Ms" | "p99Ms") => `${pct(r.estimateError[k]).padStart(6)} (${pct(r.rawError[k])})`.padEnd(18);
    console.log(`${String(r.task.hsmCount).padStart(4)}  ${String(r.task.utilisation * 100).padStart(3)}%  ${pct(r.throughputError).padStart(10)}  ${cell("meanMs")}${cell("p50Ms")}${cell("p95Ms")}${cell("p99Ms")}${r.failed ? ` failed ${r.failed}` : ""}`);
    simulatedOps += r.completed;
    wallMs += r.wallMs;
  }
}
// A mix: the model prices its wait as M/M/c with the mix's mean service time, but a mix of
// exponentials with different means is more variable than one exponential (M/G/c): the
// reference queue on the run's draws shows how much of the gap is that, and how much the client.
{
  const profile = profileFor("hsm2m.medium");
  const mix = ["ecdsa-p256-sign", "aes-gcm-4k", "hmac-1k", "ecdsa-p256-verify", "rsa-2048-verify"].map((n) => {
    const o = parseOperation(n);
    return { operation: o.name, opClass: o.opClass, inputBytes: o.inputBytes, ratePerSec: 1 };
  });
  const capacity = modelCluster({ profile, hsmCount: 3, load: mix }).capacityPerSec;
  console.log(`\nA mix (${mix.map((m) => m.operation).join(", ")}, equal rates), 3 HSMs, 100 µs round trip, ${ops} operations: DES ÷ model − 1 [reference ÷ model − 1: the model's mix approximation; DES ÷ reference − 1: the client]`);
  for (const u of [0.3, 0.6, 0.85]) {
    const load = mix.map((m) => ({ ...m, ratePerSec: (capacity * u) / mix.length }));
    const r = runDiscreteEvent({ profile, hsmCount: 3, load, seed, durationUs: Math.round((ops / (capacity * u)) * 1e6), networkLatencyUs: 50, sampling: "independent" });
    const m = modelCluster({ profile, hsmCount: 3, load, networkRttUs: 100 }).latency!;
    const cells = (["meanMs", "p50Ms", "p95Ms", "p99Ms"] as const).map((k) => `${k.replace("Ms", "")} ${pct(r.latency![k] / m[k] - 1)} [${pct(r.reference![k] / m[k] - 1)}; ${pct(r.latency![k] / r.reference![k] - 1)}]`);
    console.log(`  ${String(u * 100).padStart(3)}%  throughput ${pct(r.throughputPerSec / (capacity * u) - 1)}  ${cells.join("  ")}${r.failed ? ` failed ${r.failed}` : ""}`);
    simulatedOps += r.completed;
    wallMs += r.wallMs;
  }
}
console.log(`\nSpeed: ${simulatedOps} simulated operations (2 requests each) in ${(wallMs / 1000).toFixed(1)} s of run time summed over runs: ${(simulatedOps / (wallMs / 1000)).toFixed(0)} ops per wall second per run (setup included); ${((performance.now() - started) / 1000).toFixed(1)} s elapsed on ${workers} workers.`);
