// Stand-ins for the trail's tests: a fleet with only a trail key (node:crypto, not the chip) and
// finished requests as the server would report them.
import { generateKeyPairSync, sign } from "node:crypto";

import { KmsError } from "../../src/kms/errors.js";
import type { FinishedRequest } from "../../src/kms/server.js";
import type { Caller } from "../../src/kms/types.js";

export function fakeTrailFleet() {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return {
    signTrail: (data: Buffer) => sign("sha256", data, { key: privateKey, dsaEncoding: "der" }),
    trailPublicKeyPem: () => publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}

export const ALICE: Caller = {
  accountId: "111122223333", arn: "arn:aws:iam::111122223333:user/alice", accessKeyId: "AKIAALICE0000000001",
  userName: "alice", sourceIp: "127.0.0.1", userAgent: "aws-sdk-js/3",
};
export const ROOT_B: Caller = {
  accountId: "444455556666", arn: "arn:aws:iam::444455556666:root", accessKeyId: "AKIAROOTB000000001",
  userName: null, sourceIp: "127.0.0.1", userAgent: "aws-cli/2",
};
export const KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

let n = 0;
export function finished(operation: string, input: Record<string, unknown> | null, options: { caller?: Caller | null; error?: KmsError; notes?: Partial<FinishedRequest["context"] & object>["notes"]; startMs?: number } = {}): FinishedRequest {
  const caller = options.caller === undefined ? ALICE : options.caller;
  const requestId = `00000000-0000-4000-8000-${String(++n).padStart(12, "0")}`;
  const startMs = options.startMs ?? 1_764_633_600_123;
  return {
    operation, input, caller, requestId, error: options.error ?? null, startMs, endMs: startMs + 3,
    context: caller === null ? null : { caller, requestId, region: "us-east-1", notes: options.notes ?? { resources: [], additionalEventData: {} } },
  };
}
