// Helpers of the real-time cluster tests: run the CLI in this process (its supervisor and HSM
// processes are real, detached processes), read the status, and talk to the cluster as an
// application does (ClusterClient over ClientTransport, through the wire tests' fixture).
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { main } from "../../src/cli/main.js";
import type { ClusterView, HsmView } from "../../src/net/supervisor.js";
import { type TestClient, createKeyOp } from "../net/fixture.js";

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** `hsmsim ARGS` in this process; the output captured. */
export async function cli(...args: string[]): Promise<Ran> {
  let stdout = "", stderr = "";
  const code = await main(args, { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) }, env: process.env });
  return { code, stdout, stderr };
}

/** `hsmsim ARGS --json`, parsed; fails the test with the output when the exit code is not 0. */
export async function cliJson<T>(...args: string[]): Promise<T> {
  const ran = await cli(...args, "--json");
  if (ran.code !== 0) throw new Error(`hsmsim ${args.join(" ")} exited ${ran.code}: ${ran.stderr}${ran.stdout}`);
  return JSON.parse(ran.stdout) as T;
}

/** A fresh cluster folder and addresses no other test file uses: 127.<a>.<b>.2… and a random high port. */
export function placement(): { dir: string; baseAddress: string; port: number } {
  const a = 100 + Math.floor(Math.random() * 150), b = 1 + Math.floor(Math.random() * 250);
  return { dir: join(mkdtempSync(join(tmpdir(), "hsmsim-proc-")), "cluster"), baseAddress: `127.${a}.${b}.2`, port: 20_000 + Math.floor(Math.random() * 40_000) };
}

export type Status = ClusterView & { connect: { trustAnchor: string; address: string } };

export function status(dir: string): Promise<Status> {
  return cliJson<Status>("status", "--data", dir);
}

/** Polls the status until `predicate` holds (bounded: fails with what was awaited and the last status). */
export async function until(dir: string, predicate: (s: Status) => boolean, what: string, timeoutMs = 90_000): Promise<Status> {
  const deadline = Date.now() + timeoutMs;
  let last: Status | undefined;
  for (;;) {
    try {
      last = await status(dir);
      if (predicate(last)) return last;
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last status: ${JSON.stringify(last?.hsms)} events: ${JSON.stringify(last?.events.slice(-8))}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export const members = (s: Status): HsmView[] => s.hsms.filter((h) => h.state !== "DELETED");
export const trustAnchorOf = (dir: string) => readFileSync(join(dir, "pki", "customerCA.crt"), "utf8");

let labels = 0;
/** alice creates a token secret key (a createObject through the cluster): resolves to its wire handle. */
export async function createKey(c: TestClient, pinned?: string): Promise<number> {
  return (await c.send(createKeyOp(`processes-${++labels}`), { pinned })) as number;
}

/** Whether a process exists (the CLI's own check). */
export { alive } from "../../src/cli/cluster-commands.js";
