// Journal compaction past a silent member, and the snapshot transfer that brings it back (issue
// 9): an HSM down while its peers take many writes and compact their journals beyond it
// converges after its restart (same keys and users, no acknowledged write lost, audit chains
// verify) — and without the snapshot transfer (a regression switch) it never does. A member cut
// off with writes of its own keeps them. A snapshot is authenticated like every peer message:
// a forged, foreign or malformed one changes nothing; a replayed genuine one changes nothing new.
import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

import type { KeyRef } from "../../src/client/api.js";
import type { ClusterNode } from "../../src/cluster/node.js";
import { type PeerEnvelope, encodePeerMessage, peerMacInput } from "../../src/cluster/protocol.js";
import { regressions } from "../../src/cluster/regressions.js";
import { MAX_SNAPSHOT_CHARS, SnapshotTransfers, decodePeerState, encodePeerState, takePeerState } from "../../src/cluster/snapshot-transfer.js";
import { Cluster } from "../../src/cluster/cluster.js";
import { VirtualClock } from "../../src/sim/clock.js";
import type { SnapshotChunk } from "../../src/cluster/protocol.js";
import { internalsOf } from "../../src/hsm/internals.js";
import { MAC_PURPOSE } from "../../src/hsm/seal.js";
import { checkAuditChains, replicaDigest } from "../../src/sim/invariants.js";
import type { SimNetwork } from "../../src/sim/network.js";
import type { World } from "../../src/sim/world.js";
import { ALICE, BOB, CO, activeWorld } from "./fixture.js";

afterEach(() => {
  regressions.noSnapshotTransfer = false;
});

/** Compaction tight enough to pass a member down for a second or two. */
const TIGHT = { journalRetainEntries: 4, memberSilentAfterUs: 1_000_000, snapshotRetryUs: 500_000, snapshotChunkChars: 2048 };

function tightWorld(seed: string, extra: Record<string, unknown> = {}): World {
  return activeWorld({ seed, cluster: { hsmCount: 3, node: TIGHT, ...extra } });
}

const nodeAt = (world: World, hsmId: string) => world.cluster.node(hsmId)!;
const journalTail = (node: ClusterNode, origin: number) => internalsOf(node.hsm).store.journalRange(origin, 0, 1)[0]?.seq ?? Infinity;
const sum = (world: World, stat: "snapshotsSent" | "snapshotsInstalled" | "snapshotsRefused" | "peerRejected") =>
  world.cluster.liveNodes().reduce((n, node) => n + node.stats[stat], 0);

/** Runs until every live HSM holds the same state, at most `boundUs`; whether they converged. */
function converge(world: World, boundUs: number): boolean {
  const until = world.clock.nowUs() + boundUs;
  while (world.clock.nowUs() < until) {
    if (new Set(world.cluster.liveNodes().map((n) => replicaDigest(n.hsm))).size === 1) return true;
    world.run(100_000);
  }
  return new Set(world.cluster.liveNodes().map((n) => replicaDigest(n.hsm))).size === 1;
}

function capturePeerMessages(world: World): PeerEnvelope[] {
  const captured: PeerEnvelope[] = [];
  const send = world.network.send.bind(world.network);
  const wiretap: SimNetwork["send"] = (from, to, message) => {
    if ((message as { t?: string })?.t === "peer") captured.push(message as PeerEnvelope);
    send(from, to, message);
  };
  Object.defineProperty(world.network, "send", { value: wiretap, writable: true, configurable: true });
  return captured;
}
const isSnapshot = (e: PeerEnvelope) => e.body.startsWith('{"t":"snap"');

/** A write, again if the client could not tell whether it happened (its HSM had just died: writes are not retried for us). */
function retry<T>(fn: () => T): T {
  for (let attempt = 1; ; attempt++) {
    try {
      return fn();
    } catch (e) {
      if (attempt >= 3 || !String((e as { detail?: string }).detail ?? (e as Error).message).includes("OUTCOME_UNKNOWN")) throw e;
    }
  }
}

/**
 * HSM 3 crashes; alice and the CO make many writes (keys made and deleted, a user made and
 * one deleted) while the others compact past it; then it restarts.
 */
function longDownScenario(world: World) {
  const victim = world.cluster.describe()[2];
  const alice = world.connect("alice").login(ALICE.username, ALICE.password);
  const co = world.connect("co").console(CO.username, CO.password);
  const early = alice.generateAesKey({ label: "before" });
  world.run(500_000);
  const victimHeads = internalsOf(nodeAt(world, victim.hsmId).hsm).state.vector();
  world.cluster.crashHsm(victim.hsmId);
  const keys: KeyRef[] = [];
  for (let i = 0; i < 24; i++) keys.push(retry(() => alice.generateAesKey({ label: `while-down-${i}` })));
  retry(() => alice.deleteKey(keys[0]));
  retry(() => alice.deleteKey(early));
  retry(() => co.createUser("carol", "CU", "carol-pass-1"));
  retry(() => co.deleteUser(BOB.username));
  world.run(3_000_000); // well past memberSilentAfterUs: a few prune rounds
  const survivor = world.cluster.liveNodes()[0];
  return { victim, victimHeads, alice, co, keys, early, survivor };
}

describe("journal compaction no longer waits for a silent member", () => {
  it("the live HSMs prune past a member that is down, keeping only journalRetainEntries for it", () => {
    const world = tightWorld("compaction");
    const { victimHeads } = longDownScenario(world);
    for (const node of world.cluster.liveNodes()) {
      const state = internalsOf(node.hsm).state;
      // Per origin: the journal keeps the last journalRetainEntries at most beyond what the live HSMs hold (all of it here).
      for (const [origin, head] of state.vector()) {
        expect(internalsOf(node.hsm).store.journalRange(origin, 0, 1000).length).toBeLessThanOrEqual(TIGHT.journalRetainEntries);
        if (head > (victimHeads.get(origin) ?? 0) + TIGHT.journalRetainEntries) {
          expect(journalTail(node, origin), `origin ${origin}`).toBeGreaterThan((victimHeads.get(origin) ?? 0) + 1); // below the victim's next entry
        }
      }
    }
    const passed = world.cluster.liveNodes().some((n) => [...internalsOf(n.hsm).state.vector()].some(([o]) => journalTail(n, o) > (victimHeads.get(o) ?? 0) + 1));
    expect(passed).toBe(true);
  });

  it("with the default policy a short outage prunes nothing the member lacks", () => {
    const world = activeWorld({ seed: "default-compaction", cluster: { hsmCount: 3 } });
    const { victim, victimHeads } = longDownScenario(world);
    for (const node of world.cluster.liveNodes()) {
      for (const [origin, head] of internalsOf(node.hsm).state.vector()) {
        if (head > (victimHeads.get(origin) ?? 0)) expect(journalTail(node, origin)).toBeLessThanOrEqual((victimHeads.get(origin) ?? 0) + 1);
      }
    }
    world.cluster.restartHsm(victim.hsmId);
    expect(converge(world, 5_000_000)).toBe(true);
    expect(sum(world, "snapshotsSent")).toBe(0); // entries were still there: plain anti-entropy
  });
});

describe("a member below its peers' compacted journal is brought back by a snapshot transfer", () => {
  it("converges after its restart: same keys and users, acknowledged writes kept, audit chains verify", () => {
    const world = tightWorld("snapshot-restart");
    const { victim, keys, early, alice } = longDownScenario(world);
    world.cluster.restartHsm(victim.hsmId);
    expect(converge(world, 10_000_000)).toBe(true);
    const back = nodeAt(world, victim.hsmId);
    expect(back.stats.snapshotsInstalled).toBeGreaterThan(0);
    expect(sum(world, "snapshotsSent")).toBeGreaterThan(0);
    const state = internalsOf(back.hsm).state;
    for (const key of keys.slice(1)) expect(state.hasKey(key.id)).toBe(true);
    expect(state.hasKey(keys[0].id)).toBe(false);
    expect(state.hasKey(early.id)).toBe(false);
    expect(internalsOf(back.hsm).store.user("carol")).toBeDefined();
    expect(internalsOf(back.hsm).store.user(BOB.username)).toBeUndefined();
    expect(internalsOf(back.hsm).store.tombstone("user", BOB.username)).toBeDefined();
    // Heads agree, and the back HSM serves: a key it makes reaches the others by plain anti-entropy.
    const heads = (n: ClusterNode) => JSON.stringify([...internalsOf(n.hsm).state.vector()].sort((a, b) => a[0] - b[0]));
    expect(new Set(world.cluster.liveNodes().map(heads)).size).toBe(1);
    const audit = [...internalsOf(back.hsm).store.auditEntries()];
    expect(audit.some((e) => e.operation === "SNAPSHOT" && e.result === "OK")).toBe(true);
    expect(audit.some((e) => e.operation === "SYNC" && e.detail.startsWith(`user-delete user:${BOB.username} from a snapshot of`))).toBe(true);
    const later = alice.generateAesKey({ label: "after" });
    expect(converge(world, 5_000_000)).toBe(true);
    for (const node of world.cluster.liveNodes()) expect(internalsOf(node.hsm).state.hasKey(later.id)).toBe(true);
    expect(checkAuditChains(world.cluster.dataFolders())).toEqual([]);
    expect(sum(world, "peerRejected")).toBe(0);
    expect(sum(world, "snapshotsRefused")).toBe(0);
  });

  it("without the snapshot transfer (regression switch) the member is left behind forever", () => {
    regressions.noSnapshotTransfer = true;
    const world = tightWorld("snapshot-restart");
    const { victim, keys } = longDownScenario(world);
    world.cluster.restartHsm(victim.hsmId);
    expect(converge(world, 10_000_000)).toBe(false);
    expect(sum(world, "snapshotsSent")).toBe(0);
    expect(internalsOf(nodeAt(world, victim.hsmId).hsm).state.hasKey(keys[5].id)).toBe(false);
  });

  it("a member cut off with writes of its own keeps them, and both sides converge", () => {
    const world = tightWorld("snapshot-partition", { keyAvailabilityMin: 1 });
    const [a, b, c] = world.cluster.describe();
    const island = world.connect("island"); // bootstraps from a, then is cut off with c alone
    const islandCo = island.console(CO.username, CO.password);
    islandCo.listUsers();
    const alice = world.connect("alice").login(ALICE.username, ALICE.password);
    world.network.partition([c.address, "client-island"], [a.address, b.address, "client-alice", "client-co"]);
    const keys: KeyRef[] = [];
    for (let i = 0; i < 20; i++) keys.push(retry(() => alice.generateAesKey({ label: `mainland-${i}` })));
    for (let i = 0; i < 8; i++) retry(() => islandCo.createUser(`islander${i}`, "CU", "island-pass-1"));
    world.run(3_000_000);
    const cNode = nodeAt(world, c.hsmId);
    expect(internalsOf(cNode.hsm).store.user("islander7")).toBeDefined();
    expect(cNode.stats.pruned).toBeGreaterThan(0); // c compacted past a and b too
    world.network.heal();
    expect(converge(world, 10_000_000)).toBe(true);
    for (const node of world.cluster.liveNodes()) {
      for (let i = 0; i < 8; i++) expect(internalsOf(node.hsm).store.user(`islander${i}`)).toBeDefined();
      for (const key of keys) expect(internalsOf(node.hsm).state.hasKey(key.id)).toBe(true);
    }
    expect(cNode.stats.snapshotsInstalled).toBeGreaterThan(0);
    expect(nodeAt(world, a.hsmId).stats.snapshotsInstalled + nodeAt(world, b.hsmId).stats.snapshotsInstalled).toBeGreaterThan(0);
    world.cluster.shutdown();
    expect(checkAuditChains(world.cluster.dataFolders())).toEqual([]);
  });

  it("a snapshot ends the logins of users it deleted on the receiver", () => {
    const world = tightWorld("snapshot-revoke", { keyAvailabilityMin: 1 });
    const [a, , c] = world.cluster.describe();
    const cNode = nodeAt(world, c.hsmId);
    const bobOnC = cNode.hsm.login(BOB.username, BOB.password);
    expect(internalsOf(cNode.hsm).isCurrent(bobOnC)).toBe(true);
    world.network.partition([c.address], [a.address, world.cluster.describe()[1].address, "client-co", "client-alice"]);
    const co = world.connect("co").console(CO.username, CO.password);
    retry(() => co.deleteUser(BOB.username));
    const alice = world.connect("alice").login(ALICE.username, ALICE.password);
    for (let i = 0; i < 12; i++) retry(() => alice.generateAesKey({ label: `k${i}` }));
    world.run(3_000_000);
    expect(internalsOf(cNode.hsm).isCurrent(bobOnC)).toBe(true); // c has not heard yet
    world.network.heal();
    expect(converge(world, 10_000_000)).toBe(true);
    expect(cNode.stats.snapshotsInstalled).toBeGreaterThan(0);
    expect(internalsOf(cNode.hsm).isCurrent(bobOnC)).toBe(false);
  });
});

describe("a member whose folder was rolled back to an older copy", () => {
  it("gets its own origin's later writes back by snapshot, and mints no principal twice", () => {
    const world = tightWorld("snapshot-rollback");
    const c = world.cluster.describe()[2];
    const dir = world.cluster.dataFolders().find((f) => f.hsmId === c.hsmId)!.dir;
    const copy = mkdtempSync(join(tmpdir(), "hsmsim-rollback-"));
    try {
      world.cluster.crashHsm(c.hsmId);
      cpSync(dir, join(copy, "hsm"), { recursive: true });
      world.cluster.restartHsm(c.hsmId);
      world.run(1_000_000);
      // Writes of c's own origin after the copy was taken: straight on c's device, replicated by anti-entropy.
      const cHsm = nodeAt(world, c.hsmId).hsm;
      const co = cHsm.login(CO.username, CO.password);
      for (let i = 0; i < 6; i++) cHsm.createUser(co, `late${i}`, "CU", "late-pass-12");
      cHsm.logout(co);
      expect(converge(world, 5_000_000)).toBe(true);
      world.run(2_000_000); // every member holds them: compacted away everywhere
      const origin = nodeAt(world, c.hsmId).origin;
      const principals = new Set(world.cluster.liveNodes().flatMap((n) => internalsOf(n.hsm).store.users().map((u) => u.principal)));
      const headBefore = internalsOf(cHsm).state.head(origin);
      // The folder goes back to the copy.
      world.cluster.crashHsm(c.hsmId);
      rmSync(dir, { recursive: true, force: true });
      cpSync(join(copy, "hsm"), dir, { recursive: true });
      world.cluster.restartHsm(c.hsmId);
      const back = nodeAt(world, c.hsmId);
      expect(internalsOf(back.hsm).state.head(origin)).toBeLessThan(headBefore);
      expect(converge(world, 10_000_000)).toBe(true);
      expect(back.stats.snapshotsInstalled).toBeGreaterThan(0);
      expect(internalsOf(back.hsm).state.head(origin)).toBe(headBefore);
      for (let i = 0; i < 6; i++) expect(internalsOf(back.hsm).store.user(`late${i}`)).toBeDefined();
      // Its next write takes a new principal and a new journal position, and reaches the others.
      const co2 = back.hsm.login(CO.username, CO.password);
      back.hsm.createUser(co2, "after_rollback", "CU", "after-pass-12");
      back.hsm.logout(co2);
      expect(converge(world, 5_000_000)).toBe(true);
      const made = internalsOf(back.hsm).store.user("after_rollback")!;
      expect(principals.has(made.principal)).toBe(false);
      for (const node of world.cluster.liveNodes()) expect(internalsOf(node.hsm).store.user("after_rollback")?.principal).toBe(made.principal);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});

describe("snapshots are authenticated like every peer message", () => {
  /** A snapshot of `sender`'s state, as the chunk bodies a member would send. */
  function snapshotBody(sender: ClusterNode, state = takePeerState(sender.hsm)): string {
    return encodePeerMessage({ t: "snap", transfer: "t-test", index: 0, count: 1, data: encodePeerState(state) });
  }
  const envelope = (world: World, from: string, to: string, body: string, mac: Buffer): PeerEnvelope =>
    ({ t: "peer", cluster: world.cluster.clusterId, from, to, body, mac });

  it("a forged snapshot (a wrong MAC, or sent from a non-member address) changes nothing", () => {
    const world = tightWorld("snapshot-forged");
    const [sender, receiver] = world.cluster.liveNodes();
    const forged = takePeerState(sender.hsm);
    forged.users = forged.users.map((u) => (u.name === ALICE.username ? { ...u, role: "CO", version: 2 ** 40 } : u));
    const body = snapshotBody(sender, forged);
    const before = replicaDigest(receiver.hsm), rejectedBefore = receiver.stats.peerRejected;
    world.network.send(sender.address, receiver.address, envelope(world, sender.address, receiver.address, body, randomBytes(32)));
    // A genuine MAC by the sender's chip, but delivered from an address that is no member.
    const mac = internalsOf(sender.hsm).chip.deviceMac(0, MAC_PURPOSE.peerMessage, peerMacInput(world.cluster.clusterId, "10.9.9.9", receiver.address, body));
    world.network.send("10.9.9.9", receiver.address, envelope(world, "10.9.9.9", receiver.address, body, mac));
    world.run(1_000_000);
    expect(receiver.stats.peerRejected - rejectedBefore).toBe(1); // the wrong MAC; the non-member is dropped unread
    expect(receiver.stats.snapshotsInstalled).toBe(0);
    expect(replicaDigest(receiver.hsm)).toBe(before);
    expect(internalsOf(receiver.hsm).store.user(ALICE.username)?.role).toBe("CU");
  });

  it("a genuine snapshot from another cluster is refused, with or without its cluster name rewritten", () => {
    const victim = tightWorld("snapshot-victim");
    const other = tightWorld("snapshot-other");
    expect(other.cluster.addresses()).toEqual(victim.cluster.addresses());
    const captured = capturePeerMessages(other);
    const { victim: down } = longDownScenario(other);
    other.cluster.restartHsm(down.hsmId);
    expect(converge(other, 10_000_000)).toBe(true);
    const snapshots = captured.filter(isSnapshot);
    expect(snapshots.some((e) => (JSON.parse(e.body) as { count: number }).count > 1)).toBe(true); // chunked
    const before = victim.cluster.liveNodes().map((n) => replicaDigest(n.hsm));
    const rejectedBefore = sum(victim, "peerRejected");
    for (const e of snapshots) {
      victim.network.send(e.from, e.to, e);
      victim.network.send(e.from, e.to, { ...e, cluster: victim.cluster.clusterId });
    }
    victim.run(1_000_000);
    expect(sum(victim, "peerRejected") - rejectedBefore).toBe(2 * snapshots.length);
    expect(sum(victim, "snapshotsInstalled")).toBe(0);
    expect(victim.cluster.liveNodes().map((n) => replicaDigest(n.hsm))).toEqual(before);
    for (const node of victim.cluster.liveNodes()) expect(internalsOf(node.hsm).store.user("carol")).toBeUndefined();
  });

  it("a genuine snapshot replayed later brings back nothing deleted since", () => {
    const world = tightWorld("snapshot-replay");
    const captured = capturePeerMessages(world);
    const { victim, alice, keys, co } = longDownScenario(world);
    world.cluster.restartHsm(victim.hsmId);
    expect(converge(world, 10_000_000)).toBe(true);
    const snapshots = captured.filter(isSnapshot);
    expect(snapshots.length).toBeGreaterThan(0);
    alice.deleteKey(keys[3]);
    co.deleteUser("carol");
    expect(converge(world, 5_000_000)).toBe(true);
    const before = world.cluster.liveNodes().map((n) => replicaDigest(n.hsm));
    const installedBefore = sum(world, "snapshotsInstalled");
    for (const e of snapshots) world.network.send(e.from, e.to, e);
    world.run(1_000_000);
    expect(sum(world, "snapshotsInstalled")).toBeGreaterThan(installedBefore); // accepted: it is genuine…
    expect(world.cluster.liveNodes().map((n) => replicaDigest(n.hsm))).toEqual(before); // …and a join: nothing newer is undone
    for (const node of world.cluster.liveNodes()) {
      expect(internalsOf(node.hsm).state.hasKey(keys[3].id)).toBe(false);
      expect(internalsOf(node.hsm).store.user("carol")).toBeUndefined();
    }
  });

  it("a member's malformed or unopenable snapshot is refused whole: nothing of it is kept", () => {
    const world = tightWorld("snapshot-malformed", { keyAvailabilityMin: 1 });
    const [sender, receiver, third] = world.cluster.liveNodes();
    // The receiver is cut off while alice makes a key: the sender's snapshot holds a key the receiver would take.
    world.network.partition([receiver.address], [sender.address, third.address, "client-alice"]);
    const alice = world.connect("alice").login(ALICE.username, ALICE.password);
    const fresh = retry(() => alice.generateAesKey({ label: "fresh" }));
    world.run(500_000);
    expect(internalsOf(sender.hsm).state.hasKey(fresh.id)).toBe(true);

    const send = (data: string) => {
      const body = encodePeerMessage({ t: "snap", transfer: `t-${data.length}`, index: 0, count: 1, data });
      const mac = internalsOf(sender.hsm).chip.deviceMac(0, MAC_PURPOSE.peerMessage, peerMacInput(world.cluster.clusterId, sender.address, receiver.address, body));
      world.network.send(sender.address, receiver.address, envelope(world, sender.address, receiver.address, body, mac));
    };
    const state = takePeerState(sender.hsm);
    const good = JSON.parse(encodePeerState(state)) as { users: unknown[][]; keys: unknown[][] };
    const before = replicaDigest(receiver.hsm);
    expect(internalsOf(receiver.hsm).state.hasKey(fresh.id)).toBe(false);
    const early: string[] = [];
    early.push("not json");
    early.push(JSON.stringify({ ...good, users: [["Mallory!", "CO", 1, "", "", 1, 1]] }));
    early.push(JSON.stringify({ ...good, heads: [[4000, 5]] })); // an origin the cluster never gave
    // A key record that does not open (its bytes changed), next to a user the receiver would otherwise take.
    const mallory = [...good.users[0]];
    mallory[0] = "mallory";
    mallory[6] = 2 ** 40;
    const badKey = [...good.keys[good.keys.length - 1]];
    badKey[0] = (badKey[0] as number) + 1000;
    badKey[1] = Buffer.alloc(64, 7).toString("base64");
    expect(good.keys.some((k) => k[0] === fresh.id)).toBe(true);
    const unopenable = JSON.stringify({ ...good, users: [...good.users, mallory], keys: [...good.keys, badKey] });
    // Merged directly while the receiver is still cut off: refused whole, the key it would have taken included (store and chip).
    const auditBefore = internalsOf(receiver.hsm).store.auditCount();
    expect(() => internalsOf(receiver.hsm).state.merge(decodePeerState(unopenable)!)).toThrow(expect.objectContaining({ code: "DATA_FOLDER_INVALID" }));
    expect(internalsOf(receiver.hsm).state.hasKey(fresh.id)).toBe(false);
    expect(internalsOf(receiver.hsm).store.key(fresh.id)).toBeUndefined();
    expect(internalsOf(receiver.hsm).store.user("mallory")).toBeUndefined();
    expect(internalsOf(receiver.hsm).store.auditCount()).toBe(auditBefore);
    world.network.heal();
    for (const data of [...early, unopenable]) send(data);
    world.run(100_000);
    expect(receiver.stats.snapshotsRefused).toBe(4);
    expect(receiver.stats.unknownOrigin).toBe(1);
    expect(receiver.stats.snapshotsInstalled).toBe(0);
    expect(internalsOf(receiver.hsm).store.user("mallory")).toBeUndefined();
    // Anti-entropy carries on: the key reaches the receiver the ordinary way.
    expect(converge(world, 5_000_000)).toBe(true);
    expect(internalsOf(receiver.hsm).state.hasKey(fresh.id)).toBe(true);
    expect(before).not.toBe(replicaDigest(receiver.hsm));
    world.cluster.shutdown();
    expect(checkAuditChains(world.cluster.dataFolders())).toEqual([]);
  });
});

describe("snapshot chunks", () => {
  it("reassemble out of order and duplicated; a transfer too large or inconsistent is refused", () => {
    const world = tightWorld("snapshot-chunks");
    const sender = world.cluster.liveNodes()[0];
    const sent: SnapshotChunk[] = [];
    const clock = new VirtualClock();
    const transfers = new SnapshotTransfers({ clock, chunkChars: 100, retryUs: 10_000_000, send: (_to, chunk) => sent.push(chunk), later: (delayUs, fn) => void clock.schedule(delayUs, fn) });
    expect(transfers.offer("peer", sender.hsm)).toBe(true);
    expect(sent.length).toBe(1); // paced: one chunk per SNAPSHOT_CHUNK_INTERVAL_US
    clock.runUntil(clock.nowUs() + 1_000_000);
    expect(transfers.offer("peer", sender.hsm)).toBe(false); // still within retryUs of the last chunk
    expect(sent.length).toBeGreaterThan(2);
    expect(sent.map((c) => c.index)).toEqual(sent.map((_, i) => i));
    const receiver = new SnapshotTransfers({ clock, chunkChars: 300, retryUs: 1_000, send: () => {}, later: () => {} });
    const shuffled = [...sent].reverse();
    let result: ReturnType<SnapshotTransfers["receive"]> = null;
    for (const chunk of [shuffled[0], ...shuffled]) result = receiver.receive("peer", chunk) ?? result;
    expect(result).not.toBe("refused");
    expect(encodePeerState(result as Exclude<typeof result, null | "refused">)).toBe(encodePeerState(takePeerState(sender.hsm)));
    // More pieces than any snapshot could need, or a count that changes within a transfer: refused.
    expect(receiver.receive("peer", { t: "snap", transfer: "big", index: 0, count: MAX_SNAPSHOT_CHARS, data: "x" })).toBe("refused");
    expect(receiver.receive("peer", { t: "snap", transfer: "odd", index: 0, count: 3, data: "x" })).toBeNull();
    expect(receiver.receive("peer", { t: "snap", transfer: "odd", index: 1, count: 4, data: "x" })).toBe("refused");
    expect(receiver.stats.refused).toBe(2);
  });

  it("carry masked records and no masking key: only the replicable state's fields", () => {
    const world = tightWorld("snapshot-fields");
    const alice = world.connect("alice").login(ALICE.username, ALICE.password);
    alice.generateAesKey({ label: "k", extractable: false });
    world.run(500_000);
    const sender = world.cluster.liveNodes()[0];
    const encoded = JSON.parse(encodePeerState(takePeerState(sender.hsm))) as Record<string, unknown> & { keys: unknown[][]; users: unknown[][] };
    expect(Object.keys(encoded).sort()).toEqual(["activated", "heads", "keys", "lamport", "source", "tombstones", "users", "v"]);
    const stored = internalsOf(sender.hsm).store.keys();
    expect(encoded.keys.length).toBe(stored.length);
    for (const [i, key] of stored.entries()) expect(Buffer.from(encoded.keys[i][1] as string, "base64").equals(key.record)).toBe(true); // as masked at rest
    for (const user of encoded.users) expect(user).toHaveLength(7); // no lockout counter
  });

  it("bad compaction settings are refused by name", () => {
    const world = tightWorld("snapshot-settings");
    for (const node of [{ journalRetainEntries: -1 }, { memberSilentAfterUs: 0 }, { snapshotChunkChars: 1024 * 1024 + 1 }, { snapshotRetryUs: 1.5 }]) {
      const name = Object.keys(node)[0];
      expect(() => Cluster.create({ clock: world.clock, transport: world.network, rng: world.rng.fork(name), dataDir: world.dataDir, node }))
        .toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT", message: expect.stringContaining(`node.${name}`) }));
    }
  });
});
