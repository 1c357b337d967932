// Seeded randomness for the simulator: one seed fixes a whole run. `fork(label)` derives an
// independent stream per component (network, each HSM's chip, the workload), so adding a
// draw in one component does not shift the others'.
import { freezeClass } from "../primordials.js";
import { createHash } from "node:crypto";

/** sfc32: a small, fast generator with a 128-bit state; good enough for simulation. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** Private: whoever holds a stream (a client holds its own) must not learn the world's seed, which fixes every chip's keys. */
  readonly #seed: number | string;

  constructor(seed: number | string) {
    this.#seed = seed;
    const h = createHash("sha256").update(`hsmsim-rng:${seed}`).digest();
    this.a = h.readUInt32LE(0);
    this.b = h.readUInt32LE(4);
    this.c = h.readUInt32LE(8);
    this.d = h.readUInt32LE(12);
    for (let i = 0; i < 12; i++) this.nextUint32(); // mix the state before first use
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new RangeError("n must be a positive integer");
    return Math.floor(this.next() * n);
  }

  /** An integer in [min, max]. */
  between(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("cannot pick from an empty list");
    return items[this.int(items.length)];
  }

  bytes(length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = this.nextUint32() & 0xff;
    return out;
  }

  /** An independent stream for `label`, fixed by this stream's seed (not by its position). */
  fork(label: string): Rng {
    return new Rng(`${this.#seed}/${label}`);
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(Rng);
