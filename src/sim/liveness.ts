// Availability (liveness) checking: every idempotent call the workload makes is recorded with
// its outcome and the fault state around it, and each failure is classified against the
// client's retry table (README "The client"). A failure the table does not allow is a
// violation, whatever the faults; a few more are violations when the call ran in a clean
// window (every HSM up, no partition, nothing changed since a settling time before it began).
import { freezeClass } from "../primordials.js";
import { ClientError } from "../client/errors.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import type { Cluster } from "../cluster/cluster.js";
import type { SimNetwork } from "./network.js";

/** How long after a fault the cluster may still be settling (the client's failure detector, gossip, syncing). */
export const SETTLE_US = 3_000_000;

/** When the cluster last changed shape (crash, restart, replacement, partition, heal, added HSM). */
export class Health {
  private lastFaultUs = -Infinity;

  constructor(private readonly cluster: Cluster, private readonly network: SimNetwork, private readonly nowUs: () => number) {}

  fault(): void {
    this.lastFaultUs = this.nowUs();
  }

  /** Every member runs and no link is cut now. */
  healthy(): boolean {
    return !this.network.partitioned && this.cluster.describe().every((h) => h.state === "DELETED" || this.cluster.node(h.hsmId) !== null);
  }

  /** The window from `startUs` until now was clean: healthy, and no change since SETTLE_US before it began. */
  cleanSince(startUs: number): boolean {
    return this.healthy() && this.lastFaultUs < startUs - SETTLE_US;
  }

  /** No change at all since `sinceUs` (an HSM holding session objects cannot have died). */
  unchangedSince(sinceUs: number): boolean {
    return this.lastFaultUs < sinceUs;
  }
}

/** Why a failure may be allowed, given what the workload knew when the call ended. */
export interface CallContext {
  /** The key (or one of the keys) was deleted or unshared, or that was attempted. */
  keyMayBeGone?: boolean;
  /** A session object whose HSM may have died (a fault since its creation). */
  sessionObjectMayBeGone?: boolean;
}

export interface LivenessRecord {
  what: string;
  client: string;
  startUs: number;
  endUs: number;
  clean: boolean;
  /** The failure's name and detail; undefined for success. */
  error?: string;
  /** null: allowed (or success); otherwise why it is not. */
  violation: string | null;
  allowedAs?: string;
}

/**
 * Classifies a failed idempotent call. The retry table allows: retries exhausted without an
 * answer or against busy HSMs (client-side codes), the key availability rule and a lost
 * operation HSM outside clean windows, and refusals of keys or session objects that were (or
 * may have been) removed. Anything else — CKR_OPERATION_ACTIVE, a session object missing while
 * its HSM lived, a crypto user logged out — is a violation.
 */
export function classify(error: unknown, clean: boolean, context: CallContext): { allowedAs?: string; violation: string | null } {
  if (error instanceof ClientError) {
    return ["NO_REACHABLE_HSM", "HSM_UNREACHABLE", "HSM_BUSY", "OUTCOME_UNKNOWN"].includes(error.code)
      ? { allowedAs: "retries-exhausted", violation: null } : { violation: `client error ${error.code}` };
  }
  if (!(error instanceof Pkcs11Error)) return { violation: `not a PKCS#11 refusal: ${String(error)}` };
  const detail = error.detail ?? "";
  if (/^(NO_REACHABLE_HSM|HSM_UNREACHABLE|HSM_BUSY|OUTCOME_UNKNOWN)/.test(detail) || /did not answer/.test(detail)) {
    return { allowedAs: "retries-exhausted", violation: null };
  }
  switch (error.message) {
    case "CKR_FUNCTION_FAILED":
      if (/availability requirements/.test(detail)) return clean ? { violation: "key availability refused in a clean window" } : { allowedAs: "key-availability", violation: null };
      break;
    case "CKR_DEVICE_REMOVED":
      return clean ? { violation: "operation lost in a clean window" } : { allowedAs: "operation-hsm-lost", violation: null };
    case "CKR_KEY_HANDLE_INVALID": case "CKR_OBJECT_HANDLE_INVALID":
      if (context.keyMayBeGone) return { allowedAs: "key-removed", violation: null };
      if (context.sessionObjectMayBeGone) return { allowedAs: "session-object-hsm-lost", violation: null };
      break;
  }
  return { violation: `${error.message}${detail ? ` (${detail})` : ""}` };
}

export function describeError(error: unknown): string {
  if (error instanceof Pkcs11Error) return `${error.message}${error.detail ? `: ${error.detail}` : ""}`;
  if (error instanceof ClientError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(Health);
