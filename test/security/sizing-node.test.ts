// Red team, issue 10: a hostile client against a profiled HSM's engine queue.
import { describe, expect, it } from "vitest";

import { type OperationClass, OPERATION_CLASSES, type ServiceProfile, profileServiceTime } from "../../src/cluster/service-profile.js";
import { MAX_CALL_BUFFER_BYTES } from "../../src/cluster/protocol.js";
import * as P from "../../src/pkcs11/index.js";
import type { World } from "../../src/sim/world.js";
import { Rng } from "../../src/sim/random.js";
import { ALICE, activeWorld } from "../cluster/fixture.js";

function profile(costs: Partial<Record<OperationClass, { serviceUs: number; perKiBUs?: number }>>, overrides: Partial<ServiceProfile> = {}): ServiceProfile {
  const all = Object.fromEntries(OPERATION_CLASSES.map((c) => [c, { serviceUs: costs[c]?.serviceUs ?? 0, perKiBUs: costs[c]?.perKiBUs ?? 0, contention: 0, coherency: 0 }]));
  return { type: "test", engines: 1, queueCapacity: 256, timeDilation: 1, distribution: "fixed", costs: all as ServiceProfile["costs"], ...overrides };
}

function profiledWorld(p: ServiceProfile): World {
  return activeWorld({ seed: "red-queue", cluster: { hsmCount: 1, node: { serviceTimeUs: profileServiceTime(p, new Rng("red-queue/service")), engines: p.engines, queueCapacity: p.queueCapacity } } });
}

describe("a profiled HSM's queue against large requests", () => {
  it("does not hold queueCapacity × 16 MiB of request buffers: past a byte bound it answers busy", () => {
    // A slow digest (a dilated profile): the queue drains far slower than a client fills it.
    const world = profiledWorld(profile({ digest: { serviceUs: 1_000_000 } }));
    const pkcs11 = world.connect("app").pkcs11();
    const first = pkcs11.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    pkcs11.C_Login(first, P.CKU_USER, `${ALICE.username}:${ALICE.password}`);
    const sessions = [first];
    for (let i = 1; i < 6; i++) sessions.push(pkcs11.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION));
    for (const s of sessions) pkcs11.C_DigestInit(s, { mechanism: P.CKM_SHA256 });
    const big = Buffer.alloc(MAX_CALL_BUFFER_BYTES);
    for (const s of sessions) pkcs11.C_Digest(s, big, Buffer.alloc(32), () => {});
    world.run(100_000); // the requests have arrived; the first is still in service
    const node = world.cluster.liveNodes()[0];
    // Six 16 MiB calls on a queue of 256: the HSM takes at most four calls' worth of bytes.
    expect(node.stats.busy).toBeGreaterThan(0);
  });
});
