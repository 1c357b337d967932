// Where a KMS request's time goes: the endpoint runs in this process beside the SDK client, one
// Encrypt at a time, under V8's sampling profiler; each sample is charged to the part its stack
// is in (SigV4 verification, the chip, the cluster client, the trail, the rest of the endpoint,
// the HTTP server, the SDK and its HTTP client) and idle time (waiting for an HSM's answer).
import { mkdtempSync, rmSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

interface ProfileNode { id: number; callFrame: { functionName: string; url: string }; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

/** The parts, most specific first: a sample goes to the first part any frame of its stack matches. */
const PARTS: [string, (url: string, fn: string) => boolean][] = [
  ["SigV4 verification", (url) => url.includes("/kms/sigv4.ts")],
  ["the chip (KMS's fleet)", (url) => url.includes("/kms/fleet")],
  ["the cluster client (to the HSMs)", (url) => url.includes("/kms/cks-") || url.includes("/src/client/") || url.includes("/kms/custom-key-stores")],
  ["the trail", (url) => url.includes("/kms/trail")],
  ["the endpoint's own work (validation, policy, store)", (url) => url.includes("/src/kms/")],
  ["HTTP server (node:http)", (url) => url.includes("_http_server") || url === "node:net"],
  ["the SDK and its HTTP client", (url) => url.includes("@aws-sdk") || url.includes("@smithy") || url.includes("_http_client") || url.includes("_http_agent")],
];
const IDLE = "waiting (idle: an HSM's answer, the network)";

export type Split = { part: string; share: number }[];

function charge(profile: Profile): Split {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const totals = new Map<string, number>();
  let all = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i];
    all += dt;
    let part = "other (garbage collection, the loader, the event loop)";
    const leaf = byId.get(profile.samples[i])!;
    if (leaf.callFrame.functionName === "(idle)") {
      part = IDLE;
    } else {
      let best = PARTS.length;
      for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
        const frame = byId.get(id)!.callFrame;
        const index = PARTS.findIndex(([, match]) => match(frame.url, frame.functionName));
        if (index >= 0 && index < best) best = index;
      }
      if (best < PARTS.length) part = PARTS[best][0];
    }
    totals.set(part, (totals.get(part) ?? 0) + dt);
  }
  return [...totals].map(([part, t]) => ({ part, share: t / all })).sort((a, b) => b.share - a.share);
}

/** Profiles `run` (requests through an SDK client to an endpoint in this process). */
export async function profileSplit(run: () => Promise<void>): Promise<Split> {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 100 });
  await session.post("Profiler.start");
  let profile: Profile;
  try {
    await run();
  } finally {
    profile = ((await session.post("Profiler.stop")) as unknown as { profile: Profile }).profile;
    session.disconnect();
  }
  return charge(profile);
}

/** One request at a time for `timeMs`; returns the mean latency in µs. */
export async function sequential(timeMs: number, call: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < timeMs) {
    await call();
    n++;
  }
  return ((performance.now() - start) * 1000) / n;
}

export function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "hsmsim-kms-split-"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
