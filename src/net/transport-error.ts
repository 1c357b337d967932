// Misuse of a transport (an address that is not its own, a second receiver), and the parsing
// of "host:port" addresses the transports share.
import { freezeClass } from "../primordials.js";
import { CodedError } from "../coded-error.js";

export type TransportErrorCode = "INVALID_ADDRESS" | "NOT_OWN_ADDRESS" | "ALREADY_ATTACHED" | "CONNECTION_FAILED" | "CONNECTION_LOST";

export class TransportError extends CodedError<TransportErrorCode> {
  constructor(code: TransportErrorCode, message: string) {
    super("TransportError", code, message);
  }
}

/** "ip:port", "[v6]:port" or "name:port" → host and port; TransportError INVALID_ADDRESS otherwise. */
export function splitAddress(address: string): { host: string; port: number } {
  const match = typeof address === "string" ? /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address) : null;
  const port = match ? Number(match[3]) : NaN;
  if (!match || !(port >= 1 && port <= 65535)) throw new TransportError("INVALID_ADDRESS", `an address is "host:port"; got ${JSON.stringify(address)}`);
  return { host: match[1] ?? match[2], port };
}

freezeClass(TransportError);
