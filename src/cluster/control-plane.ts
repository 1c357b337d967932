// The control-plane rules both control planes follow: the in-process Cluster (simulated time)
// and the real-time supervisor (src/net/supervisor.ts). Pure functions: no clock, no I/O.
import { ClusterError } from "./errors.js";

export type ClusterState = "CREATE_IN_PROGRESS" | "UNINITIALIZED" | "INITIALIZED" | "ACTIVE" | "UPDATE_IN_PROGRESS" | "DEGRADED" | "DELETED";
export type HsmState = "CREATE_IN_PROGRESS" | "ACTIVE" | "DEGRADED" | "DELETED";

export const MAX_HSMS = 28;
export const DEFAULT_ZONES = ["az-a", "az-b", "az-c"];

/** A checked list of availability zones (the default three when absent). */
export function checkZones(zones: string[] | undefined): string[] {
  const list = zones ?? DEFAULT_ZONES;
  if (!Array.isArray(list) || list.length === 0 || list.some((z) => typeof z !== "string" || z.length === 0)) {
    throw new ClusterError("INVALID_ARGUMENT", "availabilityZones must be a non-empty list of names");
  }
  return list;
}

export function checkHsmCount(count: number): void {
  if (!Number.isInteger(count) || count < 1 || count > MAX_HSMS) throw new ClusterError("INVALID_ARGUMENT", `hsmCount must be 1 to ${MAX_HSMS}`);
}

/** HSMs that must hold a new token key before its create returns: the option, or 2 with 2+ HSMs, else 1. */
export function keyAvailabilityMinOf(memberCount: number, option: number | undefined): number {
  return option ?? (memberCount >= 2 ? 2 : 1);
}

/** The cluster's state after a health check: DEGRADED while an HSM is; only an ACTIVE or DEGRADED cluster moves. */
export function clusterStateAfterHealth(current: ClusterState, hsmStates: readonly HsmState[]): ClusterState {
  if (current !== "ACTIVE" && current !== "DEGRADED") return current;
  return hsmStates.some((s) => s === "DEGRADED") ? "DEGRADED" : "ACTIVE";
}

/** Whether HSMs learn the cluster is initialized (PRECO may activate). */
export function isInitialized(state: ClusterState): boolean {
  return state !== "CREATE_IN_PROGRESS" && state !== "UNINITIALIZED";
}

/** Whether add/remove HSM is allowed now. */
export function requireManageable(state: ClusterState, what: string): void {
  if (state === "DELETED" || state === "CREATE_IN_PROGRESS") throw new ClusterError("INVALID_STATE", `cannot ${what} while the cluster is ${state}`);
}

/** The zone with the fewest live HSMs (the first such in the zone list). */
export function leastUsedZone(zones: readonly string[], liveZones: readonly string[]): string {
  return [...zones].sort((a, b) => liveZones.filter((z) => z === a).length - liveZones.filter((z) => z === b).length)[0];
}
