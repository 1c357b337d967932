// Red team, issue 10: a hostile client choosing what it asks a profiled HSM for, to get engine
// work the profile does not charge (a profiled HSM then serves far past its published rate).
import { describe, expect, it } from "vitest";
import { type ServiceProfile, classifyRequest, inputBytesOf, ownMechanism, profileServiceTime } from "../../src/cluster/service-profile.js";
import type { RequestOp } from "../../src/cluster/protocol.js";
import { CKM_ECDSA_SHA256, CKM_RSA_PKCS_OAEP, CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS } from "../../src/pkcs11/constants.js";
import { profileFor } from "../../src/sizing/profiles.js";


const profile: ServiceProfile = { ...profileFor("hsm2m.medium"), distribution: "fixed" };
const price = profileServiceTime(profile, { int: () => 0 } as never);
const MiB = 1024 * 1024;
const session = { id: 1, operation: { n: 1, step: 1 } };
const call = (method: string, args: unknown[]): RequestOp => ({ kind: "call", method, args, session: session as never });
const priced = (op: RequestOp, mechanism?: number) => price(op, { mechanism: mechanism ?? ownMechanism(op), inputBytes: inputBytesOf(op), memberCount: 3 });

describe("profile pricing: work a hostile client gets for free", () => {
  it("16 MiB of random costs more engine time than 16 bytes (the work is the output, not the input)", () => {
    const small = priced(call("generateRandom", [1, 16]));
    const big = priced(call("generateRandom", [1, 16 * MiB]));
    expect(classifyRequest(call("generateRandom", [1, 16 * MiB]), undefined)).toBe("random");
    // The profile's own per-KiB rate for random, at least: 16 Ki × its perKiBUs.
    expect(big - small).toBeGreaterThanOrEqual(16 * 1024 * profile.costs.random.perKiBUs * 0.99);
  });

  for (const [name, mechanism] of [["SHA256-RSA-PKCS", CKM_SHA256_RSA_PKCS], ["SHA256-RSA-PSS", CKM_SHA256_RSA_PKCS_PSS], ["ECDSA-SHA256", CKM_ECDSA_SHA256]] as const) {
    it(`a ${name} sign over 16 MiB pays for hashing it, not one 32-byte sign`, () => {
      const small = priced(call("sign", [1, Buffer.alloc(32), 512]), mechanism);
      const big = priced(call("sign", [1, Buffer.alloc(16 * MiB), 512]), mechanism);
      expect(big - small).toBeGreaterThanOrEqual(16 * 1024 * profile.costs.digest.perKiBUs * 0.99);
    });
  }

  it("a bare RSA PKCS#1 sign (the caller hashed) is not charged a digest", () => {
    const a = priced(call("sign", [1, Buffer.alloc(32), 512]), CKM_RSA_PKCS);
    const b = priced(call("sign", [1, Buffer.alloc(200), 512]), CKM_RSA_PKCS);
    expect(b).toBe(a);
  });

  it("seeding the DRBG with 16 MiB is engine work, not the control path", () => {
    expect(priced(call("seedRandom", [1, Buffer.alloc(16 * MiB)]))).toBeGreaterThan(0);
  });

  it("unwrapping with RSA-OAEP is a private-key operation, priced as an RSA decrypt, not as the public-key wrap", () => {
    expect(classifyRequest(call("wrapKey", [1, 2, 3, 512, [CKM_RSA_PKCS_OAEP]]), CKM_RSA_PKCS_OAEP)).toBe("rsa-2048-encrypt");
    expect(classifyRequest(call("unwrapKey", [1, 2, Buffer.alloc(256), [], [CKM_RSA_PKCS_OAEP]]), CKM_RSA_PKCS_OAEP)).toBe("rsa-2048-decrypt");
  });

  it("an RSA-OAEP unwrap with a 4096-bit key costs more than with a 2048-bit one (its input is one modulus long)", () => {
    const unwrap = (bytes: number) => priced(call("unwrapKey", [1, 2, Buffer.alloc(bytes), Buffer.alloc(4), new Float64Array([CKM_RSA_PKCS_OAEP, 0, 0, 0, 0])]), CKM_RSA_PKCS_OAEP);
    expect(unwrap(512)).toBeGreaterThan(7 * unwrap(256));
  });

  it("a short message's hashing is the class's own cost: a SHA256-RSA verify of 32 bytes with its 256-byte signature is priced as the model prices it", () => {
    const hashed = priced(call("verify", [1, Buffer.alloc(32), Buffer.alloc(256)]), CKM_SHA256_RSA_PKCS);
    const bare = priced(call("verify", [1, Buffer.alloc(32), Buffer.alloc(256)]), CKM_RSA_PKCS);
    expect(hashed).toBe(bare);
  });
});
