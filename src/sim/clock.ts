// A virtual clock and the event queue it drives: simulated time moves only when the
// simulator runs the next event, so a run is as fast as the CPU and exactly repeatable.
// Events at the same instant run in the order they were scheduled.
import { ObjectFreeze, freezeClass } from "../primordials.js";

import type { Clock } from "../runtime/clock.js";

export type { Clock };

interface Timer {
  atUs: number;
  seq: number;
  fn: () => void;
}

export class VirtualClock implements Clock {
  private now: number;
  private seq = 0;
  private readonly heap: Timer[] = [];
  private readonly cancelled = new Set<number>();

  constructor(startUs = 0) {
    this.now = startUs;
  }

  nowUs(): number {
    return this.now;
  }

  schedule(delayUs: number, fn: () => void): number {
    if (!(delayUs >= 0) || !Number.isFinite(delayUs)) throw new RangeError("delayUs must be a finite, non-negative number");
    const timer = { atUs: this.now + Math.round(delayUs), seq: ++this.seq, fn };
    this.push(timer);
    return timer.seq;
  }

  cancel(id: number): void {
    this.cancelled.add(id);
  }

  /** Events waiting (cancelled ones included until they come up). */
  get pending(): number {
    return this.heap.length;
  }

  /** Runs the next event; false when there is none. */
  step(): boolean {
    while (this.heap.length > 0) {
      const timer = this.pop();
      if (this.cancelled.delete(timer.seq)) continue;
      this.now = timer.atUs;
      timer.fn();
      return true;
    }
    return false;
  }

  /** Runs events until simulated time would pass `untilUs` (then sets the clock to it) or `maxEvents` ran. */
  runUntil(untilUs: number, maxEvents = Number.POSITIVE_INFINITY): number {
    let ran = 0;
    while (ran < maxEvents && this.heap.length > 0 && this.heap[0].atUs <= untilUs) {
      if (this.step()) ran++;
    }
    if (ran < maxEvents && this.now < untilUs) this.now = untilUs;
    return ran;
  }

  /** Runs events until none is left or `maxEvents` ran. */
  runAll(maxEvents = 10_000_000): number {
    let ran = 0;
    while (ran < maxEvents && this.step()) ran++;
    return ran;
  }

  // A binary heap ordered by (atUs, seq).
  private before(x: Timer, y: Timer): boolean {
    return x.atUs < y.atUs || (x.atUs === y.atUs && x.seq < y.seq);
  }
  private push(timer: Timer): void {
    const h = this.heap;
    h.push(timer);
    for (let i = h.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (!this.before(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }
  private pop(): Timer {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < h.length && this.before(h[l], h[m])) m = l;
        if (r < h.length && this.before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(VirtualClock);
/**
 * An application's view of the virtual clock: it reads the time, schedules and cancels its own
 * timers only (not an HSM's gossip or the control plane's health check), and steps the
 * simulation while a synchronous call waits. The clock itself is reached only through closures.
 */
export function clockView(clock: VirtualClock): Clock & { step(): boolean } {
  const own = new Set<number>();
  return ObjectFreeze({
    nowUs: () => clock.nowUs(),
    schedule(delayUs: number, fn: () => void): number {
      const id = clock.schedule(delayUs, () => {
        own.delete(id);
        try {
          fn();
        } catch (error) {
          // An application's timer runs inside whoever steps the shared clock: its failure is its own,
          // never thrown into another application's call or the operator's run.
          process.emitWarning(`an application's timer threw: ${String(error)}`, "HsmsimTimerWarning");
        }
      });
      own.add(id);
      return id;
    },
    cancel(id: number): void {
      if (own.delete(id)) clock.cancel(id);
    },
    step: () => clock.step(),
  });
}
