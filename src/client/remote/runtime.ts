// The real-time runtime the worker's client runs on: src/net's ClientTransport (TLS 1.3 to each
// HSM, verified against the trust anchor and the HSM's address), RealClock and OsRandom. The
// transport's connection failures are kept per address, so a bootstrap that gets no answer
// reports why (a certificate from another CA, a refused connection) instead of a bare timeout.
import { randomBytes } from "node:crypto";

import { ClientTransport } from "../../net/client-transport.js";
import { OsRandom } from "../../net/os-random.js";
import { RealClock } from "../../net/real-clock.js";
import { clientTls } from "../../net/tls-transport.js";
import type { Clock } from "../../runtime/clock.js";
import type { Random } from "../../runtime/random.js";
import type { Transport } from "../../runtime/transport.js";
import type { BackendSpec } from "./messages.js";

export interface RealTimeRuntime {
  transport: Transport;
  clock: Clock;
  rng: Random;
  /** This client's own address on the transport (the HSMs know it by its socket, not by this). */
  address: string;
  /** Why the last connection to `address` failed (a TLS refusal says which CA it saw), if it did. */
  lastError(address: string): Error | null;
  /** Tells `listener` of each address whose connection just failed, with the requests it never sent (the client fails over at once). */
  onUnreachable(listener: (address: string, undelivered: readonly unknown[]) => void): void;
  close(): void;
}

/** Requests are small and each waits for its answer: Nagle's algorithm would hold them back for the previous one's ACK. */
function withNoDelay(tls: ReturnType<typeof clientTls>): ReturnType<typeof clientTls> {
  return { ...tls, connect: (address) => ({ ...tls.connect(address), noDelay: true }) };
}

export function realTimeRuntime(spec: Extract<BackendSpec, { kind: "cluster" }>): RealTimeRuntime {
  const trustAnchorPem = spec.trustAnchorPem;
  const clientCertificate = spec.clientCertificatePem !== undefined && spec.clientKeyPem !== undefined
    ? { certPem: spec.clientCertificatePem, keyPem: spec.clientKeyPem } : undefined;
  const failures = new Map<string, Error>();
  let unreachable: (address: string, undelivered: readonly unknown[]) => void = () => {};
  const transport = new ClientTransport({
    tls: withNoDelay(clientTls({ trustAnchorPem, clientCertificate })),
    onError: (error, address, undelivered) => {
      failures.set(address, error);
      unreachable(address, undelivered);
    },
  });
  return {
    transport,
    clock: new RealClock(),
    rng: new OsRandom(),
    address: `app/${process.pid}/${randomBytes(6).toString("hex")}`,
    lastError: (address) => failures.get(address) ?? null,
    onUnreachable: (listener) => {
      unreachable = listener;
    },
    close: () => transport.close(),
  };
}
