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

  it("prices a sign with an RSA-3072 key dearer than one with an RSA-2048 key (not both as RSA-2048)", () => {
    const signUs = 10_000;
    const world = profiledWorld(profile({ "rsa-2048-sign": { serviceUs: signUs } }));
    const pkcs11 = world.connect("app").pkcs11();
    const session = pkcs11.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    pkcs11.C_Login(session, P.CKU_USER, `${ALICE.username}:${ALICE.password}`);
    const keyOf = (bits: number) => pkcs11.C_GenerateKeyPair(session, { mechanism: P.CKM_RSA_PKCS_KEY_PAIR_GEN },
      [{ type: P.CKA_MODULUS_BITS, value: bits }, { type: P.CKA_VERIFY, value: true }],
      [{ type: P.CKA_SIGN, value: true }]).privateKey;
    const k2048 = keyOf(2048), k3072 = keyOf(3072);
    const signTime = (key: typeof k2048, bytes: number) => {
      pkcs11.C_SignInit(session, { mechanism: P.CKM_SHA256_RSA_PKCS }, key);
      const before = world.clock.nowUs();
      pkcs11.C_Sign(session, Buffer.alloc(32, 1), Buffer.alloc(bytes));
      return world.clock.nowUs() - before;
    };
    const t2048 = signTime(k2048, 256), t3072 = signTime(k3072, 384);
    // (3072/2048)^3 = 3.375 signs' worth of engine time, less a margin for the network's jitter.
    expect(t3072 - t2048).toBeGreaterThan(2 * signUs);
  });

  it("prices an ECDSA sign with a P-384 key dearer than one with a P-256 key", () => {
    const signUs = 10_000;
    const world = profiledWorld(profile({ "ecdsa-p256-sign": { serviceUs: signUs } }));
    const pkcs11 = world.connect("app").pkcs11();
    const session = pkcs11.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    pkcs11.C_Login(session, P.CKU_USER, `${ALICE.username}:${ALICE.password}`);
    const keyOf = (oid: string) => pkcs11.C_GenerateKeyPair(session, { mechanism: P.CKM_EC_KEY_PAIR_GEN },
      [{ type: P.CKA_EC_PARAMS, value: Buffer.from(oid, "hex") }, { type: P.CKA_VERIFY, value: true }],
      [{ type: P.CKA_SIGN, value: true }]).privateKey;
    const p256 = keyOf("06082a8648ce3d030107"), p384 = keyOf("06052b81040022");
    const signTime = (key: typeof p256) => {
      pkcs11.C_SignInit(session, { mechanism: P.CKM_ECDSA }, key);
      const before = world.clock.nowUs();
      pkcs11.C_Sign(session, Buffer.alloc(32, 1), Buffer.alloc(96));
      return world.clock.nowUs() - before;
    };
    const t256 = signTime(p256), t384 = signTime(p384);
    // (384/256)^3 = 3.375 signs' worth of engine time, less a margin for the network's jitter.
    expect(t384 - t256).toBeGreaterThan(2 * signUs);
  });

  it("prices an RSA-3072 key-pair generation dearer than an RSA-2048 one, and a P-384 one dearer than P-256", () => {
    const genUs = 10_000;
    const world = profiledWorld(profile({ "rsa-2048-keygen": { serviceUs: genUs }, "ec-p256-keygen": { serviceUs: genUs } }));
    const pkcs11 = world.connect("app").pkcs11();
    const session = pkcs11.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    pkcs11.C_Login(session, P.CKU_USER, `${ALICE.username}:${ALICE.password}`);
    const time = (mechanism: number, attribute: { type: number; value: number | Buffer }) => {
      const before = world.clock.nowUs();
      pkcs11.C_GenerateKeyPair(session, { mechanism }, [attribute, { type: P.CKA_VERIFY, value: true }], [{ type: P.CKA_SIGN, value: true }]);
      return world.clock.nowUs() - before;
    };
    const r2048 = time(P.CKM_RSA_PKCS_KEY_PAIR_GEN, { type: P.CKA_MODULUS_BITS, value: 2048 });
    const r3072 = time(P.CKM_RSA_PKCS_KEY_PAIR_GEN, { type: P.CKA_MODULUS_BITS, value: 3072 });
    expect(r3072 - r2048).toBeGreaterThan(2 * genUs); // (1.5)^4 ≈ 5 generations' worth
    const e256 = time(P.CKM_EC_KEY_PAIR_GEN, { type: P.CKA_EC_PARAMS, value: Buffer.from("06082a8648ce3d030107", "hex") });
    const e384 = time(P.CKM_EC_KEY_PAIR_GEN, { type: P.CKA_EC_PARAMS, value: Buffer.from("06052b81040022", "hex") });
    expect(e384 - e256).toBeGreaterThan(2 * genUs); // (1.5)^3 ≈ 3.4
  });
});
