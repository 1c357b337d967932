// The audit log's entries and their chain: each entry's MAC covers its fields and the
// previous entry's MAC, under a key only the chip holds (derived from the masking key), so an
// edited, dropped or reordered entry breaks the chain and cannot be re-chained by anyone who
// reads the folder. The last entry is also sealed with the state (seal.ts), so dropping the
// newest entries shows too.
import type { DeviceMac } from "./seal.js";
import { MAC_PURPOSE } from "./seal.js";

export interface AuditEntry {
  /** Per-HSM sequence number, 1, 2, 3 … with no gaps. */
  seq: number;
  /** Microseconds since the Unix epoch. */
  timeUs: number;
  /** How many times this HSM has started from its data folder. */
  reboot: number;
  operation: string;
  /** Acting user, or null (the HSM itself, or an unauthenticated caller). */
  actor: string | null;
  session: number | null;
  /** Key ids the operation touched. */
  keys: number[];
  /** "OK" or the failure's code. */
  result: string;
  /** Free text: the target user of a management operation, a mechanism … */
  detail: string;
  prevHash: string;
  /** The chip's MAC (HMAC-SHA-256) of the previous one and this entry's fields, hex. */
  hash: string;
}

export type AuditFields = Omit<AuditEntry, "prevHash" | "hash">;
export const GENESIS_HASH = "0".repeat(64);

export function chainHash(mac: DeviceMac, fields: AuditFields, prevHash: string): string {
  const canonical = JSON.stringify([fields.seq, fields.timeUs, fields.reboot, fields.operation, fields.actor,
    fields.session, fields.keys, fields.result, fields.detail]);
  return mac(MAC_PURPOSE.auditEntry, Buffer.from(prevHash + canonical)).toString("hex");
}

export function seal(mac: DeviceMac, fields: AuditFields, prevHash: string): AuditEntry {
  return { ...fields, prevHash, hash: chainHash(mac, fields, prevHash) };
}

export interface AuditVerdict {
  ok: boolean;
  entries: number;
  /** The first entry that breaks the chain, and why. */
  problem?: { seq: number; reason: string };
}

/**
 * Checks sequence numbers, links and MACs of a whole log, oldest first, and that it ends
 * where the sealed head says (`sealedHead`: the last sequence and MAC the HSM sealed).
 */
export function verifyChain(entries: Iterable<AuditEntry>, mac: DeviceMac, sealedHead?: { seq: number; hash: string }): AuditVerdict {
  let expectedSeq = 1;
  let prev = GENESIS_HASH;
  let count = 0;
  for (const e of entries) {
    count++;
    if (e.seq !== expectedSeq) return { ok: false, entries: count, problem: { seq: e.seq, reason: `expected sequence ${expectedSeq} (entries removed or reordered)` } };
    if (e.prevHash !== prev) return { ok: false, entries: count, problem: { seq: e.seq, reason: "does not link to the entry before it" } };
    if (chainHash(mac, e, e.prevHash) !== e.hash) return { ok: false, entries: count, problem: { seq: e.seq, reason: "its content does not match its MAC (edited, or re-chained without the chip's key)" } };
    prev = e.hash;
    expectedSeq++;
  }
  if (sealedHead) {
    const last = expectedSeq - 1;
    if (sealedHead.seq > last) {
      return { ok: false, entries: count, problem: { seq: last + 1, reason: `entries ${last + 1}..${sealedHead.seq} are missing: the log ends before its sealed head (truncated)` } };
    }
    if (sealedHead.seq < last) {
      return { ok: false, entries: count, problem: { seq: sealedHead.seq + 1, reason: `the log goes on past its sealed head (${sealedHead.seq}): entries were added` } };
    }
    if (sealedHead.hash !== prev) return { ok: false, entries: count, problem: { seq: last, reason: "the last entry is not the one the head sealed" } };
  }
  return { ok: true, entries: count };
}
