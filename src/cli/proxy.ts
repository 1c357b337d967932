// `hsmsim proxy`: a fault proxy (src/net/fault-proxy.ts) between a client and an HSM, or
// between two HSMs, from the command line. Faults given as options apply from the start; while
// it runs, lines on stdin change them (`latency 50 10`, `blackhole`, `heal`, `stats`, …), so a
// script or a person can cut and heal a link. Stops on SIGINT/SIGTERM or `quit`.
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { NetError } from "../net/net-error.js";
import { FaultProxy, type Direction, type FaultChange } from "../net/fault-proxy.js";
import { parseAddress } from "../net/pki.js";
import { type CommandIo, UsageError, decimalNumber, defineCommand, runEntry, wholeNumber } from "./command.js";

const CONTROL_HELP = [
  "latency MS [JITTER_MS] [toTarget|fromTarget|both]",
  "bandwidth BYTES_PER_S [toTarget|fromTarget|both]   (0: unlimited)",
  "blackhole | refuse | reset | reset-rate P [WINDOW_MS] | heal | stats | quit",
].join("\n  ");

function address(text: string, name: string, allowPortZero: boolean): string {
  try {
    if (allowPortZero && /:0$/.test(text)) parseAddress(text.replace(/:0$/, ":1"));
    else parseAddress(text);
    return text;
  } catch (e) {
    throw new UsageError(`${name} takes an address IP:PORT (IPv6 as [::1]:PORT), not '${text}'${e instanceof NetError ? `: ${e.message}` : ""}`);
  }
}

function probability(text: string, name: string): number {
  return decimalNumber(0, 1)(text, name);
}

function direction(word: string | undefined): Direction | "both" {
  if (word === undefined || word === "both") return "both";
  if (word === "toTarget" || word === "fromTarget") return word;
  throw new NetError("INVALID_ARGUMENT", `a direction is toTarget, fromTarget or both, not '${word}'`);
}

function number(word: string | undefined, what: string): number {
  const n = Number(word);
  if (word === undefined || !/^\d+(\.\d+)?$/.test(word) || !Number.isFinite(n)) throw new NetError("INVALID_ARGUMENT", `${what} takes a number, not '${word ?? ""}'`);
  return n;
}

/** Applies one control line; returns the text to print. */
export async function applyControlLine(proxy: FaultProxy, line: string): Promise<string | "quit"> {
  const [command, ...args] = line.trim().split(/\s+/);
  switch (command) {
    case "":
    case undefined:
      return "";
    case "latency":
      await proxy.latency(number(args[0], "latency"), args[1] === undefined || !/^\d/.test(args[1]) ? 0 : number(args[1], "jitter"), direction(/^\d/.test(args[1] ?? "") ? args[2] : args[1]));
      break;
    case "bandwidth":
      await proxy.bandwidth(number(args[0], "bandwidth"), direction(args[1]));
      break;
    case "blackhole":
      await proxy.blackhole();
      break;
    case "refuse":
      await proxy.refuse();
      break;
    case "reset":
      return `reset ${proxy.resetAll()} connections`;
    case "reset-rate":
      await proxy.resetRate(number(args[0], "reset-rate"), args[1] === undefined ? undefined : number(args[1], "reset window"));
      break;
    case "heal":
      await proxy.heal();
      break;
    case "stats":
      return JSON.stringify(proxy.stats);
    case "quit":
      return "quit";
    default:
      throw new NetError("INVALID_ARGUMENT", `unknown control '${command}'; controls:\n  ${CONTROL_HELP}`);
  }
  return `faults ${JSON.stringify(proxy.faults)}`;
}

export interface ProxySettings {
  listen: string;
  to: string;
  latencyMs?: number;
  jitterMs?: number;
  blackhole?: boolean;
  resetRate?: number;
  bandwidth?: number;
}

/** Runs a proxy until `stop` resolves, reading control lines from `stdin`. Returns the exit code. */
export async function runProxy(settings: ProxySettings, io: CommandIo, control: { stdin?: Readable; stop: Promise<unknown> }): Promise<number> {
  const faults: FaultChange = { blackhole: settings.blackhole === true, resetRate: settings.resetRate ?? 0 };
  const link = { latencyMs: settings.latencyMs ?? 0, jitterMs: settings.jitterMs ?? 0, bandwidthBytesPerS: settings.bandwidth ?? 0 };
  faults.toTarget = link;
  faults.fromTarget = link;
  const proxy = await FaultProxy.start({ listen: settings.listen, target: settings.to, faults });
  io.stdout.write(`proxy ${proxy.address} -> ${settings.to} (faults ${JSON.stringify(proxy.faults)})\n`);
  let quit: () => void = () => undefined;
  const quitting = new Promise<void>((resolve) => (quit = resolve));
  const lines = control.stdin ? createInterface({ input: control.stdin, terminal: false }) : undefined;
  lines?.on("line", (line) => {
    void applyControlLine(proxy, line).then(
      (answer) => {
        if (answer === "quit") quit();
        else if (answer !== "") io.stdout.write(`${answer}\n`);
      },
      (error: unknown) => io.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`),
    );
  });
  await Promise.race([control.stop, quitting]);
  lines?.close();
  await proxy.close();
  io.stdout.write("proxy stopped\n");
  return 0;
}

export const proxyCommand = defineCommand({
  name: "proxy",
  summary: "a fault proxy between a client and an HSM, or between two HSMs (latency, partition, resets, slow link)",
  description:
    "Forwards TCP bytes from --listen to --to (TLS passes through untouched). The faults given apply from the start; " +
    `while it runs, lines on stdin change them:\n  ${CONTROL_HELP}\nStops on Ctrl-C, SIGTERM or 'quit'.`,
  options: {
    listen: { type: "string", valueName: "IP:PORT", parse: (t: string, n: string) => address(t, n, true), description: "where clients connect (port 0: any free port, printed)" },
    to: { type: "string", valueName: "IP:PORT", parse: (t: string, n: string) => address(t, n, false), description: "the HSM (or other server) behind the proxy" },
    "latency-ms": { type: "string", valueName: "N", parse: wholeNumber(0, 600_000), description: "added delay each way, per chunk" },
    "jitter-ms": { type: "string", valueName: "N", parse: wholeNumber(0, 600_000), description: "extra random delay from 0 to N each way (order kept)" },
    blackhole: { type: "boolean", description: "accept connections and forward nothing (a partition) until healed" },
    "reset-rate": { type: "string", valueName: "P", parse: probability, description: "reset each new connection with probability P (0 to 1)" },
    bandwidth: { type: "string", valueName: "BYTES_PER_S", parse: wholeNumber(1, 1e12), description: "a slow link: bytes per second each way" },
  },
  requires: { "jitter-ms": "latency-ms" },
  examples: ["hsmsim proxy --listen 127.0.0.1:3223 --to 127.0.0.2:2223 --latency-ms 20 --jitter-ms 5", "echo blackhole | hsmsim proxy --listen 127.0.0.1:0 --to 127.0.0.3:2223"],
  async run({ values, io }) {
    if (values.listen === undefined) throw new UsageError("--listen IP:PORT is required");
    if (values.to === undefined) throw new UsageError("--to IP:PORT is required");
    const stop = new Promise<string>((resolve) => {
      process.once("SIGINT", () => resolve("SIGINT"));
      process.once("SIGTERM", () => resolve("SIGTERM"));
    });
    return runProxy(
      { listen: values.listen, to: values.to, latencyMs: values["latency-ms"], jitterMs: values["jitter-ms"], blackhole: values.blackhole, resetRate: values["reset-rate"], bandwidth: values.bandwidth },
      io,
      { stdin: process.stdin, stop },
    );
  },
});

/** The command for callers outside the table (`runProxyCommand(process.argv.slice(3))`). */
export async function runProxyCommand(argv: string[], io: CommandIo = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  return runEntry(proxyCommand, argv, "hsmsim proxy", io);
}
