// The peer a user would otherwise pick for PKCS#11 over a socket: SoftHSMv2 served by
// `p11-kit server` on a unix socket and loaded through `p11-kit-client.so` with pkcs11js.
// Everything lives in a temporary folder (token, config, socket) and is removed by close().
// Needs Debian's softhsm2, p11-kit and p11-kit-modules.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

import * as P from "../src/index.js";
import { SOFTHSM_LIBRARY } from "./peers.js";

const require = createRequire(import.meta.url);
export const P11KIT_CLIENT_LIBRARY = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so";
const P11KIT = "/usr/bin/p11-kit";
const SOFTHSM_UTIL = "/usr/bin/softhsm2-util";
const CKF_OS_LOCKING_OK = 2;
const TOKEN_LABEL = "bench-p11kit";
const SO_PIN = "bench-so-1";
const USER_PIN = "bench-user-1";

export interface P11KitPeer {
  name: string;
  pkcs11: P.PKCS11;
  session: Buffer;
  /** The `p11-kit server` process (for CPU accounting). */
  serverPid: number;
  /** The temporary folder (token, config, socket) that close() removes. */
  folder: string;
  close(): void;
}

async function waitFor(test: () => boolean, what: string, timeoutMs: number, server: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (server.exitCode !== null) throw new Error(`p11-kit server exited (${server.exitCode}) before ${what}: ${log()}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${log()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts the server and connects to it, or returns why it cannot (a missing package). */
export async function p11kitPeer(): Promise<P11KitPeer | string> {
  for (const [file, pkg] of [[SOFTHSM_LIBRARY, "softhsm2"], [SOFTHSM_UTIL, "softhsm2"], [P11KIT, "p11-kit"], [P11KIT_CLIENT_LIBRARY, "p11-kit-modules"]]) {
    if (!existsSync(file)) return `${file} missing; apt-get install -y ${pkg} to compare with p11-kit`;
  }
  const dir = mkdtempSync(join(tmpdir(), "hsmsim-bench-p11kit-"));
  const conf = join(dir, "softhsm2.conf");
  writeFileSync(conf, `directories.tokendir = ${dir}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const env = { ...process.env, SOFTHSM2_CONF: conf };
  execFileSync(SOFTHSM_UTIL, ["--init-token", "--free", "--label", TOKEN_LABEL, "--so-pin", SO_PIN, "--pin", USER_PIN], { env, stdio: "pipe" });
  const socket = join(dir, "p11kit.sock");
  const server = spawn(P11KIT, ["server", "--foreground", "--provider", SOFTHSM_LIBRARY, "--name", socket, `pkcs11:token=${TOKEN_LABEL}`],
    { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  server.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  server.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const stop = () => {
    if (server.exitCode === null && server.signalCode === null) server.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(() => existsSync(socket), "its socket", 10_000, server, () => output);
    // p11-kit-client.so reads the address when the module initializes.
    process.env.P11_KIT_SERVER_ADDRESS = `unix:path=${socket}`;
    const pkcs11js = require("pkcs11js") as typeof import("pkcs11js");
    const module = new pkcs11js.PKCS11();
    module.load(P11KIT_CLIENT_LIBRARY);
    module.C_Initialize({ flags: CKF_OS_LOCKING_OK });
    const slots = module.C_GetSlotList(true);
    const slot = slots.find((s) => module.C_GetTokenInfo(s).label.trim() === TOKEN_LABEL);
    if (!slot) throw new Error(`token ${TOKEN_LABEL} not offered by p11-kit server (${slots.length} slots)`);
    const session = module.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    module.C_Login(session, P.CKU_USER, USER_PIN);
    return {
      name: "p11-kit",
      pkcs11: module as unknown as P.PKCS11,
      session,
      serverPid: server.pid!,
      folder: dir,
      close: () => {
        try {
          module.C_Finalize();
        } finally {
          stop();
        }
      },
    };
  } catch (e) {
    stop();
    throw e;
  }
}
