// HSM-to-HSM messages are authenticated (finding F8): only members of the cluster, which share
// its masking key, can MAC a peer message; a forged, tampered or replayed-from-elsewhere message
// is dropped and counted, never applied. And a client's endpoint sends only as the client.
import { randomBytes, scryptSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

import { ClusterConnection } from "../../src/client/api.js";
import { Cluster } from "../../src/cluster/cluster.js";
import type { ClusterNode } from "../../src/cluster/node.js";
import { type PeerEnvelope, encodePeerMessage, peerMacInput } from "../../src/cluster/protocol.js";
import { internalsOf } from "../../src/hsm/internals.js";
import type { JournalEntry } from "../../src/hsm/journal.js";
import { MAC_PURPOSE } from "../../src/hsm/seal.js";
import { VirtualClock } from "../../src/sim/clock.js";
import { NetworkError, SimNetwork } from "../../src/sim/network.js";
import { findForbidden } from "./walk.js";
import { Rng } from "../../src/sim/random.js";
import { World } from "../../src/sim/world.js";
import { ALICE, CO, activeWorld } from "../cluster/fixture.js";

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

/** A user change making `name` a CO with password `password` (what an attacker would push). */
function coEntry(origin: number, seq: number, name: string, password: string): JournalEntry {
  const salt = randomBytes(16), cost = 4;
  const hash = scryptSync(password, salt, 32, { N: 2 ** cost, r: 8, p: 1 });
  return { origin, seq, change: { kind: "user", name, version: 2 ** 40, role: "CO", principal: origin * 2 ** 20 + 1, salt, hash, cost } };
}

const rejected = (world: World) => world.cluster.liveNodes().reduce((n, node) => n + node.stats.peerRejected, 0);
const users = (node: ClusterNode) => ({ head: (o: number) => internalsOf(node.hsm).state.head(o), hasKey: (id: number) => internalsOf(node.hsm).state.hasKey(id), user: (name: string) => internalsOf(node.hsm).store.user(name) });

/** Every peer envelope `world`'s HSMs send from now on. */
function capturePeerMessages(world: World): PeerEnvelope[] {
  const captured: PeerEnvelope[] = [];
  const send = world.network.send.bind(world.network);
  // The network's class is frozen, so a wiretap is an own property defined on this one instance.
  const wiretap: SimNetwork["send"] = (from, to, message) => {
    if ((message as { t?: string })?.t === "peer") captured.push(message as PeerEnvelope);
    send(from, to, message);
  };
  Object.defineProperty(world.network, "send", { value: wiretap, writable: true, configurable: true });
  return captured;
}

const isPushOf = (e: PeerEnvelope, name: string) => e.body.startsWith('{"t":"push"') && e.body.includes(name);

function expectNoLogin(world: World, name: string, password: string): void {
  expect(() => world.connect(`probe-${name}-${world.clock.nowUs()}`).console(name, password).listUsers())
    .toThrow(expect.objectContaining({ code: "LOGIN_FAILED" }));
}

describe("peer messages are authenticated with the cluster key", () => {
  it("a forged envelope with a wrong MAC, claiming a member's address, is dropped by every HSM", () => {
    const world = activeWorld();
    const members = world.cluster.addresses();
    const before = rejected(world);
    for (const to of members) {
      const from = members.find((m) => m !== to)!;
      const body = encodePeerMessage({ t: "push", entries: [coEntry(1, 10_000, "mallory", "attacker-pass-1")] });
      world.network.send(from, to, { t: "peer", cluster: world.cluster.clusterId, from, to, body, mac: randomBytes(32) } satisfies PeerEnvelope);
    }
    world.run(1_000_000);
    expect(rejected(world) - before).toBe(members.length);
    expectNoLogin(world, "mallory", "attacker-pass-1");
  });

  it("a genuine message with its body changed, or re-addressed to another HSM, is dropped", () => {
    const world = activeWorld();
    const captured = capturePeerMessages(world);
    world.connect("co").console(CO.username, CO.password).createUser("carol", "CU", "carol-pass-1");
    world.run(1_000_000);
    const genuine = captured.find((e) => isPushOf(e, "carol"))!;
    expect(genuine).toBeDefined();
    const other = world.cluster.addresses().find((a) => a !== genuine.from && a !== genuine.to)!;
    const before = rejected(world);
    // The body says CO now; the MAC was over CU.
    const tampered = genuine.body.replace('\\"role\\":\\"CU\\"', '\\"role\\":\\"CO\\"');
    expect(tampered).not.toBe(genuine.body);
    world.network.send(genuine.from, genuine.to, { ...genuine, body: tampered });
    // Sent to a third HSM (which it was not MACed for), claiming the same sender.
    world.network.send(genuine.from, other, { ...genuine, to: other });
    world.run(1_000_000);
    expect(rejected(world) - before).toBe(2);
    for (const node of world.cluster.liveNodes()) expect(users(node).user("carol")?.role).toBe("CU");
  });

  it("a genuine message replayed by another address than its sender is dropped", () => {
    const world = activeWorld();
    const captured = capturePeerMessages(world);
    world.connect("co").console(CO.username, CO.password).createUser("dave", "CU", "dave-pass-12");
    world.run(1_000_000);
    const genuine = captured.find((e) => isPushOf(e, "dave"))!;
    const before = rejected(world);
    world.network.send("client-replayer", genuine.to, genuine);
    world.run(1_000_000);
    expect(rejected(world) - before).toBe(1);
  });

  it("a genuine push from another cluster (another masking key) is refused, with or without its cluster name rewritten", () => {
    const victim = activeWorld({ seed: "victim" });
    const other = activeWorld({ seed: "other" }); // same addresses, same CO name: only the keys differ
    expect(other.cluster.addresses()).toEqual(victim.cluster.addresses());
    const captured = capturePeerMessages(other);
    other.connect("co").console(CO.username, CO.password).createUser("mallory", "CO", "attacker-pass-1");
    other.run(1_000_000);
    const pushes = captured.filter((e) => isPushOf(e, "mallory"));
    expect(pushes.length).toBeGreaterThan(0);
    const before = rejected(victim);
    for (const e of pushes) {
      victim.network.send(e.from, e.to, e);
      victim.network.send(e.from, e.to, { ...e, cluster: victim.cluster.clusterId });
    }
    victim.run(1_000_000);
    expect(rejected(victim) - before).toBe(2 * pushes.length);
    for (const node of victim.cluster.liveNodes()) expect(users(node).user("mallory")).toBeUndefined();
    expectNoLogin(victim, "mallory", "attacker-pass-1");
    // The control: in its own cluster the captured pushes are genuine (a duplicate is accepted, and changes nothing).
    const otherBefore = rejected(other);
    for (const e of pushes) other.network.send(e.from, e.to, e);
    other.run(1_000_000);
    expect(rejected(other)).toBe(otherBefore);
  });

  it("a restored cluster of the same lineage (same masking key) refuses the old cluster's messages: the cluster is MACed", () => {
    const world = activeWorld();
    const dataDir = mkdtempSync(join(tmpdir(), "hsmsim-restore-"));
    dirs.push(dataDir);
    const backup = world.cluster.backupNow();
    const restored = Cluster.restore(backup.backupId, { clock: world.clock, transport: world.network, rng: new Rng("restore"), dataDir,
      vault: world.cluster.vault, lineageId: world.cluster.lineageId, passwordCost: 1, hsmCount: 2, addressPrefix: "10.1" });
    try {
      const captured = capturePeerMessages(world);
      world.connect("co").console(CO.username, CO.password).createUser("mallory", "CO", "attacker-pass-1");
      world.run(1_000_000);
      const push = captured.find((e) => isPushOf(e, "mallory"))!;
      const [a, b] = restored.addresses();
      const rejectedBefore = restored.liveNodes().reduce((n, node) => n + node.stats.peerRejected, 0);
      // Re-addressed into the restored cluster, with its name: the MAC (same key) was over other names.
      world.network.send(a, b, { ...push, cluster: restored.clusterId, from: a, to: b });
      world.run(1_000_000);
      expect(restored.liveNodes().reduce((n, node) => n + node.stats.peerRejected, 0) - rejectedBefore).toBe(1);
      for (const node of restored.liveNodes()) expect(users(node).user("mallory")).toBeUndefined();
    } finally {
      restored.shutdown();
    }
  });

  it("entries from an origin the cluster never gave are refused even in an authenticated message (defence in depth)", () => {
    const world = activeWorld();
    const [sender, ...receivers] = world.cluster.liveNodes();
    const body = encodePeerMessage({ t: "push", entries: [coEntry(4000, 1, "mallory", "attacker-pass-1")] });
    for (const receiver of receivers) {
      const input = peerMacInput(world.cluster.clusterId, sender.address, receiver.address, body);
      const mac = internalsOf(sender.hsm).chip.deviceMac(0, MAC_PURPOSE.peerMessage, input); // an insider's MAC
      world.network.send(sender.address, receiver.address, { t: "peer", cluster: world.cluster.clusterId, from: sender.address, to: receiver.address, body, mac });
    }
    world.run(1_000_000);
    for (const receiver of receivers) {
      expect(receiver.stats.unknownOrigin).toBe(1);
      expect(users(receiver).user("mallory")).toBeUndefined();
      expect(users(receiver).head(4000)).toBe(0);
    }
  });

  it("replication still works across add, replace, crash and restart (entries of removed HSMs' origins included)", () => {
    const world = activeWorld();
    const alice = world.connect("a").login(ALICE.username, ALICE.password);
    const co = world.connect("co").console(CO.username, CO.password);
    const first = world.cluster.describe()[0].hsmId;
    const added = world.cluster.addHsm();
    world.run(2_000_000);
    const key = alice.generateAesKey({ label: "across changes" });
    world.cluster.replaceHsm(first);
    world.run(2_000_000);
    const id = world.cluster.describe().find((h) => h.state !== "DELETED" && h.hsmId !== added.hsmId)!.hsmId;
    world.cluster.crashHsm(id);
    co.createUser("erin", "CU", "erin-pass-12");
    world.cluster.restartHsm(id);
    world.run(3_000_000);
    for (const node of world.cluster.liveNodes()) {
      expect(users(node).hasKey(key.id)).toBe(true);
      expect(users(node).user("erin")).toBeDefined();
      expect(node.stats.peerRejected).toBe(0);
      expect(node.stats.unknownOrigin).toBe(0);
    }
  });
});

describe("a client's endpoint is bound to its own address", () => {
  it("refuses to send, attach or detach as another address", () => {
    const world = activeWorld();
    const connection = world.connect("app");
    const endpoint = (connection.client as unknown as { options: { transport: SimNetwork } }).options.transport;
    expect(endpoint).not.toBeInstanceOf(SimNetwork);
    const hsm = world.cluster.addresses()[0];
    const code = expect.objectContaining({ name: "NetworkError", code: "NOT_OWN_ADDRESS" });
    expect(() => endpoint.send(world.cluster.addresses()[1], hsm, { t: "push", entries: [] })).toThrow(code);
    expect(() => endpoint.attach(hsm, () => {})).toThrow(code);
    expect(() => endpoint.detach(hsm)).toThrow(code);
    expect(() => endpoint.send(hsm, hsm, {})).toThrow(NetworkError);
    expect(Object.isFrozen(endpoint)).toBe(true);
    // Its own address still works: the connection is usable.
    const alice = connection.login(ALICE.username, ALICE.password);
    const key = alice.generateAesKey({ label: "own-address" });
    expect(alice.decrypt(key, alice.encrypt(key, Buffer.from("own address"))).toString()).toBe("own address");
  });

  it("nothing reachable from a client connection is the network, the cluster, an HSM node, an Hsm or the World", () => {
    const world = activeWorld();
    const connection = world.connect("app");
    connection.login(ALICE.username, ALICE.password).generateAesKey({ label: "walked" });
    const forbidden = new Map<unknown, string>([[world, "the World"], [world.network, "the SimNetwork"], [world.cluster, "the Cluster"],
      [world.clock, "the VirtualClock"], [world.rng, "the World's Rng"], [world.cluster.vault, "the BackupVault"]]);
    for (const node of world.cluster.liveNodes()) {
      forbidden.set(node, `node ${node.address}`);
      forbidden.set(node.hsm, `Hsm ${node.hsm.id}`);
    }
    const found = findForbidden(connection, forbidden);
    expect(found).toEqual([]);
    // The walker's control: it does find the network when a connection is handed the raw network.
    const raw = ClusterConnection.connect({ transport: world.network, clock: world.clock, rng: new Rng("raw"), address: "client-raw",
      bootstrap: world.cluster.addresses()[0], driver: world.clock });
    expect(findForbidden(raw, forbidden)).toEqual(expect.arrayContaining([expect.stringContaining("the SimNetwork")]));
    raw.close();
  });
});

describe("a client's clock is a view", () => {
  it("cancels only the client's own timers, not an HSM's or the control plane's", () => {
    const world = activeWorld();
    const connection = world.connect("app");
    const clock = (connection.client as unknown as { options: { clock: { cancel(id: number): void; schedule(d: number, fn: () => void): number } } }).options.clock;
    expect(clock).not.toBe(world.clock);
    let fired = 0;
    const theirs = world.clock.schedule(1_000, () => fired++); // someone else's timer
    for (let id = 1; id <= theirs + 100; id++) clock.cancel(id); // cancel everything it can name
    let mine = 0;
    clock.cancel(clock.schedule(1_000, () => mine++));
    world.run(1_000_000);
    expect(fired).toBe(1);
    expect(mine).toBe(0);
    // The cluster still gossips and serves.
    const alice = connection.login(ALICE.username, ALICE.password);
    const key = alice.generateAesKey({ label: "after" });
    expect(alice.decrypt(key, alice.encrypt(key, Buffer.from("still serving"))).toString()).toBe("still serving");
  });
});

describe("unit: the endpoint and the classes", () => {
  it("an endpoint of a bare network delivers as its address", () => {
    const clock = new VirtualClock();
    const network = new SimNetwork(clock, new Rng("n"));
    const seen: [string, unknown][] = [];
    network.attach("server", (from, message) => seen.push([from, message]));
    const endpoint = network.endpoint("client-x");
    endpoint.attach("client-x", () => {});
    endpoint.send("client-x", "server", "hello");
    clock.runUntil(1_000_000);
    expect(seen).toEqual([["client-x", "hello"]]);
    expect(() => network.endpoint("")).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
  });
});
