// startKms: the whole KMS endpoint wired together (the fleet, the store, the trail, the custom
// key stores, the operations and the HTTP server). [lead]
import type { ClusterDirectory } from "./cluster-directory.js";
import type { KmsCredential } from "./types.js";

export interface KmsOptions {
  /** KMS's data folder (created 0700): store, fleet token, trail. null: nothing durable (memory only). */
  dataDir: string | null;
  /** Loopback address (default 127.0.0.1) and port (default 0: any free one). */
  host?: string;
  port?: number;
  /** Default us-east-1. */
  region?: string;
  credentials: readonly KmsCredential[];
  /** The clusters custom key stores may use (default: none). */
  clusters?: ClusterDirectory;
  /** Milliseconds since the Unix epoch (default Date.now): key deletion dates, SigV4 skew, records. */
  nowMs?: () => number;
  /** Randomness for ids (key ids, grant ids, request ids); default the OS's. Key material and IVs always come from the chip. */
  randomBytes?: (n: number) => Buffer;
  /** The fleet's chip seed, hex, for a memory-only KMS (deterministic runs); ignored with a dataDir. */
  fleetSeed?: string;
  /** Requests per second: per account for cryptographic operations (default 50,000), per custom key store (default 1,800). */
  limits?: { accountCryptoPerSecond?: number; customKeyStorePerSecond?: number };
}

export interface KmsEndpoint {
  /** http://HOST:PORT: the SDK's `endpoint`, the CLI's --endpoint-url. */
  url: string;
  region: string;
  /** Waits until a custom key store's connection has settled (CONNECTED or FAILED), for tests and scripts. */
  settled(customKeyStoreId: string): Promise<void>;
  close(): Promise<void>;
}

export async function startKms(options: KmsOptions): Promise<KmsEndpoint> {
  void options;
  throw new Error("not built yet");
}
