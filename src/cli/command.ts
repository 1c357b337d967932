// The command table's engine: each command declares its options, positionals and conflicts;
// arguments are parsed strictly (node's util.parseArgs, strict mode) so a typo, a missing value,
// a repeated option, a conflicting pair or a value of the wrong shape is a usage error naming the
// problem, printed with that command's usage, exit code 2 — never a silent default.
import { parseArgs } from "node:util";

import { CodedError } from "../coded-error.js";

/** A bad command line. The engine prints it with the command's usage and exits with code 2. */
export class UsageError extends CodedError<"USAGE"> {
  constructor(message: string) {
    super("UsageError", "USAGE", message);
  }
}

/** Turns an option's text into its value, or throws UsageError; `name` is the option as typed (`--seed`). */
export type ValueParser<T> = (text: string, name: string) => T;

export interface StringOption<T = string> {
  type: "string";
  /** Shape check and conversion (default: any non-empty text). */
  parse?: ValueParser<T>;
  /** The value's name in the usage: `--seeds COUNT`. */
  valueName?: string;
  short?: string;
  /** Accept the option several times; the value is then a list. */
  multiple?: boolean;
  description: string;
}

export interface BooleanOption {
  type: "boolean";
  short?: string;
  description: string;
}

export type OptionSpec = StringOption<unknown> | BooleanOption;

type OptionValue<S> = S extends BooleanOption
  ? boolean
  : S extends { parse: ValueParser<infer T> }
    ? S extends { multiple: true } ? T[] : T
    : S extends { multiple: true } ? string[] : string;

/** The parsed options: absent options are undefined (defaults are the command's to apply, visibly). */
export type OptionValues<O> = { [K in keyof O]?: OptionValue<O[K]> };

/** A text stream the commands write to; `isTTY` decides whether live progress is shown. */
export interface TextStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface CommandIo {
  stdout: TextStream;
  stderr: TextStream;
  env: Record<string, string | undefined>;
}

export interface CommandInput<O> {
  values: OptionValues<O>;
  positionals: string[];
  io: CommandIo;
  /** The command's path as typed, for messages: `hsmsim hsm kill`. */
  path: string;
}

export interface PositionalSpec {
  name: string;
  optional?: boolean;
  /** Takes every remaining positional (must be last). */
  variadic?: boolean;
}

export interface CommandSpec<O extends Record<string, OptionSpec>> {
  name: string;
  /** One line for `hsmsim help`. */
  summary: string;
  /** Paragraphs shown by `hsmsim help CMD` under the usage. */
  description?: string;
  options?: O;
  positionals?: PositionalSpec[];
  /** Pairs of options that cannot be given together (`["seed", "seeds"]`). */
  conflicts?: [keyof O & string, keyof O & string][];
  /** `{ from: "seeds" }`: --from only makes sense with --seeds. */
  requires?: Partial<Record<keyof O & string, keyof O & string>>;
  /** Lines of examples for the help. */
  examples?: string[];
  run(input: CommandInput<NoInfer<O>>): number | Promise<number>;
}

export interface GroupSpec {
  name: string;
  summary: string;
  description?: string;
  /** `hsmsim hsm kill ID`: the first word after the group names one of these. */
  subcommands: Command[];
}

/** A table entry: a leaf command or a group of subcommands. Build it with defineCommand/defineGroup. */
export type Command =
  | ({ kind: "command" } & CommandSpec<Record<string, OptionSpec>>)
  | ({ kind: "group" } & GroupSpec);

/**
 * One command for the table. The option values `run` sees are typed from the spec (`parse:
 * wholeNumber(1)` gives a number). Build generic parsers (commaList, oneOf) in a const outside the
 * spec: TypeScript cannot infer the option types through a generic call written inside it (the
 * spec then fails to compile with "not assignable to type 'never'").
 */
export function defineCommand<const O extends Record<string, OptionSpec> = Record<string, never>>(spec: CommandSpec<O>): Command {
  const positionals = spec.positionals ?? [];
  if (positionals.slice(0, -1).some((p) => p.variadic)) throw new Error(`${spec.name}: only the last positional may be variadic`);
  for (const name of Object.keys(spec.options ?? {})) {
    if (name === "help" || (spec.options![name] as OptionSpec).short === "h") throw new Error(`${spec.name}: --help and -h are every command's own; do not declare them`);
  }
  return { kind: "command", ...(spec as unknown as CommandSpec<Record<string, OptionSpec>>) };
}

export function defineGroup(spec: GroupSpec): Command {
  return { kind: "group", ...spec };
}

// ---- Value parsers: use these in option specs so that a value of the wrong shape is refused. ----
// (commaList and oneOf are generic: bind them to a const outside the spec, see defineCommand.)

export function wholeNumber(min = 0, max = Number.MAX_SAFE_INTEGER): ValueParser<number> {
  return (text, name) => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new UsageError(`${name} takes a whole number ${max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`}, not '${text}'`);
    }
    return n;
  };
}

export function decimalNumber(min = 0, max = Number.MAX_VALUE): ValueParser<number> {
  return (text, name) => {
    const n = Number(text);
    if (!/^\d+(\.\d+)?$/.test(text) || n < min || n > max) throw new UsageError(`${name} takes a number ${max === Number.MAX_VALUE ? `of at least ${min}` : `from ${min} to ${max}`}, not '${text}'`);
    return n;
  };
}

export function oneOf<const T extends string>(choices: readonly T[]): ValueParser<T> {
  return (text, name) => {
    if (!(choices as readonly string[]).includes(text)) throw new UsageError(`${name} takes one of ${choices.join(", ")}, not '${text}'`);
    return text as T;
  };
}

/** A comma-separated list (`--zones a,b,c`); each item through `item` when given. Empty items are refused. */
export function commaList<T = string>(item?: ValueParser<T>): ValueParser<T[]> {
  return (text, name) => {
    const parts = text.split(",");
    if (parts.some((p) => p.trim() === "")) throw new UsageError(`${name} takes a comma-separated list with no empty items, not '${text}'`);
    return parts.map((p) => (item ? item(p.trim(), name) : (p.trim() as T)));
  };
}

/** Any non-empty text (the default for string options). */
export const text: ValueParser<string> = (value, name) => {
  if (value === "") throw new UsageError(`${name} takes a non-empty value`);
  return value;
};

// ---- Help ----

function optionUsage(name: string, spec: OptionSpec): string {
  const flag = spec.short ? `-${spec.short}, --${name}` : `--${name}`;
  return spec.type === "boolean" ? flag : `${flag} ${spec.valueName ?? "VALUE"}`;
}

function positionalUsage(p: PositionalSpec): string {
  const word = `<${p.name}>${p.variadic ? "..." : ""}`;
  return p.optional ? `[${word}]` : word;
}

/** The synopsis and option list of one command (what a usage error prints too). */
export function usageOf(command: Command, path: string): string {
  if (command.kind === "group") {
    const width = Math.max(...command.subcommands.map((c) => c.name.length));
    return `usage: ${path} <${command.subcommands.map((c) => c.name).join("|")}> [options]\n\n${command.summary}\n\n` +
      `subcommands:\n${command.subcommands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join("\n")}\n\n` +
      `${path} <subcommand> --help shows one subcommand's options.\n`;
  }
  const options = Object.entries(command.options ?? {});
  const synopsis = [path, ...(command.positionals ?? []).map(positionalUsage), options.length > 0 ? "[options]" : ""].filter(Boolean).join(" ");
  const rows = [...options.map(([name, spec]) => [optionUsage(name, spec), spec.description]), ["-h, --help", "this help"]];
  const width = Math.max(...rows.map((r) => r[0].length));
  let out = `usage: ${synopsis}\n\n${command.summary}\n`;
  if (command.description) out += `\n${command.description.trimEnd()}\n`;
  out += `\noptions:\n${rows.map(([flag, what]) => `  ${flag.padEnd(width)}  ${what}`).join("\n")}\n`;
  const conflicts = command.conflicts ?? [];
  if (conflicts.length > 0) out += `\n${conflicts.map(([a, b]) => `--${a} and --${b} cannot be given together`).join("; ")}.\n`;
  if (command.examples?.length) out += `\nexamples:\n${command.examples.map((e) => `  ${e}`).join("\n")}\n`;
  return out;
}

/** `hsmsim help`: every command with its summary. */
export function overview(table: readonly Command[], program: string, about: string): string {
  const width = Math.max(...table.map((c) => c.name.length));
  return `${about}\n\nusage: ${program} <command> [options]\n\ncommands:\n` +
    `${table.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join("\n")}\n` +
    `  ${"help".padEnd(width)}  this text; help <command> for one command's options\n\n` +
    `${program} --version prints the version; ${program} <command> --help one command's options.\n`;
}

// ---- Parsing ----

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

/** ` (did you mean 'seed'?)` when one candidate is close, else "". */
export function suggestion(typed: string, candidates: string[], prefix = ""): string {
  let best: string | undefined, bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(typed, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(typed.length / 3)) ? ` (did you mean '${prefix}${best}'?)` : "";
}

/** Node's parseArgs errors, said plainly. */
function explainParseError(error: Error & { code?: string }, options: Record<string, OptionSpec>): UsageError {
  const quoted = /'(-[^'\s]*)/.exec(error.message)?.[1] ?? "";
  const name = quoted.replace(/^-+/, "").split("=")[0];
  switch (error.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return new UsageError(`unknown option '${quoted}'${suggestion(name, Object.keys(options), "--")}`);
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return new UsageError(`unexpected argument ${/'([^']*)'/.exec(error.message)?.[0] ?? ""}`.trim());
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
      const spec = options[name];
      if (spec?.type === "boolean") return new UsageError(`--${name} takes no value`);
      if (/ambiguous/.test(error.message)) {
        return new UsageError(`--${name} is missing its value (a value starting with '-' is written --${name}=-VALUE)`);
      }
      return new UsageError(`--${name} is missing its value${spec?.type === "string" && spec.valueName ? ` (${spec.valueName})` : ""}`);
    }
    default:
      return new UsageError(error.message.split("\n")[0]);
  }
}

interface Parsed {
  values: Record<string, unknown>;
  positionals: string[];
}

/** Parses `args` against one leaf command's spec; throws UsageError. */
export function parseCommandLine(command: Extract<Command, { kind: "command" }>, args: string[]): Parsed {
  const specs = command.options ?? {};
  const config: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> = {};
  for (const [name, spec] of Object.entries(specs)) {
    config[name] = { type: spec.type, ...(spec.short ? { short: spec.short } : {}), ...(spec.type === "string" && spec.multiple ? { multiple: true } : {}) };
  }
  let raw: ReturnType<typeof parseArgs<{ options: typeof config; strict: true; allowPositionals: true; tokens: true; args: string[] }>>;
  try {
    raw = parseArgs({ args, options: config, strict: true, allowPositionals: true, tokens: true });
  } catch (error) {
    if (error instanceof TypeError && typeof (error as { code?: unknown }).code === "string") throw explainParseError(error, specs);
    throw error;
  }
  // A repeated single-valued option would silently keep its last value: refuse it.
  const seen = new Set<string>();
  for (const token of raw.tokens) {
    if (token.kind !== "option") continue;
    const spec = specs[token.name];
    if (spec.type === "string" && spec.multiple) continue;
    if (seen.has(token.name)) throw new UsageError(`--${token.name} is given twice`);
    seen.add(token.name);
  }
  const values: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(raw.values)) {
    const spec = specs[name];
    if (spec.type === "boolean") values[name] = value;
    else {
      const parse = (spec.parse ?? text) as ValueParser<unknown>;
      values[name] = Array.isArray(value) ? value.map((v) => parse(String(v), `--${name}`)) : parse(value as string, `--${name}`);
    }
  }
  for (const [a, b] of command.conflicts ?? []) {
    if (a in values && b in values) throw new UsageError(`--${a} and --${b} cannot be given together`);
  }
  for (const [option, needed] of Object.entries(command.requires ?? {})) {
    if (option in values && !((needed as string) in values)) throw new UsageError(`--${option} only applies with --${needed as string}`);
  }
  const declared = command.positionals ?? [];
  const positionals = raw.positionals;
  const required = declared.filter((p) => !p.optional).length;
  if (positionals.length < required) throw new UsageError(`missing <${declared[positionals.length].name}>`);
  if (!declared.at(-1)?.variadic && positionals.length > declared.length) {
    throw new UsageError(`unexpected argument '${positionals[declared.length]}'${declared.length === 0 ? ` (${command.name} takes no arguments)` : ""}`);
  }
  return { values, positionals };
}

const isHelpFlag = (a: string) => a === "--help" || a === "-h";

/** `--help` before any `--` asks for help, whatever else the line holds. */
function asksForHelp(args: string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).some(isHelpFlag);
}

/**
 * Runs `args` (after the program name) against one table entry, `path` being what was typed so
 * far (`hsmsim hsm`). Returns the exit code: the command's own, 2 for a usage error.
 */
export async function runEntry(command: Command, args: string[], path: string, io: CommandIo): Promise<number> {
  if (command.kind === "group") {
    const [word, ...rest] = args;
    if (word === undefined || isHelpFlag(word)) {
      (word === undefined ? io.stderr : io.stdout).write(usageOf(command, path));
      return word === undefined ? 2 : 0;
    }
    const sub = command.subcommands.find((c) => c.name === word);
    if (!sub) {
      io.stderr.write(`${path}: unknown subcommand '${word}'${suggestion(word, command.subcommands.map((c) => c.name))}\n\n${usageOf(command, path)}`);
      return 2;
    }
    return runEntry(sub, rest, `${path} ${sub.name}`, io);
  }
  if (asksForHelp(args)) {
    io.stdout.write(usageOf(command, path));
    return 0;
  }
  let parsed: Parsed;
  try {
    parsed = parseCommandLine(command, args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(`${path}: ${error.message}\n\n${usageOf(command, path)}`);
    return 2;
  }
  try {
    return await command.run({ values: parsed.values as OptionValues<Record<string, OptionSpec>>, positionals: parsed.positionals, io, path });
  } catch (error) {
    // A command may also refuse a combination only it can judge.
    if (error instanceof UsageError) {
      io.stderr.write(`${path}: ${error.message}\n\n${usageOf(command, path)}`);
      return 2;
    }
    if (error instanceof CodedError) {
      io.stderr.write(`${path}: ${error.message} (${error.code})\n`);
      return 1;
    }
    throw error;
  }
}

/** Finds the entry `help a b` names, with its path; undefined when there is none. */
export function findEntry(table: readonly Command[], words: string[], program: string): { command: Command; path: string } | { unknown: string } {
  let list = table, command: Command | undefined, path = program;
  for (const word of words) {
    command = list.find((c) => c.name === word);
    if (!command) return { unknown: `${path} has no command '${word}'${suggestion(word, list.map((c) => c.name))}` };
    path = `${path} ${word}`;
    list = command.kind === "group" ? command.subcommands : [];
  }
  return command ? { command, path } : { unknown: "no command named" };
}

/** The whole program: `--version`, `help [CMD...]`, `CMD [args]`. */
export async function runProgram(table: readonly Command[], args: string[], io: CommandIo, meta: { program: string; about: string; version: string }): Promise<number> {
  const [first, ...rest] = args;
  if (first === undefined || first === "help" || isHelpFlag(first)) {
    if (first === "help" && rest.length > 0) {
      const found = findEntry(table, rest, meta.program);
      if ("unknown" in found) {
        io.stderr.write(`${found.unknown}\n\n${overview(table, meta.program, meta.about)}`);
        return 2;
      }
      io.stdout.write(usageOf(found.command, found.path));
      return 0;
    }
    (first === undefined ? io.stderr : io.stdout).write(overview(table, meta.program, meta.about));
    return first === undefined ? 2 : 0;
  }
  if (first === "--version" || first === "-V") {
    if (rest.length > 0) {
      io.stderr.write(`${meta.program}: --version takes no arguments\n`);
      return 2;
    }
    io.stdout.write(`${meta.version}\n`);
    return 0;
  }
  const command = table.find((c) => c.name === first);
  if (!command) {
    const what = first.startsWith("-") ? `unknown option '${first}' (options come after the command)` : `unknown command '${first}'${suggestion(first, table.map((c) => c.name))}`;
    io.stderr.write(`${meta.program}: ${what}\n\n${overview(table, meta.program, meta.about)}`);
    return 2;
  }
  return runEntry(command, rest, `${meta.program} ${command.name}`, io);
}

// ---- Options several commands share: spread them into a spec (`options: { ...shared.data, ...shared.json }`). ----

/** Where a cluster's state lives when --data is not given (relative to the working directory). */
export const DEFAULT_DATA_DIR = "./.hsmsim";

export const shared = {
  json: { json: { type: "boolean", description: "machine-readable JSON on stdout (no progress line)" } },
  data: { data: { type: "string", valueName: "DIR", description: `the cluster's data folder (default ${DEFAULT_DATA_DIR})` } },
} as const satisfies Record<string, Record<string, OptionSpec>>;
