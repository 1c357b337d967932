#!/usr/bin/env node
// The `hsmsim` command.
import * as P from "../pkcs11/index.js";
import { PKCS11 } from "../pkcs11/pkcs11.js";
import { openUserSession } from "../pkcs11/setup.js";
import { HsmError } from "../hsm/errors.js";
import { runAudit } from "./audit.js";
import { runDemo } from "./demo.js";
import { runClusterDemo } from "./cluster-demo.js";
import { runDeviceDemo } from "./device-demo.js";
import { runSimCommand } from "./sim.js";
import { textOutput } from "./format.js";
import { throughput } from "./throughput.js";
import { CLUSTER_COMMANDS, type ClusterCommand, runClusterCommand } from "./cluster-commands.js";

const USAGE = `hsmsim: a simulated CloudHSM-style HSM cluster (chip, HSM device, cluster, client, simulator)

usage: hsmsim <command> [options]

commands:
  demo                 guided run over a fresh token, an HSM and a 3-HSM cluster
                       (what \`npm start\` runs)
  audit <data folder> [--json] [--op OPERATION] [--user NAME] [--from SEQ] [--tail N]
                       print an HSM's audit log and verify its hash chain (exit 1 if broken)
  sim [--seed N] [--json]
                       one deterministic cluster simulation with faults; checks every
                       invariant (exit 1 and the seed to replay on a violation)
  sim --seeds COUNT [--from N] [--json]
                       a seed sweep, with runs per second
  mechanisms [--json]  the mechanisms the token offers, with key sizes and flags
  bench [--json] [--ms N]
                       quick throughput of the chip through the PKCS#11 API
                       (side by side with SoftHSMv2 and node:crypto: npm run bench)
  up [--hsms 3] [--zones a,b,c] [--type hsm2m.medium] [--data DIR] [--mtls] [--base-address IP] [--port N]
                       start a real-time cluster (each HSM its own process, TLS on
                       127.0.0.2, 127.0.0.3, … port 2223; DIR defaults to ./.hsmsim)
  status [--data DIR] [--json]
                       cluster and HSM states, addresses, pids, key and user counts
  down [--data DIR]    stop the cluster (the folder keeps its users and keys)
  hsm kill|restart|remove|replace ID, hsm add [--zone Z] [--data DIR]
                       crash, restart, remove, replace or add an HSM
  backup [--data DIR]  a backup now, into DIR/backups
  help                 this text
`;

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function loggedInToken(): { pkcs11: PKCS11; session: Buffer } {
  const pkcs11 = new PKCS11("memory:");
  pkcs11.C_Initialize();
  return { pkcs11, session: openUserSession(pkcs11, { soPin: "cli-so-pin", userPin: "cli-user-pin" }).session };
}

class UsageError extends Error {}

/** A whole-number option's value (undefined when absent). */
function wholeNumber(args: string[], name: string, min = 0): number | undefined {
  const text = option(args, name);
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`${name} takes a whole number of at least ${min}`);
  return n;
}

const mechanismNames = new Map<number, string>();
for (const [name, value] of Object.entries(P)) {
  if (name.startsWith("CKM_") && typeof value === "number" && !mechanismNames.has(value)) mechanismNames.set(value, name);
}

export function main(args: string[]): number | Promise<number> {
  const [command = "help", ...rest] = args;
  const json = rest.includes("--json");
  if ((CLUSTER_COMMANDS as string[]).includes(command)) return runClusterCommand(command as ClusterCommand, rest);
  switch (command) {
    case "demo": {
      const out = textOutput();
      runDemo(out);
      runDeviceDemo(out);
      runClusterDemo(out);
      return 0;
    }
    case "audit": {
      const dir = rest.find((a, i) => !a.startsWith("--") && !(i > 0 && ["--op", "--user", "--from", "--tail"].includes(rest[i - 1])));
      if (!dir) {
        process.stderr.write("usage: hsmsim audit <data folder> [--json] [--op OPERATION] [--user NAME] [--from SEQ] [--tail N]\n");
        return 2;
      }
      try {
        return runAudit(dir, { json, operation: option(rest, "--op"), user: option(rest, "--user"), fromSeq: wholeNumber(rest, "--from"),
          tail: wholeNumber(rest, "--tail") });
      } catch (e) {
        if (e instanceof HsmError || e instanceof UsageError) {
          process.stderr.write(`hsmsim audit: ${e.message}\n`);
          return 2;
        }
        throw e;
      }
    }
    case "sim": {
      try {
        const command = { seed: wholeNumber(rest, "--seed"), seeds: wholeNumber(rest, "--seeds", 1), from: wholeNumber(rest, "--from"), json };
        return runSimCommand(command, textOutput(), (t) => process.stdout.write(t));
      } catch (e) {
        if (e instanceof UsageError) {
          process.stderr.write(`hsmsim sim: ${e.message}\n`);
          return 2;
        }
        throw e;
      }
    }
    case "mechanisms": {
      const pkcs11 = new PKCS11("memory:");
      pkcs11.C_Initialize();
      const [slot] = pkcs11.C_GetSlotList(true);
      const list = pkcs11.C_GetMechanismList(slot).map((m) => ({ mechanism: mechanismNames.get(m) ?? `0x${m.toString(16)}`, value: m, ...pkcs11.C_GetMechanismInfo(slot, m) }));
      if (json) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      else textOutput().table(["mechanism", "min", "max", "flags"], list.map((m) => [m.mechanism, m.minKeySize, m.maxKeySize, `0x${m.flags.toString(16)}`]));
      return 0;
    }
    case "bench": {
      const ms = Number(option(rest, "--ms") ?? 500);
      if (!Number.isFinite(ms) || ms < 10) {
        process.stderr.write("--ms must be a number of milliseconds (10 or more)\n");
        return 2;
      }
      const { pkcs11, session } = loggedInToken();
      const rows = throughput(pkcs11, session, ms);
      if (json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      else textOutput().table(["operation", "ops/s"], rows.map((r) => [r.operation, r.opsPerSecond]));
      return 0;
    }
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`hsmsim: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

// Output piped into `head` and the like: stop quietly when the reader goes away.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") throw error;
  process.exit(process.exitCode ?? 0);
});

void Promise.resolve(main(process.argv.slice(2))).then((code) => {
  process.exitCode = code;
});
