// A simulated world: one seed, a virtual clock, a faulty network, a cluster and its clients,
// with data folders in memory-backed storage (/dev/shm where there is one) so a run costs
// CPU, not disk flushes. Crashes and restarts go through the HSMs' real durable path.
import { freezeClass } from "../primordials.js";
import { existsSync, mkdtempSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { ClusterConnection } from "../client/api.js";
import type { ClientOptions } from "../client/client.js";
import { Cluster, type ClusterOptions } from "../cluster/cluster.js";
import { VirtualClock, clockView } from "./clock.js";
import { type LinkFaults, SimNetwork } from "./network.js";
import { Rng } from "./random.js";

/** /dev/shm when it exists with room to spare (containers often give it only 64 MiB), else the temporary folder. */
function dataRoot(): string {
  try {
    if (existsSync("/dev/shm")) {
      const { bavail, bsize } = statfsSync("/dev/shm");
      if (bavail * bsize >= 1024 ** 3) return "/dev/shm";
    }
  } catch {
    // not a filesystem we can ask: use the temporary folder
  }
  return tmpdir();
}

export interface WorldOptions {
  seed: number | string;
  faults?: Partial<LinkFaults>;
  cluster?: Partial<Omit<ClusterOptions, "clock" | "transport" | "rng" | "dataDir">>;
  /** Where the world's data folder goes (default /dev/shm when roomy, else the temporary folder). */
  dataRoot?: string;
}

export class World {
  readonly clock = new VirtualClock();
  readonly rng: Rng;
  readonly network: SimNetwork;
  readonly dataDir: string;
  readonly cluster: Cluster;
  private readonly connections: ClusterConnection[] = [];

  constructor(options: WorldOptions) {
    this.rng = new Rng(options.seed);
    this.network = new SimNetwork(this.clock, this.rng.fork("network"), options.faults);
    this.dataDir = mkdtempSync(join(options.dataRoot ?? dataRoot(), "hsmsim-sim-"));
    try {
      this.cluster = Cluster.create({ passwordCost: 1, hsmCount: 3, ...options.cluster, clock: this.clock, transport: this.network,
        rng: this.rng.fork("cluster"), dataDir: this.dataDir });
    } catch (e) {
      rmSync(this.dataDir, { recursive: true, force: true });
      throw e;
    }
  }

  /** A client named `name`, bootstrapped from the cluster's first address unless told otherwise. */
  connect(name: string, options: Partial<ClientOptions> = {}): ClusterConnection {
    // The application gets an endpoint bound to its own address, never the network, and a view of
    // the clock that cancels only its own timers (the network, clock and control plane are the operator's).
    const address = options.address ?? `client-${name}`;
    const clock = clockView(this.clock);
    const connection = ClusterConnection.connect({ transport: this.network.endpoint(address), clock, rng: this.rng.fork(`client/${name}`),
      address, bootstrap: this.cluster.addresses()[0], driver: clock, ...options });
    this.connections.push(connection);
    return connection;
  }

  /** Runs the simulation for `durationUs` of simulated time. */
  run(durationUs: number): void {
    this.clock.runUntil(this.clock.nowUs() + durationUs);
  }

  /** Stops every HSM and deletes the data folders. */
  dispose(): void {
    for (const c of this.connections) c.close();
    this.cluster.shutdown();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(World);
