// Second red team, issue 10: an RSA-OAEP wrap (a public-key encrypt with the wrapping key) was priced as RSA-2048 whatever the key.
import { describe, expect, it } from "vitest";

import { OPERATION_CLASSES, type OperationClass, type ServiceProfile, profileServiceTime } from "../../src/cluster/service-profile.js";
import * as P from "../../src/pkcs11/index.js";
import { Rng } from "../../src/sim/random.js";
import { ALICE, activeWorld } from "../cluster/fixture.js";

describe("RSA-OAEP wrap pricing by key size", () => {
  it("prices a wrap with an RSA-4096 key dearer than with an RSA-2048 one", () => {
    const encryptUs = 10_000;
    const costs = Object.fromEntries(OPERATION_CLASSES.map((c) => [c, { serviceUs: c === "rsa-2048-encrypt" ? encryptUs : 0, perKiBUs: 0, contention: 0, coherency: 0 }]));
    const profile: ServiceProfile = { type: "t", engines: 1, queueCapacity: 256, timeDilation: 1, distribution: "fixed", costs: costs as Record<OperationClass, never> };
    const world = activeWorld({ seed: "red2-wrap", cluster: { hsmCount: 1, node: { serviceTimeUs: profileServiceTime(profile, new Rng("red2-wrap/s")), engines: 1, queueCapacity: 256 } } });
    const pkcs11 = world.connect("app").pkcs11();
    const session = pkcs11.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    pkcs11.C_Login(session, P.CKU_USER, `${ALICE.username}:${ALICE.password}`);
    const secret = pkcs11.C_GenerateKey(session, { mechanism: P.CKM_AES_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 32 }, { type: P.CKA_EXTRACTABLE, value: true }]);
    const oaep = { mechanism: P.CKM_RSA_PKCS_OAEP, parameter: { type: P.CK_PARAMS_RSA_OAEP, hashAlg: P.CKM_SHA256, mgf: P.CKG_MGF1_SHA256, source: 1, sourceData: Buffer.alloc(0) } };
    const wrapTime = (bits: number) => {
      const { publicKey } = pkcs11.C_GenerateKeyPair(session, { mechanism: P.CKM_RSA_PKCS_KEY_PAIR_GEN },
        [{ type: P.CKA_MODULUS_BITS, value: bits }, { type: P.CKA_WRAP, value: true }], [{ type: P.CKA_UNWRAP, value: true }]);
      const before = world.clock.nowUs();
      pkcs11.C_WrapKey(session, oaep, publicKey, secret, Buffer.alloc(1024));
      return world.clock.nowUs() - before;
    };
    const t2048 = wrapTime(2048), t4096 = wrapTime(4096);
    // (4096/2048)^2 = 4 encrypts' worth of engine time, less a margin for the network's jitter.
    expect(t4096 - t2048).toBeGreaterThan(2 * encryptUs);
    // A fresh session whose first call on the HSM is the wrap: priced by the key all the same.
    const { publicKey } = pkcs11.C_GenerateKeyPair(session, { mechanism: P.CKM_RSA_PKCS_KEY_PAIR_GEN },
      [{ type: P.CKA_MODULUS_BITS, value: 4096 }, { type: P.CKA_WRAP, value: true }, { type: P.CKA_TOKEN, value: true }], [{ type: P.CKA_UNWRAP, value: true }]);
    const fresh = pkcs11.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    const before = world.clock.nowUs();
    pkcs11.C_WrapKey(fresh, oaep, publicKey, secret, Buffer.alloc(1024));
    expect(world.clock.nowUs() - before - t2048).toBeGreaterThan(2 * encryptUs);
  });
});
