// Request-rate quotas (a token bucket on the injected clock): KMS's per-account quota for
// cryptographic operations and the 1,800 requests per second of each CloudHSM key store.
// [helper: cks]
export class RateLimiter {
  /** `ratePerSecond` tokens a second; a bucket of `burst` (default one second's worth). */
  constructor(ratePerSecond: number, nowMs: () => number, burst?: number) {
    void ratePerSecond, nowMs, burst;
    throw new Error("not built yet");
  }
  /** Takes one token if there is one. */
  tryTake(): boolean { throw new Error("not built yet"); }
}
