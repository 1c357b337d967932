// startKms: the whole KMS endpoint wired together — KMS's fleet (where AWS_KMS key material
// lives), the store (keys, aliases, grants, custom key stores), the trail, the custom key stores
// over their clusters, the operations and the HTTP server.
import { randomBytes as osRandomBytes } from "node:crypto";
import { lstatSync, mkdirSync } from "node:fs";
import { join } from "node:path";

import type { ClusterDirectory } from "./cluster-directory.js";
import { CustomKeyStores, DEFAULT_STORE_REQUESTS_PER_SECOND } from "./custom-key-stores.js";
import { KmsError, asKmsError } from "./errors.js";
import { Fleet } from "./fleet.js";
import { CredentialSet } from "./identity.js";
import { type KmsParts, uuidFrom } from "./kms-context.js";
import { type KmsServerOptions, startKmsServer } from "./server.js";
import { handleOperation } from "./service.js";
import { KmsStore, KmsStoreError } from "./store.js";
import { RateLimiter } from "./throttle.js";
import { KmsTrail } from "./trail.js";
import type { KmsCredential } from "./types.js";

export interface KmsOptions {
  /** KMS's data folder (created 0700): store, fleet token, trail. null: nothing durable (memory only). */
  dataDir: string | null;
  /** Loopback address (default 127.0.0.1) and port (default 0: any free one). */
  host?: string;
  port?: number;
  /** A listening loopback socket to serve instead of binding host:port (see KmsServerOptions.listenOn). */
  listenOn?: KmsServerOptions["listenOn"];
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
  /**
   * Told of every failure that reached a caller as KMSInternalException (a defect, or a part that
   * failed), with its real cause, which the caller never sees (default: one line on stderr).
   */
  onInternalError?: (operation: string, error: unknown) => void;
}

export interface KmsEndpoint {
  /** http://HOST:PORT: the SDK's `endpoint`, the CLI's --endpoint-url. */
  url: string;
  region: string;
  /** Waits until a custom key store's connection has settled (CONNECTED or FAILED), for tests and scripts. */
  settled(customKeyStoreId: string): Promise<void>;
  close(): Promise<void>;
}

/** AWS's default quota of cryptographic requests per second for an account in us-east-1 (symmetric keys). */
export const DEFAULT_ACCOUNT_CRYPTO_PER_SECOND = 50_000;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d$/;

const NO_CLUSTERS: ClusterDirectory = {
  describe: () => null,
  open: (clusterId) => Promise.reject(new KmsError("CloudHsmClusterNotFoundException", `Cluster ${clusterId} is not known to this endpoint.`)),
};

function positiveRate(value: number | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!(Number.isFinite(value) && value > 0)) throw new TypeError(`limits.${name} must be a positive number of requests per second`);
  return value;
}

/** The data folder: created 0700, or an existing folder that is ours and no one else may write into. */
function ensureDataDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stat = lstatSync(dir);
  if (!stat.isDirectory()) throw new KmsError("KMSInternalException", `${dir} is not a folder`);
  if (typeof process.getuid === "function" && stat.uid !== process.getuid()) throw new KmsError("KMSInternalException", `${dir} belongs to another user`);
  if ((stat.mode & 0o022) !== 0) throw new KmsError("KMSInternalException", `${dir} may be written by others (mode ${(stat.mode & 0o777).toString(8)}): refused`);
}

const ANCHOR_INTERVAL_MS = 1_000;

interface Anchor {
  storeChangeCount: number;
  trailSeq: number;
}

function anchorBytes(anchor: Anchor): Buffer {
  return Buffer.from(JSON.stringify(anchor));
}

/**
 * What the fleet's token remembers of the store and the trail (their length at the last
 * digest); a store older than that was put back from a copy. Both files rolled back together
 * with the fleet's token folder (the whole data folder) is not detected.
 */
function checkAnchor(fleet: Fleet, store: KmsStore): Anchor {
  const raw = fleet.readAnchor();
  if (raw === null) return { storeChangeCount: 0, trailSeq: 0 };
  let anchor: Anchor;
  try {
    anchor = JSON.parse(raw.toString("utf8")) as Anchor;
  } catch {
    throw new KmsStoreError("STORE_TAMPERED", "the fleet's anchor is not KMS's");
  }
  if (!Number.isSafeInteger(anchor.storeChangeCount) || !Number.isSafeInteger(anchor.trailSeq)) throw new KmsStoreError("STORE_TAMPERED", "the fleet's anchor is not KMS's");
  const changeCount = store.head().changeCount;
  if (changeCount < anchor.storeChangeCount) {
    throw new KmsStoreError("STORE_TAMPERED", `kms.db is at change ${changeCount}, but KMS last knew it at change ${anchor.storeChangeCount}: an older copy was put back`);
  }
  return anchor;
}

/** Starts the endpoint; close() stops it and releases the data folder. */
export async function startKms(options: KmsOptions): Promise<KmsEndpoint> {
  if (options === null || typeof options !== "object") throw new TypeError("options must be { dataDir, credentials, … }");
  if (options.dataDir !== null && (typeof options.dataDir !== "string" || options.dataDir.length === 0)) throw new TypeError("dataDir must be a folder path, or null");
  const region = options.region ?? "us-east-1";
  if (!REGION.test(region)) throw new TypeError(`region must look like us-east-1, not ${String(region)}`);
  const credentials = new CredentialSet(options.credentials);
  const nowMs = options.nowMs ?? Date.now;
  const randomBytes = options.randomBytes ?? osRandomBytes;
  const accountRate = positiveRate(options.limits?.accountCryptoPerSecond, "accountCryptoPerSecond", DEFAULT_ACCOUNT_CRYPTO_PER_SECOND);
  const storeRate = positiveRate(options.limits?.customKeyStorePerSecond, "customKeyStorePerSecond", DEFAULT_STORE_REQUESTS_PER_SECOND);

  const dir = options.dataDir;
  if (dir !== null) ensureDataDir(dir);
  const fleetTarget = dir !== null ? `file:${join(dir, "fleet")}` : options.fleetSeed !== undefined ? `memory:?seed=${options.fleetSeed}` : "memory:";
  const fleet = await Fleet.open({ target: fleetTarget });
  const opened: { close(): unknown }[] = [fleet];
  const closeOpened = async () => {
    for (const part of opened.reverse()) {
      try {
        await part.close();
      } catch {
        // closing what we could
      }
    }
  };
  try {
    const store = KmsStore.open({ path: dir === null ? null : join(dir, "kms.db"), mac: (data) => fleet.recordMac(data) });
    opened.push(store);
    const anchor = dir === null ? null : checkAnchor(fleet, store);
    // The anchor moves only forward, and only once the files were found to agree with it: a start
    // that refuses a cut trail must not move it back to the cut length (the open signs a digest).
    let armed = false;
    let anchored = anchor ?? { storeChangeCount: 0, trailSeq: 0 };
    const moveAnchor = (trailSeq: number) => {
      if (!armed) return;
      const next = { storeChangeCount: Math.max(anchored.storeChangeCount, store.head().changeCount), trailSeq: Math.max(anchored.trailSeq, trailSeq) };
      if (next.storeChangeCount === anchored.storeChangeCount && next.trailSeq === anchored.trailSeq) return;
      fleet.writeAnchor(anchorBytes(next));
      anchored = next;
    };
    // Closed after the trail (its last digest) and before the store: a change no request recorded is anchored too.
    if (anchor !== null) opened.push({ close: () => moveAnchor(anchored.trailSeq) });
    const trail = KmsTrail.open({
      path: dir === null ? null : join(dir, "trail.jsonl"), fleet, region, nowMs, newEventId: () => uuidFrom(randomBytes),
      // Each digest moves the anchor: the store's change count and the trail's length, kept in the fleet's token.
      onDigest: anchor === null ? undefined : moveAnchor,
    });
    opened.push(trail);
    if (anchor !== null) {
      if (trail.lastSeq < anchor.trailSeq) {
        throw new KmsStoreError("STORE_TAMPERED", `the trail ends at record ${trail.lastSeq}, but KMS signed it up to record ${anchor.trailSeq}: records were removed`);
      }
      armed = true;
      moveAnchor(trail.lastSeq);
      // Store changes no request records (a key store's connection, its password rotation) move it within a second.
      const timer = setInterval(() => {
        try {
          moveAnchor(anchored.trailSeq);
        } catch {
          // the fleet closing meanwhile: the close path anchors
        }
      }, ANCHOR_INTERVAL_MS);
      timer.unref();
      opened.push({ close: () => clearInterval(timer) });
    }
    const customKeyStores = new CustomKeyStores({ store, fleet, directory: options.clusters ?? NO_CLUSTERS, nowMs, randomBytes, requestsPerSecond: storeRate });
    opened.push(customKeyStores);
    const limiters = new Map<string, RateLimiter>();
    const reportInternal = options.onInternalError ?? ((operation: string, error: unknown) => {
      process.stderr.write(`hsmsim kms: ${operation} failed inside the endpoint: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}\n`);
    });
    const principals = new Set(options.credentials.map((c) => c.arn));
    const parts: KmsParts = {
      store, fleet, customKeyStores, region, nowMs, randomBytes, principalExists: (arn) => principals.has(arn),
      creatingInStore: new Map(),
      accountLimiter: (accountId) => {
        let limiter = limiters.get(accountId);
        if (!limiter) limiters.set(accountId, (limiter = new RateLimiter(accountRate, nowMs)));
        return limiter;
      },
    };
    const server = await startKmsServer({
      host: options.host, port: options.port, listenOn: options.listenOn, region, credentials, nowMs, newRequestId: () => uuidFrom(randomBytes),
      handle: (operation, input, context) => handleOperation(parts, operation, input, context).catch((e) => {
        const answer = asKmsError(e);
        if (answer !== e) reportInternal(operation, e);
        throw answer;
      }),
      onFinished: (request) => {
        try {
          trail.record(request);
        } catch {
          // A record that cannot be written must not take the endpoint down; the chain shows the gap at verification.
        }
      },
    });
    customKeyStores.resume();
    let closing: Promise<void> | null = null;
    return {
      url: server.url,
      region,
      settled: (id) => customKeyStores.settled(id),
      close: () => (closing ??= (async () => {
        await server.close();
        await closeOpened();
      })()),
    };
  } catch (e) {
    await closeOpened();
    throw e;
  }
}
