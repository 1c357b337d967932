// Structured logs (pino, one JSON object a line) in the cluster folder's logs/: one file per
// process. Written synchronously: a process that exits on a fatal error still leaves its reason.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";

import pino, { type Logger } from "pino";

export type { Logger };

export function openLog(file: string, name: string): Logger {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  return pino({ name, base: { pid: process.pid, name } }, pino.destination({ dest: file, sync: true, mkdir: true }));
}
