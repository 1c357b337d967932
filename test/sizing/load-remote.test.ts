// The load generator in real time, over the remote client (its worker thread, TLS to a
// real-time cluster on loopback): the same code the measured runs use. No timing is asserted
// (a shared machine), only that every operation of each kind completes through the callback forms.
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { RemoteLink } from "../../src/client/remote/link.js";
import { RealClock } from "../../src/net/real-clock.js";
import { PKCS11 } from "../../src/pkcs11/pkcs11.js";
import { Rng } from "../../src/sim/random.js";
import { type LoadResult, asyncChipOf, loadOperation, prepareLoad, startLoad } from "../../src/sizing/load.js";
import { ALICE, type RealtimeCluster, startRealtimeCluster } from "../client/realtime-cluster.js";

let cluster: RealtimeCluster;

beforeAll(async () => {
  cluster = await startRealtimeCluster(2);
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

describe("load generator over the remote client, in real time", () => {
  it("a closed-loop mix completes through the chip's callback forms, every operation accounted for", async () => {
    const link = new RemoteLink({ kind: "cluster", bootstrap: cluster.addresses[0], trustAnchorPem: cluster.trustAnchorPem });
    const native = link.chip();
    const pkcs11 = new PKCS11(native);
    pkcs11.C_Initialize();
    try {
      const operations = [loadOperation("ecdsa-p256-sign"), loadOperation("aes-gcm-1k"), loadOperation("hmac-64b"), loadOperation("rsa-2048-sign")];
      const prepared = prepareLoad(pkcs11, { ...ALICE, sessions: 4, operations });
      const result = await new Promise<LoadResult>((resolve) => {
        startLoad({ chip: asyncChipOf(native), clock: new RealClock(), random: new Rng("remote-load"), prepared, operations,
          mode: { kind: "closed", concurrency: 4 }, durationUs: 400_000, warmUpUs: 100_000, windowUs: 100_000 }, resolve);
      });
      expect(result.failed).toBe(0);
      expect(result.unfinished).toBe(0);
      for (const op of operations) expect(result.byOperation[op.name].completed, op.name).toBeGreaterThan(0);
      expect(result.latency!.p99Ms).toBeGreaterThan(0);
      expect(result.timeline).toHaveLength(5);
    } finally {
      pkcs11.C_Finalize();
      pkcs11.close();
    }
  }, 60_000);
});
