// The Random of the real-time cluster and client: the operating system's generator. Streams
// need no independence by construction here (every draw is fresh OS randomness), so fork()
// returns a new stream that shares nothing with this one.
import { randomBytes, randomInt } from "node:crypto";

import { freezeClass } from "../primordials.js";
import type { Random } from "../runtime/random.js";

/** crypto.randomInt's bound: its range must be below 2^48. */
const MAX_RANGE = 2 ** 48;

export class OsRandom implements Random {
  int(n: number): number {
    if (!Number.isSafeInteger(n) || n < 1 || n >= MAX_RANGE) throw new RangeError(`int(n) needs an integer n from 1 to 2^48 - 1, not ${String(n)}`);
    return n === 1 ? 0 : randomInt(n);
  }

  bytes(length: number): Buffer {
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`bytes(length) needs a non-negative integer, not ${String(length)}`);
    return randomBytes(length);
  }

  fork(_label: string): Random {
    return new OsRandom();
  }
}

freezeClass(OsRandom);
