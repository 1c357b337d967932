// The KMS endpoint's process (`hsmsim up --kms`): the supervisor forks it with an IPC channel, as
// it does an HSM, and restarts it if it dies. Its state is <cluster folder>/kms/ (0700): the
// store, the fleet's token, the trail, credentials.json. It tells the supervisor when it
// listens ({t:"ready", url}) or why it cannot ({t:"fatal", reason}, e.g. the port is taken),
// stops cleanly on {t:"stop"} or SIGTERM (the trail is flushed and signed), and exits when the
// supervisor goes away (an orphan must not keep the port).
// It never binds the port: the supervisor holds it (bound once, for as long as the cluster is up,
// so no other process can take it while this one restarts) and hands over the listening socket
// ({t:"listener"} asked, {t:"listen"} with the server answered); the connections the supervisor's
// side accepts arrive one by one ({t:"connection"} with the socket, each answered {t:"taken"}).
import { createServer } from "node:http";
import { Server as NetServer, type Socket } from "node:net";
import { join } from "node:path";

import { folderClusterDirectory } from "./cluster-directory.js";
import { loadOrCreateCredentials } from "./credentials-file.js";
import { type KmsEndpoint, startKms } from "./endpoint.js";

/** What the supervisor passes (JSON, argv[2]). */
export interface KmsProcessConfig {
  clusterDir: string;
  host: string;
  port: number;
  region?: string;
}

/** Exit codes: the port is in use; any other failure to start. */
export const KMS_EXIT_PORT_IN_USE = 7;
export const KMS_EXIT_FAILED = 8;

type ToSupervisor = { t: "ready"; url: string } | { t: "fatal"; reason: string } | { t: "listener" } | { t: "taken" };

const LISTENER_TIMEOUT_MS = 10_000;

/** Asks the supervisor for the port's listening socket and waits (bounded) for it. */
function listenerFromSupervisor(): Promise<NetServer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.off("message", onMessage);
      reject(new Error(`the supervisor handed over no listening socket within ${LISTENER_TIMEOUT_MS} ms`));
    }, LISTENER_TIMEOUT_MS);
    const onMessage = (m: unknown, handle: unknown) => {
      if ((m as { t?: unknown } | null)?.t !== "listen" || !(handle instanceof NetServer)) return;
      clearTimeout(timer);
      process.off("message", onMessage);
      resolve(handle);
    };
    process.on("message", onMessage);
    if (!process.send || !process.connected) {
      clearTimeout(timer);
      return reject(new Error("no supervisor: the KMS process is started by hsmsim up --kms"));
    }
    process.send({ t: "listener" } satisfies ToSupervisor);
  });
}

function tell(message: ToSupervisor): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

/**
 * Process-plumbing tests only (HSMSIM_KMS_STAND_IN=1): a loopback HTTP server that answers every
 * request with KMS's internal error, standing in for startKms while it is being built. It holds
 * no key, reads no credential and serves nothing but that error.
 */
function standIn(host: string, listenOn: NetServer): Promise<KmsEndpoint> {
  const server = createServer((_req, res) => {
    res.writeHead(500, { "content-type": "application/x-amz-json-1.1" });
    res.end(JSON.stringify({ __type: "KMSInternalException", message: "stand-in endpoint (HSMSIM_KMS_STAND_IN)" }));
  });
  listenOn.on("connection", (socket: Socket) => void server.emit("connection", socket));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(listenOn, () => {
      const address = server.address() as { port: number };
      resolve({ url: `http://${host}:${address.port}`, region: "us-east-1", settled: async () => {}, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}

async function main(): Promise<void> {
  process.umask(0o077);
  const config = JSON.parse(process.argv[2] ?? "{}") as KmsProcessConfig;
  const kmsDir = join(config.clusterDir, "kms");
  let endpoint: KmsEndpoint;
  let listener: NetServer | null = null;
  // Connections this process accepts before the endpoint serves the socket: held (unread) until it does.
  const early: Socket[] = [];
  const holdEarly = (socket: Socket) => void early.push(socket);
  // A stop asked while the endpoint starts is kept, and done once it has started (its trail signed).
  let stopAsked = false;
  const askStop = (m: unknown) => {
    if ((m as { t?: unknown } | null)?.t === "stop") stopAsked = true;
  };
  process.on("message", askStop);
  try {
    listener = await listenerFromSupervisor();
    // Node reads this option of the server's at each accept: the early ones stay unread for the endpoint.
    (listener as NetServer & { pauseOnConnect: boolean }).pauseOnConnect = true;
    listener.on("connection", holdEarly);
    if (process.env.HSMSIM_KMS_STAND_IN === "1") {
      endpoint = await standIn(config.host, listener);
    } else {
      const { credentials } = loadOrCreateCredentials(kmsDir);
      endpoint = await startKms({
        dataDir: kmsDir, host: config.host, listenOn: listener, region: config.region, credentials,
        // The cluster is the account's of the first access key (the embedded defaults' customer): another account's key stores cannot use it.
        clusters: folderClusterDirectory([config.clusterDir], { accountId: credentials[0].accountId }),
      });
    }
  } catch (e) {
    const inUse = (e as { code?: unknown }).code === "EADDRINUSE" || /EADDRINUSE/.test(String((e as Error).message));
    const reason = inUse
      ? `port ${config.port} on ${config.host} is in use (another hsmsim up --kms, or another program): choose another with --kms-port`
      : `the KMS endpoint did not start: ${(e as Error).message ?? String(e)}`;
    process.stderr.write(`${reason}\n`);
    await tell({ t: "fatal", reason });
    process.exit(inUse ? KMS_EXIT_PORT_IN_USE : KMS_EXIT_FAILED);
  }
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await endpoint.close().catch(() => {});
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());
  process.on("disconnect", () => void stop());
  process.off("message", askStop);
  if (stopAsked) return void (await stop());
  const served = listener;
  served.off("connection", holdEarly);
  for (const socket of early.splice(0)) {
    served.emit("connection", socket);
    socket.resume();
  }
  process.on("message", (m: unknown, handle: unknown) => {
    const t = (m as { t?: unknown } | null)?.t;
    if (t === "stop") void stop();
    else if (t === "connection" && handle !== undefined) {
      const socket = handle as Socket;
      if (stopping) socket.destroy();
      else served.emit("connection", socket);
      if (process.connected) process.send?.({ t: "taken" } satisfies ToSupervisor); // the supervisor passes the next
    }
  });
  await tell({ t: "ready", url: endpoint.url });
}

void main().catch((e: unknown) => {
  process.stderr.write(`kms: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(KMS_EXIT_FAILED);
});
