// Shared test setup: a fresh in-memory token with SO and user PINs, logged in as user.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import * as P from "../src/index.js";

export { P };
/** Encodes a template the way the facade does, for calls straight to the chip (numbers as 8-byte CK_ULONGs). */
export function chipTemplate(attrs: [number, Buffer | boolean | number][]): Buffer {
  const parts = attrs.map(([type, v]) => {
    const value = Buffer.isBuffer(v) ? v : typeof v === "boolean" ? Buffer.from([v ? 1 : 0]) : Buffer.alloc(8);
    if (typeof v === "number") value.writeUInt32LE(v, 0);
    const head = Buffer.alloc(8);
    head.writeUInt32LE(type, 0);
    head.writeUInt32LE(value.length, 4);
    return Buffer.concat([head, value]);
  });
  const count = Buffer.alloc(4);
  count.writeUInt32LE(attrs.length, 0);
  return Buffer.concat([count, ...parts]);
}

export const SO_PIN = "so-secret-1";
export const USER_PIN = "user-secret-1";
export const P256_PARAMS = Buffer.from("06082a8648ce3d030107", "hex");
export const P384_PARAMS = Buffer.from("06052b81040022", "hex");

export interface TokenFixture {
  pkcs11: P.PKCS11;
  slot: Buffer;
  session: Buffer;
}

/** Initializes slot 0 of a fresh module, sets the user PIN and logs the user in (R/W). */
export function userSession(target = "memory:?pinHashIterations=16"): TokenFixture {
  const pkcs11 = P.load(target);
  pkcs11.C_Initialize();
  return { pkcs11, ...P.openUserSession(pkcs11, { soPin: SO_PIN, userPin: USER_PIN, label: "test token" }) };
}

/**
 * As userSession, over a chip the test keeps: `chip` is the device's object (masked records,
 * masking key), which an application loaded with load('memory:') cannot reach.
 */
export function chipUserSession(): TokenFixture & { chip: P.NativeChip } {
  const chip = P.createChip({ pinHashIterations: 16 });
  const pkcs11 = new P.PKCS11(chip);
  pkcs11.C_Initialize();
  return { chip, pkcs11, ...P.openUserSession(pkcs11, { soPin: SO_PIN, userPin: USER_PIN, label: "test token" }) };
}

export function expectCkr(fn: () => unknown, name: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  if (!(thrown instanceof P.Pkcs11Error)) {
    throw new Error(`expected ${name}, got ${thrown === undefined ? "no error" : String(thrown)}`);
  }
  if (thrown.message !== name) throw new Error(`expected ${name}, got ${thrown.message} from ${thrown.method}`);
}

function importSecret(f: TokenFixture, keyType: number, value: Buffer, extra: P.Template): Buffer {
  return f.pkcs11.C_CreateObject(f.session, [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
    { type: P.CKA_KEY_TYPE, value: keyType },
    { type: P.CKA_VALUE, value },
    ...extra,
  ]);
}

/** Imports an AES key with C_CreateObject. */
export const aesKey = (f: TokenFixture, value: Buffer, extra: P.Template = []) => importSecret(f, P.CKK_AES, value, extra);
/** Imports a generic secret (HMAC) key with C_CreateObject. */
export const secretKey = (f: TokenFixture, value: Buffer, extra: P.Template = []) => importSecret(f, P.CKK_GENERIC_SECRET, value, extra);

export function ecKeyPair(f: TokenFixture, params = P256_PARAMS, extraPrivate: P.Template = []): P.KeyPair {
  return f.pkcs11.C_GenerateKeyPair(
    f.session,
    { mechanism: P.CKM_EC_KEY_PAIR_GEN },
    [{ type: P.CKA_EC_PARAMS, value: params }, { type: P.CKA_VERIFY, value: true }],
    [{ type: P.CKA_SIGN, value: true }, { type: P.CKA_DERIVE, value: true }, ...extraPrivate],
  );
}

export function gcm(iv: Buffer, aad?: Buffer, tagBits = 128): P.Mechanism {
  return { mechanism: P.CKM_AES_GCM, parameter: { type: P.CK_PARAMS_AES_GCM, iv, aad, tagBits } };
}

export interface WycheproofFile<G> {
  algorithm: string;
  testGroups: (G & { tests: WycheproofTest[] })[];
}
export interface WycheproofTest {
  tcId: number;
  comment: string;
  flags: string[];
  result: "valid" | "invalid" | "acceptable";
  [field: string]: unknown;
}

const VECTORS = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "shared", "vectors", "wycheproof");
export function wycheproof<G>(file: string): WycheproofFile<G> {
  return JSON.parse(readFileSync(join(VECTORS, file), "utf8")) as WycheproofFile<G>;
}
export const hex = (s: unknown) => Buffer.from(String(s ?? ""), "hex");

/** Runs fn; returns the Pkcs11Error it throws, or null when it returns. Other errors propagate. */
export function outcome<T>(fn: () => T): { value?: T; error?: P.Pkcs11Error } {
  try {
    return { value: fn() };
  } catch (e) {
    if (e instanceof P.Pkcs11Error) return { error: e };
    throw e;
  }
}
