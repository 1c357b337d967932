// The HTTP endpoint: KMS's JSON 1.1 protocol on loopback. POST / with X-Amz-Target
// TrentService.<Operation> and Content-Type application/x-amz-json-1.1; SigV4 checked before
// the body is parsed; errors as {"__type", "message"} with AWS's statuses and the
// x-amzn-RequestId header; a Date header from the injected clock (the SDK corrects its skew
// from it). [helper: wire]
import type { KmsError } from "./errors.js";
import type { CredentialSet } from "./identity.js";
import type { Caller, RequestContext } from "./types.js";

/** What the server knows of one finished request (the trail turns it into a record). */
export interface FinishedRequest {
  operation: string;
  /** The validated input (null when the request failed before validation). */
  input: Record<string, unknown> | null;
  /** The caller (null when authentication failed). */
  caller: Caller | null;
  context: RequestContext | null;
  requestId: string;
  error: KmsError | null;
  startMs: number;
  endMs: number;
}

export interface KmsServerOptions {
  /** Loopback only: 127.x.x.x or ::1 (default 127.0.0.1). */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  region: string;
  credentials: CredentialSet;
  /** Milliseconds since the Unix epoch (SigV4 skew, Date header, record times). */
  nowMs: () => number;
  /** A new request id (UUID). */
  newRequestId: () => string;
  /** Largest request body accepted (default 1 MiB); larger: 413 RequestEntityTooLargeException. */
  maxBodyBytes?: number;
  /** Runs one validated operation; throws KmsError. */
  handle: (operation: string, input: Record<string, unknown>, context: RequestContext) => Promise<Record<string, unknown>>;
  /** Called once per request after the answer is written (success or not). */
  onFinished?: (request: FinishedRequest) => void;
}

export interface KmsServer {
  /** http://HOST:PORT */
  url: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

export async function startKmsServer(options: KmsServerOptions): Promise<KmsServer> {
  void options;
  throw new Error("not built yet");
}
