// Failover for real: a cluster of 3 HSM processes (`hsmsim up`), one application keeping
// C_GenerateRandom calls (idempotent) in flight through the remote client without pause, and
// `kill -9` of one HSM at a time (round robin), at least 20 times. Per kill:
// - failover: from the kill until every call that was in flight at that moment has succeeded
//   (the ones the dead HSM was serving had to be repeated elsewhere); with 8 calls in flight
//   spread over 3 HSMs, the killed one is serving some of them;
// - first success: from the kill to the first call that completes after it;
// - worst call: the longest latency of any call started within 2 s after the kill;
// - what the client did meanwhile: its view of the dead HSM (suspect / unreachable), errors
//   (there must be none), and how long the supervisor took to restart it and the client to use it again.
// Run: npm run bench:failover [-- --kills 20] [--in-flight 8]
import { RemoteLink } from "../src/client/remote/link.js";
import * as P from "../src/index.js";
import { numberOption } from "./peers.js";
import { CU, startCluster } from "./remote-cluster.js";

const kills = numberOption("--kills", 20);
const inFlight = numberOption("--in-flight", 8);
const WINDOW_MS = 2_000;
const RECOVERY_TIMEOUT_MS = 60_000;

type Health = { members: { hsmId: string; address: string; status: string }[] };

const cluster = await startCluster(3);
const link = new RemoteLink({ kind: "cluster", bootstrap: cluster.addresses[0], trustAnchorPem: cluster.trustAnchorPem });
const pkcs11 = new P.PKCS11(link.chip() as never);
pkcs11.C_Initialize();
const session = pkcs11.C_OpenSession(pkcs11.C_GetSlotList(true)[0], P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
pkcs11.C_Login(session, P.CKU_USER, `${CU.username}:${CU.password}`);
const health = (): Health => {
  const answer = link.callSync("health", "health", []);
  if (answer.error) throw new Error(String(answer.error.message));
  return answer.value as Health;
};

interface Call { startedMs: number; endedMs?: number; error?: string }
const calls = new Set<Call>();
const finished: Call[] = [];
let running = true;

/** One lane: C_GenerateRandom after C_GenerateRandom, each in its callback form (never blocking). */
function lane(laneSession: Buffer): void {
  const chip = link.chip() as unknown as { generateRandom(session: number, out: Buffer, cb: (e: Error | null) => void): void };
  const sessionNumber = Number(laneSession.readBigUInt64LE(0));
  const next = () => {
    if (!running) return;
    const call: Call = { startedMs: performance.now() };
    calls.add(call);
    chip.generateRandom(sessionNumber, Buffer.alloc(32), (error) => {
      call.endedMs = performance.now();
      if (error) call.error = `${error.name}: ${error.message}`;
      calls.delete(call);
      finished.push(call);
      next();
    });
  };
  next();
}

const sessions = [session, ...Array.from({ length: inFlight - 1 }, () => pkcs11.C_OpenSession(pkcs11.C_GetSlotList(true)[0], P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION))];
for (const s of sessions) lane(s);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitAllServing(victim: string | null): Promise<number> {
  const started = performance.now();
  for (;;) {
    const hsms = await cluster.status();
    const ready = hsms.every((h) => h.pid !== null && h.state !== "DELETED");
    const view = health();
    if (ready && view.members.length === hsms.length && view.members.every((m) => m.status === "ok")) return performance.now() - started;
    if (performance.now() - started > RECOVERY_TIMEOUT_MS) throw new Error(`${victim ?? "cluster"} not back in the client's rotation after ${RECOVERY_TIMEOUT_MS} ms: ${JSON.stringify(view)} ${JSON.stringify(hsms)}`);
    await sleep(100);
  }
}

interface KillResult { hsmId: string; failoverMs: number; firstSuccessMs: number; worstCallMs: number; inFlightAtKill: number; errors: string[]; clientView: string[]; backMs: number }
const results: KillResult[] = [];
try {
  await waitAllServing(null);
  await sleep(500);
  for (let k = 0; k < kills; k++) {
    const hsms = await cluster.status();
    const victim = hsms[k % hsms.length];
    if (victim.pid === null) throw new Error(`${victim.hsmId} has no process`);
    finished.length = 0;
    const atKill = [...calls];
    const killMs = performance.now();
    process.kill(victim.pid, "SIGKILL");
    const views = new Set<string>();
    // Watch the client for the window (and until the calls in flight at the kill are done).
    while (performance.now() - killMs < WINDOW_MS || atKill.some((c) => c.endedMs === undefined)) {
      const member = health().members.find((m) => m.hsmId === victim.hsmId);
      if (member) views.add(`${member.status}@${Math.round(performance.now() - killMs)}ms`);
      if (performance.now() - killMs > RECOVERY_TIMEOUT_MS) throw new Error("calls in flight at the kill never finished");
      await sleep(20);
    }
    const done = finished.filter((c) => c.endedMs! >= killMs);
    const firstOk = done.filter((c) => !c.error).map((c) => c.endedMs! - killMs).sort((a, b) => a - b)[0] ?? NaN;
    const failoverMs = Math.max(...atKill.map((c) => c.endedMs! - killMs));
    const worstCallMs = Math.max(...done.filter((c) => c.startedMs <= killMs + WINDOW_MS).map((c) => c.endedMs! - c.startedMs));
    const errors = [...new Set(done.filter((c) => c.error).map((c) => c.error!))];
    // Status changes only: "ok@0ms, suspect@500ms, unreachable@1000ms".
    const clientView: string[] = [];
    for (const v of views) if (!clientView.length || clientView[clientView.length - 1].split("@")[0] !== v.split("@")[0]) clientView.push(v);
    await waitAllServing(victim.hsmId);
    const result: KillResult = { hsmId: victim.hsmId, failoverMs, firstSuccessMs: firstOk, worstCallMs, inFlightAtKill: atKill.length, errors, clientView, backMs: performance.now() - killMs };
    results.push(result);
    process.stderr.write(`kill ${k + 1}/${kills} ${victim.hsmId}: failover ${failoverMs.toFixed(1)} ms, first success ${firstOk.toFixed(1)} ms, worst call ${worstCallMs.toFixed(1)} ms, errors ${errors.length}, client ${clientView.join(" ")}, back in rotation after ${(result.backMs / 1000).toFixed(1)} s\n`);
    await sleep(300);
  }
} finally {
  running = false;
  await sleep(200);
  try {
    pkcs11.C_Finalize();
  } catch {
    // the link may be gone already
  }
  await cluster.down();
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const line = (name: string, xs: number[]) => console.log(`| ${name} | ${median(xs).toFixed(1)} | ${Math.max(...xs).toFixed(1)} | ${Math.min(...xs).toFixed(1)} |`);
console.log(`\nFailover, ${results.length} kills (kill -9 of one of 3 HSM processes, round robin), ${inFlight} C_GenerateRandom calls in flight, ${new Date().toISOString()}, node ${process.version}`);
console.log("| ms | median | worst | best |\n|---|---:|---:|---:|");
line("failover (kill → every call in flight at the kill answered)", results.map((r) => r.failoverMs));
line("first successful call after the kill", results.map((r) => r.firstSuccessMs));
line("worst single call within 2 s of the kill", results.map((r) => r.worstCallMs));
line("killed HSM restarted and back in the client's rotation", results.map((r) => r.backMs));
const errors = results.flatMap((r) => r.errors);
console.log(`errors visible to the application: ${errors.length === 0 ? "none" : [...new Set(errors)].join("; ")}`);
console.log(`the client's view of the killed HSM (first kills): ${results.slice(0, 3).map((r) => `${r.hsmId}: ${r.clientView.join(", ")}`).join(" | ")}`);
