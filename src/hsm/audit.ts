// The audit log's entries and their hash chain: each entry's hash covers its fields and
// the previous entry's hash, so an edited, dropped or reordered entry breaks the chain.
import { createHash } from "node:crypto";

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
  hash: string;
}

export type AuditFields = Omit<AuditEntry, "prevHash" | "hash">;
export const GENESIS_HASH = "0".repeat(64);

export function chainHash(fields: AuditFields, prevHash: string): string {
  const canonical = JSON.stringify([fields.seq, fields.timeUs, fields.reboot, fields.operation, fields.actor,
    fields.session, fields.keys, fields.result, fields.detail]);
  return createHash("sha256").update(prevHash).update(canonical).digest("hex");
}

export function seal(fields: AuditFields, prevHash: string): AuditEntry {
  return { ...fields, prevHash, hash: chainHash(fields, prevHash) };
}

export interface AuditVerdict {
  ok: boolean;
  entries: number;
  /** The first entry that breaks the chain, and why. */
  problem?: { seq: number; reason: string };
}

/** Checks sequence numbers, links and hashes of a whole log, oldest first. */
export function verifyChain(entries: Iterable<AuditEntry>): AuditVerdict {
  let expectedSeq = 1;
  let prev = GENESIS_HASH;
  let count = 0;
  for (const e of entries) {
    count++;
    if (e.seq !== expectedSeq) return { ok: false, entries: count, problem: { seq: e.seq, reason: `expected sequence ${expectedSeq}` } };
    if (e.prevHash !== prev) return { ok: false, entries: count, problem: { seq: e.seq, reason: "does not link to the entry before it" } };
    if (chainHash(e, e.prevHash) !== e.hash) return { ok: false, entries: count, problem: { seq: e.seq, reason: "its content does not match its hash" } };
    prev = e.hash;
    expectedSeq++;
  }
  return { ok: true, entries: count };
}
