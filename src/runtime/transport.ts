// What carries messages between clients and HSMs, and between HSMs: the simulated network in
// the simulator (src/sim/network.ts), TLS over TCP in real time (src/net/). Messages are plain
// values; the sender never touches one again after sending it.

export type MessageHandler = (from: string, message: unknown) => void;

export interface Transport {
  attach(address: string, handler: MessageHandler): void;
  detach(address: string): void;
  send(from: string, to: string, message: unknown): void;
}
