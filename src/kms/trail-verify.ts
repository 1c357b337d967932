// Verifies a KMS trail from its files alone (no fleet, no running KMS): the hash chain of the
// records, and each signed digest against the trail's public key. What it cannot prove it says:
// records after the last digest are unsigned (a crash or an editor may have dropped some).
import { createPublicKey, verify } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";

import { readDataFileText } from "./data-file.js";
import { escapeControls } from "./printable.js";
import { TRAIL_DIGESTS_FILE, TRAIL_FILE, TRAIL_PUBLIC_KEY_FILE, digestPayload, forEachLine, sha256Hex } from "./trail-files.js";

export interface TrailVerdict {
  /** The chain links and every digest verifies and matches the records it signs. */
  ok: boolean;
  records: number;
  /** The first record (its line number) where the chain breaks, and why. */
  chain: { ok: true } | { ok: false; brokenAt: number; reason: string };
  digests: number;
  /** Digests (1-based line in trail-digests.jsonl) that fail: bad signature, unknown record, or a record that changed. */
  signatureFailures: { digest: number; reason: string }[];
  /** The last record a good digest covers (0: none). */
  lastSignedSeq: number;
  /** Records after the last good digest: chained, but signed by nothing yet. */
  unsignedTail: number;
  /** The file ends in a cut-off line (a crash while writing): the next start drops it. */
  partialLastLine: boolean;
  /**
   * Records a crash left unsigned, signed at the next start as found then: chained and signed since,
   * but an editor of the folder could have changed them while the KMS was down.
   */
  unvouched: { from: number; to: number }[];
}

interface Digest { line: number; lastSeq: number; lastHash: string; time: string; signature: string; unvouchedFrom?: number }

/** `publicKeyPem`: the key to trust (pinned out of band); default the folder's trail-public.pem. */
export function verifyTrail(dir: string, options: { publicKeyPem?: string } = {}): TrailVerdict {
  const failures: { digest: number; reason: string }[] = [];
  const pemPath = join(dir, TRAIL_PUBLIC_KEY_FILE);
  // The folder's files are refused (KmsError) unless regular files: a planted FIFO never blocks the verifier.
  const pem = options.publicKeyPem ?? readDataFileText(pemPath, { code: "KMSInternalException", ifExists: true, maxBytes: 64 << 10 });
  let key: ReturnType<typeof createPublicKey> | null = null;
  try {
    key = pem === null ? null : createPublicKey(pem);
  } catch {
    key = null;
  }
  const digests: Digest[] = [];
  const digestsPath = join(dir, TRAIL_DIGESTS_FILE);
  if (existsSync(digestsPath)) {
    forEachLine(digestsPath, (line, n, partial) => {
      if (partial) return; // a digest being written, or cut off by a crash: it signs nothing yet
      const d = parseDigest(line);
      if (d === null) return void failures.push({ digest: n, reason: "not a digest (edited or cut off)" });
      digests.push({ ...d, line: n });
    });
  }
  // Good signatures only count; their sequence numbers must grow (a replayed digest does not).
  const signed = new Map<number, Digest[]>();
  const unvouched: { from: number; to: number }[] = [];
  let previousSeq = 0;
  for (const d of digests) {
    if (key === null) {
      failures.push({ digest: d.line, reason: pem === null ? `no public key (${TRAIL_PUBLIC_KEY_FILE} is missing)` : "the public key does not parse" });
      continue;
    }
    let good = false;
    try {
      good = verify("sha256", digestPayload(d.lastSeq, d.lastHash, d.time, d.unvouchedFrom), { key, dsaEncoding: "der" }, Buffer.from(d.signature, "base64"));
    } catch {
      good = false;
    }
    if (!good) { failures.push({ digest: d.line, reason: "the signature does not verify" }); continue; }
    if (d.lastSeq <= previousSeq) { failures.push({ digest: d.line, reason: `signs record ${d.lastSeq}, not after the previous digest's ${previousSeq} (replayed or reordered)` }); continue; }
    if (d.unvouchedFrom !== undefined) unvouched.push({ from: d.unvouchedFrom, to: d.lastSeq });
    previousSeq = d.lastSeq;
    signed.set(d.lastSeq, [...(signed.get(d.lastSeq) ?? []), d]);
  }

  let records = 0;
  let chain: TrailVerdict["chain"] = { ok: true };
  let prev = "0".repeat(64);
  let partialLastLine = false;
  let lastSignedSeq = 0;
  const trailPath = join(dir, TRAIL_FILE);
  if (existsSync(trailPath)) {
    forEachLine(trailPath, (line, n, partial) => {
      if (partial) { partialLastLine = true; return; }
      records = n;
      if (chain.ok) {
        const problem = linkProblem(line, n, prev);
        if (problem) chain = { ok: false, brokenAt: n, reason: problem };
      }
      prev = sha256Hex(line);
      for (const d of signed.get(n) ?? []) {
        if (d.lastHash === prev) lastSignedSeq = n;
        else failures.push({ digest: d.line, reason: `record ${n} is not the record it signed (edited)` });
      }
    });
  }
  for (const [seq, ds] of signed) {
    if (seq > records) for (const d of ds) failures.push({ digest: d.line, reason: `signs record ${seq}, which the trail lacks (records removed)` });
  }
  failures.sort((a, b) => a.digest - b.digest);
  return { ok: chain.ok && failures.length === 0, records, chain, digests: digests.length, signatureFailures: failures, lastSignedSeq, unsignedTail: records - lastSignedSeq, partialLastLine, unvouched };
}

function linkProblem(line: string, n: number, prev: string): string | null {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return "not JSON";
  }
  if (typeof record !== "object" || record === null || Array.isArray(record)) return "not a record";
  const r = record as { hsmsimSeq?: unknown; hsmsimPrevHash?: unknown };
  // The reason quotes the file: an editor's control characters reach the verdict escaped (a C1 CSI could repaint it).
  if (r.hsmsimSeq !== n) return `its hsmsimSeq is ${escapeControls(quoted(r.hsmsimSeq))}, not ${n} (a record was removed, added or moved)`;
  if (r.hsmsimPrevHash !== prev) return "its hsmsimPrevHash is not the hash of the record before it (that one was edited)";
  return null;
}

/** A value as JSON, cut short (an editor may have put a megabyte there). */
function quoted(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

function parseDigest(line: string): Omit<Digest, "line"> | null {
  try {
    const d = JSON.parse(line) as Record<string, unknown>;
    if (typeof d.lastSeq !== "number" || !Number.isSafeInteger(d.lastSeq) || d.lastSeq < 1) return null;
    if (typeof d.lastHash !== "string" || !/^[0-9a-f]{64}$/.test(d.lastHash)) return null;
    if (typeof d.time !== "string" || typeof d.signature !== "string") return null;
    const from = d.unvouchedFrom;
    if (from !== undefined && (typeof from !== "number" || !Number.isSafeInteger(from) || from < 1 || from > d.lastSeq)) return null;
    return { lastSeq: d.lastSeq, lastHash: d.lastHash, time: d.time, signature: d.signature, ...(from === undefined ? {} : { unvouchedFrom: from }) };
  } catch {
    return null;
  }
}
