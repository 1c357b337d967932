// The entry of one HSM's process, started by the supervisor (supervisor.ts) with one JSON
// argument (HsmProcessConfig) and an IPC channel. It opens its data folder (real clock, OS
// randomness: never a seed), serves the cluster protocol over TLS on its own address
// (ClusterNode on HsmTransport and RealClock), and obeys the supervisor: membership, status,
// clone (add HSM), backup, stop. It dies with its supervisor (the IPC channel closing), and
// exits nonzero with a logged reason on a fatal error (folder in use, damaged folder).
import { readFileSync } from "node:fs";

import { DEFAULT_NODE } from "../cluster/cluster.js";
import { ClusterNode } from "../cluster/node.js";
import { checkServiceProfile, profileServiceTime } from "../cluster/service-profile.js";
import { Hsm, restoreHsm } from "../hsm/hsm.js";
import { internalsOf } from "../hsm/internals.js";
import { type HsmProcessConfig, type SupervisorCommand, isSupervisorCommand } from "./hsm-ipc.js";
import { EXIT_BAD_CONFIG, EXIT_FATAL } from "./process-errors.js";
import { type Logger, openLog } from "./process-log.js";
import { startHsmTransport } from "./hsm-transport-setup.js";
import { OsRandom } from "./os-random.js";
import { RealClock } from "./real-clock.js";


function send(message: unknown): void {
  try {
    process.send?.(message);
  } catch {
    // The supervisor is gone: the disconnect handler ends this process.
  }
}

function parseConfig(argument: string | undefined): HsmProcessConfig {
  const c = JSON.parse(argument ?? "") as HsmProcessConfig;
  for (const key of ["dir", "clusterId", "address", "availabilityZone", "certFile", "keyFile", "caFile", "logFile"] as const) {
    if (typeof c[key] !== "string" || c[key].length === 0) throw new Error(`config.${key} must be a non-empty string`);
  }
  if (c.clientCaFile !== undefined && typeof c.clientCaFile !== "string") throw new Error("config.clientCaFile must be a string");
  if (c.profile !== undefined) c.profile = checkServiceProfile(c.profile);
  return c;
}

async function run(config: HsmProcessConfig, log: Logger): Promise<void> {
  let hsm: Hsm;
  try {
    hsm = Hsm.open(config.dir);
  } catch (e) {
    fatal(log, `cannot open the data folder ${config.dir}: ${describe(e)}`);
  }
  const clock = new RealClock();
  let transport: Awaited<ReturnType<typeof startHsmTransport>>;
  try {
    transport = await startHsmTransport({
    address: config.address,
    certPem: readFileSync(config.certFile, "utf8"),
    keyPem: readFileSync(config.keyFile, "utf8"),
    caPem: readFileSync(config.caFile, "utf8"),
    clientCaPem: config.clientCaFile ? readFileSync(config.clientCaFile, "utf8") : undefined,
    log,
  });
  } catch (e) {
    hsm.close();
    fatal(log, `cannot listen on ${config.address}: ${describe(e)}`);
  }
  const { profile } = config;
  const node = new ClusterNode(hsm, {
    ...DEFAULT_NODE,
    ...(profile === undefined ? {
      // No profile: the HSM takes as long as the chip does; requests are served as they arrive,
      // so the queue only holds a burst read in one go and busy stays for genuine overload.
      serviceTimeUs: () => 0, queueCapacity: 1024,
    } : {
      // The profile's engines and queue; its service times drawn from the OS (real time never replays a seed).
      serviceTimeUs: profileServiceTime(profile, new OsRandom()), engines: profile.engines, queueCapacity: profile.queueCapacity,
    }),
    clusterId: config.clusterId, address: config.address, availabilityZone: config.availabilityZone,
  }, transport, clock, () => send({ t: "activated" }));
  log.info({ hsmId: hsm.id, address: config.address, reboot: hsm.reboot, profile: profile?.type ?? "none", timeDilation: profile?.timeDilation ?? 1 }, "HSM started");

  let stopping = false;
  const stop = (code: number, why: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ why }, "HSM stopping");
    try {
      node.stop();
    } catch (e) {
      log.error({ err: describe(e) }, "stop failed");
    }
    // Close the listening socket and connections, then let the last reply reach the supervisor.
    const exit = () => setImmediate(() => process.exit(code));
    transport.close().then(exit, exit);
    setTimeout(exit, 5_000).unref();
  };

  process.on("message", (message: unknown) => {
    if (!isSupervisorCommand(message)) {
      log.warn("malformed supervisor command ignored");
      return;
    }
    try {
      const value = obey(message, hsm, node, log);
      send({ t: "reply", id: message.id, ok: true, value });
      if (message.t === "stop") stop(0, "the supervisor asked");
    } catch (e) {
      const code = typeof (e as { code?: unknown }).code === "string" ? (e as { code: string }).code : "FAILED";
      log.warn({ command: message.t, err: describe(e) }, "supervisor command failed");
      send({ t: "reply", id: message.id, ok: false, code, message: describe(e) });
    }
  });
  // An HSM never outlives its supervisor: a supervisor killed with -9 takes its HSMs with it.
  process.on("disconnect", () => stop(0, "the supervisor is gone"));
  process.on("SIGTERM", () => stop(0, "SIGTERM"));
  process.on("SIGINT", () => stop(0, "SIGINT"));
  process.on("uncaughtException", (e) => fatal(log, `uncaught: ${describe(e)}`));
  send({ t: "ready", hsmId: hsm.id, origin: internalsOf(hsm).state.origin, activated: hsm.activated });
}

function obey(command: SupervisorCommand, hsm: Hsm, node: ClusterNode, log: Logger): unknown {
  switch (command.t) {
    case "members":
      node.setMembers(command.members, command.epoch, command.keyAvailabilityMin, command.initialized, command.maxOrigin);
      log.info({ epoch: command.epoch, members: command.members.map((m) => m.address) }, "membership");
      return null;
    case "status": {
      const internals = internalsOf(hsm);
      return {
        hsmId: hsm.id, running: node.running, activated: hsm.activated, keyCount: internals.keyIds.size,
        userCount: internals.store.users().filter((u) => u.role !== "AU").length, served: node.stats.served, busy: node.stats.busy,
      };
    }
    case "clone": {
      // The new HSM's folder, made from this one: the masking key goes chip to chip, never through JavaScript.
      const internals = internalsOf(hsm);
      const clone = restoreHsm(command.dir, internals.snapshot(), (target) => internals.chip.shareMaskingKey(0, target, 0), { origin: command.origin });
      const hsmId = clone.id;
      clone.close();
      log.info({ hsmId, dir: command.dir }, "cloned into a new HSM's folder");
      return { hsmId };
    }
    case "backup": {
      const internals = internalsOf(hsm);
      // Sealed natively to the vault lineage's chip, as the in-process Cluster does.
      const sealedMaskingKey = internals.chip.exportMaskingKeyFor(0, command.transportKey);
      return { ...internals.snapshot(), sealedMaskingKey };
    }
    case "stop":
      return null;
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}${(e as { code?: string }).code ? ` ${(e as { code?: string }).code}` : ""}: ${e.message}` : String(e);
}

function fatal(log: Logger, reason: string): never {
  log.fatal({ reason }, "HSM process exits");
  send({ t: "fatal", reason });
  process.exit(EXIT_FATAL);
}

function main(): void {
  let config: HsmProcessConfig;
  try {
    config = parseConfig(process.argv[2]);
  } catch (e) {
    process.stderr.write(`hsm-process: bad configuration: ${describe(e)}\n`);
    process.exit(EXIT_BAD_CONFIG);
  }
  const log = openLog(config.logFile, "hsm");
  run(config, log).catch((e: unknown) => fatal(log, describe(e)));
}

main();
