// A real cluster for the benchmarks, started the way a user starts one: `hsmsim up` (each HSM
// in its own process under the supervisor, TLS on its own loopback address) in a temporary data
// folder, on addresses and a port of its own so it never meets another test's cluster; activated
// (admin's first password) with one crypto user. down() stops it and removes the folder.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import * as P from "../src/index.js";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
// HSMSIM_BENCH_CLI: another checkout's CLI (to try a branch not yet merged).
const CLI = process.env.HSMSIM_BENCH_CLI ?? join(repo, "src", "cli", "main.ts");
export const CU = { username: "bench", password: "bench-password-1" };

export interface HsmInfo { hsmId: string; address: string; pid: number | null; state: string }

export interface BenchCluster {
  dir: string;
  trustAnchorPath: string;
  trustAnchorPem: string;
  addresses: string[];
  /** The KMS endpoint's process (started with --kms). */
  kms?: { url: string; pid: number | null };
  /** The HSMs as the supervisor reports them now. */
  status(): Promise<HsmInfo[]>;
  /** `hsmsim hsm kill ID`: kill -9 of that HSM's process (the supervisor restarts it). */
  kill(hsmId: string): Promise<void>;
  down(): Promise<void>;
}

/** Runs the CLI from source; resolves with stdout, rejects with stderr on a nonzero exit. */
export function hsmsim(args: string[], timeoutMs = 180_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["--import", "tsx", CLI, ...args], { cwd: dirname(dirname(dirname(CLI))), timeout: timeoutMs, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`hsmsim ${args.join(" ")}: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

interface View { hsms: { hsmId: string; address: string; pid: number | null; state: string }[]; kms?: { url: string; pid: number | null } }

/** `extraArgs`: more options of `hsmsim up` (--type, --profile, --time-dilation). */
export async function startCluster(hsms: number, extraArgs: string[] = []): Promise<BenchCluster> {
  const dir = mkdtempSync(join(tmpdir(), "hsmsim-bench-cluster-"));
  // 127.0.<x>.2, .3, … and a high port: distinct from the default 127.0.0.2:2223 and from other runs.
  const base = `127.0.${100 + Math.floor(Math.random() * 150)}.2`;
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const data = ["--data", dir];
  let up = false;
  try {
    const view = JSON.parse(await hsmsim(["up", "--hsms", String(hsms), "--base-address", base, "--port", String(port), "--json", ...extraArgs, ...data])) as View;
    up = true;
    const trustAnchorPath = join(dir, "pki", "customerCA.crt");
    const trustAnchorPem = readFileSync(trustAnchorPath, "utf8");
    const addresses = view.hsms.map((h) => h.address);
    await activate(addresses[0], trustAnchorPem);
    return {
      dir, trustAnchorPath, trustAnchorPem, addresses, kms: view.kms,
      status: async () => (JSON.parse(await hsmsim(["status", "--json", ...data])) as View).hsms,
      kill: async (hsmId) => void (await hsmsim(["hsm", "kill", hsmId, ...data])),
      down: async () => {
        try {
          await hsmsim(["down", ...data]);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (e) {
    if (up) await hsmsim(["down", ...data]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

export const CO = { username: "admin", password: "admin-password-1" };

/** The cluster's first CO (admin's first password, as CloudHSM's PRECO) and the benchmark's crypto user. */
async function activate(address: string, trustAnchor: string): Promise<void> {
  const connection = await P.connect({ address, trustAnchor });
  try {
    await connection.console("admin", "password").changePassword(CO.username, CO.password);
    await connection.console(CO.username, CO.password).createUser(CU.username, "CU", CU.password);
  } finally {
    await connection.close();
  }
}
