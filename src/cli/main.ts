#!/usr/bin/env node
// The `hsmsim` command: a table of commands, each defined in its own file with its options,
// usage and run function (see command.ts). Registering a command is one line in COMMANDS.
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { type Command, type CommandIo, runProgram } from "./command.js";
import { auditCommand } from "./audit.js";
import { benchCommand } from "./throughput.js";
import { demoCommand } from "./demo.js";
import { mechanismsCommand } from "./mechanisms.js";
import { simCommand } from "./sim.js";
import { proxyCommand } from "./proxy.js";
import { tokenCommand } from "./token.js";
import { packageVersion } from "./version.js";
import { backupCommand, downCommand, hsmCommand, statusCommand } from "./cluster-commands.js";
import { upCommand } from "./cluster-up.js";
import { sizeCommand } from "./size.js";

/** Every command, in the order `hsmsim help` lists them. */
export const COMMANDS: readonly Command[] = [
  demoCommand,
  simCommand,
  auditCommand,
  mechanismsCommand,
  benchCommand,
  sizeCommand,
  upCommand,
  statusCommand,
  downCommand,
  hsmCommand,
  backupCommand,
  proxyCommand,
  tokenCommand,
];

const ABOUT = "hsmsim: a simulated CloudHSM-style HSM cluster (chip, HSM device, cluster, client, simulator)";

export function main(args: string[], io: CommandIo = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  return runProgram(COMMANDS, args, io, { program: "hsmsim", about: ABOUT, version: packageVersion() });
}

function isEntryPoint(): boolean {
  if (process.argv[1] === undefined) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // Output piped into `head` and the like: stop quietly when the reader goes away.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    process.exit(process.exitCode ?? 0);
  });
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      // Not a usage error nor a typed one: a defect. Say so, with the stack, and fail.
      process.stderr.write(`hsmsim: internal error (please report it): ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 70;
    },
  );
}
