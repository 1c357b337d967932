// The real-time Transports over TLS 1.3: an HSM's (listens on its cluster address, serves
// clients, talks to its peers) and an application's (connects on demand). See
// hsm-transport.ts and client-transport.ts; the framing is frame.ts, the payloads codec.ts.
export { DEFAULT_HSM_LIMITS, HsmTransport, type HsmTls, type HsmTransportLimits, type HsmTransportOptions, type InboundIdentity } from "./hsm-transport.js";
export { ClientTransport, type ClientTls, type ClientTransportOptions, type ConnectionFailure } from "./client-transport.js";
export { TransportError, type TransportErrorCode, splitAddress } from "./transport-error.js";
export { type WireLogger, type WireStats, silentLogger } from "./wire-stats.js";

import type { CertificateAndKey } from "./pki.js";
import { type HsmServerTlsConfig, applicationTlsOptions, classifyInboundSocket, hsmPeerTlsOptions, hsmServerTlsOptions, toTlsError } from "./tls-options.js";
import type { ClientTls as ClientTlsType } from "./client-transport.js";
import type { HsmTls as HsmTlsType } from "./hsm-transport.js";

/** An HSM's TLS side from the cluster's certificates (tls-options.ts): TLS 1.3, peers proven by the cluster CA, optional mutual TLS. */
export function hsmTls(config: HsmServerTlsConfig): HsmTlsType {
  const server = hsmServerTlsOptions(config); // checks the configuration once, up front
  return {
    server,
    classify(socket) {
      const peer = classifyInboundSocket(socket, config);
      return peer.kind === "hsm" ? { kind: "hsm", address: peer.address } : { kind: "client" };
    },
    peer: (peerAddress) => hsmPeerTlsOptions({ hsm: config.hsm, clusterCaPem: config.clusterCaPem, peerAddress }),
  };
}

/** An application's TLS side: the HSMs verified against `trustAnchorPem`; a client certificate for mutual TLS. */
export function clientTls(config: { trustAnchorPem: string; clientCertificate?: CertificateAndKey }): ClientTlsType {
  applicationTlsOptions({ address: "127.0.0.1:1", ...config }); // checks the trust anchor and certificate once, up front
  return {
    connect: (address) => applicationTlsOptions({ address, ...config }),
    describeError: (error, address) => toTlsError(error, { address, trustAnchorPem: config.trustAnchorPem }),
  };
}
