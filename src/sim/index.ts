// The deterministic simulation kit: seeded randomness, a virtual clock, a simulated network.
export { Rng } from "./random.js";
export { type Clock, VirtualClock } from "./clock.js";
export { type LinkFaults, type MessageHandler, type NetworkStats, QUIET_NETWORK, SimNetwork } from "./network.js";
