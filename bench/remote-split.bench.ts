// Where a remote round trip's time goes: the same request (C_GetTokenInfo, answered by an HSM)
// sent by a ClusterClient on this thread (TLS + codec + the HSM, no bridge), and through the
// synchronous PKCS11 (bridge + the same). HSMs in a worker thread of this process.
// Run: npx tsx bench/remote-split.bench.ts [seconds=2] [hsms=1]
import { ClusterClient } from "../src/client/client.js";
import { ClusterChip } from "../src/client/cluster-chip.js";
import { CKF_SERIAL_SESSION, CKU_USER } from "../src/pkcs11/constants.js";
import { load } from "../src/index.js";
import { ClientTransport, clientTls } from "../src/net/tls-transport.js";
import { OsRandom } from "../src/net/os-random.js";
import { RealClock } from "../src/net/real-clock.js";
import { ALICE, startRealtimeCluster } from "../test/client/realtime-cluster.js";

const seconds = Number(process.argv[2] ?? 2);
const hsmCount = Number(process.argv[3] ?? 1);

function summary(name: string, samples: number[]): void {
  samples.sort((a, b) => a - b);
  console.log(`${name}: n=${samples.length} p50=${samples[samples.length >> 1].toFixed(0)} µs p90=${samples[Math.floor(samples.length * 0.9)].toFixed(0)} µs p99=${samples[Math.floor(samples.length * 0.99)].toFixed(0)} µs`);
}

const cluster = await startRealtimeCluster(hsmCount);
try {
  const transport = new ClientTransport({ tls: clientTls({ trustAnchorPem: cluster.trustAnchorPem }) });
  const client = new ClusterClient({ transport, clock: new RealClock(), rng: new OsRandom(), address: "bench", bootstrap: cluster.addresses[0] });
  await new Promise<void>((resolve, reject) => client.connect((e) => (e ? reject(e) : resolve())));
  const direct: number[] = [];
  const endMs = performance.now() + seconds * 1000;
  while (performance.now() < endMs) {
    const t = performance.now();
    await new Promise<void>((resolve, reject) => client.send({ kind: "call", method: "getTokenInfo", args: [0] }, { rule: "repeat" }, (e) => (e ? reject(e) : resolve())));
    direct.push((performance.now() - t) * 1000);
  }
  summary("C_GetTokenInfo, ClusterClient on this thread (TLS + codec + HSM)", direct);
  // A session call (the crypto user logged in), through ClusterChip on this thread.
  const chip = new ClusterChip(client);
  const call = (method: string, args: unknown[]) => new Promise<unknown>((resolve, reject) => chip.start(method, args, (e, v) => (e ? reject(e) : resolve(v))));
  const session = (await call("openSession", [0, CKF_SERIAL_SESSION])) as number;
  await call("login", [session, CKU_USER, Buffer.from(`${ALICE.username}:${ALICE.password}`)]);
  const sessionCalls: number[] = [];
  const end1 = performance.now() + seconds * 1000;
  while (performance.now() < end1) {
    const t = performance.now();
    await call("generateRandom", [session, Buffer.alloc(32)]);
    sessionCalls.push((performance.now() - t) * 1000);
  }
  summary("C_GenerateRandom 32 B, ClusterChip on this thread (TLS + codec + HSM session)", sessionCalls);
  console.log("client stats", JSON.stringify(client.stats));
  client.close();
  transport.close();

  const pkcs11 = load(`cloudhsm://${cluster.addresses[0]}?ca=${encodeURIComponent(cluster.trustAnchorPath)}`);
  pkcs11.C_Initialize();
  const slot = pkcs11.C_GetSlotList(true)[0];
  pkcs11.C_GetTokenInfo(slot);
  const bridged: number[] = [];
  const end2 = performance.now() + seconds * 1000;
  while (performance.now() < end2) {
    const t = performance.now();
    pkcs11.C_GetTokenInfo(slot);
    bridged.push((performance.now() - t) * 1000);
  }
  summary("C_GetTokenInfo, synchronous PKCS11 (bridge + the same)", bridged);
  const s2 = pkcs11.C_OpenSession(slot, CKF_SERIAL_SESSION);
  pkcs11.C_Login(s2, CKU_USER, `${ALICE.username}:${ALICE.password}`);
  const bridgedSession: number[] = [];
  const end3 = performance.now() + seconds * 1000;
  const out = Buffer.alloc(32);
  while (performance.now() < end3) {
    const t = performance.now();
    pkcs11.C_GenerateRandom(s2, out);
    bridgedSession.push((performance.now() - t) * 1000);
  }
  summary("C_GenerateRandom 32 B, synchronous PKCS11 (bridge + the same)", bridgedSession);
  pkcs11.close();
} finally {
  await cluster.stop();
}
