// The one place an HSM process builds its TLS transport (the wire engineer's HsmTransport with
// the pki engineer's server options), so the HSM process does not depend on their details.
import type { Logger } from "./process-log.js";
import { HsmTransport, hsmTls } from "./tls-transport.js";

export interface HsmTransportSetup {
  address: string;
  certPem: string;
  keyPem: string;
  caPem: string;
  /** Mutual TLS enforced with this client trust anchor. */
  clientCaPem?: string;
  log: Logger;
}

export function startHsmTransport(setup: HsmTransportSetup): Promise<HsmTransport> {
  return HsmTransport.listen({
    address: setup.address,
    tls: hsmTls({ hsm: { certPem: setup.certPem, keyPem: setup.keyPem }, clusterCaPem: setup.caPem, clientCaPem: setup.clientCaPem, enforceMutualTls: setup.clientCaPem !== undefined }),
    logger: setup.log,
  });
}
