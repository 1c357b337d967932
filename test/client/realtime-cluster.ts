// Starts the in-process real-time cluster (realtime-cluster-host.ts) in a worker thread and
// activates it the way an application would: PRECO's first password change, a CO, two crypto users.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";

import { connect } from "../../src/client/remote/connect.js";

export const CO = { username: "admin", password: "officer-pass-1" };
export const ALICE = { username: "alice", password: "alice-pass-1" };
export const BOB = { username: "bob", password: "bob-pass-12" };

export interface RealtimeCluster {
  addresses: string[];
  /** The trust anchor's PEM file (customerCA.crt). */
  trustAnchorPath: string;
  trustAnchorPem: string;
  /** With mutual TLS: a client certificate from the registered client trust anchor, and its key (PEM files). */
  clientFiles?: { certPath: string; keyPath: string };
  /** Stops one HSM at once (node stopped, its sockets closed), as a crash looks from the network. */
  kill(index: number): Promise<void>;
  stop(): Promise<void>;
}

const HERE = dirname(fileURLToPath(import.meta.url));

export async function startRealtimeCluster(hsmCount = 2, options: { activate?: boolean; mtls?: boolean } = {}): Promise<RealtimeCluster> {
  const require = createRequire(join(HERE, "x.ts"));
  const tsx = pathToFileURL(join(dirname(require.resolve("tsx/package.json")), "dist", "esm", "api", "index.mjs")).href;
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(pathToFileURL(join(HERE, "realtime-cluster-host.ts")).href)}); });`;
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`), { workerData: { hsmCount, mtls: options.mtls ?? false } });
  const next = (t: string) => new Promise<Record<string, unknown>>((resolve, reject) => {
    const onMessage = (m: Record<string, unknown>) => {
      if (m.t === "failed") reject(new Error(String(m.message)));
      else if (m.t === t) resolve(m);
      else return;
      worker.off("message", onMessage);
    };
    worker.on("message", onMessage);
    worker.once("error", reject);
  });
  const ready = await next("ready");
  let stopped = false;
  const cluster: RealtimeCluster = {
    addresses: ready.addresses as string[],
    trustAnchorPath: ready.trustAnchorPath as string,
    trustAnchorPem: ready.trustAnchorPem as string,
    clientFiles: ready.clientFiles as RealtimeCluster["clientFiles"],
    kill: async (index) => {
      const done = next("killed");
      worker.postMessage({ t: "kill", index });
      await done;
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      const done = next("stopped");
      worker.postMessage({ t: "stop" });
      await done;
      await worker.terminate();
    },
  };
  if (options.activate === false) return cluster;
  try {
    const clientCertificate = cluster.clientFiles && { certificate: cluster.clientFiles.certPath, key: cluster.clientFiles.keyPath };
    const setup = connect({ address: cluster.addresses[0], trustAnchor: cluster.trustAnchorPath, clientCertificate });
    try {
      setup.console("admin", "password").changePassword("admin", CO.password);
      const co = setup.console(CO.username, CO.password);
      co.createUser(ALICE.username, "CU", ALICE.password);
      co.createUser(BOB.username, "CU", BOB.password);
    } finally {
      setup.close();
    }
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}
