// The fleet's setup, apart from its operations: the PIN file of a `file:` fleet and the
// templates of the keys it makes (every one a token key, sensitive and never extractable).
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import { closeSync, constants, fstatSync, fsyncSync, openSync, readSync, writeSync } from "node:fs";

import * as C from "../pkcs11/constants.js";
import type { Template } from "../pkcs11/template.js";
import { KmsError } from "./errors.js";
import type { KeySpec, KeyUsage } from "./types.js";

const fail = (message: string) => new KmsError("KMSInternalException", message);

export const EC_PARAMS = {
  ECC_NIST_P256: Buffer.from("06082a8648ce3d030107", "hex"),
  ECC_NIST_P384: Buffer.from("06052b81040022", "hex"),
} as const;
export const HMAC_KEY_BYTES = { HMAC_256: 32, HMAC_384: 48, HMAC_512: 64 } as const;
export const RSA_BITS = { RSA_2048: 2048, RSA_3072: 3072, RSA_4096: 4096 } as const;

export interface Pins {
  soPin: string;
  userPin: string;
}
export const newPins = (): Pins => ({ soPin: randomBytes(24).toString("base64url"), userPin: randomBytes(24).toString("base64url") });

/** Reads DIR/fleet.pin: a regular file of this user, 0600 or stricter, never followed through a symlink. */
export function readPinFile(path: string): Pins | null {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted in the folder would otherwise hang the open (it is then refused as not a file).
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw fail(`${path} cannot be opened (${(e as NodeJS.ErrnoException).code ?? "error"}); it must be a regular file, not a symlink`);
  }
  try {
    const stat = fstatSync(fd);
    const uid = process.getuid?.();
    if (!stat.isFile()) throw fail(`${path} is not a regular file`);
    if (uid !== undefined && stat.uid !== uid) throw fail(`${path} belongs to user ${stat.uid}, not to this user`);
    if ((stat.mode & 0o077) !== 0) throw fail(`${path} is readable or writable by others (mode ${(stat.mode & 0o777).toString(8)}): it must be 0600`);
    if (stat.size > 4096) throw fail(`${path} is not a fleet PIN file`);
    const bytes = Buffer.alloc(stat.size);
    for (let at = 0; at < bytes.length;) {
      const n = readSync(fd, bytes, at, bytes.length - at, at);
      if (n === 0) break;
      at += n;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(bytes.toString("utf8"));
    } catch {
      parsed = null;
    }
    const p = parsed as Partial<Pins & { format: number }> | null;
    if (p === null || typeof p !== "object" || p.format !== 1 || typeof p.soPin !== "string" || typeof p.userPin !== "string") {
      throw fail(`${path} is not a fleet PIN file`);
    }
    return { soPin: p.soPin, userPin: p.userPin };
  } finally {
    closeSync(fd);
  }
}

/** Creates DIR/fleet.pin exclusively (0600, O_EXCL and O_NOFOLLOW: a planted file or symlink is refused) and syncs it. */
export function writePinFile(path: string, pins: Pins): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    throw fail(`${path} cannot be created (${(e as NodeJS.ErrnoException).code ?? "error"})`);
  }
  try {
    const bytes = Buffer.from(JSON.stringify({ format: 1, ...pins }), "utf8");
    for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at, bytes.length - at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function secretTemplate(label: string, spec: string, keyType: number, bytes: number, usage: { encrypt: boolean; sign: boolean }): Template {
  return [
    { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY },
    { type: C.CKA_KEY_TYPE, value: keyType },
    { type: C.CKA_VALUE_LEN, value: bytes },
    { type: C.CKA_TOKEN, value: true },
    { type: C.CKA_PRIVATE, value: true },
    { type: C.CKA_SENSITIVE, value: true },
    { type: C.CKA_EXTRACTABLE, value: false },
    { type: C.CKA_LABEL, value: label },
    { type: C.CKA_ID, value: Buffer.from(spec, "utf8") },
    { type: C.CKA_ENCRYPT, value: usage.encrypt },
    { type: C.CKA_DECRYPT, value: usage.encrypt },
    { type: C.CKA_SIGN, value: usage.sign },
    { type: C.CKA_VERIFY, value: usage.sign },
    { type: C.CKA_WRAP, value: false },
    { type: C.CKA_UNWRAP, value: false },
    { type: C.CKA_DERIVE, value: false },
  ];
}

export function pairTemplates(label: string, spec: KeySpec, usage: KeyUsage | undefined): { mechanism: number; pub: Template; priv: Template } {
  const id = Buffer.from(spec, "utf8");
  const sign = usage === undefined || usage === "SIGN_VERIFY";
  const encrypt = spec.startsWith("RSA_") && (usage === undefined || usage === "ENCRYPT_DECRYPT");
  const common = [{ type: C.CKA_TOKEN, value: true }, { type: C.CKA_LABEL, value: label }, { type: C.CKA_ID, value: id }];
  const priv: Template = [
    ...common,
    { type: C.CKA_PRIVATE, value: true },
    { type: C.CKA_SENSITIVE, value: true },
    { type: C.CKA_EXTRACTABLE, value: false },
    { type: C.CKA_SIGN, value: sign },
    { type: C.CKA_DERIVE, value: false },
  ];
  const pub: Template = [...common, { type: C.CKA_PRIVATE, value: false }, { type: C.CKA_VERIFY, value: sign }];
  if (spec === "ECC_NIST_P256" || spec === "ECC_NIST_P384") {
    return { mechanism: C.CKM_EC_KEY_PAIR_GEN, pub: [...pub, { type: C.CKA_EC_PARAMS, value: EC_PARAMS[spec] }], priv };
  }
  const bits = RSA_BITS[spec as keyof typeof RSA_BITS];
  return {
    mechanism: C.CKM_RSA_PKCS_KEY_PAIR_GEN,
    pub: [...pub, { type: C.CKA_MODULUS_BITS, value: bits }, { type: C.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }, { type: C.CKA_ENCRYPT, value: encrypt }],
    priv: [...priv, { type: C.CKA_DECRYPT, value: encrypt }],
  };
}
