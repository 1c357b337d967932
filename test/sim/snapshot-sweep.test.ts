// The seeded sweep exercises snapshot transfer: seeds with the tight compaction profile crash or
// cut off an HSM long enough for its peers to compact past it, and it comes back by a snapshot.
// With the transfer switched off (a test-only regression switch) the same seeds fail the
// convergence and acknowledged-write checkers: the sweep would catch its loss.
import { afterEach, describe, expect, it } from "vitest";

import { regressions } from "../../src/cluster/regressions.js";
import { runSimulation } from "../../src/sim/run.js";

afterEach(() => {
  regressions.noSnapshotTransfer = false;
});

const SEEDS = [4, 13]; // tight compaction; partitions and crashes
const run = (seed: number) => runSimulation(seed, { workloadUs: 10_000_000 });

describe("snapshot transfer in the seeded sweep", () => {
  it("members compacted past come back by snapshot, and every checker passes", () => {
    for (const seed of SEEDS) {
      const report = run(seed);
      expect(report.profile.compaction, `seed ${seed}`).toBe("tight");
      expect(report.violations.map((v) => `${v.invariant}: ${v.detail}`), `seed ${seed}`).toEqual([]);
      expect(report.snapshots, `seed ${seed}`).toBeGreaterThan(0);
    }
  });

  it("without it the same seeds never converge and lose acknowledged writes on the member left behind", () => {
    regressions.noSnapshotTransfer = true;
    for (const seed of SEEDS) {
      const invariants = new Set(run(seed).violations.map((v) => v.invariant));
      expect(invariants.has("no-convergence"), `seed ${seed}`).toBe(true);
      expect(invariants.has("acknowledged-change-lost"), `seed ${seed}`).toBe(true);
    }
  });
});
