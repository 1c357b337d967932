// Grants: which operations a grant can carry for which key, its constraints, its token, whether
// one allows a request, and who may retire or revoke it. [helper: auth]
import type { AccessRequest, ParsedPolicy } from "./policy.js";
import type { GrantRecord, KeyRecord } from "./types.js";

/** Throws KmsError ValidationException when `operations` or `constraints` do not fit `key` (a MAC op on a symmetric key, constraints on Sign, …). */
export function checkGrantShape(key: KeyRecord, operations: string[], constraints: GrantRecord["constraints"]): void {
  void key, operations, constraints;
  throw new Error("not built yet");
}

/** Whether one of `grants` (the key's, plus any named by the request's grant tokens) allows `request`. */
export function grantAllows(grants: readonly GrantRecord[], request: AccessRequest): boolean {
  void grants, request;
  throw new Error("not built yet");
}

/**
 * The whole decision for a key request: policy Deny → AccessDeniedException; policy Allow or a
 * grant → allowed; else AccessDeniedException with AWS's message ("User: ARN is not authorized
 * to perform: kms:Encrypt on resource: KEYARN because no resource-based policy allows the kms:Encrypt action").
 */
export function authorize(policy: ParsedPolicy, grants: readonly GrantRecord[], request: AccessRequest): void {
  void policy, grants, request;
  throw new Error("not built yet");
}

/** A new grant token naming `grantId` (opaque, unforgeable: MAC'ed by the fleet). */
export function makeGrantToken(grantId: string, mac: (data: Buffer) => Buffer): string {
  void grantId, mac;
  throw new Error("not built yet");
}

/** The grant id a token names; KmsError InvalidGrantTokenException when it is malformed or its MAC is wrong. */
export function readGrantToken(token: string, mac: (data: Buffer) => Buffer): string {
  void token, mac;
  throw new Error("not built yet");
}

/** Whether `principalArn` may retire `grant` (its retiring principal, its grantee when the grant has RetireGrant, the key's account root). */
export function mayRetire(grant: GrantRecord, principalArn: string, accountId: string): boolean {
  void grant, principalArn, accountId;
  throw new Error("not built yet");
}
