// A cluster started the way a user starts one: `hsmsim up` (the processes engineer's
// supervisor, each HSM its own process, state in a cluster folder), stopped with `hsmsim down`.
// The fault tests kill HSM processes from outside with SIGKILL, as `kill -9 PID` does, and
// watch the supervisor bring them back from their data folders.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { main } from "../../../src/cli/main.js";
import { statusOf } from "../../../src/cli/cluster-view.js";
import { ClusterFolder, type ClusterFile } from "../../../src/net/cluster-folder.js";
import type { ClusterView } from "../../../src/net/supervisor.js";
import { freePort } from "../../net/fixture.js";

export interface SupervisedCluster {
  dir: string;
  folder: ClusterFolder;
  caFile: string;
  caPem: string;
  addresses: string[];
  /** Each HSM's data folder, in member order. */
  hsmDirs: string[];
  status(): Promise<ClusterView>;
  /** SIGKILLs HSM `index`'s process; resolves with the kill time and the old pid. */
  kill(index: number): Promise<{ at: number; pid: number }>;
  /** Resolves once HSM `index` runs a process other than `oldPid` and answers the supervisor. */
  waitRestarted(index: number, oldPid: number, timeoutMs?: number): Promise<void>;
  down(): Promise<void>;
  remove(): void;
}

function sink() {
  let text = "";
  return { stream: { write: (t: string) => void (text += t) }, text: () => text };
}

async function cli(args: string[]): Promise<string> {
  const out = sink(), err = sink();
  const code = await main(args, { stdout: out.stream, stderr: err.stream, env: {} });
  if (code !== 0) throw new Error(`hsmsim ${args.join(" ")} exited ${code}: ${err.text()}${out.text()}`);
  return out.text();
}

export async function startSupervisedCluster(options: { hsms: number; baseHost: number; restartDelayMs?: number }): Promise<SupervisedCluster> {
  const dir = mkdtempSync(join(tmpdir(), "hsmsim-up-"));
  const base = `127.0.0.${options.baseHost}`;
  const port = await freePort(base);
  await cli(["up", "--data", dir, "--hsms", String(options.hsms), "--base-address", base, "--port", String(port), "--password-cost", "1", "--restart-delay-ms", String(options.restartDelayMs ?? 100), "--json"]);
  const folder = new ClusterFolder(dir);
  const file = JSON.parse(readFileSync(folder.clusterFile, "utf8")) as ClusterFile;
  const members = file.hsms.filter((h) => h.state !== "DELETED");
  const status = () => statusOf(folder);
  const pidOf = async (index: number) => (await status()).hsms.find((h) => h.hsmId === members[index].hsmId)?.pid ?? null;
  return {
    dir, folder,
    caFile: folder.trustAnchor,
    caPem: readFileSync(folder.trustAnchor, "utf8"),
    addresses: members.map((h) => h.address),
    hsmDirs: members.map((h) => folder.abs(h.folder)),
    status,
    async kill(index) {
      const pid = await pidOf(index);
      if (pid === null) throw new Error(`HSM ${members[index].hsmId} has no process to kill`);
      const at = Date.now();
      process.kill(pid, "SIGKILL");
      return { at, pid };
    },
    async waitRestarted(index, oldPid, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const view = (await status()).hsms.find((h) => h.hsmId === members[index].hsmId);
        if (view && view.pid !== null && view.pid !== oldPid && view.keyCount !== undefined) return;
        if (Date.now() > deadline) throw new Error(`HSM ${members[index].hsmId} not back within ${timeoutMs} ms: ${JSON.stringify(view)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async down() {
      await cli(["down", "--data", dir]);
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
