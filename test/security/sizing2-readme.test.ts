// Second red team, issue 10: every number and promise of README.md's "Sizing your cluster" that no
// test held (the calibration table's λ, σ, κ and misfits, the law's peaks, the profiles' engines and
// queue, the issue example's answer at 60 ms and its cost, Inits never refused busy). If the README
// or the code changes, one of these fails and the two are brought back together.
import { describe, expect, it } from "vitest";

import { OPERATION_CLASSES, type OperationClass, type ServiceProfile, profileServiceTime } from "../../src/cluster/service-profile.js";
import * as P from "../../src/pkcs11/index.js";
import { Rng } from "../../src/sim/random.js";
import { profileFor, publishedFit } from "../../src/sizing/profiles.js";
import { size } from "../../src/sizing/size.js";
import { peakHsmCount } from "../../src/sizing/usl.js";
import { ALICE, activeWorld } from "../cluster/fixture.js";

describe("README: Sizing your cluster, its numbers", () => {
  it("the calibration table: λ, σ, κ and the worst misfit of each row", () => {
    const rows = [
      [publishedFit("hsm2m.medium", "rsa-2048-sign"), 1029, 0.0077, 0.017],
      [publishedFit("hsm1.medium", "rsa-2048-sign"), 1029, 0.0077, 0.017],
      [publishedFit("hsm1.medium", "ecdsa-p256-sign"), 250, 0, 0],
      [publishedFit("hsm2m.medium", "ecdsa-p256-sign"), 1562, 0.0111, 0.024],
    ] as const;
    for (const [fit, lambda, kappa, misfit] of rows) {
      expect(Math.round(fit.lambdaPerSec)).toBe(lambda);
      expect(fit.contention).toBe(0);
      expect(Number(fit.coherency.toFixed(4))).toBe(kappa);
      expect(Number(fit.maxRelativeError.toFixed(3))).toBe(misfit);
    }
  });

  it("the law peaks at 11.4 HSMs (RSA) and 9.5 (hsm2m.medium EC)", () => {
    expect(peakHsmCount(publishedFit("hsm2m.medium", "rsa-2048-sign")).toFixed(1)).toBe("11.4");
    expect(peakHsmCount(publishedFit("hsm2m.medium", "ecdsa-p256-sign")).toFixed(1)).toBe("9.5");
  });

  it("each HSM type: 8 engines, a queue of 256, exponential service times", () => {
    for (const type of ["hsm1.medium", "hsm2m.medium"]) {
      const p = profileFor(type);
      expect([p.engines, p.queueCapacity, p.distribution]).toEqual([8, 256, "exponential"]);
    }
  });

  it("the issue's example at --p99-ms 60: 10 HSMs, $10,585 a month; at 50 ms the best is 57 ms at 11 HSMs", () => {
    const ops = [{ operation: "ecdsa-p256-sign", ratePerSec: 5000 }, { operation: "aes-gcm-4k", ratePerSec: 20000 }];
    const a = size({ ops, p99Ms: 60, spare: 1, type: "hsm2m.medium" });
    expect(a.hsmCount).toBe(10);
    expect(Math.round(a.cost.monthlyUsd)).toBe(10585);
    expect(a.cost.usdPerHour).toBe(1.45);
    expect(() => size({ ops, p99Ms: 50, spare: 1, type: "hsm2m.medium" })).toThrow(/57\.\d+ ms at best \(11 HSMs\)/);
  });
});

describe("README: Inits are the control path, served at once and never refused busy", () => {
  it("a full queue answers a sign busy but still serves C_SignInit and opens sessions", () => {
    const costs = Object.fromEntries(OPERATION_CLASSES.map((c) => [c, { serviceUs: c === "hmac" ? 10_000_000 : 0, perKiBUs: 0, contention: 0, coherency: 0 }]));
    const profile: ServiceProfile = { type: "t", engines: 1, queueCapacity: 1, timeDilation: 1, distribution: "fixed", costs: costs as Record<OperationClass, never> };
    const world = activeWorld({ seed: "red2-readme", cluster: { hsmCount: 1, node: { serviceTimeUs: profileServiceTime(profile, new Rng("red2-readme/s")), engines: 1, queueCapacity: 1 } } });
    const pkcs11 = world.connect("app").pkcs11();
    const s1 = pkcs11.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    pkcs11.C_Login(s1, P.CKU_USER, `${ALICE.username}:${ALICE.password}`);
    const key = pkcs11.C_GenerateKey(s1, { mechanism: P.CKM_GENERIC_SECRET_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 32 }, { type: P.CKA_SIGN, value: true }]);
    pkcs11.C_SignInit(s1, { mechanism: P.CKM_SHA256_HMAC }, key);
    pkcs11.C_Sign(s1, Buffer.alloc(32), Buffer.alloc(32), () => {}); // occupies the one engine and the queue of 1 for 10 s
    world.run(10_000);
    const node = world.cluster.liveNodes()[0];
    const busyBefore = node.stats.busy;
    const s2 = pkcs11.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    pkcs11.C_SignInit(s2, { mechanism: P.CKM_SHA256_HMAC }, key);
    expect(node.stats.busy).toBe(busyBefore);
  });
});
