// `hsmsim audit --kms <cluster folder>`: the KMS endpoint's trail (kms/trail.jsonl), filtered and
// verified (hash chain and signed digests, with the trail's public key only), and for one request
// (--request ID) the HSM audit entries it caused: in each HSM's folder, entries by kmsuser in the
// request's time window that touched the keys the record names (or no key: logins, lookups).
import { existsSync } from "node:fs";
import { join } from "node:path";

import type { AuditEntry } from "../hsm/audit.js";
import { verifyFolder } from "../hsm/verify-folder.js";
import { TRAIL_FILE, readTrail, verifyTrail, type TrailVerdict } from "../kms/trail.js";
import { escapeControls, escapeControlsButNewlines, maskControls } from "../kms/printable.js";
import { ClusterFolder } from "../net/cluster-folder.js";
import { formatTime } from "./audit.js";
import { UsageError } from "./command.js";
import { textOutput } from "./format.js";

export interface KmsAuditOptions {
  json: boolean;
  /** A request id (x-amzn-RequestId): that record, and the HSM entries it caused. */
  request?: string;
  /** A key id, key ARN or alias the record names (requestParameters.keyId or a resource). */
  key?: string;
  /** A principal ARN, user name or account id. */
  principal?: string;
  /** An operation (eventName), any case. */
  operation?: string;
  tail?: number;
  /** The trail's public key to trust (PEM text), kept apart from the folder; default the folder's trail-public.pem. */
  trailKeyPem?: string;
}

/** The user KMS acts as in a custom key store's cluster. */
export const KMS_USER = "kmsuser";

type KmsRecord = Record<string, unknown>;

export interface HsmEntriesOfRequest {
  hsmId: string;
  /** The HSM's own audit chain verdict (null when its folder could not be read). */
  verified: { ok: boolean; problem?: string } | null;
  entries: AuditEntry[];
}

/**
 * Returns the exit code: 0, or 1 when the trail (or an HSM's chain shown) does not verify. A file of
 * the trail that is not a regular file (a planted FIFO, a symlink) throws KmsError before any read.
 */
export function runKmsAudit(clusterDir: string, options: KmsAuditOptions, writeRaw: (text: string) => unknown): number {
  // Callers chose some of what is printed (key ids, encryption contexts) and an editor of the folder
  // the rest: every control, bidi override and format character of every line goes out as \uXXXX
  // (JSON stays JSON: JSON.stringify writes none of them outside a string).
  const write = (text: string) => writeRaw(escapeControlsButNewlines(text));
  const kmsDir = join(clusterDir, "kms");
  if (!existsSync(join(kmsDir, TRAIL_FILE))) throw new UsageError(`no KMS trail in ${kmsDir} (start the cluster with hsmsim up --kms, and make a request)`);
  const verdict = verifyTrail(kmsDir, options.trailKeyPem === undefined ? {} : { publicKeyPem: options.trailKeyPem });
  const all = readTrail(kmsDir);
  const unreadable = all.filter((r) => r.record === null).length;
  let records = all.flatMap((r) => (r.record === null ? [] : [r.record])).filter((r) => matches(r, options));
  if (options.tail !== undefined) records = records.slice(-options.tail);
  if (options.request !== undefined && records.length === 0) throw new UsageError(`no record of request ${escapeControls(options.request)} in ${join(kmsDir, TRAIL_FILE)}`);
  const hsm = options.request !== undefined ? hsmEntriesOf(clusterDir, records[0]!) : undefined;
  const hsmOk = (hsm ?? []).every((h) => h.verified?.ok !== false);
  if (options.json) {
    write(`${JSON.stringify({ verified: verdict, records, ...(hsm ? { hsm } : {}) }, null, 2)}\n`);
    return verdict.ok && hsmOk ? 0 : 1;
  }
  if (options.request !== undefined) {
    // Escaped before indenting: a U+2028 inside a string is a line end to /^/m.
    write(`KMS request ${escapeControls(options.request)}\n${escapeControlsButNewlines(JSON.stringify(records[0], null, 2)).replace(/^/gm, "   ")}\n`);
  } else {
    textOutput((t) => void write(t)).table(["seq", "time (UTC)", "request id", "operation", "principal", "key", "result"],
      records.map((r) => [String(r.hsmsimSeq ?? "?"), String(r.eventTime ?? "-"), String(r.requestID ?? "-"), String(r.eventName ?? "-"),
        principalOf(r), keyOf(r), typeof r.errorCode === "string" ? r.errorCode : "OK"].map(printable)));
  }
  write(describeVerdict(verdict, unreadable));
  if (hsm) {
    const window = timing(records[0]!);
    write(`\nHSM audit entries by ${KMS_USER} it caused${window ? ` (between ${formatTime(window.startMs * 1000)} and ${formatTime(window.endMs * 1000 + 999)})` : ""}:\n`);
    if (hsm.length === 0) write("   none: the request used no cluster (an AWS_KMS key, or it failed before reaching one)\n");
    for (const h of hsm) {
      write(`\n   ${escapeControls(h.hsmId)}${h.verified === null ? " (folder unreadable)" : h.verified.ok ? " (its audit chain verifies)" : ` (AUDIT CHAIN BROKEN: ${escapeControls(String(h.verified.problem))})`}\n`);
      if (h.entries.length === 0) { write("      no entries\n"); continue; }
      textOutput((t) => void write(t.replace(/^(?=.)/gm, "   "))).table(["seq", "time (UTC)", "operation", "actor", "session", "keys", "result", "detail"],
        h.entries.map((e) => [String(e.seq), formatTime(e.timeUs), e.operation, e.actor ?? "-", e.session === null ? "-" : String(e.session), e.keys.join(",") || "-", e.result, e.detail].map(printable)));
    }
  }
  return verdict.ok && hsmOk ? 0 : 1;
}

/** A cell as it may reach a terminal: a caller chose some of these strings (a key id, an alias), so no control characters, no newline. */
function printable(text: string): string {
  return maskControls(text.length > 200 ? `${text.slice(0, 200)}…` : text);
}

function describeVerdict(v: TrailVerdict, unreadable: number): string {
  const lines: string[] = [];
  if (v.chain.ok) lines.push(`trail chain verified: ${v.records} records, each linked to the one before`);
  else lines.push(`TRAIL CHAIN BROKEN at record ${v.chain.brokenAt}: ${escapeControls(v.chain.reason)}`);
  if (unreadable > 0) lines.push(`${unreadable} line(s) are not JSON records`);
  lines.push(`signed digests: ${v.digests}, the last good one covers record ${v.lastSignedSeq}`);
  for (const f of v.signatureFailures) lines.push(`DIGEST ${f.digest} FAILS: ${escapeControls(f.reason)}`);
  if (v.unsignedTail > 0) lines.push(`${v.unsignedTail} record(s) after the last digest are not signed yet (a running KMS signs every second; a crash or an editor may have dropped some of them)`);
  for (const u of v.unvouched) lines.push(`records ${u.from}–${u.to} were written before a crash and signed only at the next start: an editor could have changed them while the KMS was down`);
  if (v.partialLastLine) lines.push("the last line was cut off by a crash (the next start drops it)");
  return lines.map((l) => `   ${l}\n`).join("");
}

function matches(r: KmsRecord, o: KmsAuditOptions): boolean {
  if (o.request !== undefined && r.requestID !== o.request) return false;
  if (o.operation !== undefined && String(r.eventName).toLowerCase() !== o.operation.toLowerCase()) return false;
  if (o.principal !== undefined) {
    const u = (r.userIdentity ?? {}) as Record<string, unknown>;
    if (![u.arn, u.userName, u.accountId, u.accessKeyId].includes(o.principal)) return false;
  }
  if (o.key !== undefined && !keysOf(r).some((k) => k === o.key || k.endsWith(`/${o.key}`))) return false;
  return true;
}

function keysOf(r: KmsRecord): string[] {
  const params = (r.requestParameters ?? {}) as Record<string, unknown>;
  const named = ["keyId", "destinationKeyId", "sourceKeyId", "targetKeyId", "aliasName"].map((k) => params[k]).filter((k): k is string => typeof k === "string");
  const resources = Array.isArray(r.resources) ? r.resources.map((x) => (x as { ARN?: unknown }).ARN).filter((a): a is string => typeof a === "string") : [];
  return [...named, ...resources];
}

function principalOf(r: KmsRecord): string {
  const u = (r.userIdentity ?? {}) as Record<string, unknown>;
  return typeof u.arn === "string" ? u.arn : String(u.type ?? "-");
}

function keyOf(r: KmsRecord): string {
  const k = keysOf(r);
  return k.length === 0 ? "-" : k[k.length - 1]!.replace(/^arn:aws:kms:[^:]*:\d{12}:key\//, "");
}

function timing(r: KmsRecord): { startMs: number; endMs: number } | null {
  const t = r.hsmsimTiming as { startMs?: unknown; endMs?: unknown } | undefined;
  return t && typeof t.startMs === "number" && typeof t.endMs === "number" ? { startMs: t.startMs, endMs: t.endMs } : null;
}

/** The HSM key ids a record names (additionalEventData.backingKeyId / hsmKeyIds). */
function hsmKeyIdsOf(r: KmsRecord): Set<number> {
  const extra = (r.additionalEventData ?? {}) as Record<string, unknown>;
  const ids = new Set<number>();
  if (typeof extra.backingKeyId === "string" && /^\d+$/.test(extra.backingKeyId)) ids.add(Number(extra.backingKeyId));
  if (typeof extra.backingKeyId === "number") ids.add(extra.backingKeyId);
  if (Array.isArray(extra.hsmKeyIds)) for (const id of extra.hsmKeyIds) if (typeof id === "number") ids.add(id);
  return ids;
}

/**
 * Every HSM of the cluster folder, with its entries by kmsuser in the request's window [start, end]
 * (ms, so the window is widened to the end's last microsecond) that touched one of the record's
 * HSM keys or no key at all.
 */
export function hsmEntriesOf(clusterDir: string, record: KmsRecord): HsmEntriesOfRequest[] {
  const window = timing(record);
  const keyIds = hsmKeyIdsOf(record);
  if (window === null || (keyIds.size === 0 && record.additionalEventData === undefined)) return [];
  const folder = new ClusterFolder(clusterDir);
  const fromUs = window.startMs * 1000, toUs = window.endMs * 1000 + 999;
  return folder.read().hsms.map((h) => {
    try {
      const v = verifyFolder(folder.abs(h.folder));
      const entries = v.entries.filter((e) => e.actor === KMS_USER && e.timeUs >= fromUs && e.timeUs <= toUs &&
        (e.keys.length === 0 || e.keys.some((k) => keyIds.has(k))));
      return { hsmId: h.hsmId, verified: { ok: v.ok, ...(v.ok ? {} : { problem: v.folderProblem ?? v.audit.problem?.reason }) }, entries };
    } catch {
      return { hsmId: h.hsmId, verified: null, entries: [] };
    }
  });
}
