// What the transports log to and count. Any pino logger fits WireLogger (as does anything
// with info/warn/error taking a context object and a message).

export interface WireLogger {
  info(context: object, message: string): void;
  warn(context: object, message: string): void;
  error(context: object, message: string): void;
}

export const silentLogger: WireLogger = Object.freeze({ info() {}, warn() {}, error() {} });

/** Counters of one transport (an HSM's or an application's). */
export interface WireStats {
  /** Inbound TCP connections let through to the TLS handshake. */
  accepted: number;
  /** Inbound connections refused at accept: too many from one IP address, or in all. */
  refusedPerAddress: number;
  refusedTotal: number;
  /** Handshakes that failed or timed out (inbound), or sockets refused after it (an untrusted certificate). */
  tlsRefused: number;
  /** Connections closed for saying no hello in time. */
  helloTimeouts: number;
  /** Connections closed for claiming an HSM address their certificate does not prove. */
  peerRefused: number;
  /** Connections closed for sending nothing for the idle timeout. */
  idleTimeouts: number;
  /** Connections closed because a frame they began did not complete in time (slowloris). */
  frameTimeouts: number;
  /** Connections closed because the frames they buffered passed the budget across connections. */
  memoryRefused: number;
  /** Connections closed because they did not read what was written to them. */
  slowReaders: number;
  framesIn: number;
  framesOut: number;
  messagesIn: number;
  /** Bad frames by reason (FrameError codes): each closed its connection. */
  badFrames: Record<string, number>;
  /** Messages not sent: too large for a frame. */
  unsendable: number;
  /** Messages to a client whose connection is gone, or dropped because the connection to their destination failed. */
  undeliverable: number;
  /** Outbound connections opened, and those that failed. */
  connects: number;
  connectFailures: number;
  /** A message handler threw (a bug on the receiving side, not the sender's fault). */
  handlerErrors: number;
}

export function newWireStats(): WireStats {
  return {
    accepted: 0, refusedPerAddress: 0, refusedTotal: 0, tlsRefused: 0, helloTimeouts: 0, peerRefused: 0, idleTimeouts: 0, frameTimeouts: 0, memoryRefused: 0,
    slowReaders: 0, framesIn: 0, framesOut: 0, messagesIn: 0, badFrames: {}, unsendable: 0, undeliverable: 0, connects: 0, connectFailures: 0,
    handlerErrors: 0,
  };
}
