// The real-time control plane (supervisor, HSM processes, control socket, cluster folder) fails
// with ProcessError: a stable `code` a program can test, and a message for people.
import { CodedError } from "../coded-error.js";
import { freezeClass } from "../primordials.js";

export type ProcessErrorCode =
  | "INVALID_ARGUMENT"
  | "INVALID_STATE"
  | "HSM_NOT_FOUND"
  | "FOLDER_INVALID" // cluster.json missing, damaged or of another version
  | "FOLDER_IN_USE" // another supervisor runs on this folder
  | "NOT_RUNNING" // no supervisor answers on this folder
  | "BAD_REQUEST" // a control-socket request that is not one
  | "TIMEOUT"
  | "CHILD_FAILED"; // an HSM process failed a command or exited

export class ProcessError extends CodedError<ProcessErrorCode> {
  constructor(code: ProcessErrorCode, message: string) {
    super("ProcessError", code, message);
  }
}

freezeClass(ProcessError);

/** The supervisor's lock and pid files in the cluster folder. */
export const SUPERVISOR_LOCK = "supervisor.lock";
export const SUPERVISOR_PID = "supervisor.pid";
/** Exit codes of the supervisor process (`hsmsim up` reads them): another supervisor holds the folder; it failed to start. */
export const EXIT_IN_USE = 5;
export const EXIT_FAILED = 6;
/** Exit codes of an HSM process: a fatal error (folder in use, damaged folder, address taken); a bad configuration. */
export const EXIT_FATAL = 3;
export const EXIT_BAD_CONFIG = 4;
