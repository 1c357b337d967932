// The entry of the supervisor process (`hsmsim up` starts it detached, so it outlives the
// command): takes the folder's lock (one supervisor per folder; the kernel drops the lock when
// the process dies, kill -9 included, so nothing stale is left), starts the HSM processes,
// serves the control socket, and on `down` (or SIGTERM) stops them cleanly and exits.
import { unlinkSync } from "node:fs";
import type { Server } from "node:net";

import { FolderLock } from "../hsm/folder-lock.js";
import { ClusterFolder, writeAtomically } from "./cluster-folder.js";
import { serveControl } from "./control-socket.js";
import { EXIT_FAILED, EXIT_IN_USE, ProcessError, SUPERVISOR_LOCK, SUPERVISOR_PID } from "./process-errors.js";
import { openLog } from "./process-log.js";
import { Supervisor, type SupervisorOptions } from "./supervisor.js";

interface SupervisorConfig extends SupervisorOptions {
  dir: string;
}

async function main(): Promise<void> {
  process.umask(0o077); // the control socket and every file it makes: owner-only
  const config = JSON.parse(process.argv[2] ?? "{}") as SupervisorConfig;
  const folder = new ClusterFolder(config.dir);
  const log = openLog(`${folder.logsDir}/supervisor.log`, "supervisor");
  let lock: FolderLock;
  try {
    lock = FolderLock.acquire(folder.dir, SUPERVISOR_LOCK);
  } catch (e) {
    const message = `another supervisor runs on ${folder.dir}: ${(e as Error).message}`;
    log.error(message);
    process.stderr.write(`${new ProcessError("FOLDER_IN_USE", message).message}\n`);
    process.exit(EXIT_IN_USE);
  }
  writeAtomically(`${folder.dir}/${SUPERVISOR_PID}`, `${process.pid}\n`, 0o600); // never through a planted symlink
  const supervisor = new Supervisor(folder, log, config);
  let server: Server | undefined;
  let exiting = false;
  const exit = async (why: string, code = 0) => {
    if (exiting) return;
    exiting = true;
    log.info({ why }, "supervisor shutting down");
    await supervisor.shutdown().catch((e: Error) => log.error({ err: e.message }, "shutdown failed"));
    server?.close();
    try {
      unlinkSync(folder.socket);
      unlinkSync(`${folder.dir}/${SUPERVISOR_PID}`);
    } catch {
      // gone already
    }
    lock.release();
    process.exit(code);
  };
  process.on("SIGTERM", () => void exit("SIGTERM"));
  process.on("SIGINT", () => void exit("SIGINT"));
  process.on("uncaughtException", (e) => {
    log.fatal({ err: String(e), stack: e.stack }, "uncaught exception");
    void exit("uncaught exception", EXIT_FAILED);
  });
  server = await serveControl(folder.socket, async (request) => {
    switch (request.op) {
      case "status": return supervisor.status();
      case "down":
        setImmediate(() => void exit("down"));
        return { stopping: true };
      case "backup": {
        const b = await supervisor.backupNow();
        return { backupId: b.backupId };
      }
      case "add": return supervisor.add(request.zone);
      case "kill": return supervisor.kill(request.hsmId);
      case "restart": return supervisor.restart(request.hsmId);
      case "remove": return supervisor.remove(request.hsmId);
      case "replace": return supervisor.replace(request.hsmId);
    }
  }, (what) => log.warn(what));
  try {
    await supervisor.start();
    log.info("cluster up");
  } catch (e) {
    log.error({ err: (e as Error).message }, "start incomplete");
    // Stay up: the status shows what failed, and the restart policy keeps trying.
  }
}

void main().catch((e: unknown) => {
  process.stderr.write(`supervisor: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(EXIT_FAILED);
});
