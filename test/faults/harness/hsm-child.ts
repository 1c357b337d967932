// One HSM in its own process for the fault tests: opens its data folder, serves the cluster
// protocol over TLS on its address (ClusterNode on HsmTransport and RealClock), says "ready" on
// stdout, and stops cleanly on SIGTERM. Stands in for the processes engineer's hsm-process.ts
// where that is not usable yet (see cluster.ts); the same cluster code runs in both.
import { DEFAULT_NODE } from "../../../src/cluster/cluster.js";
import { ClusterNode, type Member } from "../../../src/cluster/node.js";
import { Hsm } from "../../../src/hsm/hsm.js";
import { RealClock } from "../../../src/net/real-clock.js";
import { HsmTransport, hsmTls } from "../../../src/net/tls-transport.js";

export interface HsmChildConfig {
  dir: string;
  clusterId: string;
  address: string;
  /** Bind here instead of the address's host (a proxy then stands on the address). */
  bindHost?: string;
  availabilityZone: string;
  certPem: string;
  keyPem: string;
  caPem: string;
  members: Member[];
  keyAvailabilityMin: number;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? "") as HsmChildConfig;
  const hsm = Hsm.open(config.dir);
  const transport = await HsmTransport.listen({ address: config.address, bindHost: config.bindHost, tls: hsmTls({ hsm: { certPem: config.certPem, keyPem: config.keyPem }, clusterCaPem: config.caPem }) });
  const node = new ClusterNode(hsm, { ...DEFAULT_NODE, serviceTimeUs: () => 0, clusterId: config.clusterId, address: config.address, availabilityZone: config.availabilityZone }, transport, new RealClock());
  const maxOrigin = Math.max(...config.members.map((m) => m.origin));
  node.setMembers(config.members, 1, config.keyAvailabilityMin, true, maxOrigin);
  process.stdout.write(`ready ${hsm.id}\n`);
  const stop = () => {
    node.stop();
    void transport.close().finally(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  // The parent (the test) gone: go too, never an orphan HSM.
  process.stdin.on("end", stop);
  process.stdin.resume();
}

main().catch((e: unknown) => {
  process.stderr.write(`hsm-child failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(3);
});
