// What carries messages between clients and HSMs, and between HSMs: the simulated network in
// the simulator (src/sim/network.ts), TLS over TCP in real time (src/net/). Messages are plain
// values; the sender never touches one again after sending it.

export type MessageHandler = (from: string, message: unknown) => void;
/** A sender is gone for good (a client's connection closed): whatever the receiver keeps for it may go. */
export type GoneHandler = (from: string) => void;

export interface Transport {
  /** `onGone` is called when a sender disappears for good (real sockets only; the simulator never calls it). */
  attach(address: string, handler: MessageHandler, onGone?: GoneHandler): void;
  detach(address: string): void;
  send(from: string, to: string, message: unknown): void;
  /**
   * Takes back a message sent to `to` that has certainly not left yet (real time: it waits for a
   * TLS handshake): true if it was taken back, and will never be delivered. Optional (the
   * simulated network has no such state: a message it accepted may arrive).
   */
  withdraw?(from: string, to: string, message: unknown): boolean;
}
