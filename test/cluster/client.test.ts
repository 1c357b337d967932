// The client: bootstrap and the address list, spreading by spare capacity, busy retries with
// backoff, the per-operation failover rules, transparent session and login re-establishment,
// causality tokens, the NAT case, and the PKCS11 facade over the cluster.
import { describe, expect, it } from "vitest";

import { ClientError } from "../../src/client/errors.js";
import * as P from "../../src/index.js";
import { Gateway } from "../../src/sim/gateway.js";
import { ALICE, BOB, CO, activeWorld, holders } from "./fixture.js";
import { internalsOf } from "../../src/hsm/internals.js";

function expectCkr(fn: () => unknown, name: string, detail?: RegExp): P.Pkcs11Error {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(P.Pkcs11Error);
  expect((thrown as P.Pkcs11Error).message).toBe(name);
  if (detail) expect((thrown as P.Pkcs11Error).detail).toMatch(detail);
  return thrown as P.Pkcs11Error;
}

describe("address list", () => {
  it("bootstraps from one address, learns every HSM, and follows HSMs joining and leaving", () => {
    const world = activeWorld();
    const client = world.connect("c");
    expect(client.health().members.map((m) => m.address).sort()).toEqual(world.cluster.addresses().sort());
    const added = world.cluster.addHsm();
    world.run(2_000_000);
    expect(client.health().members.map((m) => m.address)).toContain(added.address);
    world.cluster.removeHsm(world.cluster.describe()[0].hsmId);
    world.run(2_000_000);
    expect(client.health().members).toHaveLength(3);
    expect(client.health().members.map((m) => m.address)).not.toContain(world.cluster.describe()[0].address);
  });

  it("refuses bad options and an address that does not answer with typed errors", () => {
    const world = activeWorld();
    expect(() => world.connect("x", { bootstrap: "" })).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(() => world.connect("y", { maxRetries: -1 })).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(() => world.connect("z", { requestTimeoutUs: Number.NaN })).toThrow(ClientError);
    expect(() => world.connect("w", { bootstrap: "192.0.2.1" })).toThrow(expect.objectContaining({ code: "NO_REACHABLE_HSM" }));
    expect(world.connect("w").health().members).toHaveLength(3); // the failed attempt freed its address
  });

  it("spreads requests over the HSMs", () => {
    const world = activeWorld();
    const alice = world.connect("a").login(ALICE.username, ALICE.password);
    const before = world.cluster.liveNodes().map((n) => n.stats.served);
    for (let i = 0; i < 60; i++) alice.random(16);
    const served = world.cluster.liveNodes().map((n, i) => n.stats.served - before[i]);
    expect(served.every((n) => n >= 8)).toBe(true);
  });
});

describe("duplicated messages", () => {
  it("a request the network delivers twice runs once", () => {
    const world = activeWorld({ faults: { duplicateRate: 1 } });
    const alice = world.connect("a").login(ALICE.username, ALICE.password);
    alice.generateAesKey({ label: "once" });
    world.run(1_000_000);
    for (const node of world.cluster.liveNodes()) expect(internalsOf(node.hsm).store.keys()).toHaveLength(1);
    expect(world.network.stats.duplicated).toBeGreaterThan(0);
  });
});

describe("busy HSMs", () => {
  it("retries a busy answer elsewhere 3 times with exponential backoff, then fails with CKR_FUNCTION_FAILED", () => {
    // One HSM whose queue holds one request, and a slow call that keeps it full for a second.
    const slow = (op: { kind: string; method?: string }) => (op.method === "getTokenInfo" ? 1_000_000 : 50);
    const world = activeWorld({ cluster: { hsmCount: 1, node: { queueCapacity: 1, serviceTimeUs: slow } } });
    const client = world.connect("c");
    const pkcs11 = client.pkcs11();
    client.client.send({ kind: "call", method: "getTokenInfo", args: [0] }, { rule: "repeat" }, () => {});
    world.run(1_000);
    const started = world.clock.nowUs();
    const error = expectCkr(() => pkcs11.C_GetTokenInfo(pkcs11.C_GetSlotList(true)[0]), "CKR_FUNCTION_FAILED", /HSM_BUSY.*4 attempts/);
    expect(error.detail).toMatch(/busy/);
    expect(client.client.stats.busy).toBeGreaterThanOrEqual(4);
    // 20 + 40 + 80 ms of backoff at least.
    expect(world.clock.nowUs() - started).toBeGreaterThanOrEqual(140_000);
  });
});

describe("failover rules", () => {
  it("repeats reads on another HSM when one dies, replaying an operation's Init that had not progressed", () => {
    const world = activeWorld();
    const client = world.connect("a");
    const alice = client.login(ALICE.username, ALICE.password);
    const key = alice.generateAesKey({ label: "failover" });
    world.run(1_000_000);
    const sealed = alice.encrypt(key, Buffer.from("survives"));
    const { pkcs11, session } = alice;
    const iv = sealed.subarray(0, 12);
    pkcs11.C_DecryptInit(session, { mechanism: P.CKM_AES_GCM, parameter: { type: P.CK_PARAMS_AES_GCM, iv, tagBits: 128 } }, key.handle);
    // Kill whichever HSM holds the operation: the client replays the Init elsewhere.
    for (const node of world.cluster.liveNodes()) world.cluster.crashHsm(node.hsm.id);
    world.cluster.restartHsm(world.cluster.describe()[1].hsmId);
    world.cluster.restartHsm(world.cluster.describe()[2].hsmId);
    const plain = pkcs11.C_Decrypt(session, sealed.subarray(12), Buffer.alloc(64));
    expect(plain.toString()).toBe("survives");
    for (let i = 0; i < 10; i++) expect(alice.decrypt(key, sealed).toString()).toBe("survives");
  });

  it("fails an operation that had progressed with CKR_DEVICE_REMOVED; session objects die with their HSM", () => {
    const world = activeWorld();
    const alice = world.connect("a").login(ALICE.username, ALICE.password);
    const { pkcs11, session } = alice;
    const key = alice.generateAesKey({ label: "multi-part" });
    world.run(1_000_000);
    pkcs11.C_DigestInit(session, { mechanism: P.CKM_SHA256 });
    pkcs11.C_DigestUpdate(session, Buffer.from("part one"));
    const sessionKey = alice.generateAesKey({ label: "volatile", token: false });
    for (const node of world.cluster.liveNodes()) world.cluster.crashHsm(node.hsm.id);
    for (const h of world.cluster.describe()) world.cluster.restartHsm(h.hsmId);
    expectCkr(() => pkcs11.C_DigestFinal(session, Buffer.alloc(32)), "CKR_DEVICE_REMOVED", /gone/);
    // Its handle does not reach whatever the restarted HSM now has under the same number.
    expectCkr(() => alice.encrypt(sessionKey, Buffer.from("x")), "CKR_KEY_HANDLE_INVALID");
    // Token keys, the session and the login carry on: each HSM re-opens and re-logs in.
    expect(alice.decrypt(key, alice.encrypt(key, Buffer.from("still here"))).toString()).toBe("still here");
  });

  it("does not repeat a write whose HSM died before answering: CKR_FUNCTION_FAILED, outcome unknown", () => {
    const world = activeWorld({ cluster: { hsmCount: 1 } });
    const alice = world.connect("a").login(ALICE.username, ALICE.password);
    const [only] = world.cluster.describe();
    world.clock.schedule(1, () => world.cluster.crashHsm(only.hsmId));
    expectCkr(() => alice.generateAesKey({ label: "in flight" }), "CKR_FUNCTION_FAILED", /OUTCOME_UNKNOWN/);
    world.cluster.restartHsm(only.hsmId);
  });

  it("with no HSM answering, calls fail with CKR_DEVICE_ERROR naming every address", () => {
    const world = activeWorld({ cluster: { hsmCount: 2 } });
    const alice = world.connect("a").login(ALICE.username, ALICE.password);
    for (const node of world.cluster.liveNodes()) world.cluster.crashHsm(node.hsm.id);
    world.run(3_000_000);
    const error = expectCkr(() => alice.random(8), "CKR_DEVICE_ERROR", /NO_REACHABLE_HSM/);
    for (const address of world.cluster.addresses()) expect(error.detail).toContain(address);
  });
});

describe("sessions and logins", () => {
  it("a wrong password fails C_Login with CKR_PIN_INCORRECT and leaves the session public", () => {
    const world = activeWorld();
    const pkcs11 = world.connect("c").pkcs11();
    const session = pkcs11.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    expectCkr(() => pkcs11.C_Login(session, P.CKU_USER, `${ALICE.username}:wrong-password`), "CKR_PIN_INCORRECT");
    expect(pkcs11.C_GetSessionInfo(session).state).toBe(P.CKS_RW_PUBLIC_SESSION);
    pkcs11.C_Login(session, P.CKU_USER, `${ALICE.username}:${ALICE.password}`);
    expect(pkcs11.C_GetSessionInfo(session).state).toBe(P.CKS_RW_USER_FUNCTIONS);
    expectCkr(() => pkcs11.C_Login(session, P.CKU_USER, `${ALICE.username}:${ALICE.password}`), "CKR_USER_ALREADY_LOGGED_IN");
    pkcs11.C_Logout(session);
    expect(pkcs11.C_GetSessionInfo(session).state).toBe(P.CKS_RW_PUBLIC_SESSION);
    expectCkr(() => pkcs11.C_Logout(session), "CKR_USER_NOT_LOGGED_IN");
  });

  it("users see only their keys and keys shared with them; a causality token carries the share to another client", () => {
    const world = activeWorld();
    const aliceClient = world.connect("a");
    const bobClient = world.connect("b");
    const alice = aliceClient.login(ALICE.username, ALICE.password);
    const bob = bobClient.login(BOB.username, BOB.password);
    const key = alice.generateAesKey({ label: "alice's" });
    bobClient.client.observe(aliceClient.client.causalityToken());
    expectCkr(() => bob.encrypt(key, Buffer.from("no")), "CKR_KEY_HANDLE_INVALID");
    aliceClient.console(ALICE.username, ALICE.password).shareKey(key.id, BOB.username);
    bobClient.client.observe(aliceClient.client.causalityToken());
    const sealed = bob.encrypt(key, Buffer.from("shared"));
    expect(alice.decrypt(key, sealed).toString()).toBe("shared");
    expect(aliceClient.console(CO.username, CO.password).describeKey(key.id)).toEqual({ keyId: key.id, owner: ALICE.username, sharedWith: [BOB.username] });
    expect(() => bobClient.client.observe("not a token")).toThrow(ClientError);
  });
});

describe("NAT and load balancers", () => {
  it("works through a gateway to one HSM, reports the unreachable addresses, and cannot fail over", () => {
    const world = activeWorld();
    const [behind] = world.cluster.describe();
    const gateway = new Gateway(world.network, "203.0.113.10", behind.address);
    for (const address of world.cluster.addresses()) world.network.blockLink("client-nat", address);
    const client = world.connect("nat", { bootstrap: gateway.address });
    const alice = client.login(ALICE.username, ALICE.password);
    expect(alice.random(4)).toHaveLength(4);
    world.run(3_000_000);
    const { members, warnings } = client.health();
    expect(members.every((m) => m.status === "unreachable")).toBe(true);
    expect(warnings[0]).toMatch(/NAT or a load balancer/);
    world.cluster.crashHsm(behind.hsmId);
    const error = expectCkr(() => alice.random(4), "CKR_DEVICE_ERROR", /NAT or a load balancer/);
    expect(error.detail).toContain(world.cluster.addresses()[1]);
    gateway.close();
  });
});

describe("the PKCS11 facade over the cluster", () => {
  it("runs token key lifecycle calls: generate, attributes, find, sign/verify, wrap, destroy", () => {
    const world = activeWorld();
    const alice = world.connect("a").login(ALICE.username, ALICE.password);
    const { pkcs11, session } = alice;
    const pair = alice.generateEcKeyPair({ label: "signer" });
    const signature = alice.sign(pair.privateKey, Buffer.from("message"));
    expect(alice.verify(pair.publicKey, Buffer.from("message"), signature)).toBe(true);
    expect(holders(world, pair.privateKey.id)).toBeGreaterThanOrEqual(2);
    const [label] = pkcs11.C_GetAttributeValue(session, pair.privateKey.handle, [{ type: P.CKA_LABEL }]);
    expect(label.value?.toString()).toBe("signer");
    pkcs11.C_SetAttributeValue(session, pair.privateKey.handle, [{ type: P.CKA_LABEL, value: "renamed" }]);
    world.run(1_000_000);
    // The new label reached every HSM: one version of the key everywhere.
    const versions = world.cluster.liveNodes().map((n) => internalsOf(n.hsm).store.key(pair.privateKey.id)?.version);
    expect(new Set(versions).size).toBe(1);
    expect(versions[0]).toBeGreaterThan(0);
    expect(alice.findKeys("renamed").map((k) => k.id)).toEqual([pair.privateKey.id]);
    alice.deleteKey(pair.privateKey);
    alice.deleteKey(pair.publicKey);
    expect(alice.findKeys("renamed")).toEqual([]);
    expect(pkcs11.C_GetSlotList(true)).toHaveLength(1);
    expect(pkcs11.C_GetMechanismList(pkcs11.C_GetSlotList(true)[0]).length).toBeGreaterThan(10);
    expectCkr(() => pkcs11.C_InitToken(pkcs11.C_GetSlotList(true)[0], "so-pin-123", "x"), "CKR_FUNCTION_NOT_SUPPORTED");
  });
});
