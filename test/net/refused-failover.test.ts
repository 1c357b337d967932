// A request the transport never sent is not an unknown outcome. The transport holds what is sent
// on a connection until its TLS handshake completes; a connection refused, or a handshake that
// failed, delivered none of it, so the client may send even a write elsewhere: an application whose
// client still lists an HSM that was just removed or killed gets its key, not OUTCOME_UNKNOWN.
// A write the HSM may have received is still never repeated.
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { ClientTransport } from "../../src/net/client-transport.js";
import { RealClock } from "../../src/net/real-clock.js";
import { createClusterCa } from "../../src/net/pki.js";
import { clientTls } from "../../src/net/tls-transport.js";
import { ClusterClient } from "../../src/client/client.js";
import { internalsOf } from "../../src/hsm/internals.js";
import type { RequestOp } from "../../src/cluster/protocol.js";
import type { Clock } from "../../src/runtime/clock.js";
import { type TestCluster, activate, createKeyOp, firstChoice, freePort, sessionContext, startClient, startCluster, until } from "./fixture.js";

let labels = 0;

/** A client like the worker's (refused connections reported to it), with a rigged choice and short timeouts. */
async function riggedClient(bootstrap: string, trustAnchorPem: string, clock: Clock = new RealClock()) {
  const errors: Error[] = [];
  const transport = new ClientTransport({
    tls: clientTls({ trustAnchorPem }),
    onError: (e, address, undelivered) => {
      errors.push(e);
      client.unreachable(address, undelivered);
    },
  });
  const client: ClusterClient = new ClusterClient({
    transport, clock, rng: firstChoice, address: `rigged-${++labels}`, bootstrap,
    requestTimeoutUs: 2_000_000, writeTimeoutUs: 1_500_000, heartbeatIntervalUs: 60_000_000,
  });
  await new Promise<void>((resolve, reject) => client.connect((e) => (e ? reject(e) : resolve())));
  const send = (op: RequestOp, pinned?: string) => new Promise<unknown>((resolve, reject) => {
    client.send(op, { rule: "fail", pinned }, (e, v) => (e ? reject(e) : resolve(v)));
  });
  return { client, transport, errors, send, close: () => { client.close(); transport.close(); } };
}

describe("a request the transport never sent", () => {
  let cluster: TestCluster;
  /** The methods whose next call waits a minute in its HSM (each once). */
  let slowOnce = new Set<string>();
  const keysOn = (i: number) => internalsOf(cluster.hsms[i].node.hsm).keyIds.size;
  const stopHsm = async (i: number) => {
    cluster.hsms[i].node.stop();
    await cluster.hsms[i].transport.close();
  };

  beforeAll(async () => {
    cluster = await startCluster({
      hsms: 3, keyAvailabilityMin: 2, firstHost: 40,
      node: { serviceTimeUs: (op) => (op.kind === "call" && slowOnce.delete(op.method) ? 60_000_000 : 0) },
    });
    const c = await startClient(cluster.hsms[0].address, cluster.ca.certPem);
    await activate(c);
    c.close();
  }, 60_000);
  afterAll(() => cluster?.stop());

  it("ClientTransport reports the very messages a refused connection or a refused handshake held, and none it may have sent", async () => {
    const reports: { error: Error; address: string; undelivered: readonly unknown[] }[] = [];
    const transport = new ClientTransport({ tls: clientTls({ trustAnchorPem: cluster.ca.certPem }), onError: (error, address, undelivered) => reports.push({ error, address, undelivered }) });
    const answers: unknown[] = [];
    transport.attach("app", (_from, message) => answers.push(message));
    try {
      const nobody = `127.0.0.1:${await freePort("127.0.0.1")}`;
      const first = { t: "req", id: 1, conn: "c", op: { kind: "hello" }, after: [] };
      const second = { t: "req", id: 2, conn: "c", op: { kind: "hello" }, after: [] };
      transport.send("app", nobody, first);
      transport.send("app", nobody, second);
      await until(() => reports.length === 1, "the refused connection reported");
      expect(reports[0].address).toBe(nobody);
      expect(reports[0].error.message).toMatch(/ECONNREFUSED/);
      expect(reports[0].undelivered).toHaveLength(2);
      expect(reports[0].undelivered[0]).toBe(first);
      expect(reports[0].undelivered[1]).toBe(second);

      // A live HSM whose certificate this transport does not trust: the handshake fails, nothing was sent.
      const foreign = await createClusterCa({ commonName: "not this cluster" });
      const distrustful = new ClientTransport({ tls: clientTls({ trustAnchorPem: foreign.certPem }), onError: (error, address, undelivered) => reports.push({ error, address, undelivered }) });
      distrustful.attach("app", () => {});
      const servedBefore = cluster.hsms[1].node.stats.served;
      const third = { t: "req", id: 3, conn: "c", op: { kind: "hello" }, after: [] };
      distrustful.send("app", cluster.hsms[1].address, third);
      await until(() => reports.length === 2, "the refused handshake reported");
      expect(reports[1].undelivered).toEqual([third]);
      expect(reports[1].undelivered[0]).toBe(third);
      expect(cluster.hsms[1].node.stats.served).toBe(servedBefore); // the HSM got nothing from it
      distrustful.close();

      // A connection that completed its handshake: what was written may have arrived, so a later failure reports nothing as unsent.
      transport.send("app", cluster.hsms[1].address, { t: "req", id: 4, conn: "c", op: { kind: "hello" }, after: [] });
      await until(() => answers.length === 1, "the hello answered");
      expect(cluster.hsms[1].node.stats.served).toBe(servedBefore + 1);
      expect(reports).toHaveLength(2);
    } finally {
      transport.close();
    }
  }, 30_000);

  it("a write the client routes to a stopped HSM is sent to another and succeeds; pinned to it, HSM_UNREACHABLE, never OUTCOME_UNKNOWN", async () => {
    await stopHsm(0);
    const c = await riggedClient(cluster.hsms[1].address, cluster.ca.certPem);
    try {
      expect(c.client.isMember(cluster.hsms[0].address)).toBe(true); // the cluster still lists it: the client's view lags, as after a remove
      const before = [keysOn(1), keysOn(2)];
      await c.send(createKeyOp(`refused-${++labels}`)); // first choice: HSM 0, refused
      expect(c.client.stats.undelivered).toBe(1);
      expect(c.client.stats.failovers).toBe(1);
      expect(c.errors.some((e) => e.message.includes(cluster.hsms[0].address))).toBe(true);
      await until(() => keysOn(1) === before[0] + 1 && keysOn(2) === before[1] + 1, "the key on both live HSMs");
      expect([keysOn(1), keysOn(2)]).toEqual([before[0] + 1, before[1] + 1]); // made once, not twice

      const pinned = await c.send(createKeyOp(`refused-${++labels}`), cluster.hsms[0].address).then(() => null, (e: Error & { code?: string }) => e);
      expect(pinned?.code).toBe("HSM_UNREACHABLE");
      expect(pinned?.message).toMatch(/not sent/);
      expect([keysOn(1), keysOn(2)]).toEqual([before[0] + 1, before[1] + 1]);
    } finally {
      c.close();
    }
  }, 30_000);

  it("an HSM that dies with a write and a read in service: the write ends OUTCOME_UNKNOWN and is not repeated, the read fails over — both at once, no timeout involved", async () => {
    // A clock that runs what is due now and nothing later: any request that ends here ended without a timeout.
    const pending: (() => void)[] = [];
    const standing: Clock = { nowUs: () => 0, schedule: (delayUs, fn) => (delayUs === 0 ? void setImmediate(fn) : void pending.push(fn), 0), cancel: () => {} };
    const c = await riggedClient(cluster.hsms[1].address, cluster.ca.certPem, standing);
    try {
      // HSMs 1 and 2 answer once (equally idle now); HSM 0, never heard from, looks idlest.
      for (const i of [1, 2]) await c.send({ kind: "call", method: "generateRandom", args: [1, 8], session: sessionContext(1, null) }, cluster.hsms[i].address);
      const onSurvivor = keysOn(2);
      const held = () => { const n = cluster.hsms[1].node as unknown as { busyEngines: number; queue: unknown[] }; return n.busyEngines + n.queue.length; };
      slowOnce = new Set(["createObject", "generateRandom"]);
      // Unpinned: HSM 0 (first choice) refuses it, HSM 1 (first of the two left) takes it and holds it.
      const read = new Promise<unknown>((resolve) => c.client.send({ kind: "call", method: "generateRandom", args: [1, 8], session: sessionContext(1, null) }, { rule: "repeat" }, (e, v, from) => resolve(e ?? { value: v, from })));
      await until(() => held() === 1, "the read in HSM 1");
      const write = c.send(createKeyOp(`refused-${++labels}`), cluster.hsms[1].address).then(() => null, (e: Error & { code?: string }) => e);
      await until(() => held() === 2, "the create and the read in HSM 1");
      await stopHsm(1);
      const error = await write;
      expect(error?.code).toBe("OUTCOME_UNKNOWN");
      const answered = (await read) as { value: { output: Buffer }; from: string };
      expect(answered.from).toBe(cluster.hsms[2].address);
      expect(answered.value.output).toHaveLength(8);
      expect(c.errors.some((e) => (e as { code?: string }).code === "CONNECTION_LOST")).toBe(true);
      expect(keysOn(2)).toBe(onSurvivor); // the write was not repeated on the survivor
    } finally {
      slowOnce = new Set();
      c.close();
    }
  }, 30_000);
});
