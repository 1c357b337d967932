// The peers a benchmark runs side by side: hsmsim through its PKCS11 facade, SoftHSMv2
// through pkcs11js (when installed), each with a logged-in session and the same keys.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

import * as P from "../src/index.js";

const require = createRequire(import.meta.url);
export const SOFTHSM_LIBRARY = "/usr/lib/softhsm/libsofthsm2.so";

/** The pkcs11js-shaped surface both peers share. */
export type Pkcs11Like = P.PKCS11;

export interface Peer {
  name: string;
  pkcs11: Pkcs11Like;
  session: Buffer;
  close(): void;
}

function prepare(pkcs11: Pkcs11Like): Buffer {
  pkcs11.C_Initialize();
  return P.openUserSession(pkcs11, { soPin: "bench-so-1", userPin: "bench-user-1", label: "bench" }).session;
}

export function hsmsimPeer(): Peer {
  const pkcs11 = P.load("memory:");
  const session = prepare(pkcs11);
  return { name: "hsmsim", pkcs11, session, close: () => pkcs11.C_Finalize() };
}

/** SoftHSMv2 in a temporary token folder, or null (with the reason) when it is not installed. */
export function softhsmPeer(): Peer | string {
  if (!existsSync(SOFTHSM_LIBRARY)) return `SoftHSMv2 not installed (${SOFTHSM_LIBRARY}); apt-get install softhsm2 to compare`;
  let pkcs11js: typeof import("pkcs11js");
  try {
    pkcs11js = require("pkcs11js");
  } catch (e) {
    return `pkcs11js could not load: ${String(e)}`;
  }
  const dir = mkdtempSync(join(tmpdir(), "hsmsim-bench-softhsm-"));
  writeFileSync(join(dir, "softhsm2.conf"), `directories.tokendir = ${dir}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  process.env.SOFTHSM2_CONF = join(dir, "softhsm2.conf");
  const pkcs11 = new pkcs11js.PKCS11();
  pkcs11.load(SOFTHSM_LIBRARY);
  const session = prepare(pkcs11 as unknown as Pkcs11Like);
  return {
    name: "SoftHSMv2",
    pkcs11: pkcs11 as unknown as Pkcs11Like,
    session,
    close: () => {
      pkcs11.C_Finalize();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A numeric command-line option (`--time 600`), or `fallback` when it is absent. */
export function numberOption(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} takes a positive number`);
  return value;
}

/** A new HSM in a temporary folder, activated, with crypto user alice logged in on a R/W session. */
export function devicePeer(options: { passwordCost?: number } = {}): { hsm: P.Hsm; pkcs11: P.PKCS11; session: Buffer; close(): void } {
  const root = mkdtempSync(join(tmpdir(), "hsmsim-bench-device-"));
  const hsm = P.Hsm.create(join(root, "hsm"), options);
  hsm.changePassword(hsm.login("admin", "password"), "admin", "admin-password");
  hsm.createUser(hsm.login("admin", "admin-password"), "alice", "CU", "alice-password");
  const pkcs11 = hsm.pkcs11();
  pkcs11.C_Initialize();
  const session = pkcs11.C_OpenSession(pkcs11.C_GetSlotList(true)[0], P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
  pkcs11.C_Login(session, P.CKU_USER, "alice:alice-password");
  return { hsm, pkcs11, session, close: () => {
    hsm.close();
    rmSync(root, { recursive: true, force: true });
  } };
}
