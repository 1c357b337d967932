// `hsmsim audit <data folder>`: print, filter and verify an HSM's audit log, read straight
// from its database (the HSM is not started: no reboot is counted).
import { type AuditEntry, verifyChain } from "../hsm/audit.js";
import { Store } from "../hsm/store.js";
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

/** Returns the exit code: 0, or 1 when the chain does not verify. */
export function runAudit(dir: string, options: AuditOptions, write = (t: string) => process.stdout.write(t)): number {
  const store = Store.open(dir);
  try {
    const all = [...store.auditEntries()];
    const verdict = verifyChain(all);
    let entries: AuditEntry[] = all.filter((e) =>
      (options.operation === undefined || e.operation === options.operation.toUpperCase()) &&
      (options.user === undefined || e.actor === options.user) &&
      (options.fromSeq === undefined || e.seq >= options.fromSeq));
    if (options.tail !== undefined) entries = entries.slice(-options.tail);
    if (options.json) {
      write(`${JSON.stringify({ verified: verdict, entries }, null, 2)}\n`);
    } else {
      textOutput(write).table(["seq", "time (UTC)", "boot", "operation", "actor", "session", "keys", "result", "detail"],
        entries.map((e) => [String(e.seq), formatTime(e.timeUs), String(e.reboot), e.operation, e.actor ?? "-",
          e.session === null ? "-" : String(e.session), e.keys.join(",") || "-", e.result, e.detail]));
      write(verdict.ok
        ? `   chain verified: ${verdict.entries} entries, sequence gapless, every hash links\n`
        : `   CHAIN BROKEN at entry ${verdict.problem!.seq}: ${verdict.problem!.reason}\n`);
    }
    return verdict.ok ? 0 : 1;
  } finally {
    store.close();
  }
}
