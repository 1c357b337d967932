// Partitions and a slow HSM through fault proxies, with each HSM in its own process behind a
// proxy standing on its cluster address (every connection to it, from clients and from its
// peers, goes through that proxy). A client may also reach an HSM directly (behind its proxy),
// which turns "blackhole every proxy" into a partition between the HSMs only.
import * as tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { ClusterClient } from "../../src/client/client.js";
import type { RequestOp } from "../../src/cluster/protocol.js";
import { OsRandom } from "../../src/net/os-random.js";
import { RealClock } from "../../src/net/real-clock.js";
import { applicationTlsOptions, toTlsError } from "../../src/net/tls-options.js";
import { ClientTransport } from "../../src/net/tls-transport.js";
import { ALICE, CO, activate, sessionContext, startClient, until } from "../net/fixture.js";
import { type FaultCluster, startFaultCluster } from "./harness/cluster.js";

const alice = `${ALICE.username}:${ALICE.password}`;
const random: RequestOp = { kind: "call", method: "generateRandom", args: [1, 16], session: sessionContext(1, alice) };
const listUsers: RequestOp = { kind: "manage", method: "listUsers", username: CO.username, password: CO.password, args: [] };
const createUser = (name: string): RequestOp => ({ kind: "manage", method: "createUser", username: CO.username, password: CO.password, args: [name, "CU", "initial-password-1"] });

interface Client {
  client: ClusterClient;
  send(op: RequestOp, options?: { pinned?: string; rule?: "repeat" | "fail" }): Promise<unknown>;
  close(): void;
}

let clientCount = 0;
/** A ClusterClient; `direct` HSM addresses are reached behind their proxies (the TLS check stays on the cluster address). */
async function client(cluster: FaultCluster, direct: boolean): Promise<Client> {
  const behind = new Map(cluster.hsms.map((h) => [h.address, h.bindAddress]));
  const trustAnchorPem = cluster.ca.certPem;
  const transport = new ClientTransport({
    tls: {
      connect(address): tls.ConnectionOptions {
        const options = applicationTlsOptions({ address, trustAnchorPem });
        const bind = direct ? behind.get(address) : undefined;
        return bind === undefined ? options : { ...options, host: bind.slice(0, bind.lastIndexOf(":")) };
      },
      describeError: (error, address) => toTlsError(error, { address, trustAnchorPem }),
    },
  });
  const c = new ClusterClient({
    transport, clock: new RealClock(), rng: new OsRandom(), address: `partition-app-${++clientCount}`, bootstrap: cluster.members[0].address,
    requestTimeoutUs: 1_000_000, writeTimeoutUs: 3_000_000, heartbeatIntervalUs: 300_000,
  });
  await new Promise<void>((resolve, reject) => c.connect((e) => (e ? reject(e) : resolve())));
  return {
    client: c,
    send: (op, options = {}) => new Promise((resolve, reject) => c.send(op, { rule: options.rule ?? "repeat", pinned: options.pinned }, (e, v) => (e ? reject(e) : resolve(v)))),
    close: () => {
      c.close();
      transport.close();
    },
  };
}

async function usersOn(c: Client, address: string): Promise<string[]> {
  return ((await c.send(listUsers, { pinned: address })) as { username: string }[]).map((u) => u.username);
}

async function eventuallyEverywhere(c: Client, cluster: FaultCluster, name: string): Promise<void> {
  for (const h of cluster.hsms) {
    let listed: string[] = [];
    const deadline = Date.now() + 30_000;
    while (!listed.includes(name) && Date.now() < deadline) {
      listed = await usersOn(c, h.address).catch(() => []);
      if (!listed.includes(name)) await new Promise((r) => setTimeout(r, 300));
    }
    expect(listed, `${name} on ${h.address}`).toContain(name);
  }
}

describe("partitions and a slow HSM through fault proxies", () => {
  let cluster: FaultCluster;
  beforeAll(async () => {
    cluster = await startFaultCluster({ hsms: 3, firstHost: 80, keyAvailabilityMin: 2, proxied: true });
    const setup = await startClient(cluster.members[0].address, cluster.ca.certPem);
    await activate(setup);
    setup.close();
    // A write returns once on keyAvailabilityMin HSMs: wait until alice is on the third too, or a
    // fresh client's first login there can race her replication (CKR_PIN_INCORRECT, seen under load).
    const check = await client(cluster, false);
    try {
      await eventuallyEverywhere(check, cluster, ALICE.username);
    } finally {
      check.close();
    }
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
    cluster?.remove();
  });
  const heal = () => Promise.all(cluster.hsms.map((h) => h.proxy!.heal()));

  it("client ↔ HSM: with one HSM cut off, calls fail over with no error; it is suspect, then back after heal", async () => {
    const c = await client(cluster, false);
    try {
      for (let i = 0; i < 5; i++) await c.send(random);
      const cut = cluster.hsms[1];
      await cut.proxy!.blackhole();
      // Every call succeeds, including those the client first sends to the cut HSM.
      for (let i = 0; i < 30; i++) expect(((await c.send(random)) as { output: Buffer }).output.length).toBe(16);
      await until(() => c.client.health().members.find((m) => m.address === cut.address)?.status !== "ok", "the cut HSM marked suspect");
      await heal();
      await until(() => c.client.health().members.find((m) => m.address === cut.address)?.status === "ok", "the healed HSM answering again");
      expect(((await c.send(random, { pinned: cut.address })) as { output: Buffer }).output.length).toBe(16);
    } finally {
      c.close();
      await heal();
    }
  }, 120_000);

  it("HSM ↔ HSM: a full partition between the HSMs refuses writes it cannot replicate; after heal the cluster converges", async () => {
    const c = await client(cluster, true); // reaches every HSM behind its proxy: only HSM-to-HSM traffic is cut
    try {
      await c.send(createUser("before_partition"));
      await eventuallyEverywhere(c, cluster, "before_partition");
      await Promise.all(cluster.hsms.map((h) => h.proxy!.blackhole()));
      // Reads and crypto are served by each HSM on its own.
      for (const h of cluster.hsms) expect(((await c.send(random, { pinned: h.address })) as { output: Buffer }).output.length).toBe(16);
      // A change cannot reach keyAvailabilityMin = 2 HSMs: refused, visibly.
      let refused: unknown;
      try {
        await c.send(createUser("during_partition"), { pinned: cluster.hsms[0].address, rule: "fail" });
      } catch (e) {
        refused = e;
      }
      expect(refused, "a write during a full partition").toBeInstanceOf(Error);
      expect((refused as Error).message).toMatch(/key availability: the change is on 1 of the 2 HSMs required/);
      await heal();
      // It stands where it was made and spreads once the partition heals; new writes work again.
      await c.send(createUser("after_partition"));
      await eventuallyEverywhere(c, cluster, "after_partition");
      await eventuallyEverywhere(c, cluster, "during_partition");
    } finally {
      c.close();
      await heal();
    }
  }, 180_000);

  it("a slow HSM (latency) and a slow link between HSMs (bandwidth): calls and writes still succeed, replication converges", async () => {
    const c = await client(cluster, false);
    try {
      const slow = cluster.hsms[2];
      await slow.proxy!.latency(150, 20); // each way
      const start = performance.now();
      await c.send(random, { pinned: slow.address });
      expect(performance.now() - start).toBeGreaterThanOrEqual(300); // a lower bound only: the proxy cannot be faster than its delay
      for (let i = 0; i < 20; i++) expect(((await c.send(random)) as { output: Buffer }).output.length).toBe(16);
      await c.send(createUser("with_slow_hsm"));
      await eventuallyEverywhere(c, cluster, "with_slow_hsm");
      await slow.proxy!.heal();
      for (const h of cluster.hsms) await h.proxy!.bandwidth(20_000);
      await c.send(createUser("over_slow_links"));
      await eventuallyEverywhere(c, cluster, "over_slow_links");
    } finally {
      c.close();
      await heal();
    }
  }, 180_000);
});
