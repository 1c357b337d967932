// Snapshot transfer: how a member that fell below a peer's compacted journal catches up. The
// peer sends its whole replicable state (users, token keys as masked records, tombstones,
// activation, Lamport counter, journal heads — never the masking key, which every member
// holds already) as one encoded value cut into chunks, each chunk a peer message in its own
// MACed envelope (replication.ts). The receiver reassembles a transfer, checks the shape of
// every field, and merges it into its state in one store transaction (DeviceState.merge).
// A snapshot is a join: replayed or late, it changes nothing a newer state already holds.
import { freezeClass } from "../primordials.js";
import type { Hsm } from "../hsm/hsm.js";
import { internalsOf } from "../hsm/internals.js";
import { MAX_ORIGIN } from "../hsm/journal.js";
import type { PeerState } from "../hsm/state.js";
import type { Role } from "../hsm/types.js";
import type { Clock } from "../runtime/clock.js";
import type { SnapshotChunk } from "./protocol.js";

/** The largest snapshot a member sends or reassembles (a full hsm2m.medium is about a tenth of it). */
export const MAX_SNAPSHOT_CHARS = 128 * 1024 * 1024;
/** The largest chunk: well below a peer message's bound whatever the JSON escaping adds, and below a peer link's write queue (4 MiB). */
export const MAX_SNAPSHOT_CHUNK_CHARS = 1024 * 1024;
/**
 * Chunks go out one per this interval, not in one burst: a transport bounds what waits to be
 * written on a link (the TLS transport closes a link with more than 4 MiB queued), and the
 * HSM's other peer traffic shares it. 256 KiB chunks make about 25 MiB/s.
 */
export const SNAPSHOT_CHUNK_INTERVAL_US = 10_000;
const FORMAT = 1;
const ROLES: ReadonlySet<string> = new Set<Role>(["PRECO", "CO", "CU", "AU"]);

/** The state a snapshot transfer carries, read from the store as it stands now (one consistent moment: nothing runs in between). */
export function takePeerState(hsm: Hsm): PeerState {
  const { store, state } = internalsOf(hsm);
  return {
    source: hsm.id,
    activated: store.meta("activated") === "1",
    lamport: state.clock,
    heads: [...state.vector()],
    users: store.users().map(({ failures: _perHsm, ...user }) => user),
    keys: store.keys(),
    tombstones: store.tombstones(),
  };
}

const b64 = (b: Buffer) => b.toString("base64");

export function encodePeerState(s: PeerState): string {
  return JSON.stringify({
    v: FORMAT, source: s.source, activated: s.activated, lamport: s.lamport, heads: s.heads,
    users: s.users.map((u) => [u.name, u.role, u.principal, b64(u.salt), b64(u.hash), u.cost, u.version]),
    keys: s.keys.map((k) => [k.id, b64(k.record), k.owner, k.version, k.createdSeq]),
    tombstones: s.tombstones.map((t) => [t.kind, t.name, t.version]),
  });
}

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isName = (v: unknown): v is string => typeof v === "string" && /^[a-z0-9_]{1,31}$/.test(v);
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const bytes = (v: unknown, max: number): Buffer | null =>
  typeof v === "string" && v.length <= max && BASE64.test(v) ? Buffer.from(v, "base64") : null;
const tuple = (v: unknown, length: number): v is unknown[] => Array.isArray(v) && v.length === length;

/** Decodes a reassembled snapshot; null when any field is not what a member sends (nothing of it is used then). */
export function decodePeerState(text: string): PeerState | null {
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (typeof m !== "object" || m === null || m.v !== FORMAT || typeof m.source !== "string" || m.source.length > 64
    || typeof m.activated !== "boolean" || !isCount(m.lamport)) return null;
  if (!Array.isArray(m.heads) || !Array.isArray(m.users) || !Array.isArray(m.keys) || !Array.isArray(m.tombstones)) return null;
  const out: PeerState = { source: m.source, activated: m.activated, lamport: m.lamport, heads: [], users: [], keys: [], tombstones: [] };
  const origins = new Set<number>();
  for (const h of m.heads as unknown[]) {
    if (!tuple(h, 2) || !isCount(h[0]) || h[0] < 1 || h[0] > MAX_ORIGIN || !isCount(h[1]) || origins.has(h[0])) return null;
    origins.add(h[0]);
    out.heads.push([h[0], h[1]]);
  }
  for (const u of m.users as unknown[]) {
    if (!tuple(u, 7) || !isName(u[0]) || typeof u[1] !== "string" || !ROLES.has(u[1]) || !isCount(u[2]) || !isCount(u[5]) || !isCount(u[6])) return null;
    const salt = bytes(u[3], 1024), hash = bytes(u[4], 1024);
    if (!salt || !hash) return null;
    out.users.push({ name: u[0], role: u[1] as Role, principal: u[2], salt, hash, cost: u[5], version: u[6] });
  }
  for (const k of m.keys as unknown[]) {
    if (!tuple(k, 5) || !isCount(k[0]) || !isCount(k[2]) || !isCount(k[3]) || !isCount(k[4])) return null;
    const record = bytes(k[1], 1024 * 1024);
    if (!record) return null;
    out.keys.push({ id: k[0], record, owner: k[2], version: k[3], createdSeq: k[4] });
  }
  for (const t of m.tombstones as unknown[]) {
    if (!tuple(t, 3) || (t[0] !== "key" && t[0] !== "user") || typeof t[1] !== "string" || !isCount(t[2])) return null;
    if (t[0] === "key" ? !/^\d{1,16}$/.test(t[1]) || !Number.isSafeInteger(Number(t[1])) : !isName(t[1])) return null;
    out.tombstones.push({ kind: t[0], name: t[1], version: t[2] });
  }
  return out;
}

export interface SnapshotTransferHost {
  readonly clock: Clock;
  /** Characters of encoded state per chunk. */
  readonly chunkChars: number;
  /** The least time between two snapshots sent to one peer (one in flight is not started again). */
  readonly retryUs: number;
  send(to: string, chunk: SnapshotChunk): void;
  /** Runs `fn` after `delayUs` unless the HSM stops first. */
  later(delayUs: number, fn: () => void): void;
}

interface Assembly {
  transfer: string;
  count: number;
  pieces: (string | undefined)[];
  received: number;
  chars: number;
}

/** The snapshots one HSM sends (at most one per peer per retryUs) and the one it reassembles from each peer. */
export class SnapshotTransfers {
  private readonly lastSentUs = new Map<string, number>();
  private readonly assemblies = new Map<string, Assembly>();
  private counter = 0;
  readonly stats = { sent: 0, installed: 0, refused: 0 };

  constructor(private readonly host: SnapshotTransferHost) {}

  /**
   * Sends `peer` this HSM's state, taken now, its chunks paced SNAPSHOT_CHUNK_INTERVAL_US
   * apart; unless one to it is still going out or ended less than retryUs ago. Whether it started one.
   */
  offer(peer: string, hsm: Hsm): boolean {
    const now = this.host.clock.nowUs();
    const last = this.lastSentUs.get(peer);
    if (last !== undefined && now - last < this.host.retryUs) return false;
    const text = encodePeerState(takePeerState(hsm));
    if (text.length > MAX_SNAPSHOT_CHARS) return false; // beyond any HSM type's quotas: nothing a peer would accept
    const size = Math.min(Math.max(1, this.host.chunkChars), MAX_SNAPSHOT_CHUNK_CHARS);
    const count = Math.max(1, Math.ceil(text.length / size));
    // The retry interval counts from the last chunk's departure.
    this.lastSentUs.set(peer, now + (count - 1) * SNAPSHOT_CHUNK_INTERVAL_US);
    const transfer = `${now.toString(36)}-${(this.counter++).toString(36)}`;
    const sendChunk = (index: number) => {
      if (this.lastSentUs.get(peer) === undefined) return; // the peer left
      this.host.send(peer, { t: "snap", transfer, index, count, data: text.slice(index * size, (index + 1) * size) });
      if (index + 1 < count) this.host.later(SNAPSHOT_CHUNK_INTERVAL_US, () => sendChunk(index + 1));
    };
    sendChunk(0);
    this.stats.sent++;
    return true;
  }

  /**
   * Takes one authenticated chunk from member `from`: the decoded state once the transfer is
   * whole, "refused" when it is whole but not a well-formed snapshot or too large, else null
   * (more to come). A new transfer from a peer replaces the one it had under way.
   */
  receive(from: string, chunk: SnapshotChunk): PeerState | "refused" | null {
    let assembly = this.assemblies.get(from);
    if (!assembly || assembly.transfer !== chunk.transfer) {
      if (chunk.count > Math.ceil(MAX_SNAPSHOT_CHARS / 1024)) return this.refuse(from);
      assembly = { transfer: chunk.transfer, count: chunk.count, pieces: new Array<string | undefined>(chunk.count), received: 0, chars: 0 };
      this.assemblies.set(from, assembly);
    }
    if (chunk.count !== assembly.count) return this.refuse(from);
    if (assembly.pieces[chunk.index] !== undefined) return null; // a duplicate
    assembly.chars += chunk.data.length;
    if (assembly.chars > MAX_SNAPSHOT_CHARS) return this.refuse(from);
    assembly.pieces[chunk.index] = chunk.data;
    if (++assembly.received < assembly.count) return null;
    this.assemblies.delete(from);
    const state = decodePeerState(assembly.pieces.join(""));
    if (!state) return this.refuse(from);
    return state;
  }

  /** A peer left: drop what it had under way. */
  forget(peer: string): void {
    this.assemblies.delete(peer);
    this.lastSentUs.delete(peer);
  }

  private refuse(from: string): "refused" {
    this.assemblies.delete(from);
    this.stats.refused++;
    return "refused";
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(SnapshotTransfers);
