// A control variate for the discrete-event runs: the same engine requests (their arrival times
// at the HSMs and the service times they drew) replayed through one ideal pooled queue, M/M/(N·c)
// first come first served — exactly the queueing model's "pooled" assumption. Its latency's
// expectation is the model's, and it shares the run's randomness, so (run − reference) keeps
// what the real cluster and client add or remove (the spreading, the control path, retries)
// while the draws' luck cancels: at 85% load a run of 8 000 operations reads its mean latency
// ±8% by chance, the difference far closer.
import { type LatencySummary, summarizeLatency } from "./load.js";

export interface EngineRequest {
  /** When the request reached an HSM's queue (µs, virtual). */
  arrivedUs: number;
  /** The engine time it drew (µs). */
  serviceUs: number;
}

/** Response times (µs) of `requests` (sorted by arrival) on `servers` pooled engines, FCFS. */
export function pooledResponsesUs(requests: readonly EngineRequest[], servers: number): number[] {
  // Engines' free times in a binary min-heap.
  const free = new Float64Array(servers).fill(Number.NEGATIVE_INFINITY);
  const responses: number[] = [];
  for (const { arrivedUs, serviceUs } of requests) {
    const startUs = Math.max(arrivedUs, free[0]);
    const doneUs = startUs + serviceUs;
    responses.push(doneUs - arrivedUs);
    // Replace the root (the earliest-free engine) with its new free time, sift down.
    let i = 0;
    free[0] = doneUs;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < servers && free[l] < free[m]) m = l;
      if (r < servers && free[r] < free[m]) m = r;
      if (m === i) break;
      [free[i], free[m]] = [free[m], free[i]];
      i = m;
    }
  }
  return responses;
}

/** Latency of the reference queue for the requests that arrived in [fromUs, toUs), plus `networkUs` each. */
export function referenceLatency(requests: readonly EngineRequest[], servers: number, fromUs: number, toUs: number, networkUs: number): LatencySummary | null {
  const responses = pooledResponsesUs(requests, servers);
  const samples: number[] = [];
  requests.forEach((r, i) => {
    if (r.arrivedUs >= fromUs && r.arrivedUs < toUs) samples.push(responses[i] + networkUs);
  });
  return summarizeLatency(samples);
}
