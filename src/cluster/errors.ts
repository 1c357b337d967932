// The cluster's control plane fails with ClusterError: a stable `code` and a message.
import { freezeClass } from "../primordials.js";
import { CodedError } from "../coded-error.js";

export type ClusterErrorCode =
  | "INVALID_ARGUMENT"
  | "INVALID_STATE" // the cluster or HSM is not in a state that allows this
  | "HSM_LIMIT" // 28 HSMs per cluster
  | "HSM_NOT_FOUND"
  | "NO_LIVE_HSM" // nothing to clone or back up from
  | "BACKUP_NOT_FOUND"
  | "LINEAGE_MISMATCH"; // the backup belongs to another cluster lineage, or was tampered with

export class ClusterError extends CodedError<ClusterErrorCode> {
  constructor(code: ClusterErrorCode, message: string) {
    super("ClusterError", code, message);
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(ClusterError);
