// The cluster's rules: sizes and zones, states, activation once for all, replication with the
// key availability quorum, anti-entropy and tombstones, per-HSM lockouts, user list
// consistency, adding, removing and replacing HSMs.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { ClusterError } from "../../src/cluster/errors.js";
import { HsmError } from "../../src/hsm/errors.js";
import { Pkcs11Error } from "../../src/pkcs11/errors.js";
import { ALICE, BOB, CO, activeWorld, bareWorld, holders } from "./fixture.js";
import { internalsOf } from "../../src/hsm/internals.js";

describe("cluster shape and states", () => {
  it("holds 1 to 28 HSMs spread round-robin over the zones, and refuses other sizes", () => {
    const root = mkdtempSync(join(tmpdir(), "hsmsim-root-"));
    for (const hsmCount of [0, 29, 2.5]) {
      expect(() => bareWorld({ dataRoot: root, cluster: { hsmCount } })).toThrow(ClusterError);
    }
    expect(() => bareWorld({ dataRoot: root, cluster: { addressPrefix: "10.0.0" } })).toThrow(ClusterError);
    expect(() => bareWorld({ dataRoot: root, cluster: { backupRetentionUs: -5 } })).toThrow(ClusterError);
    expect(() => bareWorld({ dataRoot: root, cluster: { node: { queueCapacity: 0 } } })).toThrow(/queueCapacity/);
    expect(readdirSync(root)).toEqual([]); // a world that failed to start leaves no folder behind
    rmSync(root, { recursive: true });
    const world = bareWorld({ cluster: { hsmCount: 4, availabilityZones: ["eu-1a", "eu-1b"] } });
    expect(world.cluster.describe().map((h) => h.availabilityZone)).toEqual(["eu-1a", "eu-1b", "eu-1a", "eu-1b"]);
    expect(new Set(world.cluster.describe().map((h) => h.address)).size).toBe(4);
    expect(world.cluster.describe().every((h) => h.state === "ACTIVE")).toBe(true);
  });

  it("goes UNINITIALIZED → INITIALIZED → ACTIVE; activation needs initialization and happens once for every HSM", () => {
    const world = bareWorld();
    expect(world.cluster.state).toBe("UNINITIALIZED");
    const client = world.connect("c");
    expect(() => client.console("admin", "password").changePassword("admin", CO.password)).toThrow(HsmError);
    world.cluster.initialize();
    expect(world.cluster.state).toBe("INITIALIZED");
    expect(() => world.cluster.initialize()).toThrow(ClusterError);
    client.console("admin", "password").changePassword("admin", CO.password);
    world.run(500_000);
    expect(world.cluster.state).toBe("ACTIVE");
    for (const node of world.cluster.liveNodes()) {
      expect(node.hsm.activated).toBe(true);
      expect(internalsOf(node.hsm).store.user("admin")?.role).toBe("CO");
    }
    // PRECO is gone everywhere: its default password no longer works on any HSM.
    expect(() => client.console("admin", "password").createUser("x_user", "CU", "password-1")).toThrow(HsmError);
    expect(world.cluster.backups().map((b) => b.trigger)).toContain("activation");
  });

  it("reports an HSM that stops as DEGRADED, and the cluster with it, until it is back", () => {
    const world = activeWorld();
    const [first] = world.cluster.describe();
    world.cluster.crashHsm(first.hsmId);
    world.run(6_000_000);
    expect(world.cluster.describe()[0].state).toBe("DEGRADED");
    expect(world.cluster.state).toBe("DEGRADED");
    world.cluster.restartHsm(first.hsmId);
    expect(world.cluster.describe()[0].state).toBe("ACTIVE");
    expect(world.cluster.state).toBe("ACTIVE");
  });
});

describe("replication", () => {
  it("a token key is durable on keyAvailabilityMin HSMs when its create returns, and on every HSM soon after", () => {
    const world = activeWorld();
    const alice = world.connect("a").login(ALICE.username, ALICE.password);
    const key = alice.generateAesKey({ label: "replicated" });
    expect(holders(world, key.id)).toBeGreaterThanOrEqual(2);
    world.run(1_000_000);
    expect(holders(world, key.id)).toBe(3);
  });

  it("a session key stays on the one HSM that made it, and is never stored", () => {
    const world = activeWorld();
    const alice = world.connect("a").login(ALICE.username, ALICE.password);
    const key = alice.generateAesKey({ label: "ephemeral", token: false });
    expect(key.id).toBeGreaterThanOrEqual(2 ** 52);
    world.run(1_000_000);
    for (const node of world.cluster.liveNodes()) expect(internalsOf(node.hsm).store.keys()).toHaveLength(0);
    const sealed = alice.encrypt(key, Buffer.from("data"));
    expect(alice.decrypt(key, sealed).toString()).toBe("data");
  });

  it("with too few HSMs up, a create fails with CKR_FUNCTION_FAILED and leaves no key; keyAvailabilityMin 1 opts out", () => {
    const world = activeWorld({ cluster: { hsmCount: 2 } });
    const alice = world.connect("a").login(ALICE.username, ALICE.password);
    world.cluster.crashHsm(world.cluster.describe()[1].hsmId);
    world.run(2_000_000);
    let error: unknown;
    try {
      alice.generateAesKey({ label: "lonely" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(Pkcs11Error);
    expect((error as Pkcs11Error).message).toBe("CKR_FUNCTION_FAILED");
    expect((error as Pkcs11Error).detail).toMatch(/key availability/);
    expect(internalsOf(world.cluster.liveNodes()[0].hsm).store.keys()).toHaveLength(0);

    const relaxed = activeWorld({ seed: "relaxed", cluster: { hsmCount: 2, keyAvailabilityMin: 1 } });
    const bob = relaxed.connect("b").login(BOB.username, BOB.password);
    relaxed.cluster.crashHsm(relaxed.cluster.describe()[1].hsmId);
    expect(bob.generateAesKey({ label: "fine alone" }).id).toBeGreaterThan(0);
  });

  it("a token key is used only while keyAvailabilityMin live HSMs hold it (CloudHSM's key availability check)", () => {
    const world = activeWorld({ cluster: { hsmCount: 2 } });
    const alice = world.connect("a").login(ALICE.username, ALICE.password);
    const key = alice.generateAesKey({ label: "needs two" });
    const sealed = alice.encrypt(key, Buffer.from("x"));
    const [, second] = world.cluster.describe();
    world.cluster.crashHsm(second.hsmId);
    world.run(2_000_000);
    let error: unknown;
    try {
      alice.decrypt(key, sealed);
    } catch (e) {
      error = e;
    }
    expect((error as Pkcs11Error).message).toBe("CKR_FUNCTION_FAILED");
    expect((error as Pkcs11Error).detail).toMatch(/does not meet the availability requirements.*at least 2 HSMs/);
    world.cluster.restartHsm(second.hsmId);
    expect(alice.decrypt(key, sealed).toString()).toBe("x");
    // Three HSMs, one down: two still hold it.
    const three = activeWorld({ seed: "three" });
    const bob = three.connect("b").login(BOB.username, BOB.password);
    const bobKey = bob.generateAesKey({ label: "three" });
    three.run(500_000);
    three.cluster.crashHsm(three.cluster.describe()[0].hsmId);
    three.run(2_000_000);
    expect(bob.decrypt(bobKey, bob.encrypt(bobKey, Buffer.from("y"))).toString()).toBe("y");
  });

  it("an HSM that was down gets the keys it missed; one that missed a delete drops the key, which never comes back", () => {
    const world = activeWorld();
    const alice = world.connect("a").login(ALICE.username, ALICE.password);
    const kept = alice.generateAesKey({ label: "kept" });
    const doomed = alice.generateAesKey({ label: "doomed" });
    world.run(1_000_000);
    const third = world.cluster.describe()[2];
    world.cluster.crashHsm(third.hsmId);
    world.run(2_000_000); // the client's heartbeat notices
    const created = alice.generateAesKey({ label: "while down" });
    alice.deleteKey(doomed);
    world.cluster.restartHsm(third.hsmId);
    world.run(2_000_000);
    const node = world.cluster.node(third.hsmId)!;
    expect(internalsOf(node.hsm).state.hasKey(created.id)).toBe(true);
    expect(internalsOf(node.hsm).state.hasKey(kept.id)).toBe(true);
    expect(internalsOf(node.hsm).state.hasKey(doomed.id)).toBe(false);
    expect(internalsOf(node.hsm).store.tombstone("key", String(doomed.id))).toBeDefined();
    // Every HSM keeps refusing the deleted key, however the old create reaches it.
    world.run(5_000_000);
    expect(holders(world, doomed.id)).toBe(0);
    expect(() => alice.encrypt({ ...doomed }, Buffer.from("x"))).toThrow(Pkcs11Error);
  });

  it("prunes journal entries every member holds, keeps the heads, and still catches up an HSM that was down", () => {
    const world = activeWorld();
    const alice = world.connect("a").login(ALICE.username, ALICE.password);
    for (let i = 0; i < 5; i++) alice.generateAesKey({ label: `k${i}` });
    world.run(3_000_000);
    const journals = () => world.cluster.liveNodes().map((n) => internalsOf(n.hsm).store.journalSize());
    expect(journals()).toEqual([0, 0, 0]);
    const heads = internalsOf(world.cluster.liveNodes()[0].hsm).state.vector();
    expect([...heads.values()].reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(9); // 4 setup changes + 5 keys
    const down = world.cluster.describe()[2];
    world.cluster.crashHsm(down.hsmId);
    world.run(2_000_000);
    const later = alice.generateAesKey({ label: "while down" });
    world.run(3_000_000);
    // The entry the down HSM lacks is kept for it.
    expect(Math.min(...world.cluster.liveNodes().map((n) => internalsOf(n.hsm).store.journalSize()))).toBeGreaterThan(0);
    world.cluster.restartHsm(down.hsmId);
    world.run(3_000_000);
    expect(internalsOf(world.cluster.node(down.hsmId)!.hsm).state.hasKey(later.id)).toBe(true);
    expect(journals()).toEqual([0, 0, 0]);
    // A clone made now starts from a snapshot with the heads, and needs no old entries.
    const added = world.cluster.addHsm();
    world.run(1_000_000);
    expect(internalsOf(world.cluster.node(added.hsmId)!.hsm).state.vector()).toEqual(internalsOf(world.cluster.liveNodes()[0].hsm).state.vector());
  });

  it("user changes replicate; lockout counters stay per HSM and a CO's reset unlocks everywhere", () => {
    const world = activeWorld();
    const client = world.connect("c");
    const [a, b] = world.cluster.describe().map((h) => h.address);
    for (let i = 0; i < 5; i++) {
      expect(() => client.manage(ALICE.username, "wrong-password", "listUsers", [], a)).toThrow(HsmError);
    }
    expect(() => client.manage(ALICE.username, ALICE.password, "listUsers", [], a)).toThrow(/locked/);
    // Another HSM counts on its own: alice is not locked there.
    expect(() => client.manage(ALICE.username, ALICE.password, "describeKey", [1], b)).toThrow(/no key/);
    const lockedAt = (address: string) =>
      (client.manage(CO.username, CO.password, "listUsers", [], address) as { username: string; locked: boolean }[]).find((u) => u.username === ALICE.username)!.locked;
    expect(lockedAt(a)).toBe(true);
    expect(lockedAt(b)).toBe(false);
    const co = client.console(CO.username, CO.password);
    co.changePassword(ALICE.username, "alice-pass-2");
    world.run(1_000_000);
    expect(() => client.manage(ALICE.username, "alice-pass-2", "describeKey", [1], a)).toThrow(/no key/);
  });

  it("reports the user list as inconsistent while an HSM misses a change, consistent once it catches up", () => {
    const world = activeWorld();
    const hsms = world.cluster.describe().map((h) => h.address);
    world.network.partition([hsms[2]], [hsms[0], hsms[1]]);
    const client = world.connect("c");
    const co = client.console(CO.username, CO.password);
    client.manage(CO.username, CO.password, "createUser", ["carol", "CU", "carol-pass-1"], hsms[0]);
    const during = co.listUsers();
    expect(during.consistent).toBe(false);
    expect(during.byHsm.find((h) => h.address === hsms[2])?.usernames).not.toContain("carol");
    world.network.heal();
    world.run(1_000_000);
    expect(co.listUsers().consistent).toBe(true);
  });
});

describe("membership", () => {
  it("adds an HSM cloned from a live one: it holds the users and keys at once, and a backup is taken", () => {
    const world = activeWorld();
    const alice = world.connect("a").login(ALICE.username, ALICE.password);
    const key = alice.generateAesKey({ label: "before add" });
    world.run(500_000);
    const added = world.cluster.addHsm("az-b");
    const node = world.cluster.node(added.hsmId)!;
    expect(internalsOf(node.hsm).state.hasKey(key.id)).toBe(true);
    expect(internalsOf(node.hsm).store.user(ALICE.username)).toBeDefined();
    expect(world.cluster.backups().map((b) => b.trigger)).toContain("add-hsm");
    expect(world.cluster.describe()).toHaveLength(4);
  });

  it("replaces a failed HSM with a new id, address and audit stream; the old one is DELETED and never rejoins", () => {
    const world = activeWorld();
    const old = world.cluster.describe()[1];
    world.cluster.crashHsm(old.hsmId);
    const fresh = world.cluster.replaceHsm(old.hsmId);
    expect(fresh.hsmId).not.toBe(old.hsmId);
    expect(fresh.address).not.toBe(old.address);
    expect(fresh.availabilityZone).toBe(old.availabilityZone);
    expect(world.cluster.describe().find((h) => h.hsmId === old.hsmId)?.state).toBe("DELETED");
    expect(() => world.cluster.restartHsm(old.hsmId)).toThrow(ClusterError);
    const audit = world.cluster.node(fresh.hsmId)!.hsm.auditLog();
    expect(audit[0].operation).toBe("RESTORE");
    expect(world.cluster.node(fresh.hsmId)!.hsm.verifyAudit().ok).toBe(true);
    expect(world.cluster.backups().map((b) => b.trigger)).toContain("remove-hsm");
  });

  it("refuses a 29th HSM and unknown zones", () => {
    const world = activeWorld({ cluster: { hsmCount: 28 } });
    expect(() => world.cluster.addHsm()).toThrow(expect.objectContaining({ code: "HSM_LIMIT" }));
    world.cluster.removeHsm(world.cluster.describe()[0].hsmId);
    expect(() => world.cluster.addHsm("mars-1a")).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
  });
});
