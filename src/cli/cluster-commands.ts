// `hsmsim status | down | backup | hsm kill|restart|add|remove|replace`: act on the real-time
// cluster of a cluster folder through its supervisor's control socket (`up` is cluster-up.ts).
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { ClusterFolder } from "../net/cluster-folder.js";
import { type ControlRequest, controlRequest } from "../net/control-socket.js";
import { ProcessError, SUPERVISOR_PID } from "../net/process-errors.js";
import type { HsmView } from "../net/supervisor.js";
import { type Command, type CommandIo, DEFAULT_DATA_DIR, defineCommand, defineGroup, shared } from "./command.js";
import { printCluster, recordedView, statusOf } from "./cluster-view.js";
import { printKmsLine, withKmsProbe } from "./kms-up.js";

export const statusCommand = defineCommand({
  name: "status",
  summary: "the cluster's and each HSM's state, address, zone, pid, key and user counts (and the KMS endpoint's, if it runs one)",
  description: "Works when the cluster is down too: then it says so and shows the states last recorded in cluster.json.",
  options: { ...shared.data, ...shared.json },
  async run({ values, io }) {
    const folder = new ClusterFolder(values.data ?? DEFAULT_DATA_DIR);
    const v = await statusOf(folder).catch((e: unknown) => {
      if ((e as { code?: string }).code !== "NOT_RUNNING") throw e;
      return recordedView(folder);
    });
    const shown = await withKmsProbe(v, folder);
    printCluster(shown, folder, values.json ?? false, io.stdout, false);
    if (!values.json) printKmsLine(shown, folder, io.stdout);
    return 0;
  },
});

export const downCommand = defineCommand({
  name: "down",
  summary: "stop the cluster's HSM processes and supervisor (the folder keeps everything)",
  options: { ...shared.data, ...shared.json },
  async run({ values, io }) {
    const folder = new ClusterFolder(values.data ?? DEFAULT_DATA_DIR);
    let pid: number | null = null;
    try {
      pid = Number(readFileSync(join(folder.dir, SUPERVISOR_PID), "utf8"));
    } catch {
      // no pid file: nothing runs, or it is stopping
    }
    try {
      await controlRequest(folder.socket, { op: "down" });
    } catch (e) {
      if ((e as { code?: string }).code !== "NOT_RUNNING") throw e;
      report(io, values.json ?? false, { running: false }, `the cluster in ${folder.dir} is not running`);
      return 0;
    }
    // Bounded wait until the supervisor is gone (it stops every HSM process first).
    const started = Date.now();
    while (pid !== null && Number.isInteger(pid) && alive(pid)) {
      if (Date.now() - started > 60_000) throw new ProcessError("TIMEOUT", `the supervisor (pid ${pid}) did not stop within 60 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
    report(io, values.json ?? false, { running: false }, `the cluster in ${folder.dir} is down`);
    return 0;
  },
});

export const backupCommand = defineCommand({
  name: "backup",
  summary: "a backup now, sealed into the folder's backups/ (the vault, standing for AWS's backup service)",
  options: { ...shared.data, ...shared.json },
  async run({ values, io }) {
    const folder = new ClusterFolder(values.data ?? DEFAULT_DATA_DIR);
    const result = (await controlRequest(folder.socket, { op: "backup" })) as { backupId: string };
    report(io, values.json ?? false, result, `backup ${result.backupId}`);
    return 0;
  },
});

function hsmAction(name: "kill" | "restart" | "remove" | "replace", summary: string): Command {
  return defineCommand({
    name,
    summary,
    positionals: [{ name: "HSM id" }],
    options: { ...shared.data, ...shared.json },
    async run({ values, positionals, io }) {
      const folder = new ClusterFolder(values.data ?? DEFAULT_DATA_DIR);
      const request = { op: name, hsmId: positionals[0] } as ControlRequest;
      const result = await controlRequest(folder.socket, request);
      const h = result as HsmView | null;
      report(io, values.json ?? false, result ?? { ok: true }, h?.hsmId ? `replaced by ${h.hsmId} at ${h.address} in ${h.availabilityZone}` : `${name}: done`);
      return 0;
    },
  });
}

const addCommand = defineCommand({
  name: "add",
  summary: "add an HSM cloned from a live one (in the zone with the fewest HSMs unless --zone)",
  options: { ...shared.data, ...shared.json, zone: { type: "string", valueName: "ZONE", description: "its availability zone" } },
  async run({ values, io }) {
    const folder = new ClusterFolder(values.data ?? DEFAULT_DATA_DIR);
    const h = (await controlRequest(folder.socket, { op: "add", ...(values.zone !== undefined ? { zone: values.zone } : {}) })) as HsmView;
    report(io, values.json ?? false, h, `added ${h.hsmId} at ${h.address} in ${h.availabilityZone}`);
    return 0;
  },
});

export const hsmCommand = defineGroup({
  name: "hsm",
  summary: "kill, restart, add, remove or replace one HSM of the running cluster",
  subcommands: [
    hsmAction("kill", "SIGKILL the HSM's process, as a crash (the supervisor restarts it after a short backoff)"),
    hsmAction("restart", "stop the HSM's process cleanly and start it again"),
    addCommand,
    hsmAction("remove", "take the HSM out of the cluster (its data folder is kept)"),
    hsmAction("replace", "remove the HSM and add a new one in its zone"),
  ],
});

function report(io: CommandIo, json: boolean, value: unknown, text: string): void {
  io.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${text}\n`);
}

/** Whether process `pid` exists (EPERM: it does, another user's). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
