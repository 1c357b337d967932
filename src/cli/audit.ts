// `hsmsim audit <data folder>`: print, filter and verify an HSM's audit log, read straight
// from its database (the HSM is not started: no reboot is counted; a running HSM's folder
// reads fine). Verification uses the folder's own masking key, loaded into a chip.
import { readFileSync } from "node:fs";

import type { AuditEntry } from "../hsm/audit.js";
import { HsmError } from "../hsm/errors.js";
import { verifyFolder } from "../hsm/verify-folder.js";
import { KmsError } from "../kms/errors.js";
import { escapeControls } from "../kms/printable.js";
import { UsageError, defineCommand, shared, wholeNumber } from "./command.js";
import { textOutput } from "./format.js";
import { runKmsAudit } from "./kms-audit.js";

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
export function runAudit(dir: string, options: AuditOptions, write: (text: string) => unknown = (t) => process.stdout.write(t)): number {
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

export const auditCommand = defineCommand({
  name: "audit",
  summary: "print an HSM's audit log (or with --kms the KMS trail of a cluster folder) and verify its chain (exit 1 if broken)",
  description: `With --kms the folder is a cluster folder (hsmsim up --kms --data DIR): prints the KMS endpoint's
CloudTrail-style records (DIR/kms/trail.jsonl) and verifies their hash chain and signed digests with the
trail's public key alone. --request ID shows that request's record and, from every HSM of the cluster, the
audit entries it caused (actor kmsuser, within the request's time, on the keys the record names).`,
  positionals: [{ name: "data folder" }],
  options: {
    ...shared.json,
    kms: { type: "boolean", description: "the KMS trail of the cluster folder given (instead of one HSM's audit log)" },
    request: { type: "string", valueName: "ID", description: "with --kms: only this request (x-amzn-RequestId), with the HSM entries it caused" },
    key: { type: "string", valueName: "KEY", description: "with --kms: only records naming this key id, key ARN or alias" },
    "trail-key": { type: "string", valueName: "PEM FILE", description: "with --kms: trust this public key (a copy of kms/trail-public.pem kept elsewhere), not the folder's" },
    principal: { type: "string", valueName: "ARN|NAME", description: "with --kms: only records by this principal (ARN, user name, account id or access key id)" },
    op: { type: "string", valueName: "OPERATION", description: "only entries of this operation (LOGIN, CREATE_USER, …; with --kms Decrypt, CreateKey, …; any case)" },
    user: { type: "string", valueName: "NAME", description: "only entries by this user" },
    from: { type: "string", valueName: "SEQ", parse: wholeNumber(0), description: "only entries from this sequence number on" },
    tail: { type: "string", valueName: "N", parse: wholeNumber(0), description: "only the last N entries (after the other filters)" },
  },
  requires: { request: "kms", key: "kms", principal: "kms", "trail-key": "kms" },
  conflicts: [["kms", "user"], ["kms", "from"]],
  examples: ["hsmsim audit ./.hsmsim/hsm-1 --op login --user bob --tail 20", "hsmsim audit --kms .hsmsim --op decrypt --principal alice",
    "hsmsim audit --kms .hsmsim --request 3f2c8c6e-0a55-4b1e-9d7e-1c2b3a4d5e6f"],
  run({ values, positionals, io }) {
    if (values.kms) {
      let trailKeyPem: string | undefined;
      if (values["trail-key"] !== undefined) {
        try {
          trailKeyPem = readFileSync(values["trail-key"], "utf8");
        } catch (e) {
          throw new UsageError(`--trail-key: cannot read ${values["trail-key"]} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
        }
      }
      try {
        return runKmsAudit(positionals[0], { json: values.json ?? false, request: values.request, key: values.key, principal: values.principal,
          operation: values.op, tail: values.tail, trailKeyPem }, (t) => void io.stdout.write(t));
      } catch (e) {
        // A trail file that is not a regular file (a planted FIFO, a symlink): refused, said plainly.
        if (e instanceof KmsError) {
          io.stderr.write(`hsmsim audit --kms: ${escapeControls(e.message)}\n`);
          return 2;
        }
        throw e;
      }
    }
    try {
      return runAudit(positionals[0], { json: values.json ?? false, operation: values.op, user: values.user, fromSeq: values.from, tail: values.tail },
        (t) => void io.stdout.write(t));
    } catch (e) {
      // A folder that is not an HSM's is a bad argument, not a broken chain.
      if (e instanceof HsmError) {
        io.stderr.write(`hsmsim audit: ${e.message}\n`);
        return 2;
      }
      throw e;
    }
  },
});
