// PKCS#11 call logging, as SoftHSMv2's log level and pkcs11-spy give: every call of one PKCS11
// with its arguments, its result (the CKR name, and what came back) and its duration, one line
// per call. Turned on by HSMSIM_PKCS11_LOG=stderr|<file> (HSMSIM_PKCS11_LOG_LEVEL=calls|errors)
// or by load(target, { log }). Off, nothing is installed: the facade's methods run as they are.
// On, wrappers are installed on that one instance, so the cost falls only on the logged module.
//
// Never secrets: PINs print as ***, data buffers (plaintext, ciphertext, signatures, wrapped
// keys, random bytes) as their length, templates by attribute name with key material and any
// attribute not known to be public redacted to its length.
import { closeSync, constants, fstatSync, openSync, writeSync } from "node:fs";

import * as C from "./constants.js";
import { Pkcs11Error, ckrName } from "./errors.js";

export type CallLogLevel = "calls" | "errors";
/** "stderr", a file path (appended to, created 0600), or a function given each line. */
export type CallLogSink = "stderr" | string | ((line: string) => void);

export interface CallLogOptions {
  /** Where lines go; `false` turns logging off even when HSMSIM_PKCS11_LOG is set. */
  log?: CallLogSink | false;
  /** "calls" (default): every call; "errors": only calls that fail. */
  logLevel?: CallLogLevel;
}

export const CALL_LOG_ENV = "HSMSIM_PKCS11_LOG";
export const CALL_LOG_LEVEL_ENV = "HSMSIM_PKCS11_LOG_LEVEL";

// ---- Rendering ----

type ArgKind = "handle" | "pin" | "data" | "out" | "mechanism" | "template" | "types" | "userType" | "number" | "flags" | "bool" | "text" | "options";
type ResultKind = "void" | "handle" | "handles" | "data" | "bool" | "keyPair" | "attributes" | "info" | "text" | "numbers";

interface Signature {
  args: [name: string, kind: ArgKind][];
  result: ResultKind;
}

const s = (result: ResultKind, ...args: [string, ArgKind][]): Signature => ({ args, result });
const SESSION: [string, ArgKind] = ["session", "handle"];
const SLOT: [string, ArgKind] = ["slot", "handle"];
const MECH: [string, ArgKind] = ["mechanism", "mechanism"];
const crypt = (result: ResultKind) => s(result, SESSION, ["inData", "data"], ["outData", "out"]);

/** Every C_ function's arguments by name and kind (the order is pkcs11js's). */
const SIGNATURES: Record<string, Signature> = {
  C_Initialize: s("void", ["options", "options"]),
  C_Finalize: s("void"),
  C_GetInfo: s("info"),
  C_GetSlotList: s("handles", ["tokenPresent", "bool"]),
  C_GetSlotInfo: s("info", SLOT),
  C_GetTokenInfo: s("info", SLOT),
  C_GetMechanismList: s("numbers", SLOT),
  C_GetMechanismInfo: s("info", SLOT, ["type", "number"]),
  C_InitToken: s("text", SLOT, ["soPin", "pin"], ["label", "text"]),
  C_InitPIN: s("void", SESSION, ["pin", "pin"]),
  C_SetPIN: s("void", SESSION, ["oldPin", "pin"], ["newPin", "pin"]),
  C_WaitForSlotEvent: s("handle", ["flags", "flags"]),
  C_OpenSession: s("handle", SLOT, ["flags", "flags"]),
  C_CloseSession: s("void", SESSION),
  C_CloseAllSessions: s("void", SLOT),
  C_GetSessionInfo: s("info", SESSION),
  C_Login: s("void", SESSION, ["userType", "userType"], ["pin", "pin"]),
  C_Logout: s("void", SESSION),
  C_CreateObject: s("handle", SESSION, ["template", "template"]),
  C_CopyObject: s("handle", SESSION, ["object", "handle"], ["template", "template"]),
  C_DestroyObject: s("void", SESSION, ["object", "handle"]),
  C_GetObjectSize: s("text", SESSION, ["object", "handle"]),
  C_GetAttributeValue: s("attributes", SESSION, ["object", "handle"], ["template", "types"]),
  C_SetAttributeValue: s("void", SESSION, ["object", "handle"], ["template", "template"]),
  C_FindObjectsInit: s("void", SESSION, ["template", "template"]),
  C_FindObjects: s("handles", SESSION, ["maxObjectCount", "number"]),
  C_FindObjectsFinal: s("void", SESSION),
  C_EncryptInit: s("void", SESSION, MECH, ["key", "handle"]),
  C_Encrypt: crypt("data"),
  C_EncryptUpdate: crypt("data"),
  C_EncryptFinal: s("data", SESSION, ["outData", "out"]),
  C_DecryptInit: s("void", SESSION, MECH, ["key", "handle"]),
  C_Decrypt: crypt("data"),
  C_DecryptUpdate: crypt("data"),
  C_DecryptFinal: s("data", SESSION, ["outData", "out"]),
  C_DigestInit: s("void", SESSION, MECH),
  C_Digest: crypt("data"),
  C_DigestUpdate: s("void", SESSION, ["inData", "data"]),
  C_DigestKey: s("void", SESSION, ["key", "handle"]),
  C_DigestFinal: s("data", SESSION, ["outData", "out"]),
  C_SignInit: s("void", SESSION, MECH, ["key", "handle"]),
  C_Sign: crypt("data"),
  C_SignUpdate: s("void", SESSION, ["inData", "data"]),
  C_SignFinal: s("data", SESSION, ["outData", "out"]),
  C_VerifyInit: s("void", SESSION, MECH, ["key", "handle"]),
  C_Verify: s("bool", SESSION, ["inData", "data"], ["signature", "data"]),
  C_VerifyUpdate: s("void", SESSION, ["inData", "data"]),
  C_VerifyFinal: s("bool", SESSION, ["signature", "data"]),
  C_GenerateKey: s("handle", SESSION, MECH, ["template", "template"]),
  C_GenerateKeyPair: s("keyPair", SESSION, MECH, ["publicKeyTemplate", "template"], ["privateKeyTemplate", "template"]),
  C_WrapKey: s("data", SESSION, MECH, ["wrappingKey", "handle"], ["key", "handle"], ["wrappedKey", "out"]),
  C_UnwrapKey: s("handle", SESSION, MECH, ["unwrappingKey", "handle"], ["wrappedKey", "data"], ["template", "template"]),
  C_DeriveKey: s("handle", SESSION, MECH, ["key", "handle"], ["template", "template"]),
  C_SeedRandom: s("void", SESSION, ["seed", "data"]),
  C_GenerateRandom: s("data", SESSION, ["out", "out"]),
  C_SignRecoverInit: s("void", SESSION, MECH, ["key", "handle"]),
  C_SignRecover: crypt("data"),
  C_VerifyRecoverInit: s("void", SESSION, MECH, ["key", "handle"]),
  C_VerifyRecover: s("data", SESSION, ["signature", "data"], ["outData", "out"]),
  C_DigestEncryptUpdate: crypt("data"),
  C_DecryptDigestUpdate: crypt("data"),
  C_SignEncryptUpdate: crypt("data"),
  C_DecryptVerifyUpdate: crypt("data"),
};

/** The functions that get a wrapper: the C_ functions with their callback forms (the …Async forms call those). */
export const LOGGED_FUNCTIONS: readonly string[] = Object.keys(SIGNATURES);

let names: { byPrefix: Map<string, Map<number, string>> } | undefined;
/** `CKA_LABEL` for (CKA_, 3); built on first use, only when something is logged. */
function constantName(prefix: string, value: number): string {
  if (!names) {
    const byPrefix = new Map<string, Map<number, string>>();
    for (const [name, v] of Object.entries(C)) {
      if (typeof v !== "number") continue;
      const p = name.slice(0, name.indexOf("_") + 1);
      if (!byPrefix.has(p)) byPrefix.set(p, new Map());
      const map = byPrefix.get(p)!;
      if (!map.has(v)) map.set(v, name);
    }
    names = { byPrefix };
  }
  return names.byPrefix.get(prefix)?.get(value) ?? `${prefix}0x${value.toString(16)}`;
}

/** Attributes whose values are public, printed in full (hex for bytes): everything else prints as its length. */
const PUBLIC_BYTES = new Set<number>([C.CKA_ID, C.CKA_EC_PARAMS, C.CKA_PUBLIC_EXPONENT, C.CKA_OBJECT_ID, C.CKA_CHECK_VALUE, C.CKA_START_DATE, C.CKA_END_DATE]);
const PUBLIC_TEXT = new Set<number>([C.CKA_LABEL, C.CKA_APPLICATION]);
/** Key material and secret parameters: never a value, whatever its type (a number, a string, bytes). */
const SECRET = new Set<number>([C.CKA_VALUE, C.CKA_PRIVATE_EXPONENT, C.CKA_PRIME_1, C.CKA_PRIME_2, C.CKA_EXPONENT_1, C.CKA_EXPONENT_2,
  C.CKA_COEFFICIENT]);
/** Number-valued attributes whose numbers name a constant. */
const NUMBER_NAMES = new Map<number, string>([[C.CKA_CLASS, "CKO_"], [C.CKA_KEY_TYPE, "CKK_"], [C.CKA_CERTIFICATE_TYPE, "CKC_"],
  [C.CKA_KEY_GEN_MECHANISM, "CKM_"]]);

function length(value: unknown): string {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `<${value.length} bytes>`;
  if (typeof value === "string") return `<${value.length} chars>`;
  return `<${typeof value}>`;
}

function handleText(value: unknown): string {
  if (Buffer.isBuffer(value) && value.length === 8) return String(value.readBigUInt64LE(0));
  if (typeof value === "number") return String(value);
  return length(value);
}

function attributeValue(type: number, value: unknown): string {
  if (value === undefined) return "";
  if (value === null) return "=null";
  if (SECRET.has(type)) return `=<redacted${Buffer.isBuffer(value) || typeof value === "string" ? ` ${length(value).slice(1, -1)}` : ""}>`;
  if (typeof value === "boolean") return `=${value}`;
  if (typeof value === "number") return `=${NUMBER_NAMES.has(type) ? constantName(NUMBER_NAMES.get(type)!, value) : value}`;
  if (typeof value === "string") return PUBLIC_TEXT.has(type) ? `=${JSON.stringify(value)}` : `=${length(value)}`;
  if (Buffer.isBuffer(value)) {
    if (PUBLIC_TEXT.has(type)) return `=${JSON.stringify(value.toString("utf8"))}`;
    return PUBLIC_BYTES.has(type) && value.length <= 64 ? `=${value.toString("hex")}` : `=${length(value)}`;
  }
  return `=${length(value)}`;
}

function templateText(template: unknown, withValues: boolean): string {
  if (!Array.isArray(template)) return length(template);
  const items = template.slice(0, 64).map((a: unknown) => {
    const attr = a as { type?: unknown; value?: unknown } | null;
    if (attr === null || typeof attr !== "object" || typeof attr.type !== "number") return "?";
    return `${constantName("CKA_", attr.type)}${withValues ? attributeValue(attr.type, attr.value) : ""}`;
  });
  return `[${items.join(", ")}${template.length > 64 ? `, … ${template.length - 64} more` : ""}]`;
}

function mechanismText(mechanism: unknown): string {
  const m = mechanism as { mechanism?: unknown; parameter?: unknown } | null;
  if (m === null || typeof m !== "object" || typeof m.mechanism !== "number") return length(mechanism);
  const name = constantName("CKM_", m.mechanism);
  const p = m.parameter;
  if (p === undefined || p === null) return name;
  if (Buffer.isBuffer(p)) return `${name}(${length(p)})`;
  if (typeof p !== "object") return `${name}(${length(p)})`;
  // Parameter fields: numbers print; bytes (IVs, AAD, labels, public points) as their length.
  const fields = Object.entries(p as Record<string, unknown>).filter(([k]) => k !== "type")
    .map(([k, v]) => `${k}=${typeof v === "number" || typeof v === "boolean" ? v : length(v)}`);
  return `${name}(${fields.join(", ")})`;
}

function argText(kind: ArgKind, value: unknown): string {
  switch (kind) {
    case "handle": return handleText(value);
    case "pin": return value === undefined || value === null ? "null" : "***";
    case "data":
    case "out": return length(value);
    case "mechanism": return mechanismText(value);
    case "template": return templateText(value, true);
    case "types": return templateText(value, false);
    case "userType": return typeof value === "number" ? constantName("CKU_", value) : length(value);
    case "number":
    case "bool": return typeof value === "number" || typeof value === "boolean" ? String(value) : value === undefined ? "undefined" : length(value);
    case "flags": return typeof value === "number" ? `0x${value.toString(16)}` : length(value);
    case "text": return typeof value === "string" ? JSON.stringify(value) : value === undefined ? "undefined" : length(value);
    case "options": {
      if (value === undefined || value === null || typeof value !== "object") return String(value);
      const o = value as { flags?: unknown; libraryParameters?: unknown };
      return `{${[o.flags !== undefined ? `flags=${typeof o.flags === "number" ? `0x${o.flags.toString(16)}` : "?"}` : "",
        o.libraryParameters !== undefined ? `libraryParameters=${length(o.libraryParameters)}` : ""].filter(Boolean).join(", ")}}`;
    }
  }
}

function infoText(value: unknown): string {
  if (value === null || typeof value !== "object") return String(value);
  const fields = Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => {
    if (typeof v === "string") return [`${k}=${JSON.stringify(v.trimEnd())}`];
    if (typeof v === "number") return [`${k}=${k === "flags" ? `0x${v.toString(16)}` : v}`];
    if (typeof v === "boolean") return [`${k}=${v}`];
    if (Buffer.isBuffer(v) && v.length === 8) return [`${k}=${handleText(v)}`];
    return [];
  });
  return `{${fields.join(", ")}}`;
}

function resultText(kind: ResultKind, value: unknown): string {
  switch (kind) {
    case "void": return "";
    case "handle": return value === null ? "null" : handleText(value);
    case "handles": return Array.isArray(value) ? `[${value.slice(0, 32).map(handleText).join(", ")}${value.length > 32 ? `, … ${value.length - 32} more` : ""}]` : handleText(value);
    case "data": return length(value);
    case "bool": return String(value);
    case "keyPair": {
      const pair = value as { publicKey?: unknown; privateKey?: unknown } | null;
      return pair ? `{publicKey=${handleText(pair.publicKey)}, privateKey=${handleText(pair.privateKey)}}` : String(pair);
    }
    case "attributes": return templateText(value, true);
    case "info": return infoText(value);
    case "text": return typeof value === "string" ? JSON.stringify(value.trimEnd()) : String(value);
    case "numbers": return Array.isArray(value) ? `<${value.length} items>` : String(value);
  }
}

function errorText(error: unknown): string {
  if (error instanceof Pkcs11Error) return ckrName(error.code);
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return "thrown non-error";
}

// ---- Installing ----

interface Sink {
  write(line: string): void;
  close(): void;
}

function openSink(sink: CallLogSink): Sink {
  if (typeof sink === "function") return { write: (line) => sink(line), close() {} };
  if (sink === "stderr") return { write: (line) => void process.stderr.write(`${line}\n`), close() {} };
  if (typeof sink !== "string" || sink === "") throw new TypeError(`the PKCS#11 log goes to 'stderr', a file path or a function, not ${JSON.stringify(sink)}`);
  // Appended with one write per line (atomic for lines this short), so several modules or
  // processes can share one file; 0600: handles and labels are the logging user's business.
  // Never through a planted symlink, and only into a regular file this user owns, kept 0600.
  const fd = openSync(sink, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  const stat = fstatSync(fd);
  if (!stat.isFile() || (typeof process.getuid === "function" && stat.uid !== process.getuid()) || (stat.mode & 0o077) !== 0) {
    closeSync(fd);
    throw new TypeError(`the PKCS#11 log ${sink} must be a regular file of this user's that no one else may read or write (0600)`);
  }
  let open = true;
  return {
    write: (line) => {
      if (open) writeSync(fd, `${line}\n`);
    },
    close: () => {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

/** The logging a load() asked for: the option, else the environment; null when off. */
export function callLogSettings(options: CallLogOptions | undefined, env: Record<string, string | undefined> = process.env): { sink: CallLogSink; level: CallLogLevel } | null {
  if (options !== undefined && (options === null || typeof options !== "object")) throw new TypeError("load options must be an object");
  const sink = options?.log !== undefined ? options.log : env[CALL_LOG_ENV] || false;
  if (sink === false) return null;
  const level = options?.logLevel ?? ((env[CALL_LOG_LEVEL_ENV] || "calls") as CallLogLevel);
  if (level !== "calls" && level !== "errors") throw new TypeError(`the PKCS#11 log level is 'calls' or 'errors', not ${JSON.stringify(level)} (${CALL_LOG_LEVEL_ENV})`);
  return { sink, level };
}

let nextModuleId = 1;

export interface CallLog {
  /** Removes the wrappers and closes the file. */
  stop(): void;
}

/**
 * Wraps `instance`'s C_ functions (found on `prototype`) so that each call is logged. Only the
 * instance changes; the prototype (frozen) and every other PKCS11 stay as they are.
 */
export function startCallLog(instance: object, prototype: object, target: string, settings: { sink: CallLogSink; level: CallLogLevel }): CallLog {
  const sink = openSink(settings.sink);
  const errorsOnly = settings.level === "errors";
  const moduleId = nextModuleId++;
  const prefix = `hsmsim-pkcs11 pid=${process.pid} module=${moduleId}`;
  const emit = (text: string) => {
    try {
      sink.write(`${new Date().toISOString()} ${prefix} ${text}`);
    } catch {
      // A full disk or a closed stderr must not turn a logged call into a failed one.
    }
  };
  // A target's query may carry paths or options: the scheme and address say which module this is.
  emit(`load(${JSON.stringify(target.replace(/\?.*$/s, "?…"))}) level=${settings.level}`);

  const installed: string[] = [];
  for (const name of LOGGED_FUNCTIONS) {
    const original = (prototype as Record<string, unknown>)[name];
    if (typeof original !== "function") continue;
    const signature = SIGNATURES[name];
    const describe = (args: unknown[]) => {
      try {
        return `${name}(${signature.args.slice(0, args.length).map(([argName, kind], i) => `${argName}=${argText(kind, args[i])}`).join(", ")})`;
      } catch {
        return `${name}(…)`;
      }
    };
    const report = (args: unknown[], startedMs: number, error: unknown, result: unknown, form: string) => {
      if (errorsOnly && error === undefined) return;
      const ms = (performance.now() - startedMs).toFixed(3);
      let outcome: string;
      try {
        const shown = error === undefined ? resultText(signature.result, result) : "";
        outcome = error === undefined ? `CKR_OK${shown ? ` → ${shown}` : ""}` : errorText(error);
      } catch {
        outcome = error === undefined ? "CKR_OK" : "error";
      }
      emit(`${describe(args)}${form} = ${outcome} (${ms} ms)`);
    };
    const wrapper = function (this: unknown, ...args: unknown[]): unknown {
      const startedMs = performance.now();
      const last = args.length - 1;
      const cb = args[last];
      if (last >= 0 && typeof cb === "function") {
        // The callback form: logged when the answer arrives, not when the call returns.
        const callArgs = args.slice(0, last);
        args[last] = (error: Error | null, result: unknown) => {
          report(callArgs, startedMs, error ?? undefined, result, " [callback]");
          (cb as (e: Error | null, r: unknown) => void)(error, result);
        };
        try {
          return (original as (...a: unknown[]) => unknown).apply(this, args);
        } catch (error) {
          report(callArgs, startedMs, error, undefined, " [callback]");
          throw error;
        }
      }
      let result: unknown;
      try {
        result = (original as (...a: unknown[]) => unknown).apply(this, args);
      } catch (error) {
        report(args, startedMs, error, undefined, "");
        throw error;
      }
      report(args, startedMs, undefined, result, "");
      return result;
    };
    Object.defineProperty(wrapper, "name", { value: name });
    Object.defineProperty(instance, name, { value: wrapper, writable: true, configurable: true, enumerable: false });
    installed.push(name);
  }
  return {
    stop() {
      for (const name of installed) delete (instance as Record<string, unknown>)[name];
      installed.length = 0;
      sink.close();
    },
  };
}
