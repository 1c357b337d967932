// The trail's files and the bits the writer (trail.ts), the verifier (trail-verify.ts) and the
// audit command share: names, hashing, what a digest signs, and reading JSON lines in chunks
// (a trail grows to gigabytes under a benchmark: never one readFileSync).
import { createHash } from "node:crypto";
import { closeSync, constants, readSync } from "node:fs";
import { join } from "node:path";

import { openDataFile } from "./data-file.js";

export const TRAIL_FILE = "trail.jsonl";
export const TRAIL_DIGESTS_FILE = "trail-digests.jsonl";
export const TRAIL_PUBLIC_KEY_FILE = "trail-public.pem";

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/**
 * The bytes a digest's signature covers (a fixed prefix, so a trail signature signs nothing else).
 * `unvouchedFrom`: a start's digest after a crash says records unvouchedFrom..lastSeq were found
 * unsigned (written before the crash, open to an editor while the KMS was down).
 */
export function digestPayload(lastSeq: number, lastHash: string, time: string, unvouchedFrom?: number): Buffer {
  return Buffer.from(`hsmsim-kms-trail-digest\n${lastSeq}\n${lastHash}\n${time}${unvouchedFrom === undefined ? "" : `\nunvouched-from ${unvouchedFrom}`}`, "utf8");
}

/**
 * Calls `each` with every line of `path` (without its newline) and its number (1, 2, …); a last
 * line without a newline (cut off by a crash) comes with `partial` true. Anything but a regular
 * file (a symlink, a FIFO) is refused with a KmsError.
 */
export function forEachLine(path: string, each: (line: string, lineNumber: number, partial: boolean) => void): void {
  // A FIFO planted in the trail's place would block this read forever: refused (KmsError) before any read.
  const fd = openDataFile(path, constants.O_RDONLY, { code: "KMSInternalException" });
  try {
    const chunk = Buffer.alloc(1 << 20);
    let carry: Buffer = Buffer.alloc(0);
    let lineNumber = 0;
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      let data = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, n)]) : chunk.subarray(0, n);
      let from = 0;
      for (let nl = data.indexOf(0x0a, from); nl >= 0; nl = data.indexOf(0x0a, from)) {
        each(data.subarray(from, nl).toString("utf8"), ++lineNumber, false);
        from = nl + 1;
      }
      data = data.subarray(from);
      carry = Buffer.from(data); // the chunk buffer is reused
    }
    if (carry.length > 0) each(carry.toString("utf8"), ++lineNumber, true);
  } finally {
    closeSync(fd);
  }
}

/** Every record of the trail in `dir` (a KMS data folder), oldest first; a line that is not JSON is null. */
export function readTrail(dir: string): { seq: number; record: Record<string, unknown> | null }[] {
  const out: { seq: number; record: Record<string, unknown> | null }[] = [];
  forEachLine(join(dir, TRAIL_FILE), (line, seq, partial) => {
    if (partial) return; // being written (a running KMS) or cut off by a crash: not a record yet
    let record: Record<string, unknown> | null = null;
    try {
      const value = JSON.parse(line) as unknown;
      if (typeof value === "object" && value !== null && !Array.isArray(value)) record = value as Record<string, unknown>;
    } catch { /* shown as null */ }
    out.push({ seq, record });
  });
  return out;
}
