// The real-time runtime the worker's client runs on: src/net's ClientTransport (TLS 1.3 to each
// HSM, verified against the trust anchor and the HSM's address), RealClock and OsRandom. The
// transport's connection failures are kept per address, so a bootstrap that gets no answer
// reports why (a certificate from another CA, a refused connection) instead of a bare timeout.
import { randomBytes } from "node:crypto";

import { ClientTransport } from "../../net/client-transport.js";
import { OsRandom } from "../../net/os-random.js";
import { RealClock } from "../../net/real-clock.js";
import { applicationTlsOptions, toTlsError } from "../../net/tls-options.js";
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
  close(): void;
}

export function realTimeRuntime(spec: Extract<BackendSpec, { kind: "cluster" }>): RealTimeRuntime {
  const trustAnchorPem = spec.trustAnchorPem;
  const clientCertificate = spec.clientCertificatePem !== undefined && spec.clientKeyPem !== undefined
    ? { certPem: spec.clientCertificatePem, keyPem: spec.clientKeyPem } : undefined;
  const failures = new Map<string, Error>();
  const transport = new ClientTransport({
    tls: {
      connect: (address) => applicationTlsOptions({ address, trustAnchorPem, clientCertificate }),
      describeError: (error, address) => toTlsError(error, { address, trustAnchorPem }),
    },
    onError: (error, address) => failures.set(address, error),
  });
  return {
    transport,
    clock: new RealClock(),
    rng: new OsRandom(),
    address: `app/${process.pid}/${randomBytes(6).toString("hex")}`,
    lastError: (address) => failures.get(address) ?? null,
    close: () => transport.close(),
  };
}
