// The NAT / load-balancer anti-pattern, for real: a client bootstraps through a proxy that
// stands for a load balancer in front of one HSM, and the HSMs' own addresses (which the cluster
// advertises) are not routable from the client's network. It works, health() warns, and when
// the HSM behind the proxy dies the client cannot fail over, although the other HSMs are up:
// what CloudHSM's documentation warns about. HSMs are real ClusterNodes on TLS (the wire
// engineer's fixture); the client is the real ClusterClient on ClientTransport.
import * as tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FaultProxy } from "../../src/net/fault-proxy.js";
import { applicationTlsOptions, toTlsError } from "../../src/net/tls-options.js";
import { ClientTransport } from "../../src/net/tls-transport.js";
import { ClusterClient } from "../../src/client/client.js";
import { OsRandom } from "../../src/net/os-random.js";
import { RealClock } from "../../src/net/real-clock.js";
import { ALICE, CO, type TestCluster, activate, freePort, sessionContext, startClient, startCluster, until } from "../net/fixture.js";
import type { RequestOp } from "../../src/cluster/protocol.js";

describe("a client behind NAT / a load balancer", () => {
  let cluster: TestCluster;
  let proxy: FaultProxy;
  beforeAll(async () => {
    cluster = await startCluster({ hsms: 3, firstHost: 40 });
    // The "load balancer": on HSM 1's host (so the certificate's IP SAN matches, as a real LB's
    // name would have to be in the HSMs' certificates), forwarding to HSM 1 only.
    proxy = await FaultProxy.start({ listen: `${cluster.hsms[0].host}:0`, target: cluster.hsms[0].address });
    const direct = await startClient(cluster.hsms[0].address, cluster.ca.certPem);
    await activate(direct);
    direct.close();
  });
  afterAll(async () => {
    await proxy?.close();
    await cluster?.stop();
  });

  it("works through the proxy, warns, and cannot fail over when the HSM behind it dies", async () => {
    // The client's network has no route to the HSMs' own addresses: connecting there fails
    // (to a closed port on the client's side), as an unroutable private address would.
    const noRoute = `127.0.0.1:${await freePort("127.0.0.1")}`;
    const advertised = new Set(cluster.members.map((m) => m.address));
    const attempted: string[] = [];
    const transport = new ClientTransport({
      tls: {
        connect(address): tls.ConnectionOptions {
          attempted.push(address);
          if (advertised.has(address)) return { ...applicationTlsOptions({ address: noRoute, trustAnchorPem: cluster.ca.certPem }) };
          return applicationTlsOptions({ address, trustAnchorPem: cluster.ca.certPem });
        },
        describeError: (error, address) => toTlsError(error, { address, trustAnchorPem: cluster.ca.certPem }),
      },
    });
    const client = new ClusterClient({
      transport, clock: new RealClock(), rng: new OsRandom(), address: "app-behind-lb", bootstrap: proxy.address,
      requestTimeoutUs: 1_000_000, writeTimeoutUs: 3_000_000, heartbeatIntervalUs: 300_000,
    });
    const send = (op: RequestOp) => new Promise<unknown>((resolve, reject) => client.send(op, { rule: "repeat" }, (e, v) => (e ? reject(e) : resolve(v))));
    try {
      await new Promise<void>((resolve, reject) => client.connect((e) => (e ? reject(e) : resolve())));
      // It learned the three advertised addresses, none of them the proxy's.
      expect(client.health().members.map((m) => m.address).sort()).toEqual([...advertised].sort());

      // It works: through the proxy, as a gateway.
      const alice = `${ALICE.username}:${ALICE.password}`;
      for (let i = 0; i < 5; i++) {
        const value = (await send({ kind: "call", method: "generateRandom", args: [1, 32], session: sessionContext(1, alice) })) as { output: Buffer };
        expect(value.output.length).toBe(32);
      }
      const users = (await send({ kind: "manage", method: "listUsers", username: CO.username, password: CO.password, args: [] })) as { username: string }[];
      expect(users.map((u) => u.username)).toContain(ALICE.username);
      expect(proxy.stats.bytesToTarget).toBeGreaterThan(0);
      expect(attempted.filter((a) => advertised.has(a)).length).toBeGreaterThan(0); // it did try the real addresses

      // It warns: the advertised addresses never answered.
      await until(() => client.health().warnings.length > 0, "a NAT / load-balancer warning in health()");
      const health = client.health();
      expect(health.members.every((m) => m.status === "unreachable")).toBe(true);
      expect(health.warnings[0]).toMatch(/NAT or a load balancer/);
      expect(health.warnings[0]).toContain(cluster.members[1].address);

      // The HSM behind the proxy dies; the other two are up and serve a client that can reach them.
      cluster.hsms[0].node.stop();
      await cluster.hsms[0].transport.close();
      const direct = await startClient(cluster.hsms[1].address, cluster.ca.certPem);
      try {
        const value = (await direct.send({ kind: "call", method: "generateRandom", args: [1, 8], session: sessionContext(1, alice) }, { pinned: cluster.hsms[2].address, rule: "repeat" })) as { output: Buffer };
        expect(value.output.length).toBe(8);
      } finally {
        direct.close();
      }
      // ...but the client behind the load balancer cannot fail over to them.
      let failure: unknown;
      try {
        await send({ kind: "call", method: "generateRandom", args: [1, 8], session: sessionContext(1, alice) });
      } catch (e) {
        failure = e;
      }
      expect(failure).toBeInstanceOf(Error);
      expect((failure as { code?: string }).code).toBe("NO_REACHABLE_HSM");
      expect(String((failure as Error).message)).toMatch(/NAT or a load balancer/);
    } finally {
      client.close();
      transport.close();
    }
  });
});
