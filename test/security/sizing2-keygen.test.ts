// Second red team, issue 10: the client's key-pair generation timeout (30 s) against a profile that
// prices RSA key generation as the fourth power of the size: an RSA-3072 generation whose modelled
// time is past 30 s always timed out (and the HSM made the key pair all the same).
import { describe, expect, it } from "vitest";

import { OPERATION_CLASSES, type OperationClass, type ServiceProfile, profileServiceTime } from "../../src/cluster/service-profile.js";
import * as P from "../../src/pkcs11/index.js";
import { Rng } from "../../src/sim/random.js";
import { ALICE, activeWorld } from "../cluster/fixture.js";

describe("key-pair generation timeout and key size", () => {
  it("waits for an RSA-3072 generation the profile prices at ~51 s (RSA-2048 at 10 s × 1.5⁴)", () => {
    const costs = Object.fromEntries(OPERATION_CLASSES.map((c) => [c, { serviceUs: c === "rsa-2048-keygen" ? 10_000_000 : 0, perKiBUs: 0, contention: 0, coherency: 0 }]));
    const profile: ServiceProfile = { type: "t", engines: 1, queueCapacity: 256, timeDilation: 1, distribution: "fixed", costs: costs as Record<OperationClass, never> };
    const world = activeWorld({ seed: "red2-keygen", cluster: { hsmCount: 1, node: { serviceTimeUs: profileServiceTime(profile, new Rng("red2-keygen/s")), engines: 1, queueCapacity: 256 } } });
    const pkcs11 = world.connect("app").pkcs11();
    const session = pkcs11.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    pkcs11.C_Login(session, P.CKU_USER, `${ALICE.username}:${ALICE.password}`);
    const pair = pkcs11.C_GenerateKeyPair(session, { mechanism: P.CKM_RSA_PKCS_KEY_PAIR_GEN },
      [{ type: P.CKA_MODULUS_BITS, value: 3072 }, { type: P.CKA_VERIFY, value: true }], [{ type: P.CKA_SIGN, value: true }]);
    const [{ value: modulus }] = pkcs11.C_GetAttributeValue(session, pair.publicKey, [{ type: P.CKA_MODULUS }]);
    expect(modulus.length).toBe(384);
  });
});
