// The demo's sizing part: how many HSMs a SaaS provider's peak needs with one spare, answered by
// the queueing model, then checked by a discrete-event run of the real cluster and client code
// at that size, with one HSM killed at peak.
import { runDiscreteEvent } from "../sizing/des.js";
import { parseOperation } from "../sizing/operations.js";
import { profileFor } from "../sizing/profiles.js";
import { size } from "../sizing/size.js";
import type { Output } from "./format.js";

/** The README's worked example: the provider signs and encrypts with the customer's keys at peak. */
export const SAAS_PEAK = [
  { operation: "ecdsa-p256-sign", ratePerSec: 1500 },
  { operation: "aes-gcm-4k", ratePerSec: 8000 },
  { operation: "hmac-1k", ratePerSec: 3000 },
] as const;
const P99_TARGET_MS = 50;

const ms = (value: number | undefined) => (value === undefined ? "–" : value.toFixed(1));

export function runSizingDemo(out: Output): void {
  out.step("Size the cluster for a SaaS provider's peak, with one spare HSM (hsmsim size)");
  const answer = size({ ops: SAAS_PEAK, p99Ms: P99_TARGET_MS, spare: 1, type: "hsm2m.medium" });
  out.line(`${SAAS_PEAK.map((o) => `${o.operation} ${o.ratePerSec.toLocaleString("en-US")}/s`).join(", ")}; p99 ≤ ${P99_TARGET_MS} ms with 1 HSM down`);
  out.table(["cluster", "HSMs up", "utilisation", "p50 ms", "p99 ms"], [answer.allUp, answer.withSpareDown].map((state, i) => [
    i === 0 ? "all up" : "one down (sized for)", state.liveHsms, `${(state.utilisation * 100).toFixed(1)}%`, ms(state.latency?.p50Ms), ms(state.latency?.p99Ms),
  ]));
  out.line(`model: ${answer.hsmCount} hsm2m.medium HSMs, $${answer.cost.monthlyUsd.toLocaleString("en-US", { maximumFractionDigits: 0 })} a month; ` +
    "the AES-GCM and HMAC service times are estimates (no published figure)");

  // The same load on the real cluster and client code in virtual time, one HSM killed at peak.
  const profile = profileFor("hsm2m.medium");
  const load = SAAS_PEAK.map((o) => ({ ...parseOperation(o.operation), operation: o.operation, ratePerSec: o.ratePerSec }));
  const run = runDiscreteEvent({ profile, hsmCount: answer.hsmCount, load, seed: 1, durationUs: 1_000_000, warmUpUs: 200_000, windowUs: 100_000, killHsmAtUs: 500_000 });
  const after = run.timeline.filter((w) => w.startMs >= 700);
  const afterPerSec = after.reduce((s, w) => s + w.opsPerSec, 0) / Math.max(1, after.length);
  out.line(`discrete-event run (${answer.hsmCount} HSMs, seed 1, 1 s at peak, HSM ${run.killedHsm} killed at 0.5 s): ` +
    `${run.completed.toLocaleString("en-US")} operations, ${run.failed} failed; ${Math.round(afterPerSec).toLocaleString("en-US")} ops/s served after the kill; ` +
    `p99 ${ms(run.latency?.p99Ms)} ms, slowest ${ms(run.latency?.maxMs)} ms (calls caught on the killed HSM wait for the client's timeout, then repeat elsewhere)`);
  out.line("charts and a report: hsmsim size --op … --report sizing.html; the published table: npm run bench:sizing");
}
