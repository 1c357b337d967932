// The HSM-to-HSM side of a cluster node: authenticated peer messages (each an envelope MACed by
// the chip under the cluster key every member derives from the shared masking key), applying
// the journal entries peers push, anti-entropy by gossiping journal heads, journal compaction,
// and snapshot transfers to a peer that fell below this HSM's compacted journal
// (snapshot-transfer.ts). What each peer holds (its heads) and when it was last heard feed the
// node's write quorum and key availability check.
import { timingSafeEqual } from "node:crypto";

import { freezeClass } from "../primordials.js";
import type { Hsm } from "../hsm/hsm.js";
import { internalsOf } from "../hsm/internals.js";
import { type JournalEntry, decodeChange } from "../hsm/journal.js";
import { MAC_PURPOSE } from "../hsm/seal.js";
import type { Clock } from "../runtime/clock.js";
import type { Transport } from "../runtime/transport.js";
import type { HeadList, MemberAddress, PeerEnvelope, PeerMessage, SnapshotChunk } from "./protocol.js";
import { type ReceivedPeerMessage, decodePeerMessage, encodePeerMessage, encodePushBody, peerMacInput } from "./protocol.js";
import { regressions } from "./regressions.js";
import { MAX_SNAPSHOT_CHUNK_CHARS, SnapshotTransfers } from "./snapshot-transfer.js";

/** Catch-up heads rounds asked by stale requests: at most one per 10 ms. */
const CATCH_UP_INTERVAL_US = 10_000;

/** Journal entries one push carries at most. */
export const MAX_PUSH = 256;
const PRUNE_EVERY_ROUNDS = 5;
/** The largest peer message body: MAX_PUSH entries of at most a masked record each, with room to spare. */
const MAX_PEER_BODY_CHARS = 16 * 1024 * 1024;

/**
 * Journal compaction and snapshot transfer (NodeConfig). Every PRUNE_EVERY_ROUNDS gossip
 * rounds an HSM drops, per origin, the journal entries every live member holds. A member not
 * heard from for `memberSilentAfterUs` (down, partitioned away, its folder gone) holds back
 * pruning only by `journalRetainEntries` entries per origin: past that, the others compact
 * beyond it, and when it comes back below a peer's journal tail, that peer sends it a snapshot.
 */
export interface CompactionConfig {
  /** Entries per origin the journal keeps for a silent member beyond what the live members hold. */
  journalRetainEntries: number;
  /** How long a member may stay unheard before it no longer holds back compaction beyond journalRetainEntries. */
  memberSilentAfterUs: number;
  /** Characters of encoded state per snapshot chunk (at most MAX_SNAPSHOT_CHUNK_CHARS). */
  snapshotChunkChars: number;
  /** The least time between two snapshots sent to one peer. */
  snapshotRetryUs: number;
}

export const DEFAULT_COMPACTION: CompactionConfig = {
  journalRetainEntries: 10_000,
  memberSilentAfterUs: 60_000_000,
  snapshotChunkChars: 256 * 1024,
  snapshotRetryUs: 5_000_000,
};

/** Checks compaction settings a caller gave; the name of the first bad one, or undefined. */
export function badCompactionSetting(config: Partial<CompactionConfig>): string | undefined {
  for (const name of Object.keys(DEFAULT_COMPACTION) as (keyof CompactionConfig)[]) {
    const value = config[name];
    if (value === undefined) continue;
    const least = name === "journalRetainEntries" ? 0 : 1;
    if (!Number.isSafeInteger(value) || value < least || (name === "snapshotChunkChars" && value > MAX_SNAPSHOT_CHUNK_CHARS)) return name;
  }
  return undefined;
}

export interface ReplicationStats {
  applied: number;
  pruned: number;
  /** Peer messages dropped unread: not an authenticated envelope from a member to this HSM in this cluster (forged, mis-MACed, replayed from elsewhere). */
  peerRejected: number;
  /** Journal entries refused because their origin is no ordinal this cluster ever gave (defence in depth behind the MAC). */
  unknownOrigin: number;
  /** Snapshots sent to peers below this HSM's journal tail, installed from peers, and refused (whole but malformed, too large, or not installable). */
  snapshotsSent: number;
  snapshotsInstalled: number;
  snapshotsRefused: number;
}

export interface ReplicationHost {
  readonly hsm: Hsm;
  readonly clusterId: string;
  readonly address: string;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly stats: ReplicationStats;
  readonly compaction?: Partial<CompactionConfig>;
  /** Runs `fn` after `delayUs` unless the HSM stops first. */
  later(delayUs: number, fn: () => void): void;
  /** The current members, this HSM included. */
  members(): readonly MemberAddress[];
  /** Called when applied entries may have completed a write waiting for its quorum. */
  onProgress(): void;
}

export class Replication {
  private readonly peerHeads = new Map<string, Map<number, number>>();
  /** When each peer was last heard from (simulated µs). */
  private readonly lastHeard = new Map<string, number>();
  /** The highest ordinal the control plane has given an HSM of this cluster: entries from a higher origin are refused. */
  private maxOrigin = 0;
  private gossipRounds = 0;
  private readonly startedUs: number;
  private readonly compaction: CompactionConfig;
  private readonly snapshots: SnapshotTransfers;

  private lastCatchUpUs: number | null = null;

  constructor(private readonly host: ReplicationHost) {
    this.startedUs = host.clock.nowUs();
    this.compaction = { ...DEFAULT_COMPACTION };
    for (const name of Object.keys(DEFAULT_COMPACTION) as (keyof CompactionConfig)[]) {
      const value = host.compaction?.[name];
      if (value !== undefined) this.compaction[name] = value;
    }
    this.snapshots = new SnapshotTransfers({
      clock: host.clock, chunkChars: this.compaction.snapshotChunkChars, retryUs: this.compaction.snapshotRetryUs,
      send: (to, chunk: SnapshotChunk) => this.send([to], chunk), later: (delayUs, fn) => host.later(delayUs, fn),
    });
  }

  /** The control plane's new membership: forget peers that left, raise the highest ordinal. */
  membersChanged(members: readonly { address: string; origin: number }[], maxOrigin: number): void {
    this.maxOrigin = Math.max(this.maxOrigin, maxOrigin, ...members.map((m) => m.origin));
    for (const address of this.peerHeads.keys()) if (!members.some((m) => m.address === address)) this.peerHeads.delete(address);
    for (const address of this.lastHeard.keys()) {
      if (members.some((m) => m.address === address)) continue;
      this.lastHeard.delete(address);
      this.snapshots.forget(address);
    }
  }

  /** The journal position of `origin` that `peer` is known to hold (0: none known). */
  headOf(peer: string, origin: number): number {
    return this.peerHeads.get(peer)?.get(origin) ?? 0;
  }

  /** Whether `peer` was heard from at or after `sinceUs`. */
  heardSince(peer: string, sinceUs: number): boolean {
    return (this.lastHeard.get(peer) ?? -Infinity) >= sinceUs;
  }

  /** Pushes journal rows of `origin` (as stored) to every peer. */
  push(origin: number, rows: { seq: number; change: string }[]): void {
    this.sendBody(this.peerAddresses(), encodePushBody(origin, rows));
  }

  /** Heads to every peer, asking for a reply: what a new, restarted or stale HSM does to catch up now. */
  sendHeads(): void {
    const peers = this.peerAddresses();
    if (peers.length > 0) this.send(peers, { t: "heads", heads: this.headList(), reply: true });
  }

  /**
   * Heads to every peer because a request needs changes this HSM lacks — at most once per
   * CATCH_UP_INTERVAL_US, however many stale requests arrive: a client (or anyone who can send a
   * request) must not turn each request into a round of messages to every peer.
   */
  requestCatchUp(): void {
    const now = this.host.clock.nowUs();
    if (this.lastCatchUpUs !== null && now - this.lastCatchUpUs < CATCH_UP_INTERVAL_US) return;
    this.lastCatchUpUs = now;
    this.sendHeads();
  }

  /** The periodic round: heads to every peer, and now and then a journal prune. */
  gossipRound(): void {
    if (++this.gossipRounds % PRUNE_EVERY_ROUNDS === 0) this.pruneJournal();
    this.sendHeads();
  }

  /** Acts on a peer message only when it is authenticated, from the address that sent it, to this HSM, in this cluster. */
  receive(from: string, envelope: PeerEnvelope): void {
    const { clusterId, address, stats } = this.host;
    const { cluster, to, body, mac } = envelope;
    // (A member that has just left may still have messages in flight: onPeer drops those, uncounted.)
    if (envelope.from !== from || to !== address || cluster !== clusterId || typeof body !== "string" || body.length > MAX_PEER_BODY_CHARS || !(mac instanceof Uint8Array) || mac.length !== 32) {
      stats.peerRejected++;
      return;
    }
    const expected = this.mac(peerMacInput(cluster, from, to, body));
    const message = timingSafeEqual(expected, mac) ? decodePeerMessage(body) : null;
    if (!message) {
      stats.peerRejected++;
      return;
    }
    this.onPeer(from, message);
  }

  /** The cluster's peer key: a chip MAC under a key derived from the masking key every member shares. */
  private mac(data: Buffer): Buffer {
    return internalsOf(this.host.hsm).chip.deviceMac(0, MAC_PURPOSE.peerMessage, data);
  }

  private peerAddresses(): string[] {
    return this.host.members().filter((m) => m.address !== this.host.address).map((m) => m.address);
  }

  /** Sends one peer message to each of `to`: encoded once, MACed per receiver. */
  private send(to: readonly string[], message: PeerMessage): void {
    this.sendBody(to, encodePeerMessage(message));
  }

  private sendBody(to: readonly string[], body: string): void {
    const { clusterId: cluster, address: from, transport } = this.host;
    for (const address of to) {
      const envelope: PeerEnvelope = { t: "peer", cluster, from, to: address, body, mac: this.mac(peerMacInput(cluster, from, address, body)) };
      transport.send(from, address, envelope);
    }
  }

  /** An ordinal this cluster gave (now or in the past), or one whose entries this HSM already holds (from its snapshot). */
  private knownOrigin(origin: number): boolean {
    return (origin >= 1 && origin <= this.maxOrigin) || internalsOf(this.host.hsm).state.head(origin) > 0;
  }

  private onPeer(from: string, message: ReceivedPeerMessage): void {
    const { hsm, stats } = this.host;
    const state = internalsOf(hsm).state;
    if (!this.host.members().some((m) => m.address === from)) return; // not (or no longer) a member
    this.lastHeard.set(from, this.host.clock.nowUs());
    if (message.t === "push") {
      const entries = message.entries.filter((entry) => {
        if (this.knownOrigin(entry.origin)) return true;
        stats.unknownOrigin++;
        return false;
      });
      // Whoever sends entries holds them.
      const theirs = this.peerHeads.get(from) ?? new Map<number, number>();
      for (const entry of entries) if ((theirs.get(entry.origin) ?? 0) < entry.seq) theirs.set(entry.origin, entry.seq);
      this.peerHeads.set(from, theirs);
      let progressed = false;
      for (const entry of entries) {
        // Only the next entry of its origin can apply; a duplicate or a gap is left undecoded.
        if (entry.seq !== state.head(entry.origin) + 1) continue;
        let change: JournalEntry["change"];
        try {
          change = decodeChange(entry.change);
        } catch {
          stats.peerRejected++;
          break;
        }
        const outcome = state.apply({ origin: entry.origin, seq: entry.seq, change });
        if (outcome === "applied" || outcome === "superseded") {
          progressed = true;
          stats.applied++;
        }
      }
      if (progressed) this.host.onProgress();
      this.send([from], { t: "heads", heads: this.headList(), reply: false });
      return;
    }
    if (message.t === "snap") {
      this.receiveSnapshotChunk(from, message);
      return;
    }
    const theirs = new Map(message.heads);
    this.peerHeads.set(from, theirs);
    this.host.onProgress();
    // Send what they lack, origin by origin; ask for what we lack.
    let weLack = false, belowTail = false;
    for (const [origin, head] of state.vector()) {
      const theirHead = theirs.get(origin) ?? 0;
      if (theirHead >= head) continue;
      const rows = internalsOf(hsm).store.journalRange(origin, theirHead, MAX_PUSH);
      // The entry they need next was compacted away: only a snapshot brings them past it.
      if (rows.length === 0 || rows[0].seq !== theirHead + 1) {
        belowTail = true;
        continue; // entries past the gap are of no use to them
      }
      this.sendBody([from], encodePushBody(origin, rows));
    }
    if (belowTail && !regressions.noSnapshotTransfer && this.snapshots.offer(from, hsm)) stats.snapshotsSent++;
    for (const [origin, head] of theirs) if (head > state.head(origin)) weLack = true;
    if (message.reply || weLack) this.send([from], { t: "heads", heads: this.headList(), reply: false });
  }

  /** Reassembles a peer's snapshot and merges it; then tells every peer the new heads (anti-entropy carries on from there). */
  private receiveSnapshotChunk(from: string, chunk: SnapshotChunk): void {
    const { hsm, stats } = this.host;
    const peerState = this.snapshots.receive(from, chunk);
    if (peerState === null) return; // more chunks to come
    if (peerState !== "refused" && peerState.heads.some(([origin]) => !this.knownOrigin(origin))) {
      stats.unknownOrigin++; // defence in depth behind the MAC, as for pushed entries
    } else if (peerState !== "refused") {
      try {
        internalsOf(hsm).state.merge(peerState);
        stats.snapshotsInstalled++;
        this.host.onProgress();
        this.sendHeads();
        return;
      } catch {
        // A record this HSM cannot open (another cluster's masking key, or damaged): nothing of it was kept.
      }
    }
    stats.snapshotsRefused++;
  }

  /**
   * Drops the journal entries no live member needs: per origin, those every member heard from
   * in the last memberSilentAfterUs holds. A silent member holds back only journalRetainEntries
   * more; if it comes back below the journal's tail, it gets a snapshot.
   */
  private pruneJournal(): void {
    const state = internalsOf(this.host.hsm).state;
    const { journalRetainEntries, memberSilentAfterUs } = this.compaction;
    const silentBefore = this.host.clock.nowUs() - memberSilentAfterUs;
    const floors = new Map<number, number>();
    for (const [origin, head] of state.vector()) {
      let floor = head;
      for (const peer of this.peerAddresses()) {
        const theirs = this.headOf(peer, origin);
        const silent = (this.lastHeard.get(peer) ?? this.startedUs) < silentBefore;
        floor = Math.min(floor, silent ? Math.max(theirs, head - journalRetainEntries) : theirs);
      }
      floors.set(origin, floor);
    }
    this.host.stats.pruned += state.prune(floors);
  }

  private headList(): HeadList {
    return [...internalsOf(this.host.hsm).state.vector()];
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(Replication);
