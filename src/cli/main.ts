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
import { tokenCommand } from "./token.js";
import { packageVersion } from "./version.js";

/** Every command, in the order `hsmsim help` lists them. */
export const COMMANDS: readonly Command[] = [
  demoCommand,
  simCommand,
  auditCommand,
  mechanismsCommand,
  benchCommand,
  tokenCommand,
  // The real-time cluster registers here: up, status, down, hsm (group), proxy, token (group).
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
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
