// The command table's strict parsing, attacked the way a careless caller types: every mistake is
// a usage error naming it, with that command's usage and exit code 2, and the command never runs.
import { describe, expect, it } from "vitest";

import { type Command, type CommandIo, UsageError, commaList, defineCommand, defineGroup, oneOf, runProgram, shared, wholeNumber } from "../src/cli/command.js";
import { COMMANDS } from "../src/cli/main.js";
import { progressLine } from "../src/cli/progress.js";

function capture(env: Record<string, string> = {}): CommandIo & { out: () => string; err: () => string } {
  let out = "", err = "";
  return {
    stdout: { write: (t: string) => (out += t), isTTY: false },
    stderr: { write: (t: string) => (err += t), isTTY: false },
    env,
    out: () => out,
    err: () => err,
  };
}

const calls: unknown[] = [];
const zoneList = commaList(oneOf(["a", "b", "c"]));
const sweep = defineCommand({
  name: "sweep",
  summary: "a test command",
  positionals: [{ name: "folder", optional: true }],
  options: {
    ...shared.json,
    seed: { type: "string", valueName: "N", parse: wholeNumber(0), description: "one seed" },
    seeds: { type: "string", valueName: "COUNT", parse: wholeNumber(1), description: "many seeds" },
    from: { type: "string", valueName: "N", parse: wholeNumber(0), description: "first seed" },
    zones: { type: "string", valueName: "LIST", parse: zoneList, description: "zones" },
    tag: { type: "string", multiple: true, description: "tags" },
  },
  conflicts: [["seed", "seeds"]],
  requires: { from: "seeds" },
  run({ values, positionals }) {
    calls.push({ values, positionals });
    // The inferred types: numbers and lists, not strings.
    const seed: number | undefined = values.seed;
    const zones: ("a" | "b" | "c")[] | undefined = values.zones;
    void seed, zones;
    return 0;
  },
});
const kill = defineCommand({
  name: "kill",
  summary: "kill an HSM",
  positionals: [{ name: "ID" }],
  options: { ...shared.data },
  run({ positionals, values }) {
    calls.push({ kill: positionals[0], data: values.data });
    return 0;
  },
});
const refuses = defineCommand({
  name: "refuses",
  summary: "judges its own arguments",
  run() {
    throw new UsageError("that pair of things makes no sense");
  },
});
const TABLE: Command[] = [sweep, defineGroup({ name: "hsm", summary: "one HSM", subcommands: [kill] }), refuses];
const meta = { program: "t", about: "t: a test program", version: "9.9.9" };

async function run(...args: string[]) {
  calls.length = 0;
  const io = capture();
  const code = await runProgram(TABLE, args, io, meta);
  return { code, out: io.out(), err: io.err(), calls: [...calls] };
}

describe("strict command lines", () => {
  it("parses a good line into typed values", async () => {
    const r = await run("sweep", "dir", "--seeds", "30", "--from=5", "--zones", "a,c", "--tag", "x", "--tag", "y", "--json");
    expect(r.code).toBe(0);
    expect(r.calls).toEqual([{ values: { seeds: 30, from: 5, zones: ["a", "c"], tag: ["x", "y"], json: true }, positionals: ["dir"] }]);
  });

  const mistakes: [string[], RegExp][] = [
    [["sweep", "--sed", "7"], /unknown option '--sed' \(did you mean '--seed'\?\)/],
    [["sweep", "--seed"], /--seed is missing its value/],
    [["sweep", "--seed", "--json"], /--seed is missing its value/],
    [["sweep", "--seed", "-3"], /--seed is missing its value \(a value starting with '-' is written --seed=-VALUE\)/],
    [["sweep", "--seed=-3"], /--seed takes a whole number of at least 0, not '-3'/],
    [["sweep", "--seed", "7x"], /--seed takes a whole number/],
    [["sweep", "--seed", "1e3"], /--seed takes a whole number/],
    [["sweep", "--seed", ""], /--seed takes a whole number/],
    [["sweep", "--seeds", "0"], /--seeds takes a whole number of at least 1/],
    [["sweep", "--seed", "1", "--seeds", "3"], /--seed and --seeds cannot be given together/],
    [["sweep", "--seed", "1", "--seed", "2"], /--seed is given twice/],
    [["sweep", "--from", "3"], /--from only applies with --seeds/],
    [["sweep", "--json=yes"], /--json takes no value/],
    [["sweep", "--zones", "a,,b"], /comma-separated list with no empty items/],
    [["sweep", "--zones", "a,d"], /--zones takes one of a, b, c, not 'd'/],
    [["sweep", "one", "two"], /unexpected argument 'two'/],
    [["sweep", "-x"], /unknown option '-x'/],
    [["hsm", "kill"], /missing <ID>/],
    [["hsm", "kill", "1", "--dta", "d"], /unknown option '--dta' \(did you mean '--data'\?\)/],
    [["hsm", "kil", "1"], /unknown subcommand 'kil' \(did you mean 'kill'\?\)/],
    [["refuses"], /that pair of things makes no sense/],
  ];
  for (const [args, message] of mistakes) {
    it(`refuses ${JSON.stringify(args.join(" "))} with the usage and exit code 2, without running`, async () => {
      const r = await run(...args);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(message);
      expect(r.err).toMatch(/usage: t (sweep|hsm|refuses)/);
      expect(r.calls).toEqual([]);
      expect(r.out).toBe("");
    });
  }

  it("refuses an unknown command, suggesting a near one", async () => {
    const r = await run("swep");
    expect(r.code).toBe(2);
    expect(r.err).toContain("unknown command 'swep' (did you mean 'sweep'?)");
    expect(r.err).toContain("usage: t <command>");
    expect((await run("--seed", "3")).err).toContain("unknown option '--seed' (options come after the command)");
  });

  it("gives help per command, per group and per subcommand, on stdout with exit code 0", async () => {
    for (const args of [["help", "sweep"], ["sweep", "--help"], ["sweep", "--sed", "1", "-h"]]) {
      const r = await run(...args);
      expect(r.code).toBe(0);
      expect(r.out).toContain("usage: t sweep [<folder>] [options]");
      expect(r.out).toContain("--seeds COUNT");
      expect(r.out).toContain("--seed and --seeds cannot be given together");
      expect(r.calls).toEqual([]);
    }
    expect((await run("help", "hsm")).out).toContain("usage: t hsm <kill> [options]");
    expect((await run("hsm", "kill", "--help")).out).toContain("usage: t hsm kill <ID> [options]");
    expect((await run("help", "hsm", "kill")).out).toContain(`--data DIR`);
    const group = await run("hsm");
    expect(group.code).toBe(2);
    expect(group.err).toContain("subcommands:");
    expect((await run("help", "nope")).code).toBe(2);
  });

  it("prints the version and refuses arguments after it", async () => {
    expect(await run("--version")).toMatchObject({ code: 0, out: "9.9.9\n" });
    expect((await run("--version", "x")).code).toBe(2);
  });

  it("a `--` ends the options: what follows is a positional, even --help", async () => {
    const r = await run("sweep", "--", "--help");
    expect(r.code).toBe(0);
    expect(r.calls).toEqual([{ values: {}, positionals: ["--help"] }]);
  });
});

describe("command definitions and failures", () => {
  it("refuses a spec that takes --help or -h for itself", () => {
    expect(() => defineCommand({ name: "x", summary: "x", options: { help: { type: "boolean", description: "mine" } }, run: () => 0 })).toThrow(/--help and -h/);
    expect(() => defineCommand({ name: "x", summary: "x", options: { host: { type: "string", short: "h", description: "mine" } }, run: () => 0 })).toThrow(/--help and -h/);
  });

  it("a typed error from a command is its message and code, exit 1; any other error is the caller's to report", async () => {
    const { CodedError } = await import("../src/coded-error.js");
    const table = [
      defineCommand({ name: "typed", summary: "t", run: () => {
        throw new CodedError("ClusterError", "NOT_RUNNING", "no cluster runs in ./.hsmsim");
      } }),
      defineCommand({ name: "bug", summary: "b", run: () => {
        throw new RangeError("a defect");
      } }),
    ];
    const io = capture();
    expect(await runProgram(table, ["typed"], io, meta)).toBe(1);
    expect(io.err()).toBe("t typed: no cluster runs in ./.hsmsim (NOT_RUNNING)\n");
    await expect(runProgram(table, ["bug"], capture(), meta)).rejects.toThrow(RangeError);
  });
});

describe("the hsmsim table", () => {
  it("every command has a usage and its options have descriptions", async () => {
    for (const command of COMMANDS) {
      const io = capture();
      expect(await runProgram(COMMANDS, ["help", command.name], io, meta)).toBe(0);
      expect(io.out()).toContain(`usage: t ${command.name}`);
      if (command.kind === "command") for (const spec of Object.values(command.options ?? {})) expect(spec.description.length).toBeGreaterThan(3);
    }
    expect(new Set(COMMANDS.map((c) => c.name)).size).toBe(COMMANDS.length);
  });
});

describe("progress line", () => {
  function tty(isTTY: boolean) {
    let text = "";
    return { stream: { write: (t: string) => (text += t), isTTY, columns: 80 }, text: () => text };
  }

  it("draws in place on a terminal, throttled, and clears itself", () => {
    let now = 0;
    const t = tty(true);
    const p = progressLine({ total: 10, unit: "runs", label: "sim", stream: t.stream, nowMs: () => now });
    expect(p.live).toBe(true);
    for (let i = 0; i < 10; i++) {
      now += 30;
      p.tick(i !== 4);
    }
    p.interrupt(() => t.stream.write("seed 5 FAILED\n"));
    p.finish();
    const text = t.text();
    expect(text).toContain("\r\x1b[2Ksim  10/10 runs");
    expect(text).toContain("1 failed");
    expect(text).toMatch(/runs\/s/);
    expect(text).toContain("\r\x1b[2Kseed 5 FAILED\n");
    // Throttled: 10 ticks 30 ms apart draw fewer than 10 times (first, every 100 ms, the last).
    const draws = text.split("\r\x1b[2Ksim").length - 1;
    expect(draws).toBeLessThan(10);
    expect(draws).toBeGreaterThan(2);
    expect(text.endsWith("\r\x1b[2K")).toBe(true);
    p.tick();
    expect(t.text()).toBe(text); // nothing after finish
  });

  it("writes nothing when piped or quiet (--json)", () => {
    for (const [isTTY, quiet] of [[false, false], [true, true]] as const) {
      const t = tty(isTTY);
      const p = progressLine({ total: 3, unit: "runs", stream: t.stream, quiet });
      p.tick();
      p.status("starting");
      p.interrupt(() => t.stream.write("permanent\n"));
      p.tick(false);
      p.finish();
      expect(p.live).toBe(false);
      expect(p.failures).toBe(1);
      expect(t.text()).toBe("permanent\n");
    }
  });
});

describe("sim sweep progress", () => {
  it("shows a live line on a terminal and none with --json; the results are the same", async () => {
    const { runSimCommand } = await import("../src/cli/sim.js");
    const { textOutput } = await import("../src/cli/format.js");
    for (const json of [false, true]) {
      let progress = "", out = "";
      const terminal = { write: (t: string) => (progress += t), isTTY: true, columns: 100 };
      const code = await runSimCommand({ seeds: 2, from: 11, json }, textOutput((t) => (out += t)), (t) => (out += t), terminal);
      expect(code).toBe(0);
      if (json) {
        expect(progress).toBe("");
        expect(JSON.parse(out)).toMatchObject({ from: 11, runs: 2, failedSeeds: [] });
      } else {
        expect(progress).toContain("2/2 runs");
        expect(progress).toContain("0 failed");
        expect(progress.endsWith("\r\x1b[2K")).toBe(true);
        expect(out).toContain("2 runs (seeds 11–12): 0 failed");
        expect(out).not.toContain("\r");
      }
    }
  });
});
