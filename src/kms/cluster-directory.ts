// Where KMS finds the CloudHSM clusters custom key stores are over: by cluster id, what the
// cluster is (state, HSMs and their zones, trust anchor) and a new client connection to it.
// Two kinds: the simulator's world (virtual time, in process) and real-time clusters started
// with `hsmsim up` (their folders). [helper: cks]
import type { World } from "../sim/world.js";

export interface ClusterView {
  clusterId: string;
  /** ACTIVE once activated; UNINITIALIZED / INITIALIZED before (CloudHSM's cluster states). */
  state: string;
  trustAnchorPem: string;
  hsms: { hsmId: string; availabilityZone: string; state: string }[];
}

/** One client connection to a cluster, as KMS uses it (opaque outside custom-key-stores.ts). */
export interface ClusterLink {
  close(): void;
}

export interface ClusterDirectory {
  describe(clusterId: string): ClusterView | null;
  /** A new client connection (not logged in); fails with the network's reason when no HSM answers. */
  open(clusterId: string): Promise<ClusterLink>;
}

/** The world's cluster (its id as the world's cluster gives it). */
export function simClusterDirectory(world: World): ClusterDirectory {
  void world;
  throw new Error("not built yet");
}

/** Real-time clusters in these cluster folders (`hsmsim up --data DIR`); read afresh on each describe. */
export function folderClusterDirectory(folders: readonly string[]): ClusterDirectory {
  void folders;
  throw new Error("not built yet");
}
