// `hsmsim audit <data folder>`: print, filter and verify an HSM's audit log, read straight
// from its database (the HSM is not started: no reboot is counted; a running HSM's folder
// reads fine). Verification uses the folder's own masking key, loaded into a chip.
import type { AuditEntry } from "../hsm/audit.js";
import { verifyFolder } from "../hsm/verify-folder.js";
import { textOutput } from "./format.js";

export interface AuditOptions {
  json: boolean;
  operation?: string;
  user?: string;
  fromSeq?: number;
  tail?: number;
}

export function formatTime(timeUs: number): string {
  const iso = new Date(Math.floor(timeUs / 1000)).toISOString();
  return `${iso.slice(0, 23)}${String(timeUs % 1000).padStart(3, "0")}Z`;
}

/** Returns the exit code: 0, or 1 when the chain or the folder's seal does not verify. */
export function runAudit(dir: string, options: AuditOptions, write = (t: string) => process.stdout.write(t)): number {
  const { ok, folderProblem, audit: verdict, entries: all } = verifyFolder(dir);
  let entries: AuditEntry[] = all.filter((e) =>
    (options.operation === undefined || e.operation === options.operation.toUpperCase()) &&
    (options.user === undefined || e.actor === options.user) &&
    (options.fromSeq === undefined || e.seq >= options.fromSeq));
  if (options.tail !== undefined) entries = entries.slice(-options.tail);
  if (options.json) {
    write(`${JSON.stringify({ verified: { ...verdict, ok }, folder: folderProblem ? { ok: false, problem: folderProblem } : { ok: true }, entries }, null, 2)}\n`);
  } else {
    textOutput(write).table(["seq", "time (UTC)", "boot", "operation", "actor", "session", "keys", "result", "detail"],
      entries.map((e) => [String(e.seq), formatTime(e.timeUs), String(e.reboot), e.operation, e.actor ?? "-",
        e.session === null ? "-" : String(e.session), e.keys.join(",") || "-", e.result, e.detail]));
    if (folderProblem) write(`   FOLDER TAMPERED: ${folderProblem}\n`);
    write(verdict.ok
      ? `   chain verified: ${verdict.entries} entries, sequence gapless, every MAC links${folderProblem ? "" : ", the sealed head matches"}\n`
      : `   CHAIN BROKEN at entry ${verdict.problem!.seq}: ${verdict.problem!.reason}\n`);
  }
  return ok ? 0 : 1;
}
