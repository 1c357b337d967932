// A simulated network between addressed nodes, driven by a virtual clock and seeded
// randomness: latency with jitter (so messages can overtake each other), loss, duplication,
// partitions, one-way links and nodes that are down. Everything it does is fixed by the seed.
import { ObjectFreeze, freezeClass } from "../primordials.js";
import type { MessageHandler, Transport } from "../runtime/transport.js";
import { CodedError } from "../coded-error.js";
import type { Clock } from "./clock.js";
import type { Rng } from "./random.js";

export interface LinkFaults {
  /** One-way delivery time, microseconds. */
  latencyUs: number;
  /** Extra delay drawn uniformly from [0, jitterUs]: messages may arrive out of order. */
  jitterUs: number;
  /** Probability that a message is lost. */
  lossRate: number;
  /** Probability that a delivered message arrives twice. */
  duplicateRate: number;
}

export const QUIET_NETWORK: LinkFaults = { latencyUs: 200, jitterUs: 0, lossRate: 0, duplicateRate: 0 };

export type { MessageHandler };

export interface NetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  /** Dropped because of a partition, a blocked link, or a node that was down or absent. */
  undeliverable: number;
}

export class SimNetwork {
  private readonly handlers = new Map<string, MessageHandler>();
  private readonly down = new Set<string>();
  private readonly blocked = new Set<string>(); // "from→to"
  private faults: LinkFaults;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, undeliverable: 0 };

  constructor(private readonly clock: Clock, private readonly rng: Rng, faults: Partial<LinkFaults> = {}) {
    this.faults = { ...QUIET_NETWORK, ...faults };
    checkFaults(this.faults);
  }

  setFaults(faults: Partial<LinkFaults>): void {
    const next = { ...this.faults, ...faults };
    checkFaults(next);
    this.faults = next;
  }

  attach(address: string, handler: MessageHandler): void {
    if (this.handlers.has(address)) throw new Error(`address ${address} is taken`);
    this.handlers.set(address, handler);
  }

  detach(address: string): void {
    this.handlers.delete(address);
  }

  /** A node that is down neither sends nor receives; messages in flight to it are dropped. */
  setDown(address: string, isDown: boolean): void {
    if (isDown) this.down.add(address);
    else this.down.delete(address);
  }

  isDown(address: string): boolean {
    return this.down.has(address);
  }

  /** Blocks traffic from `from` to `to` only (a one-way link failure). */
  blockLink(from: string, to: string): void {
    this.blocked.add(`${from}→${to}`);
  }

  /** Blocks every link between the two groups, both ways. */
  partition(groupA: readonly string[], groupB: readonly string[]): void {
    for (const a of groupA) {
      for (const b of groupB) {
        this.blockLink(a, b);
        this.blockLink(b, a);
      }
    }
  }

  /** Whether any link is cut (a partition or a one-way block). */
  get partitioned(): boolean {
    return this.blocked.size > 0;
  }

  /** Removes every partition and blocked link. */
  heal(): void {
    this.blocked.clear();
  }

  canReach(from: string, to: string): boolean {
    return !this.down.has(from) && !this.down.has(to) && !this.blocked.has(`${from}→${to}`) && this.handlers.has(to);
  }

  /**
   * An endpoint bound to one address, for an application (a client): it attaches, detaches and
   * sends only as `address`, so it cannot claim another node's address, and it does not expose
   * the network itself (no faults, partitions or other nodes' handlers; the network is reached
   * only through closures, which no property walk can follow).
   */
  endpoint(address: string): Transport {
    if (typeof address !== "string" || address.length === 0) throw new NetworkError("INVALID_ARGUMENT", "an endpoint needs a non-empty address");
    const network = this;
    const own = (what: string, claimed: unknown) => {
      if (claimed !== address) throw new NetworkError("NOT_OWN_ADDRESS", `this endpoint ${what} only as ${address}, not ${String(claimed)}`);
    };
    return ObjectFreeze({
      attach(claimed: string, handler: MessageHandler): void {
        own("receives", claimed);
        network.attach(address, handler);
      },
      detach(claimed: string): void {
        own("detaches", claimed);
        network.detach(address);
      },
      send(from: string, to: string, message: unknown): void {
        own("sends", from);
        network.send(address, to, message);
      },
    });
  }

  /**
   * Sends `message` (which neither side may change afterwards). Delivery, loss, duplication and
   * delay are drawn from the network's random stream; reachability is checked on arrival too.
   */
  send(from: string, to: string, message: unknown): void {
    this.stats.sent++;
    if (!this.canReach(from, to)) {
      this.stats.undeliverable++;
      return;
    }
    const f = this.faults;
    if (f.lossRate > 0 && this.rng.chance(f.lossRate)) {
      this.stats.lost++;
      return;
    }
    const copies = f.duplicateRate > 0 && this.rng.chance(f.duplicateRate) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      const delay = f.latencyUs + (f.jitterUs > 0 ? this.rng.int(f.jitterUs + 1) : 0);
      this.clock.schedule(delay, () => this.deliver(from, to, message));
    }
  }

  private deliver(from: string, to: string, message: unknown): void {
    const handler = this.handlers.get(to);
    if (!handler || !this.canReach(from, to)) {
      this.stats.undeliverable++;
      return;
    }
    this.stats.delivered++;
    handler(from, message);
  }
}

function checkFaults(f: LinkFaults): void {
  for (const [name, value] of Object.entries(f)) {
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a finite, non-negative number`);
  }
  if (f.lossRate > 1 || f.duplicateRate > 1) throw new RangeError("lossRate and duplicateRate are probabilities (0 to 1)");
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(SimNetwork);
/** A misuse of the simulated network: an endpoint used with an address that is not its own. */
export class NetworkError extends CodedError<"INVALID_ARGUMENT" | "NOT_OWN_ADDRESS"> {
  constructor(code: "INVALID_ARGUMENT" | "NOT_OWN_ADDRESS", message: string) {
    super("NetworkError", code, message);
  }
}

freezeClass(NetworkError);
