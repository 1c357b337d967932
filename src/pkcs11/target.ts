// `load(target)` strings. Only in-process targets exist in this layer; layers above register
// their own schemes (the remote client registers `cloudhsm:`), so this one imports none of them:
//   memory:                       a fresh token set (one free slot, SoftHSMv2 style)
//   memory:?seed=<hex>            deterministic: the seed fixes every token's DRBG
//   memory:?slots=N&maxPinFailures=N&pinHashIterations=N&maxSessionsPerApplication=N
import { type ChipOptions, type NativeChip, createChip } from "./addon.js";

function integer(value: string, name: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new TypeError(`target ${name} must be an integer from ${min} to ${max}`);
  return n;
}

/** Makes the backend of a target string of one scheme (the whole string, scheme included). */
export type TargetFactory = (target: string) => NativeChip;

const schemes = new Map<string, TargetFactory>();

/**
 * Registers the backend of a target scheme such as "cloudhsm:" (lower case, ending in ':').
 * A scheme is registered once: a later registration of the same one, or of "memory:", is refused,
 * so no code in the process can take over the targets an application loads.
 */
export function registerTargetScheme(scheme: string, factory: TargetFactory): void {
  if (typeof scheme !== "string" || !/^[a-z][a-z0-9+.-]*:$/.test(scheme)) throw new TypeError("scheme must look like 'name:'");
  if (typeof factory !== "function") throw new TypeError("factory must be a function");
  if (scheme === "memory:" || schemes.has(scheme)) throw new TypeError(`target scheme '${scheme}' is already registered`);
  schemes.set(scheme, factory);
}

function schemeOf(target: string): string {
  return /^[a-zA-Z][a-zA-Z0-9+.-]*:/.exec(target)?.[0].toLowerCase() ?? "";
}

function knownSchemes(): string {
  return ["memory:", ...schemes.keys()].map((s) => `'${s}'`).join(", ");
}

export function parseTarget(target: unknown): ChipOptions {
  if (typeof target !== "string") throw new TypeError("target must be a string such as 'memory:'");
  const match = /^memory:(?:\?(.*))?$/.exec(target);
  if (!match) throw new TypeError(`unknown target '${target}': hsmsim serves ${knownSchemes()} (see the README for options)`);
  const options: ChipOptions = {};
  for (const [key, value] of new URLSearchParams(match[1] ?? "")) {
    switch (key) {
      case "seed":
        if (!/^([0-9a-fA-F]{2})+$/.test(value)) throw new TypeError("target seed must be hex bytes");
        options.seed = Buffer.from(value, "hex");
        break;
      case "slots": options.slotCount = integer(value, "slots", 1, 64); break;
      case "maxPinFailures": options.maxPinFailures = integer(value, "maxPinFailures", 1, 1000); break;
      case "pinHashIterations": options.pinHashIterations = integer(value, "pinHashIterations", 1, 10_000_000); break;
      case "maxSessionsPerApplication": options.maxSessionsPerApplication = integer(value, "maxSessionsPerApplication", 1, 1_000_000); break;
      default: throw new TypeError(`unknown target option '${key}'`);
    }
  }
  return options;
}

/**
 * The backend a `PKCS11` loaded from `target` gets: one application on a fresh chip, never the
 * chip itself (whose device calls, masked records and masking key an application must not reach).
 * Typed as the facade's backend; its device methods are absent at run time.
 */
export function chipForTarget(target: unknown): NativeChip {
  const factory = typeof target === "string" ? schemes.get(schemeOf(target)) : undefined;
  if (factory !== undefined) return factory(target as string);
  return createChip(parseTarget(target)).openApplication() as unknown as NativeChip;
}
