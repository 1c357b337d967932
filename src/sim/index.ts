// The deterministic simulation kit: seeded randomness, a virtual clock, a simulated network,
// a world with a cluster and clients, the workload, the invariant checkers and the runner.
export { Rng } from "./random.js";
export { type Clock, VirtualClock, clockView } from "./clock.js";
export { type LinkFaults, type MessageHandler, NetworkError, type NetworkStats, QUIET_NETWORK, SimNetwork } from "./network.js";
export { World, type WorldOptions } from "./world.js";
export { Gateway } from "./gateway.js";
export { History, type Violation, checkAcknowledged, checkAuditChains, replicaDigest } from "./invariants.js";
export { type FaultProfile, type RunOptions, type SimReport, type SweepResult, drawProfile, runSimulation, sweep } from "./run.js";
