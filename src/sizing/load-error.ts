// The load generator's one error: a bad operation, option or preparation, named.
import { CodedError } from "../coded-error.js";

export class LoadGeneratorError extends CodedError<"INVALID_ARGUMENT"> {
  constructor(message: string) {
    super("LoadGeneratorError", "INVALID_ARGUMENT", message);
  }
}
