// `hsmsim up | status | down | hsm kill|restart|add|remove|replace ID | backup`: a real-time
// cluster, each HSM in its own process under a supervisor, state in a cluster folder
// (--data DIR, default ./.hsmsim relative to the working directory).
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

import { FolderLock } from "../hsm/folder-lock.js";
import { ClusterFolder, DEFAULT_BASE_ADDRESS, DEFAULT_DATA_DIR, DEFAULT_PORT, isAddress, isIpv4 } from "../net/cluster-folder.js";
import { controlRequest } from "../net/control-socket.js";
import { entryPoint } from "../net/entry-points.js";
import { createCluster } from "../net/new-cluster.js";
import { ProcessError } from "../net/process-errors.js";
import type { ClusterView, HsmView } from "../net/supervisor.js";
import { textOutput } from "./format.js";

export const CLUSTER_USAGE = {
  up: `usage: hsmsim up [--hsms N] [--zones a,b,c] [--type hsm2m.medium] [--data DIR] [--mtls]
                 [--base-address IP] [--port N] [--addresses IP:PORT,...] [--json]
  Starts the cluster in DIR (default ./.hsmsim, relative to the working directory), creating it
  if DIR holds none: each HSM in its own process under a supervisor that outlives this command.
  HSMs listen on 127.0.0.2, 127.0.0.3, … port 2223 unless --base-address/--port/--addresses say
  otherwise. --hsms (default 3), --zones (default az-a,az-b,az-c), --type, --mtls (applications
  need a certificate from pki/clientCA.crt; one is made in pki/client.crt) and the addresses apply
  only when creating. Up on an existing folder brings back the same cluster, users and keys.
  --password-cost N (scrypt cost of password hashes, default 15) and --restart-delay-ms N (first
  restart delay after an HSM crash, default 500) are for tests.`,
  status: `usage: hsmsim status [--data DIR] [--json]
  The cluster's state and each HSM's state, address, zone, pid, key and user counts; from
  cluster.json when the cluster is down.`,
  down: `usage: hsmsim down [--data DIR]
  Stops the HSM processes and the supervisor; the cluster folder keeps everything.`,
  hsm: `usage: hsmsim hsm kill|restart|remove|replace HSM_ID [--data DIR] [--json]
       hsmsim hsm add [--zone ZONE] [--data DIR] [--json]
  kill: SIGKILL the HSM's process (a crash; the supervisor restarts it after a short backoff).
  restart: stop it cleanly and start it again. add: a new HSM cloned from a live one.
  remove: take it out of the cluster (its folder is kept). replace: remove, then add in its zone.`,
  backup: `usage: hsmsim backup [--data DIR] [--json]
  A backup now, sealed into DIR/backups (the vault, standing for AWS's backup service).`,
} as const;

export type ClusterCommand = keyof typeof CLUSTER_USAGE;
export const CLUSTER_COMMANDS = Object.keys(CLUSTER_USAGE) as ClusterCommand[];

class UsageError extends Error {}

const DATA = { data: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } } as const;

function wholeNumber(text: string | undefined, name: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`${name} takes a whole number from ${min} to ${max}`);
  return n;
}

/** Runs a cluster command; returns the exit code. */
export async function runClusterCommand(command: ClusterCommand, args: string[]): Promise<number> {
  try {
    switch (command) {
      case "up": return await up(args);
      case "status": return await status(args);
      case "down": return await down(args);
      case "hsm": return await hsm(args);
      case "backup": return await backup(args);
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`hsmsim ${command}: ${(e as Error).message}\n\n${CLUSTER_USAGE[command]}\n`);
      return 2;
    }
    if (e instanceof Error && typeof (e as { code?: unknown }).code === "string") {
      process.stderr.write(`hsmsim ${command}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

async function up(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, strict: true, allowPositionals: false, options: {
    ...DATA, hsms: { type: "string" }, zones: { type: "string" }, type: { type: "string" }, mtls: { type: "boolean" },
    "base-address": { type: "string" }, port: { type: "string" }, addresses: { type: "string" },
    "password-cost": { type: "string" }, "restart-delay-ms": { type: "string" }, "timeout-ms": { type: "string" },
  } });
  if (values.help) return help("up");
  const folder = new ClusterFolder(values.data ?? DEFAULT_DATA_DIR);
  const quiet = values.json || !process.stderr.isTTY;
  const progress = (text: string) => { if (!quiet) process.stderr.write(`${text}\n`); };
  const restartDelayMs = wholeNumber(values["restart-delay-ms"], "--restart-delay-ms", 1, 600_000);
  const timeoutMs = wholeNumber(values["timeout-ms"], "--timeout-ms", 1000, 3_600_000) ?? 120_000;

  const running = await view(folder).catch(() => null);
  if (running) {
    progress(`the cluster in ${folder.dir} is up already`);
    print(running, folder, values.json ?? false);
    return 0;
  }
  const creating = ["hsms", "zones", "type", "mtls", "base-address", "port", "addresses", "password-cost"] as const;
  if (folder.exists()) {
    const given = creating.filter((k) => values[k] !== undefined);
    if (given.length > 0) throw new UsageError(`the cluster in ${folder.dir} exists: --${given.join(", --")} apply only when creating one (use hsm add/remove)`);
  } else {
    const hsmCount = wholeNumber(values.hsms, "--hsms", 1, 28) ?? 3;
    const zones = values.zones?.split(",");
    if (zones && zones.some((z) => !/^[A-Za-z0-9._-]{1,64}$/.test(z))) throw new UsageError("--zones takes names of letters, digits, . _ - separated by commas");
    const baseAddress = values["base-address"] ?? DEFAULT_BASE_ADDRESS;
    if (!isIpv4(baseAddress)) throw new UsageError("--base-address takes an IPv4 address such as 127.0.0.2");
    const addresses = values.addresses?.split(",");
    if (addresses && !addresses.every(isAddress)) throw new UsageError("--addresses takes ip:port,ip:port,…");
    if (addresses && values.hsms !== undefined && addresses.length !== hsmCount) throw new UsageError("--addresses must name one address per HSM");
    progress(`creating a cluster of ${addresses?.length ?? hsmCount} HSM(s) in ${folder.dir}`);
    folder.makeTree();
    const lock = FolderLock.acquire(folder.dir, "supervisor.lock");
    try {
      await createCluster(folder, {
        hsmCount: addresses?.length ?? hsmCount, zones, hsmType: values.type, baseAddress, port: wholeNumber(values.port, "--port", 1, 65535) ?? DEFAULT_PORT,
        addresses, mtls: values.mtls ?? false, passwordCost: wholeNumber(values["password-cost"], "--password-cost", 1, 20),
      });
    } finally {
      lock.release();
    }
  }
  const file = folder.read();
  progress(`starting the supervisor and ${file.hsms.filter((h) => h.state !== "DELETED").length} HSM process(es)`);
  const { file: entry, execArgv } = entryPoint("supervisor-main");
  const errFile = join(folder.logsDir, "supervisor.stderr");
  const errFd = openSync(errFile, "w", 0o600);
  const child = spawn(process.execPath, [...execArgv, entry, JSON.stringify({ dir: folder.dir, restartDelayMs })], {
    detached: true, stdio: ["ignore", "ignore", errFd],
  });
  closeSync(errFd);
  let exited: string | null = null;
  child.on("exit", (code, signal) => { exited = signal ?? `code ${code}`; });
  child.unref();
  const started = Date.now();
  let last = "";
  for (;;) {
    if (exited !== null) {
      const why = existsSync(errFile) ? readFileSync(errFile, "utf8").trim() : "";
      throw new ProcessError("CHILD_FAILED", `the supervisor exited (${exited})${why ? `: ${why}` : ""}`);
    }
    const v = await view(folder).catch(() => null);
    if (v) {
      const members = v.hsms.filter((h) => h.state !== "DELETED");
      const ready = members.filter((h) => h.keyCount !== undefined).length;
      const line = `${ready}/${members.length} HSMs answering`;
      if (line !== last) progress(line);
      last = line;
      if (ready === members.length) {
        print(v, folder, values.json ?? false);
        return 0;
      }
    }
    if (Date.now() - started > timeoutMs) throw new ProcessError("TIMEOUT", `the cluster did not come up within ${timeoutMs} ms: see ${folder.logsDir}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function status(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, strict: true, allowPositionals: false, options: DATA });
  if (values.help) return help("status");
  const folder = new ClusterFolder(values.data ?? DEFAULT_DATA_DIR);
  const v = await view(folder).catch((e: unknown) => {
    if ((e as { code?: string }).code !== "NOT_RUNNING") throw e;
    return null;
  });
  if (v) {
    print(v, folder, values.json ?? false, false);
    return 0;
  }
  const file = folder.read();
  const down: ClusterView = {
    clusterId: file.clusterId, lineageId: file.lineageId, state: file.state, running: false, supervisorPid: null, mtls: file.mtls,
    hsms: file.hsms.map((h) => ({ hsmId: h.hsmId, origin: h.origin, address: h.address, availabilityZone: h.availabilityZone, state: h.state, pid: null, restarts: 0 })),
    backups: [], events: [],
  };
  print(down, folder, values.json ?? false, false);
  return 0;
}

async function down(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, strict: true, allowPositionals: false, options: DATA });
  if (values.help) return help("down");
  const folder = new ClusterFolder(values.data ?? DEFAULT_DATA_DIR);
  let pid: number | null = null;
  try {
    pid = Number(readFileSync(join(folder.dir, "supervisor.pid"), "utf8"));
  } catch {
    // no pid file: nothing runs, or it is going
  }
  try {
    await controlRequest(folder.socket, { op: "down" });
  } catch (e) {
    if ((e as { code?: string }).code !== "NOT_RUNNING") throw e;
    process.stdout.write(`the cluster in ${folder.dir} is not running\n`);
    return 0;
  }
  // Bounded wait until the supervisor (and so every HSM process, which it stops first) is gone.
  const started = Date.now();
  while (pid !== null && Number.isInteger(pid) && alive(pid)) {
    if (Date.now() - started > 60_000) throw new ProcessError("TIMEOUT", `the supervisor (pid ${pid}) did not stop within 60 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!values.json) process.stdout.write(`the cluster in ${folder.dir} is down\n`);
  return 0;
}

async function hsm(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, strict: true, allowPositionals: true, options: { ...DATA, zone: { type: "string" } } });
  if (values.help) return help("hsm");
  const [action, hsmId, ...extra] = positionals;
  const folder = new ClusterFolder(values.data ?? DEFAULT_DATA_DIR);
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  let result: unknown;
  if (action === "add") {
    if (hsmId !== undefined) throw new UsageError("hsm add takes no HSM id (--zone picks the zone)");
    result = await controlRequest(folder.socket, { op: "add", ...(values.zone !== undefined ? { zone: values.zone } : {}) });
  } else if (action === "kill" || action === "restart" || action === "remove" || action === "replace") {
    if (hsmId === undefined) throw new UsageError(`hsm ${action} needs an HSM id (see hsmsim status)`);
    if (values.zone !== undefined) throw new UsageError("--zone applies to hsm add only");
    result = await controlRequest(folder.socket, { op: action, hsmId });
  } else {
    throw new UsageError(action === undefined ? "which action: kill, restart, add, remove or replace?" : `unknown action '${action}'`);
  }
  if (values.json) process.stdout.write(`${JSON.stringify(result ?? { ok: true }, null, 2)}\n`);
  else if (result && typeof result === "object" && "hsmId" in result) {
    const h = result as HsmView;
    process.stdout.write(`${action === "add" ? "added" : "replaced by"} ${h.hsmId} at ${h.address} in ${h.availabilityZone}\n`);
  } else process.stdout.write(`${action}: done\n`);
  return 0;
}

async function backup(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, strict: true, allowPositionals: false, options: DATA });
  if (values.help) return help("backup");
  const folder = new ClusterFolder(values.data ?? DEFAULT_DATA_DIR);
  const result = await controlRequest(folder.socket, { op: "backup" });
  process.stdout.write(values.json ? `${JSON.stringify(result)}\n` : `backup ${(result as { backupId: string }).backupId}\n`);
  return 0;
}

function help(command: ClusterCommand): number {
  process.stdout.write(`${CLUSTER_USAGE[command]}\n`);
  return 0;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function view(folder: ClusterFolder): Promise<ClusterView> {
  return controlRequest(folder.socket, { op: "status" }, 30_000) as Promise<ClusterView>;
}

function print(v: ClusterView, folder: ClusterFolder, json: boolean, howTo = true): void {
  const first = v.hsms.find((h) => h.state !== "DELETED");
  const connect = first ? {
    trustAnchor: folder.trustAnchor,
    address: first.address,
    api: `connect({ address: "${first.address}", trustAnchor: readFileSync("${folder.trustAnchor}", "utf8") })`,
    pkcs11: `new PKCS11().load("cloudhsm://${first.address}?ca=${folder.trustAnchor}")`,
    ...(v.mtls ? { clientCertificate: join(folder.pkiDir, "client.crt"), clientKey: join(folder.pkiDir, "client.key") } : {}),
  } : null;
  if (json) {
    process.stdout.write(`${JSON.stringify({ ...v, dataDir: folder.dir, connect }, null, 2)}\n`);
    return;
  }
  const out = textOutput();
  process.stdout.write(`cluster ${v.clusterId} ${v.state}${v.running ? ` (supervisor pid ${v.supervisorPid})` : " — down: no supervisor runs (hsmsim up starts it); states as last recorded"}\n`);
  out.table(["HSM", "state", "address", "zone", "pid", "keys", "users"], v.hsms.map((h) => [
    h.hsmId, h.state, h.address, h.availabilityZone, h.pid ?? "-", h.keyCount ?? "-", h.userCount ?? "-",
  ]));
  if (howTo && connect) {
    process.stdout.write(`\ntrust anchor: ${connect.trustAnchor}\nconnect:      ${connect.api}\npkcs11:       ${connect.pkcs11}\n`);
    if (v.mtls) process.stdout.write(`client cert:  ${join(folder.pkiDir, "client.crt")} (key ${join(folder.pkiDir, "client.key")})\n`);
  }
}
