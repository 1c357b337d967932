// Request-rate quotas (a token bucket on the injected clock): KMS's per-account quota for
// cryptographic operations and the 1,800 requests per second of each CloudHSM key store.
import { freezeClass } from "../primordials.js";

export class RateLimiter {
  readonly #ratePerMs: number;
  readonly #burst: number;
  readonly #nowMs: () => number;
  #tokens: number;
  #lastMs: number;

  /** `ratePerSecond` tokens a second; a bucket of `burst` (default one second's worth). */
  constructor(ratePerSecond: number, nowMs: () => number, burst?: number) {
    if (!(Number.isFinite(ratePerSecond) && ratePerSecond > 0)) throw new RangeError("ratePerSecond must be a positive number");
    const size = burst ?? ratePerSecond;
    if (!(Number.isFinite(size) && size >= 1)) throw new RangeError("burst must be a number ≥ 1");
    this.#ratePerMs = ratePerSecond / 1000;
    this.#burst = size;
    this.#nowMs = nowMs;
    this.#tokens = size;
    this.#lastMs = nowMs();
  }

  /** Takes one token if there is one. */
  tryTake(): boolean {
    const now = this.#nowMs();
    // A clock that steps back refills nothing (and does not let the next step forward count twice).
    if (now > this.#lastMs) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#lastMs) * this.#ratePerMs);
      this.#lastMs = now;
    }
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

freezeClass(RateLimiter);
