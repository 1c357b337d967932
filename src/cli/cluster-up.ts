// `hsmsim up`: starts the real-time cluster in a cluster folder (creating it when the folder
// holds none): a supervisor process, detached so it outlives the command, and one process per
// HSM under it. Waits (bounded) until every HSM answers, then prints how to connect.
import { spawn } from "node:child_process";
import { closeSync, constants, existsSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { FolderLock } from "../hsm/folder-lock.js";
import { HSM_TYPES } from "../hsm/types.js";
import { ClusterFolder, DEFAULT_BASE_ADDRESS, DEFAULT_PORT, HSM_ID, isAddress, isIpv4 } from "../net/cluster-folder.js";
import { checkSocketPath } from "../net/control-socket.js";
import { entryPoint } from "../net/entry-points.js";
import { createCluster } from "../net/new-cluster.js";
import { ProcessError, SUPERVISOR_LOCK } from "../net/process-errors.js";
import { DEFAULT_DATA_DIR, type OptionSpec, type ValueParser, UsageError, commaList, defineCommand, oneOf, shared, wholeNumber } from "./command.js";
import { printCluster, statusOf } from "./cluster-view.js";
import type { ClusterView } from "../net/supervisor.js";
import { progressLine } from "./progress.js";
import { DEFAULT_KMS_PORT, KMS_HOST, checkKmsPort, prepareKmsCredentials, printKmsHowTo, waitForKms, withKmsProbe } from "./kms-up.js";
import { PROFILE_TYPES, resolveProfile, timeDilationParser, withTimeDilation } from "./profile-option.js";

const ipv4: ValueParser<string> = (text, name) => {
  if (!isIpv4(text)) throw new UsageError(`${name} takes an IPv4 address such as 127.0.0.2, not '${text}'`);
  return text;
};
const address: ValueParser<string> = (text, name) => {
  if (!isAddress(text)) throw new UsageError(`${name} takes ip:port items such as 10.0.1.5:2223, not '${text}'`);
  return text;
};
const zoneName: ValueParser<string> = (text, name) => {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(text)) throw new UsageError(`${name} takes zone names of letters, digits, . _ -, not '${text}'`);
  return text;
};

const hsmIdParser: ValueParser<string> = (text, name) => {
  if (!HSM_ID.test(text)) throw new UsageError(`${name} takes HSM ids such as hsm-0123456789abcdef, not '${text}'`);
  return text;
};

const CREATION_ONLY = ["hsms", "zones", "type", "mtls", "base-address", "port", "addresses", "password-cost"] as const;

const UP_OPTIONS = {
    ...shared.data,
    ...shared.json,
    hsms: { type: "string", valueName: "N", parse: wholeNumber(1, 28), description: "HSMs of a new cluster (default 3)" },
    zones: { type: "string", valueName: "A,B,C", parse: commaList(zoneName), description: "availability zones, HSMs round-robin over them (default az-a,az-b,az-c)" },
    type: { type: "string", valueName: "TYPE", parse: oneOf(Object.keys(HSM_TYPES) as (keyof typeof HSM_TYPES)[]), description: "HSM type: its quotas and its performance profile (default hsm2m.medium's quotas at the unlimited profile)" },
    profile: { type: "string", valueName: "NAME|FILE", description: `how fast the HSMs serve: ${PROFILE_TYPES.join(", ")} or a JSON ServiceProfile file (default: --type's, else unlimited)` },
    "time-dilation": { type: "string", valueName: "K", parse: timeDilationParser, description: "every service time × K (≥ 1), for a machine that cannot reach the profile's rate: measured rates × K are the profile's" },
    mtls: { type: "boolean", description: "enforce mutual TLS: clients need a certificate from the cluster's client CA" },
    "base-address": { type: "string", valueName: "IP", parse: ipv4, description: `the first HSM's address; the next ones follow (default ${DEFAULT_BASE_ADDRESS})` },
    port: { type: "string", valueName: "N", parse: wholeNumber(1, 65535), description: `the HSMs' port (default ${DEFAULT_PORT}, CloudHSM's)` },
    addresses: { type: "string", valueName: "IP:PORT,...", parse: commaList(address), description: "each HSM's own address (instead of --base-address/--port)" },
    "password-cost": { type: "string", valueName: "N", parse: wholeNumber(1, 20), description: "scrypt cost of password hashes (default 15; tests use less)" },
    "restart-delay-ms": { type: "string", valueName: "MS", parse: wholeNumber(1, 600_000), description: "first restart delay after an HSM crash (default 500; doubles while it keeps crashing)" },
    "timeout-ms": { type: "string", valueName: "MS", parse: wholeNumber(1000, 3_600_000), description: "how long to wait for the HSMs (default 120000)" },
  kms: { type: "boolean", description: `also run the KMS endpoint (AWS's KMS API, SigV4) as a supervised process on ${KMS_HOST}, state in DATA/kms/` },
  "kms-port": { type: "string", valueName: "N", parse: wholeNumber(1, 65535), description: `the KMS endpoint's port (default ${DEFAULT_KMS_PORT})` },
  only: { type: "string", valueName: "ID,...", parse: commaList(hsmIdParser), description: "run only these HSMs here; the others run on other machines from copies of this folder" },
} as const satisfies Record<string, OptionSpec>;

export const upCommand = defineCommand({
  name: "up",
  summary: "start a real-time cluster: each HSM its own process, TLS on 127.0.0.2, 127.0.0.3, … port 2223",
  description: `Starts the cluster kept in the data folder (default ${DEFAULT_DATA_DIR}, relative to the working directory),
creating it when the folder holds none. A supervisor process runs the control plane (states, health,
restarts, add/remove/replace, backups) and outlives this command; hsmsim down stops it. Up on an
existing folder brings back the same cluster, users and keys (also after kill -9 of everything).
--hsms, --zones, --type, --mtls, --base-address, --port, --addresses and --password-cost apply only
when creating. With --mtls applications need a certificate from pki/clientCA.crt (pki/client.crt is one).

Speed: an explicit --type T gives T's quotas and T's performance profile (engines, queue and service
times calibrated to AWS's published throughput: a full HSM answers busy, which clients retry). Without
--type the cluster is hsm2m.medium at the unlimited profile: as fast as this machine's chip, for
development. --profile overrides the speed (a name or a JSON ServiceProfile file); --time-dilation K
runs every service time K times slower, so a machine that cannot reach the real rate still shows the
profile's behaviour (multiply measured rates by K, divide latencies by K). The profile is kept in
cluster.json: restarts, replaced and added HSMs serve at the same rate. Speed is not state: up on an
existing, stopped cluster may change it with --profile or --time-dilation (given alone, it keeps the
recorded profile and sets its dilation); a running cluster must be brought down first.

--kms also runs the KMS endpoint (the AWS KMS API the SDK and the AWS CLI talk to, custom key stores
over this cluster) as a process of the cluster: supervised and restarted like an HSM, stopped by down,
state in DATA/kms/. Its access keys are written at the first start to DATA/kms/credentials.json (0600);
up prints the AWS_* environment lines (the secret only to a terminal). hsmsim audit --kms DATA shows its trail.`,
  options: UP_OPTIONS,
  conflicts: [["addresses", "base-address"], ["addresses", "port"], ["addresses", "hsms"]],
  requires: { "kms-port": "kms" },
  examples: ["hsmsim up", "hsmsim up --hsms 2 --data /tmp/c1 --base-address 127.0.5.2 --port 3223",
    "hsmsim up --type hsm2m.medium --time-dilation 10 --hsms 2 --data /tmp/c2 --base-address 127.0.6.2", "hsmsim up --kms --kms-port 4599"],
  async run({ values, io }) {
    const folder = new ClusterFolder(values.data ?? DEFAULT_DATA_DIR);
    const json = values.json ?? false;
    try {
      checkSocketPath(folder.socket); // before anything is created
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const speedGiven = values.profile !== undefined || values["time-dilation"] !== undefined;
    // Resolved before anything is created or started: a bad profile file changes nothing.
    const chosenProfile = values.profile !== undefined ? resolveProfile(values.profile, values["time-dilation"]) : undefined;
    const running = await statusOf(folder).catch(() => null);
    if (running && speedGiven) {
      throw new UsageError(`the cluster in ${folder.dir} is running: its speed changes at the next start (hsmsim down, then up with --profile/--time-dilation)`);
    }
    if (running && values.kms && !running.kms) {
      throw new UsageError(`the cluster in ${folder.dir} is running without the KMS endpoint: hsmsim down, then up --kms`);
    }
    if (running) {
      if (!json && io.stderr.isTTY) io.stderr.write(`the cluster in ${folder.dir} is up already\n`);
      const shown = await withKmsProbe(running, folder);
      printCluster(shown, folder, json, io.stdout);
      if (!json) printKmsHowTo(shown, folder, io.stdout);
      return 0;
    }
    const kmsPort = values["kms-port"] ?? DEFAULT_KMS_PORT;
    if (values.kms) await checkKmsPort(kmsPort); // before anything is created or started
    if (folder.exists()) {
      folder.checkOwnership();
      const given = CREATION_ONLY.filter((k) => values[k] !== undefined);
      if (given.length > 0) throw new UsageError(`the cluster in ${folder.dir} exists: --${given.join(", --")} apply only when creating one (see hsm add/remove)`);
      if (speedGiven) {
        const lock = FolderLock.acquire(folder.dir, SUPERVISOR_LOCK); // no supervisor runs: the file is ours to change
        try {
          const file = folder.read();
          const dilation = values["time-dilation"];
          file.profile = chosenProfile ?? withTimeDilation(file.profile ?? resolveProfile("unlimited"), dilation!);
          folder.write(file);
        } finally {
          lock.release();
        }
      }
    } else {
      const addresses = values.addresses;
      const hsmCount = addresses?.length ?? values.hsms ?? 3;
      if (!json && io.stderr.isTTY) io.stderr.write(`creating a cluster of ${hsmCount} HSM(s) in ${folder.dir}\n`);
      folder.makeTree();
      const lock = FolderLock.acquire(folder.dir, SUPERVISOR_LOCK);
      try {
        // Another up may have created it between our look and our lock: then it is started, not created again.
        if (!folder.exists()) await createCluster(folder, {
          hsmCount, zones: values.zones, hsmType: values.type, baseAddress: values["base-address"] ?? DEFAULT_BASE_ADDRESS,
          port: values.port ?? DEFAULT_PORT, addresses, mtls: values.mtls ?? false, passwordCost: values["password-cost"],
          // --profile, else --type's own profile, else the development speed.
          profile: chosenProfile ?? resolveProfile(values.type ?? "unlimited", values["time-dilation"]),
        });
      } finally {
        lock.release();
      }
    }
    if (values.kms) prepareKmsCredentials(folder); // at the first start: written now, so up can print them
    const file = folder.read();
    for (const id of values.only ?? []) {
      if (!file.hsms.some((h) => h.hsmId === id && h.state !== "DELETED")) throw new UsageError(`--only names ${id}, which is no HSM of ${file.clusterId}`);
    }
    const members = file.hsms.filter((h) => h.state !== "DELETED" && (values.only === undefined || values.only.includes(h.hsmId))).length;
    const progress = progressLine({ total: members, unit: "HSMs", label: "up", stream: io.stderr, quiet: json });
    progress.status("starting the supervisor");
    const { file: entry, execArgv } = entryPoint("supervisor-main");
    const errFile = join(folder.logsDir, "supervisor.stderr");
    const errFd = openSync(errFile, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
    const child = spawn(process.execPath, [...execArgv, entry, JSON.stringify({ dir: folder.dir, restartDelayMs: values["restart-delay-ms"], only: values.only,
      ...(values.kms ? { kms: { host: KMS_HOST, port: kmsPort } } : {}) })], {
      detached: true, stdio: ["ignore", "ignore", errFd],
    });
    closeSync(errFd);
    let exited: string | null = null;
    child.on("exit", (code, signal) => { exited = signal ?? `code ${code}`; });
    child.unref();
    const timeoutMs = values["timeout-ms"] ?? 120_000;
    const started = Date.now();
    let lastView: ClusterView | null = null;
    try {
      for (;;) {
        if (exited !== null) {
          const why = existsSync(errFile) ? readFileSync(errFile, "utf8").trim() : "";
          throw new ProcessError("CHILD_FAILED", `the supervisor exited (${exited})${why ? `: ${why}` : ""}; see ${folder.logsDir}`);
        }
        const v = await statusOf(folder).catch(() => null);
        if (v) lastView = v;
        if (v) {
          const answering = v.hsms.filter((h) => h.state !== "DELETED" && !h.remote && h.keyCount !== undefined).length;
          if (answering > progress.done) progress.tick(true, answering - progress.done);
          progress.status(`${answering}/${members} HSMs answering`);
          if (answering === members) {
            let shown = v;
            if (values.kms) {
              progress.status("starting the KMS endpoint");
              shown = await withKmsProbe(await waitForKms(() => statusOf(folder), Math.max(10_000, timeoutMs - (Date.now() - started))), folder);
            }
            progress.finish();
            printCluster(shown, folder, json, io.stdout);
            if (!json) printKmsHowTo(shown, folder, io.stdout);
            return 0;
          }
        }
        if (Date.now() - started > timeoutMs) {
          // Why, when an HSM process keeps failing (its address taken, its folder damaged…): its last exits.
          const exits = (lastView?.events ?? []).filter((e) => / process exited /.test(e.event)).slice(-3).map((e) => e.event);
          throw new ProcessError("TIMEOUT", `the cluster did not come up within ${timeoutMs} ms${exits.length ? ` (${exits.join("; ")})` : ""}: see ${folder.logsDir}; hsmsim down stops what did start`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      progress.finish();
    }
  },
});
