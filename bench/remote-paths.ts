// The remote columns of the benchmark: a real cluster of N HSM processes over TLS, reached
// through the synchronous PKCS11 (load("cloudhsm://…")) and the async API with 1, 8 and 64
// requests in flight.
import type { OperationName } from "./remote-ops.js";

export interface RemotePath {
  name: string;
  inFlight: number;
  operations: Partial<Record<OperationName, (() => unknown) | string>>;
  serverPids(): number[];
  close(): Promise<void>;
}

export async function remotePaths(_hsms: number): Promise<RemotePath[]> {
  throw new Error("the remote client (wt-remote: load(\"cloudhsm://…\")) and hsmsim up (wt-processes) have not landed");
}
