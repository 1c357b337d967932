// The real-time runtime the worker's client runs on: src/net's ClientTransport (TLS to each
// HSM, verified against the trust anchor), RealClock and OsRandom.
import type { Clock } from "../../runtime/clock.js";
import type { Random } from "../../runtime/random.js";
import type { Transport } from "../../runtime/transport.js";
import { ClientError } from "../errors.js";
import type { BackendSpec } from "./messages.js";

export interface RealTimeRuntime {
  transport: Transport;
  clock: Clock;
  rng: Random;
  /** This client's own address on the transport. */
  address: string;
  /** Why the last connection to `address` failed (a TLS refusal says which CA it saw), if it did. */
  lastError(address: string): Error | null;
  close(): void;
}

export function realTimeRuntime(_spec: Extract<BackendSpec, { kind: "cluster" }>): RealTimeRuntime {
  throw new ClientError("NO_REACHABLE_HSM", "the real-time transport (src/net) is not in this build");
}
