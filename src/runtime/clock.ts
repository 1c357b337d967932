// What the cluster and the client know of time: read it, and run something later. The
// simulator implements it in virtual time (src/sim/clock.ts), src/net/ in real time.

export interface Clock {
  /** Microseconds since the clock's epoch. */
  nowUs(): number;
  /** Runs `fn` after `delayUs`; returns an id for cancel(). */
  schedule(delayUs: number, fn: () => void): number;
  cancel(id: number): void;
}
