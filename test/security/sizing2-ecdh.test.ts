// Second red team, issue 10: an ECDH derive with a P-384 key was priced as P-256 (the README: "EC
// operations with the cube of the curve's size against P-256"; ECDSA and EC key generation were scaled, ECDH was not).
import { describe, expect, it } from "vitest";

import { OPERATION_CLASSES, type OperationClass, type ServiceProfile, profileServiceTime } from "../../src/cluster/service-profile.js";
import * as P from "../../src/pkcs11/index.js";
import { Rng } from "../../src/sim/random.js";
import { ALICE, activeWorld } from "../cluster/fixture.js";

describe("ECDH pricing by curve", () => {
  it("prices an ECDH derive with a P-384 key dearer than one with a P-256 key", () => {
    const deriveUs = 10_000;
    const costs = Object.fromEntries(OPERATION_CLASSES.map((c) => [c, { serviceUs: c === "ecdh-p256-derive" ? deriveUs : 0, perKiBUs: 0, contention: 0, coherency: 0 }]));
    const profile: ServiceProfile = { type: "t", engines: 1, queueCapacity: 256, timeDilation: 1, distribution: "fixed", costs: costs as Record<OperationClass, never> };
    const world = activeWorld({ seed: "red2-ecdh", cluster: { hsmCount: 1, node: { serviceTimeUs: profileServiceTime(profile, new Rng("red2-ecdh/s")), engines: 1, queueCapacity: 256 } } });
    const pkcs11 = world.connect("app").pkcs11();
    const session = pkcs11.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    pkcs11.C_Login(session, P.CKU_USER, `${ALICE.username}:${ALICE.password}`);
    const pairOf = (oid: string) => pkcs11.C_GenerateKeyPair(session, { mechanism: P.CKM_EC_KEY_PAIR_GEN },
      [{ type: P.CKA_EC_PARAMS, value: Buffer.from(oid, "hex") }], [{ type: P.CKA_DERIVE, value: true }]);
    const deriveTime = (oid: string) => {
      const base = pairOf(oid), peer = pairOf(oid);
      const [{ value: point }] = pkcs11.C_GetAttributeValue(session, peer.publicKey, [{ type: P.CKA_EC_POINT }]);
      const before = world.clock.nowUs();
      pkcs11.C_DeriveKey(session, { mechanism: P.CKM_ECDH1_DERIVE, parameter: { type: P.CK_PARAMS_EC_DH, kdf: P.CKD_SHA256_KDF, publicData: point } }, base.privateKey,
        [{ type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES }, { type: P.CKA_VALUE_LEN, value: 16 }]);
      return world.clock.nowUs() - before;
    };
    const t256 = deriveTime("06082a8648ce3d030107"), t384 = deriveTime("06052b81040022");
    // (384/256)^3 = 3.375 derives' worth of engine time, less a margin for the network's jitter.
    expect(t384 - t256).toBeGreaterThan(2 * deriveUs);
  });
});
