// A real-time cluster for the fault tests: each HSM its own process (hsm-child.ts) with its own
// data folder and TLS certificate, restarted after a crash by this harness (a minimal
// supervisor), optionally each behind a FaultProxy standing on its cluster address (the HSM then
// binds another loopback IP on the same port), so every connection to it, from clients and from
// its peers, passes through the proxy. Everything started is stopped by stop().
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";

import type { Member } from "../../../src/cluster/node.js";
import { Hsm, restoreHsm } from "../../../src/hsm/hsm.js";
import { internalsOf } from "../../../src/hsm/internals.js";
import { FaultProxy } from "../../../src/net/fault-proxy.js";
import { type CertificateAndKey, createClusterCa, issueHsmCertificate } from "../../../src/net/pki.js";
import { freePort } from "../../net/fixture.js";
import type { HsmChildConfig } from "./hsm-child.js";

const require = createRequire(__filename);
const TSX_LOADER = pathToFileURL(join(dirname(require.resolve("tsx/package.json")), "dist", "loader.mjs")).href;
const CHILD = join(__dirname, "hsm-child.ts");
export const NODE_WITH_TSX = ["--import", TSX_LOADER];

export interface HsmHandle {
  index: number;
  hsmId: string;
  address: string;
  dir: string;
  /** The proxy in front of it (when the cluster is proxied), and where the HSM itself listens behind it. */
  proxy?: FaultProxy;
  bindAddress: string;
  process: ChildProcessWithoutNullStreams | null;
  /** Resolves when the current process says ready. */
  ready: Promise<void>;
  restarts: number;
  log: string[];
}

export interface FaultCluster {
  ca: CertificateAndKey;
  caFile: string;
  dir: string;
  hsms: HsmHandle[];
  members: Member[];
  /** SIGKILLs HSM `index`; it is started again after restartDelayMs. Returns the kill time (Date.now()). */
  kill(index: number): number;
  stop(): Promise<void>;
  /** Removes the folder (after stop; separate so a test can inspect the folders first). */
  remove(): void;
}

export async function startFaultCluster(options: { hsms: number; firstHost: number; keyAvailabilityMin: number; proxied?: boolean; restartDelayMs?: number }): Promise<FaultCluster> {
  const dir = mkdtempSync(join(tmpdir(), "hsmsim-faults-"));
  const ca = await createClusterCa({ commonName: "hsmsim fault-test cluster" });
  const caFile = join(dir, "customerCA.crt");
  writeFileSync(caFile, ca.certPem);
  const placed: { host: string; bindHost?: string; port: number; origin: number; dir: string }[] = [];
  for (let i = 0; i < options.hsms; i++) {
    const host = `127.0.0.${options.firstHost + i}`;
    const bindHost = options.proxied ? `127.0.1.${options.firstHost + i}` : undefined;
    placed.push({ host, bindHost, port: await freePort(bindHost ?? host), origin: i + 1, dir: join(dir, `hsm${i + 1}`) });
  }
  // The first HSM created, the others cloned from it (the masking key chip to chip), all closed
  // again: each process opens its own folder.
  const first = Hsm.create(placed[0].dir, { origin: 1, passwordCost: 1 });
  const devices = [first];
  for (const p of placed.slice(1)) {
    const source = internalsOf(first);
    devices.push(restoreHsm(p.dir, source.snapshot(), (target) => source.chip.shareMaskingKey(0, target, 0), { origin: p.origin, passwordCost: 1 }));
  }
  const members: Member[] = placed.map((p, i) => ({ hsmId: devices[i].id, address: `${p.host}:${p.port}`, availabilityZone: `az-${i}`, origin: p.origin }));
  for (const d of devices) d.close();

  let stopping = false;
  const hsms: HsmHandle[] = [];
  for (const [i, p] of placed.entries()) {
    const cert = await issueHsmCertificate(ca, { host: p.host, port: p.port, hsmId: members[i].hsmId });
    const config: HsmChildConfig = {
      dir: p.dir, clusterId: "cluster-faults", address: members[i].address, bindHost: p.bindHost, availabilityZone: members[i].availabilityZone,
      certPem: cert.certPem, keyPem: cert.keyPem, caPem: ca.certPem, members, keyAvailabilityMin: options.keyAvailabilityMin,
    };
    const handle: HsmHandle = { index: i, hsmId: members[i].hsmId, address: members[i].address, bindAddress: `${p.bindHost ?? p.host}:${p.port}`, dir: p.dir, process: null, ready: Promise.resolve(), restarts: 0, log: [] };
    if (p.bindHost) handle.proxy = await FaultProxy.start({ listen: members[i].address, target: `${p.bindHost}:${p.port}` });
    const launch = () => {
      const child = spawn(process.execPath, [...NODE_WITH_TSX, CHILD, JSON.stringify(config)], { stdio: ["pipe", "pipe", "pipe"] });
      handle.process = child;
      let out = "";
      handle.ready = new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (d: Buffer) => {
          out += d.toString();
          if (out.includes("ready")) resolve();
        });
        child.once("exit", (code, signal) => reject(new Error(`HSM ${i + 1} exited before ready (${signal ?? code}): ${handle.log.slice(-5).join(" ")}`)));
      });
      handle.ready.catch(() => undefined);
      child.stderr.on("data", (d: Buffer) => {
        handle.log.push(d.toString());
        if (handle.log.length > 50) handle.log.shift();
      });
      child.once("exit", () => {
        if (handle.process === child) handle.process = null;
        if (stopping) return;
        handle.restarts++;
        setTimeout(() => {
          if (!stopping) launch();
        }, options.restartDelayMs ?? 100);
      });
    };
    launch();
    hsms.push(handle);
  }
  await Promise.all(hsms.map((h) => h.ready));

  return {
    ca, caFile, dir, hsms, members,
    kill(index) {
      const child = hsms[index].process;
      if (!child) throw new Error(`HSM ${index + 1} has no running process`);
      const at = Date.now();
      child.kill("SIGKILL");
      return at;
    },
    async stop() {
      stopping = true;
      await Promise.all(hsms.map(async (h) => {
        const child = h.process;
        if (child) {
          const exited = new Promise<void>((r) => child.once("exit", () => r()));
          child.kill("SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
          await exited;
          clearTimeout(timer);
        }
        await h.proxy?.close();
      }));
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
