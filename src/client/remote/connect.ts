// An application's connection to a real-time cluster: the typed API of the simulator's
// ClusterConnection (log in as a crypto user for keys and crypto, a management console for
// users and sharing, the cluster's health), with the client itself on a worker thread.
//
// Calls block, as the simulator's ClusterConnection and PKCS#11 itself do: the same
// application code runs against both, and a program reads top to bottom. Concurrency comes
// from the PKCS11 facade's callback and …Async forms (connection.pkcs11()), which never block
// the event loop and keep many requests in flight on the one connection.
import { PKCS11 } from "../../pkcs11/pkcs11.js";
import { freezeClass } from "../../primordials.js";
import type { ManageMethod } from "../../cluster/protocol.js";
import { type CryptoUserSession, type ManagementChannel, ManagementConsole, loginCryptoUser } from "../api.js";
import type { MemberHealth } from "../client.js";
import { RemoteLink } from "./link.js";
import { type BridgeAnswer, revive, reviveError } from "./messages.js";
import { checkAddress, pemOrFile } from "./target.js";

export interface ConnectOptions {
  /** One HSM's address, "host:port" (port 2223 by default): the client learns the others from it. */
  address: string;
  /** The cluster's trust anchor (customerCA.crt): PEM text, or the path of a PEM file. */
  trustAnchor: string;
  /** For clusters that enforce mutual TLS: a certificate from the client trust anchor registered on the cluster, and its key (PEM text or paths). */
  clientCertificate?: { certificate: string; key: string };
  /** The longest a blocking call waits for its answer (default 60 000 ms). */
  callTimeoutMs?: number;
}

export class RemoteConnection implements ManagementChannel {
  readonly #link: RemoteLink;
  #facade: PKCS11 | null = null;

  /** @internal use connect() */
  constructor(link: RemoteLink) {
    this.#link = link;
  }

  /** A pkcs11js-compatible PKCS11 over the whole cluster (C_Login with "name:password"), initialized. */
  pkcs11(): PKCS11 {
    if (this.#facade === null) {
      this.#facade = new PKCS11(this.#link.chip());
      this.#facade.C_Initialize();
    }
    return this.#facade;
  }

  /** Logs a crypto user in on a new session. */
  login(username: string, password: string): CryptoUserSession {
    return loginCryptoUser(this.pkcs11(), username, password);
  }

  /** A management console as `username` (CloudHSM CLI's role): PRECO activates, a CO manages users, a CU shares its keys. */
  console(username: string, password: string): ManagementConsole {
    return new ManagementConsole(this, username, password);
  }

  /** The address list as the client knows it, with what it has seen of each HSM, and warnings (NAT, load balancers). */
  health(): { members: MemberHealth[]; warnings: string[] } {
    return settle(this.#link.callSync("health", "health", [])) as { members: MemberHealth[]; warnings: string[] };
  }

  /** @internal one management call (ManagementConsole's) */
  manage(username: string, password: string, method: ManageMethod, args: unknown[], pinned?: string, anyState = false): unknown {
    return settle(this.#link.callSync("manage", method, [username, password, method, args, pinned, anyState]));
  }

  /** Closes the connection: the HSMs drop its sessions; the worker thread ends. */
  close(): void {
    this.#link.close();
  }
}

function settle(answer: BridgeAnswer): unknown {
  if (answer.error !== undefined) throw reviveError(answer.error);
  return revive(answer.value);
}

/**
 * Connects to a real-time cluster (started with `hsmsim up`) and bootstraps from `address`
 * before returning: an HSM that does not answer, or one whose certificate the trust anchor
 * does not vouch for, fails here with the reason.
 */
export function connect(options: ConnectOptions): RemoteConnection {
  if (options === null || typeof options !== "object") throw new TypeError("options must be { address, trustAnchor }");
  const bootstrap = checkAddress(options.address);
  const trustAnchorPem = pemOrFile(options.trustAnchor, "trustAnchor", "certificate");
  let client: { clientCertificatePem: string; clientKeyPem: string } | undefined;
  if (options.clientCertificate !== undefined) {
    const c = options.clientCertificate as { certificate?: unknown; key?: unknown } | null;
    client = { clientCertificatePem: pemOrFile(c?.certificate, "clientCertificate.certificate", "certificate"), clientKeyPem: pemOrFile(c?.key, "clientCertificate.key", "key") };
  }
  const link = new RemoteLink({ kind: "cluster", bootstrap, trustAnchorPem, ...client }, { callTimeoutMs: options.callTimeoutMs });
  const connection = new RemoteConnection(link);
  try {
    connection.health(); // bootstraps: the first failure is the application's to see now
  } catch (e) {
    connection.close();
    throw e;
  }
  return connection;
}

freezeClass(RemoteConnection);
