// An in-process real-time cluster for the remote client's tests: N HSMs (ClusterNode over
// src/net's HsmTransport, TLS 1.3 with certificates from a fresh cluster CA, RealClock), each
// on its own loopback address (127.0.R.2, 127.0.R.3, … on a random high port, so parallel
// tests do not collide). It runs in a worker thread of the test process (realtime-cluster.ts
// starts it), so the test's main thread can block in synchronous PKCS#11 calls as an
// application does while the HSMs keep serving.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parentPort, workerData } from "node:worker_threads";

import { DEFAULT_NODE } from "../../src/cluster/cluster.js";
import { ClusterNode } from "../../src/cluster/node.js";
import { Hsm, restoreHsm } from "../../src/hsm/hsm.js";
import { internalsOf } from "../../src/hsm/internals.js";
import { type CertificateAndKey, createClientCa, createClusterCa, issueClientCertificate, issueHsmCertificate } from "../../src/net/pki.js";
import { RealClock } from "../../src/net/real-clock.js";
import { HsmTransport, hsmTls } from "../../src/net/tls-transport.js";

async function host(hsmCount: number, mtls: boolean): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "hsmsim-remote-"));
  const ca = await createClusterCa({ commonName: "hsmsim remote-test cluster" });
  const trustAnchorPath = join(dir, "customerCA.crt");
  writeFileSync(trustAnchorPath, ca.certPem);
  // Mutual TLS as CloudHSM offers it: a client trust anchor registered on the cluster, enforcement on.
  const clientCa = mtls ? await createClientCa({ commonName: "hsmsim remote-test clients" }) : undefined;
  const clientFiles = clientCa ? { certPath: join(dir, "client.crt"), keyPath: join(dir, "client.key") } : undefined;
  if (clientCa && clientFiles) {
    const client = await issueClientCertificate(clientCa, { commonName: "remote-test application" });
    writeFileSync(clientFiles.certPath, client.certPem);
    writeFileSync(clientFiles.keyPath, client.keyPem, { mode: 0o600 });
  }
  const subnet = 100 + Math.floor(Math.random() * 150);
  const port = 20_000 + Math.floor(Math.random() * 40_000);
  const clusterId = `cluster-remote-${subnet}-${port}`;
  const hsms: Hsm[] = [];
  for (let i = 0; i < hsmCount; i++) {
    const hsmDir = join(dir, `hsm${i + 1}`);
    if (i === 0) hsms.push(Hsm.create(hsmDir, { origin: 1, passwordCost: 4 }));
    else {
      const source = internalsOf(hsms[0]);
      hsms.push(restoreHsm(hsmDir, source.snapshot(), (target) => source.chip.shareMaskingKey(0, target, 0), { origin: i + 1 }));
    }
  }
  const addresses = hsms.map((_, i) => `127.0.${subnet}.${2 + i}:${port}`);
  const members = hsms.map((hsm, i) => ({ hsmId: hsm.id, address: addresses[i], availabilityZone: `az-${"abc"[i % 3]}`, origin: i + 1 }));
  const nodes: ClusterNode[] = [];
  const transports: HsmTransport[] = [];
  for (let i = 0; i < hsmCount; i++) {
    const own: CertificateAndKey = await issueHsmCertificate(ca, { host: `127.0.${subnet}.${2 + i}`, port, hsmId: hsms[i].id });
    const config = { hsm: own, clusterCaPem: ca.certPem, clientCaPem: clientCa?.certPem, enforceMutualTls: mtls };
    const transport = await HsmTransport.listen({
      address: addresses[i],
      tls: hsmTls(config),
    });
    transports.push(transport);
    nodes.push(new ClusterNode(hsms[i], { ...DEFAULT_NODE, serviceTimeUs: () => 0, clusterId, address: addresses[i], availabilityZone: members[i].availabilityZone },
      transport, new RealClock()));
  }
  for (const node of nodes) node.setMembers(members, 1, Math.min(2, hsmCount), true, hsmCount);

  const stopped = new Set<number>();
  const kill = async (index: number) => {
    if (stopped.has(index)) return;
    stopped.add(index);
    nodes[index].stop();
    await transports[index].close();
  };
  parentPort!.on("message", async (command: { t: "kill"; index: number } | { t: "stop" }) => {
    if (command.t === "kill") {
      await kill(command.index);
      parentPort!.postMessage({ t: "killed", index: command.index });
      return;
    }
    for (let i = 0; i < hsmCount; i++) await kill(i);
    for (const hsm of hsms) hsm.close();
    rmSync(dir, { recursive: true, force: true });
    parentPort!.postMessage({ t: "stopped" });
    parentPort!.close();
  });
  parentPort!.postMessage({ t: "ready", addresses, trustAnchorPath, trustAnchorPem: ca.certPem, clientFiles });
}

host((workerData as { hsmCount: number }).hsmCount, (workerData as { mtls: boolean }).mtls).catch((e) => parentPort!.postMessage({ t: "failed", message: String(e?.stack ?? e) }));
