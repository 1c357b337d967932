// The seed sweep's worker module (see pool.ts for the contract): one simulated run per task,
// from its seed and options alone, so it replays the same in any worker as in process.
import { type RunOptions, type SimReport, runSimulation } from "./run.js";

export interface SeedTask {
  seed: number;
  options: RunOptions;
}

export function simulateSeed(task: SeedTask): SimReport {
  return runSimulation(task.seed, task.options);
}
