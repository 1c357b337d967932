// An HSM with a performance profile: crypto priced on the call that does it (never the Init),
// N engines in parallel, a bounded queue answering busy, exponential draws that replay per seed,
// and late real-time timers that do not lower the rate. All in virtual time, so exact.
import { describe, expect, it } from "vitest";

import { type OperationClass, OPERATION_CLASSES, type ServiceProfile, checkServiceProfile, classifyRequest, profileServiceTime } from "../../src/cluster/service-profile.js";
import type { RequestOp } from "../../src/cluster/protocol.js";
import type { Clock } from "../../src/runtime/clock.js";
import * as P from "../../src/pkcs11/index.js";
import { World } from "../../src/sim/world.js";
import { Rng } from "../../src/sim/random.js";
import { ALICE, activeWorld } from "./fixture.js";

const P256 = Buffer.from("06082a8648ce3d030107", "hex");
const DIGEST = Buffer.alloc(32, 7);

function profile(costs: Partial<Record<OperationClass, number>>, overrides: Partial<ServiceProfile> = {}): ServiceProfile {
  const all = Object.fromEntries(OPERATION_CLASSES.map((c) => [c, { serviceUs: costs[c] ?? 0, perKiBUs: 0, contention: 0, coherency: 0 }]));
  return { type: "test", engines: 1, queueCapacity: 64, timeDilation: 1, distribution: "fixed", costs: all as ServiceProfile["costs"], ...overrides };
}

function profiledWorld(p: ServiceProfile, seed = "engines", hsmCount = 1): World {
  const rng = new Rng(`${seed}/service`);
  return activeWorld({ seed, cluster: { hsmCount, node: { serviceTimeUs: profileServiceTime(p, rng), engines: p.engines, queueCapacity: p.queueCapacity } } });
}

/** Alice's sessions, each with a sign operation started on the same P-256 key. */
function signers(world: World, count: number) {
  const pkcs11 = world.connect("app").pkcs11();
  const first = pkcs11.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
  pkcs11.C_Login(first, P.CKU_USER, `${ALICE.username}:${ALICE.password}`);
  const { privateKey } = pkcs11.C_GenerateKeyPair(first, { mechanism: P.CKM_EC_KEY_PAIR_GEN },
    [{ type: P.CKA_EC_PARAMS, value: P256 }, { type: P.CKA_TOKEN, value: true }, { type: P.CKA_VERIFY, value: true }],
    [{ type: P.CKA_TOKEN, value: true }, { type: P.CKA_SIGN, value: true }]);
  const sessions = [first];
  for (let i = 1; i < count; i++) sessions.push(pkcs11.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION));
  const init = (session: Buffer) => pkcs11.C_SignInit(session, { mechanism: P.CKM_ECDSA }, privateKey);
  /** Starts a sign on every session at once; records when each answer arrives (virtual µs) and its error. */
  const signAll = () => {
    const results: { atUs: number; error: Error | null }[] = [];
    for (const s of sessions) {
      pkcs11.C_Sign(s, DIGEST, Buffer.alloc(64), (error) => results.push({ atUs: world.clock.nowUs(), error }));
    }
    return results;
  };
  return { pkcs11, sessions, init, signAll };
}

describe("an HSM with a performance profile", () => {
  it("prices the sign, not its Init, and runs as many signs at once as it has engines", () => {
    const world = profiledWorld(profile({ "ecdsa-p256-sign": 10_000 }, { engines: 2 }));
    const app = signers(world, 4);
    for (const s of app.sessions) {
      const before = world.clock.nowUs();
      app.init(s);
      expect(world.clock.nowUs() - before).toBeLessThan(10_000); // one network round trip, no engine time
    }
    const sentUs = world.clock.nowUs();
    const results = app.signAll();
    world.run(1_000_000);
    expect(results.map((r) => r.error)).toEqual([null, null, null, null]);
    const doneUs = results.map((r) => r.atUs - sentUs).sort((a, b) => a - b);
    // Two engines: two signs end together after one service time, the other two one service time later.
    expect(doneUs[1] - doneUs[0]).toBe(0);
    expect(doneUs[2] - doneUs[0]).toBe(10_000);
    expect(doneUs[3] - doneUs[2]).toBe(0);
    expect(doneUs[0]).toBeGreaterThanOrEqual(10_000);
  });

  it("answers busy once its queue is full; the client retries, then fails with CKR_FUNCTION_FAILED", () => {
    // One engine, room for two (one in service, one waiting); a sign takes longer than the client's three backoffs.
    const world = profiledWorld(profile({ "ecdsa-p256-sign": 500_000 }, { engines: 1, queueCapacity: 2 }));
    const app = signers(world, 6);
    for (const s of app.sessions) app.init(s);
    const results = app.signAll();
    world.run(3_000_000);
    expect(results).toHaveLength(6);
    const ok = results.filter((r) => r.error === null);
    const failed = results.filter((r) => r.error !== null);
    expect(ok).toHaveLength(2);
    for (const f of failed) expect((f.error as P.Pkcs11Error).message).toBe("CKR_FUNCTION_FAILED");
    const node = world.cluster.liveNodes()[0];
    expect(node.stats.busy).toBe(4 * 4); // each refused sign: the first try and three retries
  });

  it("draws exponential service times from the seed: the same seed replays, another differs, the mean holds", () => {
    const run = (seed: string) => {
      const world = profiledWorld(profile({ "ecdsa-p256-sign": 2_000 }, { distribution: "exponential" }), seed);
      const app = signers(world, 1);
      const startUs = world.clock.nowUs();
      for (let i = 0; i < 300; i++) {
        app.init(app.sessions[0]);
        app.pkcs11.C_Sign(app.sessions[0], DIGEST, Buffer.alloc(64));
      }
      const elapsedUs = world.clock.nowUs() - startUs;
      return elapsedUs;
    };
    const a = run("exp-a"), again = run("exp-a"), b = run("exp-b");
    expect(again).toBe(a);
    expect(b).not.toBe(a);
    // 300 signs of mean 2 ms each plus 600 network round trips of 400 µs: the engine share is within 20% of 600 ms
    // (the sum of 300 exponential draws has a standard deviation of 6% of its mean).
    for (const elapsed of [a, b]) expect(Math.abs(elapsed - 600 * 400 - 600_000)).toBeLessThan(120_000);
  });

  it("starts the next request from a late timer's due time, so late timers do not lower the rate", () => {
    // The HSMs' clock fires every timer 300 µs late, as a busy event loop would.
    const lateByUs = 300;
    const world = profiledWorld(profile({ "ecdsa-p256-sign": 1_000 }, { engines: 1 }), "late", 1);
    const app = signers(world, 40);
    for (const s of app.sessions) app.init(s);
    const node = world.cluster.liveNodes()[0] as unknown as { clock: Clock };
    const base = node.clock;
    node.clock = { nowUs: () => base.nowUs(), cancel: (id) => base.cancel(id), schedule: (delayUs, fn) => base.schedule(delayUs + lateByUs, fn) };
    const results = app.signAll();
    world.run(1_000_000);
    expect(results.every((r) => r.error === null)).toBe(true);
    const times = results.map((r) => r.atUs).sort((x, y) => x - y);
    // 40 signs of 1 ms on one engine: 39 ms from the first answer to the last, plus one late timer at most — not 39 × 1.3 ms.
    expect(times[39] - times[0]).toBeLessThanOrEqual(39 * 1_000 + lateByUs);
    expect(times[39] - times[0]).toBeGreaterThanOrEqual(39 * 1_000);
  });
});

describe("slow writes on a profiled HSM", () => {
  it("a key generation that takes longer than the client's write timeout still succeeds (it has a timeout of its own)", () => {
    // RSA key generation on a profiled HSM takes about a second with an exponential tail: 5 s here, past the 3 s write timeout.
    const world = profiledWorld(profile({ "rsa-2048-keygen": 5_000_000 }));
    const pkcs11 = world.connect("app").pkcs11();
    const session = pkcs11.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    pkcs11.C_Login(session, P.CKU_USER, `${ALICE.username}:${ALICE.password}`);
    const before = world.clock.nowUs();
    const pair = pkcs11.C_GenerateKeyPair(session, { mechanism: P.CKM_RSA_PKCS_KEY_PAIR_GEN },
      [{ type: P.CKA_MODULUS_BITS, value: 2048 }, { type: P.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }, { type: P.CKA_TOKEN, value: true }],
      [{ type: P.CKA_TOKEN, value: true }, { type: P.CKA_SIGN, value: true }]);
    expect(pair.privateKey).toBeInstanceOf(Buffer);
    expect(world.clock.nowUs() - before).toBeGreaterThanOrEqual(5_000_000);
  });
});

describe("pricing requests", () => {
  const call = (method: string, args: unknown[]): RequestOp => ({ kind: "call", method, args });
  const mech = (type: number) => new Float64Array([type, 0, 0, 0, 0]);

  it("classifies calls by what they do and the mechanism of their operation", () => {
    expect(classifyRequest(call("signInit", [1, 2, mech(P.CKM_ECDSA)]), P.CKM_ECDSA)).toBe("control");
    expect(classifyRequest(call("sign", [1, DIGEST, 64]), P.CKM_ECDSA)).toBe("ecdsa-p256-sign");
    expect(classifyRequest(call("sign", [1, DIGEST, 256]), P.CKM_SHA256_RSA_PKCS)).toBe("rsa-2048-sign");
    expect(classifyRequest(call("verify", [1, DIGEST, DIGEST]), P.CKM_SHA256_RSA_PKCS_PSS)).toBe("rsa-2048-verify");
    expect(classifyRequest(call("signFinal", [1, 32]), P.CKM_SHA256_HMAC)).toBe("hmac");
    expect(classifyRequest(call("encrypt", [1, Buffer.alloc(4096), 4112]), P.CKM_AES_GCM)).toBe("aes-gcm");
    expect(classifyRequest(call("decryptUpdate", [1, Buffer.alloc(16), 16]), P.CKM_AES_CBC_PAD)).toBe("aes-cbc");
    expect(classifyRequest(call("generateKeyPair", [1, Buffer.alloc(0), Buffer.alloc(0), mech(P.CKM_RSA_PKCS_KEY_PAIR_GEN)]), P.CKM_RSA_PKCS_KEY_PAIR_GEN)).toBe("rsa-2048-keygen");
    expect(classifyRequest(call("findObjects", [1, 10]), undefined)).toBe("control");
    expect(classifyRequest(call("sign", [1, DIGEST, 64]), undefined)).toBe("control"); // no open operation: nothing to price
    expect(classifyRequest({ kind: "hello" }, undefined)).toBe("control");
  });

  it("refuses a malformed profile with a message naming the field", () => {
    const good = profile({});
    expect(checkServiceProfile(good).engines).toBe(1);
    const bad: [unknown, RegExp][] = [
      [null, /the profile must be an object/],
      [{ ...good, engines: 0 }, /engines must be an integer/],
      [{ ...good, engines: 1.5 }, /engines must be an integer/],
      [{ ...good, queueCapacity: -1 }, /queueCapacity/],
      [{ ...good, timeDilation: 0.5 }, /timeDilation/],
      [{ ...good, timeDilation: Number.NaN }, /timeDilation/],
      [{ ...good, distribution: "normal" }, /distribution/],
      [{ ...good, type: "<script>" }, /type must be a name/],
      [{ ...good, costs: { ...good.costs, "rsa-4096-sign": good.costs.control } }, /costs\.rsa-4096-sign must be one of/],
      [{ ...good, costs: { ...good.costs, hmac: { serviceUs: -1, perKiBUs: 0, contention: 0, coherency: 0 } } }, /costs\.hmac\.serviceUs/],
      [{ ...good, costs: { ...good.costs, hmac: { serviceUs: 1, perKiBUs: 0, contention: 2, coherency: 0 } } }, /costs\.hmac\.contention/],
      [{ ...good, costs: { ...good.costs, hmac: undefined } }, /costs\.hmac must be an object/],
    ];
    for (const [value, message] of bad) expect(() => checkServiceProfile(value), String(message)).toThrow(message);
  });
});

describe("multi-part signatures", () => {
  it("price their Updates as hashing and their Final as the signature, not a signature per Update", () => {
    const call = (method: string, args: unknown[]): RequestOp => ({ kind: "call", method, args, session: { id: 1 } } as unknown as RequestOp);
    for (const mechanism of [P.CKM_SHA256_RSA_PKCS, P.CKM_ECDSA_SHA256]) {
      expect(classifyRequest(call("signUpdate", [1, Buffer.alloc(4096)]), mechanism)).toBe("digest");
      expect(classifyRequest(call("verifyUpdate", [1, Buffer.alloc(4096)]), mechanism)).toBe("digest");
    }
    expect(classifyRequest(call("signFinal", [1, 256]), P.CKM_SHA256_RSA_PKCS)).toBe("rsa-2048-sign");
    expect(classifyRequest(call("verifyFinal", [1, Buffer.alloc(64)]), P.CKM_ECDSA_SHA256)).toBe("ecdsa-p256-verify");
    expect(classifyRequest(call("signUpdate", [1, Buffer.alloc(64)]), P.CKM_SHA256_HMAC)).toBe("hmac"); // a MAC's Update is the MAC's own work
  });
});
