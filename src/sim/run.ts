// One simulated run from one seed: a cluster with fault rates drawn from the seed, the
// workload, crashes, restarts, replacements, an added HSM, partitions and lossy links; then
// the faults stop and the run checks every invariant, including that the live HSMs converge
// within a bound. The same seed replays the same run, event for event.
import { History, type Violation, checkAcknowledged, checkAuditChains, checkLiveness, replicaDigest } from "./invariants.js";
import { Health } from "./liveness.js";
import type { LinkFaults } from "./network.js";
import { Rng } from "./random.js";
import { Workload } from "./workload.js";
import { World } from "./world.js";

export interface FaultProfile {
  hsmCount: number;
  network: LinkFaults;
  /** Mean time between HSM crashes (0: none); one HSM is down at a time. */
  crashEveryUs: number;
  /** Chance that a crashed HSM is replaced rather than restarted. */
  replaceChance: number;
  /** Mean time between partitions that isolate one HSM (0: none). */
  partitionEveryUs: number;
  /** Whether an HSM is added (cloned) during the run. */
  addHsm: boolean;
  cryptoUsers: number;
  /**
   * "tight": the HSMs compact their journals past a member silent for 0.3 s (keeping no entry
   * for it), so a crash or a partition leaves it below its peers' journal tail and it comes
   * back by a snapshot transfer (in 16 KiB chunks); "default": the shipped settings.
   */
  compaction: "default" | "tight";
}

/** The "tight" compaction profile's node settings. */
export const TIGHT_COMPACTION = { journalRetainEntries: 0, memberSilentAfterUs: 300_000, snapshotRetryUs: 1_000_000, snapshotChunkChars: 16 * 1024 };

export interface SimReport {
  seed: number;
  ok: boolean;
  violations: Violation[];
  profile: FaultProfile;
  counts: History["counts"];
  faults: { crashes: number; restarts: number; replacements: number; partitions: number; added: number };
  /** Snapshots the live HSMs installed from their peers (a member came back from below a compacted journal). */
  snapshots: number;
  /** Simulated time from the end of faults until every live HSM held the same state (-1: never). */
  convergenceUs: number;
  simulatedUs: number;
  network: { sent: number; delivered: number; lost: number; duplicated: number; undeliverable: number };
  /** The availability checker's view: idempotent calls, those in clean windows, and the failures the retry table allowed, by reason. */
  liveness: { calls: number; clean: number; allowed: Record<string, number> };
  wallMs: number;
}

export interface RunOptions {
  /** Simulated time the workload runs with faults (default 20 s). */
  workloadUs?: number;
  /** Liveness bound: the live HSMs must converge within this after faults stop (default 20 s). */
  convergenceBoundUs?: number;
}

export function drawProfile(rng: Rng): FaultProfile {
  return {
    hsmCount: rng.between(2, 5),
    network: {
      latencyUs: rng.between(100, 1_000),
      jitterUs: rng.pick([0, 500, 3_000]),
      lossRate: rng.pick([0, 0, 0.01, 0.05]),
      duplicateRate: rng.pick([0, 0.01, 0.05]),
    },
    crashEveryUs: rng.pick([0, 3_000_000, 6_000_000]),
    replaceChance: rng.pick([0, 0.3, 0.6]),
    partitionEveryUs: rng.pick([0, 4_000_000, 8_000_000]),
    addHsm: rng.chance(0.3),
    cryptoUsers: rng.between(2, 4),
    compaction: rng.chance(0.5) ? "tight" : "default",
  };
}

export function runSimulation(seed: number, options: RunOptions = {}): SimReport {
  const started = performance.now();
  const rng = new Rng(seed);
  const profile = drawProfile(rng.fork("profile"));
  const node = profile.compaction === "tight" ? TIGHT_COMPACTION : {};
  const world = new World({ seed, faults: profile.network, cluster: { hsmCount: profile.hsmCount, node } });
  const history = new History();
  const faults = { crashes: 0, restarts: 0, replacements: 0, partitions: 0, added: 0 };
  let convergenceUs = -1, snapshots = 0;
  try {
    const health = new Health(world.cluster, world.network, () => world.clock.nowUs());
    const workload = new Workload(world, history, rng.fork("workload"), { cryptoUsers: profile.cryptoUsers, thinkUs: 100_000, health });
    // Setup runs on a quiet network: faults are for the workload.
    world.network.setFaults({ lossRate: 0, duplicateRate: 0 });
    workload.setup();
    world.network.setFaults(profile.network);
    const faultEnd = world.clock.nowUs() + (options.workloadUs ?? 20_000_000);
    injectFaults(world, rng.fork("faults"), profile, faultEnd, workload.clientAddresses, faults, health);
    workload.start(faultEnd);
    world.clock.runUntil(faultEnd);

    // Faults stop: heal the network, bring every crashed HSM back, and wait for convergence.
    world.network.heal();
    health.fault();
    world.network.setFaults({ lossRate: 0, duplicateRate: 0, jitterUs: 0 });
    for (const hsm of world.cluster.describe()) if (hsm.state !== "DELETED" && !world.cluster.node(hsm.hsmId)) world.cluster.restartHsm(hsm.hsmId);
    const quietAt = world.clock.nowUs();
    const bound = options.convergenceBoundUs ?? 20_000_000;
    while (world.clock.nowUs() - quietAt <= bound) {
      const digests = new Set(world.cluster.liveNodes().map((n) => replicaDigest(n.hsm)));
      if (digests.size === 1) {
        convergenceUs = world.clock.nowUs() - quietAt;
        break;
      }
      world.run(50_000);
    }
    const live = world.cluster.liveNodes().map((n) => n.hsm);
    if (convergenceUs < 0) {
      history.violations.push({ invariant: "no-convergence", detail: `live HSMs still differ ${bound / 1e6} s after faults stopped` });
    }
    history.violations.push(...checkAcknowledged(history, live));
    history.violations.push(...checkLiveness(history));
    // Nobody but the HSMs sends peer messages here: an HSM that dropped one as unauthenticated, or refused an entry's origin, dropped a genuine one.
    for (const node of world.cluster.liveNodes()) {
      const { peerRejected, unknownOrigin, snapshotsRefused, snapshotsInstalled } = node.stats;
      snapshots += snapshotsInstalled;
      if (peerRejected > 0 || unknownOrigin > 0 || snapshotsRefused > 0) {
        history.violations.push({ invariant: "peer-authentication", detail: `HSM ${node.hsm.id} dropped ${peerRejected} peer messages, ${unknownOrigin} entries or snapshots of an unknown origin and refused ${snapshotsRefused} snapshots` });
      }
    }
    world.cluster.shutdown();
    history.violations.push(...checkAuditChains(world.cluster.dataFolders()));
  } catch (e) {
    // The simulator's own machinery failed: that is a finding too, with its seed.
    history.violations.push({ invariant: "unexpected-error", detail: e instanceof Error ? e.stack ?? e.message : String(e) });
  } finally {
    world.dispose();
  }
  return {
    seed, ok: history.violations.length === 0, violations: history.violations, profile, counts: history.counts, faults, snapshots, convergenceUs,
    simulatedUs: world.clock.nowUs(), network: { ...world.network.stats }, liveness: livenessSummary(history), wallMs: performance.now() - started,
  };
}

function livenessSummary(history: History): SimReport["liveness"] {
  const allowed: Record<string, number> = {};
  for (const r of history.liveness) if (r.allowedAs) allowed[r.allowedAs] = (allowed[r.allowedAs] ?? 0) + 1;
  return { calls: history.counts.idempotentCalls, clean: history.counts.cleanCalls, allowed };
}

/** Schedules crashes (restart or replacement), partitions and an added HSM until `untilUs`. */
function injectFaults(world: World, rng: Rng, profile: FaultProfile, untilUs: number, clients: string[], faults: SimReport["faults"],
  health: Health): void {
  const { clock, cluster, network } = world;
  let down: string | null = null;
  const every = (meanUs: number, fn: () => void) => {
    if (meanUs <= 0) return;
    const next = () => {
      if (clock.nowUs() >= untilUs) return;
      fn();
      clock.schedule(rng.between(meanUs / 2, (meanUs * 3) / 2), next);
    };
    clock.schedule(rng.between(meanUs / 2, (meanUs * 3) / 2), next);
  };
  every(profile.crashEveryUs, () => {
    if (down !== null) return;
    const live = cluster.describe().filter((h) => h.state !== "DELETED" && cluster.node(h.hsmId));
    if (live.length < 2) return;
    const victim = rng.pick(live).hsmId;
    cluster.crashHsm(victim);
    health.fault();
    faults.crashes++;
    down = victim;
    clock.schedule(rng.between(500_000, 3_000_000), () => {
      down = null;
      if (cluster.node(victim)) return; // the end of the faults restarted it already
      health.fault();
      if (rng.chance(profile.replaceChance)) {
        cluster.replaceHsm(victim);
        faults.replacements++;
      } else {
        cluster.restartHsm(victim);
        faults.restarts++;
      }
    });
  });
  every(profile.partitionEveryUs, () => {
    const hsms = cluster.describe().filter((h) => h.state !== "DELETED").map((h) => h.address);
    const isolated = rng.pick(hsms);
    if (rng.chance(0.3)) {
      network.blockLink(isolated, rng.pick(hsms.filter((a) => a !== isolated).concat(clients)));
    } else {
      network.partition([isolated], hsms.filter((a) => a !== isolated).concat(clients));
    }
    faults.partitions++;
    health.fault();
    clock.schedule(rng.between(500_000, 2_500_000), () => {
      network.heal();
      health.fault();
    });
  });
  if (profile.addHsm) {
    clock.schedule(rng.between(1_000_000, Math.max(1_000_001, untilUs - clock.nowUs() - 1_000_000)), () => {
      if (cluster.describe().filter((h) => h.state !== "DELETED").length >= 6) return;
      cluster.addHsm();
      health.fault();
      faults.added++;
    });
  }
}

export interface SweepResult {
  runs: number;
  failed: SimReport[];
  wallMs: number;
  runsPerSecond: number;
}

/**
 * Runs `count` seeds from `firstSeed`; the result lists every failing seed. Between runs it
 * lets the event loop turn, so the native chips of finished runs are released.
 */
export async function sweep(firstSeed: number, count: number, options: RunOptions = {}, onRun?: (report: SimReport) => void): Promise<SweepResult> {
  const started = performance.now();
  const failed: SimReport[] = [];
  for (let seed = firstSeed; seed < firstSeed + count; seed++) {
    const report = runSimulation(seed, options);
    if (!report.ok) failed.push(report);
    onRun?.(report);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const wallMs = performance.now() - started;
  return { runs: count, failed, wallMs, runsPerSecond: count / (wallMs / 1000) };
}
