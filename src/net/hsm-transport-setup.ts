// The one place an HSM process builds its TLS transport (the wire engineer's HsmTransport with
// the pki engineer's server options), so the HSM process does not depend on their details.
import type { Transport } from "../runtime/transport.js";
import type { Logger } from "./process-log.js";
import { HsmTransport } from "./tls-transport.js";

export interface HsmTransportSetup {
  address: string;
  certPem: string;
  keyPem: string;
  caPem: string;
  clientCaPem?: string;
  log: Logger;
}

export function startHsmTransport(setup: HsmTransportSetup): Transport {
  return new HsmTransport({
    address: setup.address, certPem: setup.certPem, keyPem: setup.keyPem, caPem: setup.caPem, clientCaPem: setup.clientCaPem, logger: setup.log,
  });
}
