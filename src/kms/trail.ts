// The KMS trail: one CloudTrail-style JSON record per request (who, which account, which key,
// the operation, the encryption context, the result), appended to kms/trail.jsonl. Records are
// hash-chained (SHA-256 of the previous record); digests of the chain are signed by the fleet's
// trail key (ECDSA P-256) every second and at close, as CloudTrail's digest files, so a
// verifier needs only the public key (kms/trail-public.pem). [helper: trail]
import type { Fleet } from "./fleet.js";
import type { FinishedRequest } from "./server.js";

export interface TrailOptions {
  /** The trail file, or null to keep records in memory only. */
  path: string | null;
  fleet: Fleet;
  region: string;
  nowMs: () => number;
  newEventId: () => string;
}

/** One record, CloudTrail's field names (eventVersion, userIdentity, eventTime, eventSource, eventName, …). */
export type TrailRecord = Record<string, unknown> & { requestID: string; eventName: string };

export class KmsTrail {
  static open(options: TrailOptions): KmsTrail { void options; throw new Error("not built yet"); }
  /** Appends the record of a finished request; returns it. */
  record(request: FinishedRequest): TrailRecord { void request; throw new Error("not built yet"); }
  /** Records so far (this process's and the file's), oldest first. */
  records(): TrailRecord[] { throw new Error("not built yet"); }
  close(): void { throw new Error("not built yet"); }
}
