// The Clock of the real-time cluster and client: microseconds from a monotonic source (the
// process's time origin plus performance.now(), so the Unix epoch by default, never going back
// when the wall clock is set), and timers on setTimeout.
import { freezeClass } from "../primordials.js";
import type { Clock } from "../runtime/clock.js";

/** setTimeout's largest delay (about 24.8 days); a longer one is waited in steps. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export interface RealClockOptions {
  /** Subtracted from the Unix-epoch microseconds (default 0): nowUs() counts from here. */
  originUs?: number;
  /**
   * Whether the clock's timers let the process exit (default true: an application's heartbeat
   * must not keep it alive; an HSM process is kept alive by its listening socket).
   */
  unref?: boolean;
}

export class RealClock implements Clock {
  private readonly originUs: number;
  private readonly unref: boolean;
  private nextId = 1;
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private readonly immediates = new Map<number, NodeJS.Immediate>();

  constructor(options: RealClockOptions = {}) {
    this.originUs = options.originUs ?? 0;
    this.unref = options.unref ?? true;
  }

  nowUs(): number {
    return Math.round((performance.timeOrigin + performance.now()) * 1000) - this.originUs;
  }

  schedule(delayUs: number, fn: () => void): number {
    if (!(delayUs >= 0) || !Number.isFinite(delayUs)) throw new RangeError("delayUs must be a finite, non-negative number");
    const id = this.nextId++;
    if (delayUs === 0) {
      // "Now, after what is running": setImmediate, not setTimeout(0), which waits at least a millisecond
      // (a node serving requests with no service time would otherwise serve at most 1000 a second).
      const immediate = setImmediate(() => {
        this.immediates.delete(id);
        fn();
      });
      if (this.unref) immediate.unref();
      this.immediates.set(id, immediate);
      return id;
    }
    const dueUs = this.nowUs() + delayUs;
    const arm = () => {
      const remainingMs = Math.max(0, (dueUs - this.nowUs()) / 1000);
      const timer = setTimeout(() => {
        if (remainingMs > MAX_TIMEOUT_MS) return arm();
        this.timers.delete(id);
        fn();
      }, Math.min(remainingMs, MAX_TIMEOUT_MS));
      if (this.unref) timer.unref();
      this.timers.set(id, timer);
    };
    arm();
    return id;
  }

  cancel(id: number): void {
    const immediate = this.immediates.get(id);
    if (immediate !== undefined) {
      clearImmediate(immediate);
      this.immediates.delete(id);
    }
    const timer = this.timers.get(id);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.timers.delete(id);
  }

  /** Timers scheduled and not yet run or cancelled. */
  get pending(): number {
    return this.timers.size + this.immediates.size;
  }
}

freezeClass(RealClock);
