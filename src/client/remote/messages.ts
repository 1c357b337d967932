// What the main thread and the remote client's worker thread say to each other: requests go
// on the worker's own port (in order), answers to synchronous calls on a second channel the
// main thread reads with receiveMessageOnPort while it waits on a SharedArrayBuffer, answers
// to callback calls on the worker's port (delivered by the event loop). Structured clone turns
// Buffers into Uint8Arrays; revive() makes them Buffers again on arrival.
import { CodedError } from "../../coded-error.js";
import { HsmError, type HsmErrorCode } from "../../hsm/errors.js";
import { Pkcs11Error } from "../../pkcs11/errors.js";
import { ClientError, type ClientErrorCode } from "../errors.js";

/** What the worker hosts. */
export type BackendSpec =
  /** A fresh in-process chip (tests and measurements of the bridge itself). */
  | { kind: "memory"; target: string; faults?: BridgeFaults }
  /** The real client: ClusterClient + ClusterChip over TLS to a cluster. */
  | { kind: "cluster"; bootstrap: string; trustAnchorPem: string; clientCertificatePem?: string; clientKeyPem?: string; faults?: BridgeFaults;
    /**
     * The client's timeouts and busy backoff × this (default 1): against a time-dilated cluster
     * (every service time × K) the client must wait K times longer too, or a queue the profile
     * serves in time looks like a lost HSM (hsmsim bench --against --time-dilation K).
     */
    timeScale?: number };

/**
 * Fault injection for the bridge's own tests: the worker exits, or stops answering (its event
 * loop blocked), when it receives a call of this name. Reachable only through openRemoteLink's
 * spec, never from a target string or connect().
 */
export interface BridgeFaults {
  exitOn?: string;
  hangOn?: string;
  /** The worker holds a call of this name until slot 0 of `signal` becomes non-zero (and is notified). */
  gate?: { on: string; signal: SharedArrayBuffer };
}

export type RequestKind = "chip" | "manage" | "health" | "close";

export interface BridgeRequest {
  id: number;
  kind: RequestKind;
  method: string;
  args: unknown[];
  /** The caller waits on the shared state: answer on the sync channel and notify. */
  sync: boolean;
}

export interface SerializedError {
  name: string;
  message: string;
  code?: number | string;
  method?: string;
  detail?: string;
}

export interface BridgeAnswer {
  id: number;
  error?: SerializedError;
  value?: unknown;
  /** The bytes the call wrote into its output argument, for the caller's own buffer. */
  output?: Uint8Array;
}

/** Int32 slots of the shared state. */
export const STATE_ANSWERS = 0; // bumped (and notified) after every synchronous answer
export const STATE_HEARTBEAT = 1; // bumped by the worker's timer: it is alive and its loop turns
export const STATE_DEAD = 2; // set when the worker exits
export const STATE_SLOTS = 3;
export const HEARTBEAT_INTERVAL_MS = 100;

export function serializeError(error: unknown): SerializedError {
  if (error instanceof Pkcs11Error) return { name: "Pkcs11Error", message: error.message, code: error.code, method: error.method, detail: error.detail };
  if (error instanceof HsmError || error instanceof ClientError) return { name: error.name, message: error.message, code: error.code };
  if (error instanceof TypeError) return { name: "TypeError", message: error.message };
  if (error instanceof CodedError) return { name: error.name, message: error.message, code: error.code }; // e.g. src/net's TLS errors
  const e = error instanceof Error ? error : new Error(String(error));
  return { name: "Error", message: e.message };
}

export function reviveError(e: SerializedError): Error {
  switch (e.name) {
    case "Pkcs11Error": return new Pkcs11Error(e.code as number, e.method ?? "", e.detail);
    case "HsmError": return new HsmError(e.code as HsmErrorCode, e.message);
    case "ClientError": return new ClientError(e.code as ClientErrorCode, e.message);
    case "TypeError": return new TypeError(e.message);
    default: return typeof e.code === "string" ? new CodedError(e.name, e.code, e.message) : new Error(e.message);
  }
}

/** Uint8Arrays that arrived through structured clone become Buffers again (views, no copy), at any depth. */
export function revive(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) return value.map(revive);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = revive(v);
    return out;
  }
  return value;
}
