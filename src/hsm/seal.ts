// The sealed head: what makes the data folder tamper-evident. Every transaction ends by
// sealing, with a MAC only the chip can compute (a key derived from the masking key):
// - the audit log's head (last sequence and last entry MAC), so dropping the last entries
//   (truncation) shows;
// - a digest of every stored item (users with their credentials and lockout counters, key
//   records with their id, version and owner, tombstones, settings, journal entries and
//   heads, failed-login counters of unknown names): the XOR of per-item chip MACs, a keyed multiset hash updated incrementally on
//   each change and recomputed when the HSM opens, so an edited, added, removed or
//   copied-back row shows without rehashing the whole folder on every write;
// - a check value of the masking key, so another HSM's masking.key is refused even while
//   the HSM holds no key.
import { freezeClass } from "../primordials.js";
import { createHash } from "node:crypto";

import type { KeyRow, Tombstone, UnknownLoginRow, UserRow } from "./store-schema.js";

/** The chip's keyed MAC (NativeChip.deviceMac bound to the HSM's slot). */
export type DeviceMac = (purpose: number, data: Buffer) => Buffer;

/** One derived chip key per purpose. */
export const MAC_PURPOSE = {
  auditEntry: 1, head: 2, maskingKeyCheck: 3, stateItem: 4, unknownName: 5,
  /** HSM-to-HSM messages (src/cluster/protocol.ts PeerEnvelope): members share the masking key, so they derive one peer key. */
  peerMessage: 8,
} as const;

const CHECK_TEXT = Buffer.from("hsmsim masking key check");

export interface SealRow {
  auditSeq: number;
  auditHash: string;
  /** The digest of every stored item (hex). */
  state: string;
  checkValue: string;
  mac: string;
}

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

/** The canonical form of each stored item, as the digest sees it. */
export const item = {
  user: (u: UserRow) => ["u", u.name, u.role, u.principal, Buffer.from(u.salt).toString("hex"), Buffer.from(u.hash).toString("hex"),
    u.cost, u.failures, u.version],
  key: (k: KeyRow) => ["k", k.id, k.owner, k.version, k.createdSeq, sha256(k.record)],
  tombstone: (t: Tombstone) => ["t", t.kind, t.name, t.version],
  meta: (name: string, value: string) => ["m", name, value],
  journal: (origin: number, seq: number, change: string) => ["j", origin, seq, sha256(change)],
  head: (origin: number, seq: number) => ["h", origin, seq],
  unknownLogin: (n: UnknownLoginRow) => ["n", n.nameMac, n.failures, n.last],
};

/** The XOR of per-item chip MACs: adding and removing an item are the same toggle. */
export class StateDigest {
  private value = Buffer.alloc(32);
  constructor(private readonly mac: DeviceMac) {}

  toggle(fields: unknown[]): void {
    const m = this.mac(MAC_PURPOSE.stateItem, Buffer.from(JSON.stringify(fields)));
    for (let i = 0; i < 32; i++) this.value[i] ^= m[i];
  }

  get hex(): string {
    return this.value.toString("hex");
  }

  set hex(value: string) {
    this.value = Buffer.from(value, "hex");
  }
}

export function checkValue(mac: DeviceMac): string {
  return mac(MAC_PURPOSE.maskingKeyCheck, CHECK_TEXT).toString("hex");
}

export function sealMac(mac: DeviceMac, auditSeq: number, auditHash: string, state: string): string {
  return mac(MAC_PURPOSE.head, Buffer.from(JSON.stringify(["head", auditSeq, auditHash, state]))).toString("hex");
}

/** Why a folder's seal does not hold (undefined: it holds), for everything but the audit entries. */
export function sealProblem(mac: DeviceMac, seal: SealRow | undefined, recomputedState: string): string | undefined {
  if (!seal) return "it has no sealed head (it was never completely created, or the seal was removed)";
  if (seal.checkValue !== checkValue(mac)) return "masking.key is not this HSM's masking key";
  if (seal.mac !== sealMac(mac, seal.auditSeq, seal.auditHash, seal.state)) return "its sealed head was edited";
  if (seal.state !== recomputedState) {
    return "its users, keys, tombstones, settings, login counters or journal do not match the sealed state (a row was edited, added, removed or copied back)";
  }
  return undefined;
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(StateDigest);
