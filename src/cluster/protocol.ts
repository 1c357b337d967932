// The messages between clients and HSMs, and between HSMs, over an abstract transport
// (src/runtime/transport.ts). Messages are plain values; the sender never
// touches one again after sending it.
import { type JournalEntry, encodeChange } from "../hsm/journal.js";


/**
 * The largest buffer one call carries: an output length a request may ask the HSM to fill (and
 * so the largest output an answer holds). The real-time wire's frame limit (src/net/frame.ts)
 * is built on it, so every answer the HSM may give fits in a frame.
 */
export const MAX_CALL_BUFFER_BYTES = 16 * 1024 * 1024;

/** An HSM as the client sees it in the cluster's address list. */
export interface MemberAddress {
  hsmId: string;
  address: string;
  availabilityZone: string;
}

/** Where a write landed: its journal position, and the version and subject it wrote. */
export interface WritePosition {
  origin: number;
  seq: number;
  version: number;
  /** "key:<id>", "user:<name>" or "activation". */
  subject: string;
}

/** Journal heads: [origin, highest sequence] pairs. */
export type HeadList = [number, number][];

/** A client request. */
export interface Request {
  t: "req";
  id: number;
  /** The client connection: each has its own PKCS#11 application (its own login) on the HSM. */
  conn: string;
  op: RequestOp;
  /** Changes the client has had acknowledged: the HSM serves the request only once it holds them (read your writes). */
  after: HeadList;
}

export type RequestOp =
  | { kind: "hello" }
  | { kind: "call"; method: string; args: unknown[]; session?: SessionContext }
  | { kind: "manage"; method: ManageMethod; username: string; password: string; args: unknown[] }
  | { kind: "close" };

/**
 * The client's logical session behind a call: the HSM opens its own session for it on first
 * use and logs the application in or out to match, so any HSM can serve any session.
 */
export interface SessionContext {
  id: number;
  flags: number;
  /** "name:password" while the application is logged in; null when it is not. */
  login: string | null;
  /** The call continues an operation started on this HSM: if the HSM lost the session, say so. */
  continuation: boolean;
  /**
   * For an operation's Init and the calls continuing it: the operation's number in this logical
   * session (increasing) and the call's step in it (0 for the Init). An HSM aborts an older,
   * unfinished operation when a newer one starts, and answers a repeated step from its record
   * of the answer, so a lost request or answer neither wedges the session nor runs a step twice.
   */
  operation?: { n: number; step: number };
  /** The client holds session objects of this application on this HSM: if it holds none, it restarted. */
  objectsHere?: boolean;
}

export type ManageMethod = "createUser" | "deleteUser" | "changePassword" | "listUsers" | "shareKey" | "unshareKey" | "describeKey" | "setKeyTrusted";

export type Failure =
  | { kind: "pkcs11"; code: number; message: string }
  | { kind: "hsm"; code: string; message: string }
  /** The HSM's queue is full: nothing was done, so any request may go elsewhere. */
  | { kind: "busy"; message: string }
  /** The HSM has not yet received a change the client has seen: nothing was done. */
  | { kind: "stale"; message: string }
  /** This HSM does not know the connection's sessions (it restarted, or never saw them): nothing was done. */
  | { kind: "no-connection"; message: string };

export interface Response {
  t: "res";
  id: number;
  ok: boolean;
  value?: unknown;
  error?: Failure;
  /** The answering HSM's state, for the client's load spreading and consistency. */
  hsmId: string;
  spareCapacity: number;
  /** The change this request made, if it made one (its last journal entry). */
  wrote?: WritePosition;
  membershipEpoch: number;
}

export interface HelloValue {
  hsmId: string;
  clusterId: string;
  members: MemberAddress[];
  membershipEpoch: number;
}

/** Between HSMs: journal entries in origin order, and the holder's heads in return. */
export interface Push {
  t: "push";
  entries: JournalEntry[];
}
export interface Heads {
  t: "heads";
  heads: HeadList;
  /** Whether the receiver should answer with its own heads (a gossip round) or only send what is missing. */
  reply: boolean;
}
export type PeerMessage = Push | Heads;

/**
 * What goes on the wire between HSMs: a PeerMessage, encoded once (`body`), authenticated with
 * the cluster's peer key — a chip MAC (purpose `MAC_PURPOSE.peerMessage`) under a key derived
 * from the cluster's masking key, which only members hold and which never leaves the chip —
 * over the cluster, the sender and receiver addresses and the body (`peerMacInput`). A
 * receiver acts only on a body whose MAC checks, sent by the address it claims to be, to it,
 * in its own cluster; anything else is dropped and counted. (The real-socket cluster puts this
 * on TLS with per-HSM certificates; the simulator already models authenticated peers.)
 */
export interface PeerEnvelope {
  t: "peer";
  cluster: string;
  from: string;
  to: string;
  body: string;
  mac: Buffer;
}

const PEER_MAC_LABEL = "hsmsim peer message v1";

/** The canonical bytes a peer message's MAC covers: cluster, sender, receiver, and the body (which names the kind). */
export function peerMacInput(cluster: string, from: string, to: string, body: string): Buffer {
  // Length-prefixed fields, so no two (cluster, from, to, body) share an encoding; the body (the bulk) is not escaped again.
  return Buffer.from(`${PEER_MAC_LABEL}\n${cluster.length}:${cluster}\n${from.length}:${from}\n${to.length}:${to}\n${body}`);
}

/** Encodes a peer message (journal changes as the journal stores them: bytes in base64). */
export function encodePeerMessage(message: PeerMessage): string {
  if (message.t === "heads") return JSON.stringify({ t: "heads", heads: message.heads, reply: message.reply });
  return JSON.stringify({ t: "push", entries: message.entries.map((e) => [e.origin, e.seq, encodeChange(e.change)]) });
}

/** The same push body, from journal rows as the store holds them (changes already encoded): no decode and encode again. */
export function encodePushBody(origin: number, rows: readonly { seq: number; change: string }[]): string {
  return JSON.stringify({ t: "push", entries: rows.map((r) => [origin, r.seq, r.change]) });
}

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** A journal entry as received: its change still encoded, decoded only if it is applied (most anti-entropy repeats are not). */
export interface WireEntry {
  origin: number;
  seq: number;
  change: string;
}
export type ReceivedPeerMessage = Heads | { t: "push"; entries: WireEntry[] };

/** Decodes an authenticated body; null when it is not a well-formed peer message. */
export function decodePeerMessage(body: string): ReceivedPeerMessage | null {
  try {
    const m = JSON.parse(body) as { t?: unknown; heads?: unknown; reply?: unknown; entries?: unknown };
    if (m?.t === "heads") {
      if (!Array.isArray(m.heads) || typeof m.reply !== "boolean") return null;
      if (!m.heads.every((h) => Array.isArray(h) && h.length === 2 && isCount(h[0]) && isCount(h[1]))) return null;
      return { t: "heads", heads: m.heads as HeadList, reply: m.reply };
    }
    if (m?.t === "push" && Array.isArray(m.entries)) {
      const entries: WireEntry[] = [];
      for (const e of m.entries as unknown[]) {
        if (!Array.isArray(e) || e.length !== 3 || !isCount(e[0]) || !isCount(e[1]) || typeof e[2] !== "string") return null;
        entries.push({ origin: e[0], seq: e[1], change: e[2] });
      }
      return { t: "push", entries };
    }
    return null;
  } catch {
    return null;
  }
}
