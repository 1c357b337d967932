// The real-time Transports over TLS 1.3: an HSM's (listens on its cluster address, serves
// clients, talks to its peers) and an application's (connects on demand). See
// hsm-transport.ts and client-transport.ts; the framing is frame.ts, the payloads codec.ts.
export { DEFAULT_HSM_LIMITS, HsmTransport, type HsmTls, type HsmTransportLimits, type HsmTransportOptions, type InboundIdentity } from "./hsm-transport.js";
export { ClientTransport, type ClientTls, type ClientTransportOptions, type ConnectionFailure } from "./client-transport.js";
export { TransportError, type TransportErrorCode, splitAddress } from "./transport-error.js";
export { type WireLogger, type WireStats, silentLogger } from "./wire-stats.js";
