// A NAT gateway or load balancer in front of one HSM: clients reach it at its own address and
// it relays to the HSM it hides. The client learns the HSMs' real addresses from the cluster,
// cannot reach them, and so cannot fail over: the case DESIGN's fidelity list calls out.
import { freezeClass } from "../primordials.js";
import type { Transport } from "../runtime/transport.js";

export class Gateway {
  /** Which client asked which relayed request, to route answers back. */
  private readonly clients = new Map<string, string>();

  constructor(private readonly transport: Transport, readonly address: string, private readonly hsmAddress: string) {
    transport.attach(address, (from, message) => this.relay(from, message));
  }

  private relay(from: string, message: unknown): void {
    const m = message as { t?: string; id?: number; conn?: string };
    if (m?.t === "req") {
      this.clients.set(`${m.id}`, from);
      this.transport.send(this.address, this.hsmAddress, message);
    } else if (m?.t === "res" && from === this.hsmAddress) {
      const client = this.clients.get(`${m.id}`);
      if (client !== undefined) {
        this.clients.delete(`${m.id}`);
        // The answer seems to come from the gateway, as NAT rewrites it.
        this.transport.send(this.address, client, message);
      }
    }
  }

  close(): void {
    this.transport.detach(this.address);
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(Gateway);
