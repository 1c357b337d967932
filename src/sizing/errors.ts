// The sizing layer fails with SizingError: a stable `code` a program can test and a message that
// names the bad input (and, for a name, the valid ones).
import { freezeClass } from "../primordials.js";
import { CodedError } from "../coded-error.js";

export type SizingErrorCode =
  | "INVALID_OPERATION" // not an operation of the sizing vocabulary, or a bad size suffix
  | "INVALID_RATE" // a rate that is not a finite number > 0
  | "INVALID_ARGUMENT" // any other bad input (HSM count, spare, percentile, target, price, profile type)
  | "DUPLICATE_OPERATION" // the same operation twice in one load
  | "IMPOSSIBLE_TARGET" // no cluster of 2–28 HSMs meets the target
  | "OUTPUT_FAILED"; // a chart or report file could not be written

export class SizingError extends CodedError<SizingErrorCode> {
  constructor(code: SizingErrorCode, message: string) {
    super("SizingError", code, message);
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(SizingError);
