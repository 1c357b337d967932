// The sizing vocabulary: an operation a user names ("ecdsa-p256-sign", "aes-gcm-4k") and the
// class the profile prices it as, with its input size. Bulk classes (ciphers, MACs, digests,
// random) need a size suffix, because their cost grows with it: 64b, 1k, 4k, 16k, 64k, 1m (any
// whole number of b, k (KiB) or m (MiB) up to 64m).
import type { OperationClass } from "../cluster/service-profile.js";
import { SizingError } from "./errors.js";

export interface Operation {
  /** The canonical name ("aes-gcm-4k"). */
  name: string;
  opClass: OperationClass;
  /** Bytes of input one call carries (what the profile's perKiBUs prices). */
  inputBytes: number;
}

/** Classes priced by their input size: the name needs a size suffix. */
export const BULK_CLASSES: readonly OperationClass[] = Object.freeze(["aes-gcm", "aes-cbc", "hmac", "digest", "random"]);

/** Classes named as they are (their input is small and fixed), with the bytes one call carries. */
const FIXED: Readonly<Partial<Record<OperationClass, number>>> = Object.freeze({
  "rsa-2048-sign": 32, // a SHA-256 digest (or the DigestInfo of one)
  "rsa-2048-verify": 32 + 256, // the digest and the signature
  "rsa-2048-encrypt": 32, // a data key
  "rsa-2048-decrypt": 256,
  "ecdsa-p256-sign": 32,
  "ecdsa-p256-verify": 32 + 64,
  "ecdh-p256-derive": 65, // the peer's uncompressed point
  "aes-wrap": 32, // an AES-256 key
  "aes-keygen": 0,
  "ec-p256-keygen": 0,
  "rsa-2048-keygen": 0,
  "key-write": 0,
  login: 0,
  manage: 0,
});

/** The example sizes the usage text lists. */
export const SIZE_EXAMPLES = ["64b", "1k", "4k", "16k", "64k", "1m"] as const;
const MAX_INPUT_BYTES = 64 * 1024 * 1024;
const UNIT_BYTES: Record<string, number> = { b: 1, k: 1024, m: 1024 * 1024 };

/** Every valid name, as the error messages and the usage text list them. */
export function operationNames(): string[] {
  return [...Object.keys(FIXED), ...BULK_CLASSES.map((c) => `${c}-<size>`)];
}

function unknown(text: string): never {
  throw new SizingError("INVALID_OPERATION", `unknown operation ${JSON.stringify(text)}: valid operations are ${operationNames().join(", ")} (size: ${SIZE_EXAMPLES.join(", ")}, any whole number of b, k or m up to 64m)`);
}

/** Parses an operation name; unknown names and bad sizes → SizingError INVALID_OPERATION naming the text. */
export function parseOperation(text: string): Operation {
  if (typeof text !== "string" || text.length === 0 || text.length > 64) unknown(String(text).slice(0, 64));
  // Own names only: "constructor" or "__proto__" are not operations.
  const fixedBytes = Object.hasOwn(FIXED, text) ? FIXED[text as OperationClass] : undefined;
  if (fixedBytes !== undefined) return { name: text, opClass: text as OperationClass, inputBytes: fixedBytes };
  const bulk = BULK_CLASSES.find((c) => text.startsWith(`${c}-`));
  if (bulk === undefined) {
    if ((BULK_CLASSES as readonly string[]).includes(text))
      throw new SizingError("INVALID_OPERATION", `operation ${JSON.stringify(text)} needs a size: ${SIZE_EXAMPLES.map((s) => `${text}-${s}`).join(", ")}`);
    unknown(text);
  }
  const size = text.slice(bulk!.length + 1);
  const match = /^([1-9][0-9]{0,8})([bkm])$/.exec(size);
  if (match === null)
    throw new SizingError("INVALID_OPERATION", `operation ${JSON.stringify(text)}: bad size ${JSON.stringify(size)} (a whole number > 0 then b, k or m, e.g. ${SIZE_EXAMPLES.join(", ")})`);
  const inputBytes = Number(match[1]) * UNIT_BYTES[match[2]];
  if (inputBytes > MAX_INPUT_BYTES) throw new SizingError("INVALID_OPERATION", `operation ${JSON.stringify(text)}: size above 64m`);
  return { name: text, opClass: bulk!, inputBytes };
}
