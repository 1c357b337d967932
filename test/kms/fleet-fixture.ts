// Helpers of the fleet's attack tests: a fresh token folder, a refusal expected as a KmsError,
// and the token opened as whoever holds fleet.pin would open it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";

import * as P from "../../src/pkcs11/index.js";
import { KmsError } from "../../src/kms/errors.js";
import { FLEET_PIN_FILE, FLEET_TOKEN_LABEL } from "../../src/kms/fleet.js";

let folders = 0;
/** A new fleet folder under `root` and its target (cheap PIN hashing: tests only). */
export function freshFleetFolder(root: string): { dir: string; target: string } {
  const dir = join(root, `fleet-${folders++}`);
  return { dir, target: `file:${dir}?pinHashIterations=16` };
}

/** The KmsError `fn` fails with (the test fails if it does not, or fails otherwise). */
export async function refusal(fn: () => unknown): Promise<KmsError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(KmsError);
    return e as KmsError;
  }
  throw new Error("expected a KmsError");
}

/** Logs in to the fleet's token with fleet.pin (as its holder would) and runs `f`; the module is closed after. */
export function asPinHolder<T>(dir: string, f: (p: P.PKCS11, s: P.Handle) => T): T {
  const pins = JSON.parse(readFileSync(join(dir, FLEET_PIN_FILE), "utf8")) as { userPin: string };
  const p = new P.PKCS11(`file:${dir}`);
  p.C_Initialize();
  try {
    const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === FLEET_TOKEN_LABEL)!;
    const s = p.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    p.C_Login(s, P.CKU_USER, pins.userPin);
    return f(p, s);
  } finally {
    p.C_Finalize();
    p.close();
  }
}
