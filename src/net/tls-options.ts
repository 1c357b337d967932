// node:tls option builders for the three ends of a connection (an HSM serving, an HSM
// connecting to a peer, an application connecting to an HSM), the check an HSM runs on each
// inbound socket, and the translation of node's TLS failures into a TlsError that names the
// address and the trust anchor. TLS 1.3 only; certificates always verified.
import { X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import * as tls from "node:tls";
import { NetError, TlsError, type NetErrorCode } from "./net-error.js";
import { formatAddress, hsmCertificateIdentity, parseAddress, type CertificateAndKey } from "./pki.js";

const TLS_VERSION = "TLSv1.3" as const;

function parseAnchor(what: string, pem: unknown): X509Certificate {
  if (typeof pem !== "string") throw new NetError("INVALID_CERTIFICATE", `${what} must be a PEM certificate string`);
  try {
    const cert = new X509Certificate(pem);
    if (!cert.ca) throw new Error("it is not a CA certificate");
    return cert;
  } catch (e) {
    throw new NetError("INVALID_CERTIFICATE", `${what} is not a PEM CA certificate (${(e as Error).message})`);
  }
}

function checkPair(what: string, pair: CertificateAndKey | undefined): CertificateAndKey {
  if (typeof pair !== "object" || pair === null || typeof pair.certPem !== "string" || typeof pair.keyPem !== "string") {
    throw new NetError("INVALID_ARGUMENT", `${what} must be { certPem, keyPem }`);
  }
  return pair;
}

/** "CN=… (SHA-256 AB:CD:EF:01…)": how error messages name a trust anchor. */
export function describeTrustAnchor(pem: string): string {
  try {
    const cert = new X509Certificate(pem);
    return `"${cert.subject.replace(/\n/g, ", ")}" (SHA-256 ${cert.fingerprint256.slice(0, 23)}…)`;
  } catch {
    return "(an unreadable certificate)";
  }
}

/** True when `cert` was issued and signed by `anchor`. */
function issuedBy(cert: X509Certificate, anchor: X509Certificate): boolean {
  try {
    return cert.checkIssued(anchor) && cert.verify(anchor.publicKey);
  } catch {
    return false;
  }
}

function sameCertificate(a: X509Certificate, b: X509Certificate): boolean {
  return a.raw.equals(b.raw);
}

// (a) An HSM serving ----------------------------------------------------------------------

export interface HsmServerTlsConfig {
  /** The HSM's own certificate (from the cluster CA) and key. */
  hsm: CertificateAndKey;
  /** The cluster CA: peers presenting a certificate from it are HSMs. */
  clusterCaPem: string;
  /** The registered client trust anchor for mutual TLS (a CA other than the cluster's). */
  clientCaPem?: string;
  /** Refuse, at the handshake, clients without a certificate from `clientCaPem`. */
  enforceMutualTls?: boolean;
}

/**
 * Options for tls.createServer on an HSM. It always asks for a certificate; with mutual TLS
 * enforced the handshake itself refuses a socket without one from the cluster CA (an HSM) or the
 * client trust anchor. Either way, run classifyInboundSocket on every 'secureConnection'.
 */
export function hsmServerTlsOptions(config: HsmServerTlsConfig): tls.TlsOptions {
  const hsm = checkPair("the HSM's certificate", config?.hsm);
  const clusterCa = parseAnchor("the cluster CA", config.clusterCaPem);
  const enforce = config.enforceMutualTls === true;
  if (config.enforceMutualTls !== undefined && typeof config.enforceMutualTls !== "boolean") throw new NetError("INVALID_ARGUMENT", "enforceMutualTls must be a boolean");
  const ca = [config.clusterCaPem];
  if (config.clientCaPem !== undefined) {
    const clientCa = parseAnchor("the client trust anchor", config.clientCaPem);
    // One CA for both would make every client certificate an HSM's: refuse it.
    if (sameCertificate(clientCa, clusterCa)) throw new NetError("INVALID_ARGUMENT", "the client trust anchor must be a CA other than the cluster CA");
    ca.push(config.clientCaPem);
  } else if (enforce) {
    throw new NetError("INVALID_ARGUMENT", "mutual TLS cannot be enforced before a client trust anchor is registered");
  }
  return {
    key: hsm.keyPem,
    cert: hsm.certPem,
    ca,
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    requestCert: true,
    rejectUnauthorized: enforce,
  };
}

/** Who is at the other end of an inbound socket, once classifyInboundSocket accepted it. */
export type InboundPeer =
  | { kind: "hsm"; hsmId: string; address: string }
  | { kind: "client"; commonName: string | undefined };

/**
 * Decides who an inbound, handshaken socket belongs to, or throws a TlsError (close the socket):
 * a certificate from the cluster CA is an HSM peer, known by the cluster address in it; any other
 * certificate must come from the client trust anchor; no certificate is an anonymous client,
 * refused while mutual TLS is enforced.
 */
export function classifyInboundSocket(socket: tls.TLSSocket, config: HsmServerTlsConfig): InboundPeer {
  const clusterCa = parseAnchor("the cluster CA", config.clusterCaPem);
  const from = `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
  const cert = socket.getPeerX509Certificate();
  if (cert === undefined) {
    if (config.enforceMutualTls === true) {
      throw new TlsError("CLIENT_CERTIFICATE_REQUIRED", `mutual TLS is enforced: the client at ${from} presented no certificate (client trust anchor ${describeTrustAnchor(config.clientCaPem ?? "")})`);
    }
    return { kind: "client", commonName: undefined };
  }
  const fromClusterCa = issuedBy(cert, clusterCa);
  if (!socket.authorized) {
    const reason = String(socket.authorizationError ?? "not verified");
    if (fromClusterCa) throw new TlsError(reason === "CERT_HAS_EXPIRED" || reason === "CERT_NOT_YET_VALID" ? "HSM_CERTIFICATE_EXPIRED" : "UNTRUSTED_HSM_CERTIFICATE", `the HSM certificate presented from ${from} was refused (${reason}) against the cluster CA ${describeTrustAnchor(config.clusterCaPem)}`);
    const anchor = config.clientCaPem === undefined ? "no client trust anchor is registered" : `client trust anchor ${describeTrustAnchor(config.clientCaPem)}`;
    throw new TlsError("CLIENT_CERTIFICATE_REJECTED", `the client certificate presented from ${from} was refused (${reason}); ${anchor}`);
  }
  if (fromClusterCa) {
    if (cert.ca) throw new TlsError("UNTRUSTED_HSM_CERTIFICATE", `the peer at ${from} presented the cluster CA's own certificate, not an HSM's`);
    const identity = hsmCertificateIdentity(cert);
    if (identity.address === undefined) throw new TlsError("UNTRUSTED_HSM_CERTIFICATE", `the HSM certificate presented from ${from} names no cluster address (hsmsim:// SAN URI)`);
    return { kind: "hsm", hsmId: identity.hsmId, address: identity.address };
  }
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
  return { kind: "client", commonName: cn };
}

// (b) and (c) connecting ------------------------------------------------------------------

function hostCheck(address: string, host: string, anchorPem: string, peerAddress: string | undefined) {
  return (_servername: string, cert: tls.PeerCertificate): Error | undefined => {
    // Node passes the hostname it connected to; check the certificate against the address's host
    // (IP SAN for an IP, DNS SAN for a name), never against a servername the peer could influence.
    const failure = tls.checkServerIdentity(host, cert);
    if (failure) return new TlsError("HSM_ADDRESS_MISMATCH", `the HSM at ${address} presented a certificate for ${cert.subjectaltname ?? cert.subject?.CN ?? "another name"}, not for ${host} (trust anchor ${describeTrustAnchor(anchorPem)})`);
    if (peerAddress !== undefined) {
      // HSM to HSM: the peer's cluster address, port included, is its identity.
      const uris = (cert.subjectaltname ?? "").split(", ").filter((n) => n.startsWith("URI:hsmsim://")).map((n) => n.slice("URI:hsmsim://".length));
      if (!uris.includes(peerAddress)) return new TlsError("HSM_ADDRESS_MISMATCH", `the HSM at ${address} presented a certificate for cluster address ${uris.join(", ") || "(none)"}, not ${peerAddress} (trust anchor ${describeTrustAnchor(anchorPem)})`);
    }
    return undefined;
  };
}

function connectOptions(address: string, anchorPem: string, own: CertificateAndKey | undefined, peer: boolean): tls.ConnectionOptions {
  const { host, port } = parseAddress(address);
  const canonical = formatAddress(host, port);
  const options: tls.ConnectionOptions = {
    host,
    port,
    ca: [anchorPem],
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    rejectUnauthorized: true,
    checkServerIdentity: hostCheck(address, host, anchorPem, peer ? canonical : undefined),
  };
  if (isIP(host) === 0) options.servername = host; // SNI is for names only
  if (own !== undefined) {
    options.key = own.keyPem;
    options.cert = own.certPem;
  }
  return options;
}

/** Options for an HSM connecting to a peer HSM at `peerAddress`: its own certificate, the peer's verified against the cluster CA and its cluster address. */
export function hsmPeerTlsOptions(config: { hsm: CertificateAndKey; clusterCaPem: string; peerAddress: string }): tls.ConnectionOptions {
  const hsm = checkPair("the HSM's certificate", config?.hsm);
  parseAnchor("the cluster CA", config.clusterCaPem);
  return connectOptions(config.peerAddress, config.clusterCaPem, hsm, true);
}

/** Options for an application connecting to the HSM at `address`: verified against the trust anchor (the cluster CA); an optional client certificate for mutual TLS. */
export function applicationTlsOptions(config: { address: string; trustAnchorPem: string; clientCertificate?: CertificateAndKey }): tls.ConnectionOptions {
  parseAnchor("the trust anchor", config?.trustAnchorPem);
  const own = config.clientCertificate === undefined ? undefined : checkPair("the client certificate", config.clientCertificate);
  return connectOptions(config.address, config.trustAnchorPem, own, false);
}

// Errors ----------------------------------------------------------------------------------

const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "INVALID_CA",
  "INVALID_PURPOSE",
]);
const EXPIRED = new Set(["CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID"]);
const CLIENT_REQUIRED = new Set(["ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED", "ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE"]);
const CLIENT_REJECTED = new Set(["ERR_SSL_TLSV1_ALERT_UNKNOWN_CA", "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE", "ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED", "ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN", "ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR", "ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE"]);
const CONNECTION = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "EPIPE", "ECONNABORTED"]);

/**
 * Translates an error from a TLS connection to `address` into a TlsError naming the address and
 * the trust anchor (a TlsError is returned as it is). Use it on 'error' of any client-side socket.
 */
export function toTlsError(error: unknown, context: { address: string; trustAnchorPem: string }): TlsError {
  if (error instanceof TlsError) return error;
  const code = String((error as { code?: unknown })?.code ?? "");
  const text = error instanceof Error ? error.message : String(error);
  const anchor = describeTrustAnchor(context.trustAnchorPem);
  let netCode: NetErrorCode;
  let message: string;
  if (UNTRUSTED.has(code)) {
    netCode = "UNTRUSTED_HSM_CERTIFICATE";
    message = `the HSM at ${context.address} presented a certificate the trust anchor ${anchor} did not issue (${code})`;
  } else if (EXPIRED.has(code)) {
    netCode = "HSM_CERTIFICATE_EXPIRED";
    message = `the HSM at ${context.address} presented a certificate outside its validity period (${code}); trust anchor ${anchor}`;
  } else if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    netCode = "HSM_ADDRESS_MISMATCH";
    message = `the HSM at ${context.address} presented a certificate for another address (${text}); trust anchor ${anchor}`;
  } else if (CLIENT_REQUIRED.has(code)) {
    netCode = "CLIENT_CERTIFICATE_REQUIRED";
    message = `the HSM at ${context.address} enforces mutual TLS and this client presented no certificate (${code})`;
  } else if (CLIENT_REJECTED.has(code)) {
    netCode = "CLIENT_CERTIFICATE_REJECTED";
    message = `the HSM at ${context.address} refused this client's certificate: it is not from the cluster's registered client trust anchor, or has expired (${code})`;
  } else if (CONNECTION.has(code)) {
    netCode = "CONNECTION_FAILED";
    message = `cannot connect to the HSM at ${context.address} (${code})`;
  } else {
    netCode = "TLS_HANDSHAKE_FAILED";
    message = `TLS with the HSM at ${context.address} failed: ${text}${code ? ` (${code})` : ""}; trust anchor ${anchor}`;
  }
  const translated = new TlsError(netCode, message);
  (translated as { cause?: unknown }).cause = error;
  return translated;
}

/**
 * The error for a connection the HSM closed right after the handshake, before its first answer.
 * Node's TLS server cannot send an alert for a certificate it refuses (it verifies after the
 * handshake, then destroys the socket), so that is all a client sees when its certificate is
 * not from the registered client trust anchor: with a certificate presented it is reported as
 * CLIENT_CERTIFICATE_REJECTED, otherwise as CONNECTION_FAILED.
 */
export function closedAfterHandshakeError(context: { address: string; presentedClientCertificate: boolean }): TlsError {
  if (context.presentedClientCertificate) {
    return new TlsError("CLIENT_CERTIFICATE_REJECTED", `the HSM at ${context.address} closed the connection right after the handshake: it refused this client's certificate (not from the cluster's registered client trust anchor, or expired)`);
  }
  return new TlsError("CONNECTION_FAILED", `the HSM at ${context.address} closed the connection right after the handshake, before answering`);
}

/**
 * Connects with `options` (from hsmPeerTlsOptions or applicationTlsOptions) and resolves once the
 * handshake is done and the certificate verified; rejects with a TlsError otherwise, or after
 * `timeoutMs` (default 10 s).
 */
export function connectTls(options: tls.ConnectionOptions, context: { address: string; trustAnchorPem: string; timeoutMs?: number }): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(options);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new TlsError("CONNECTION_FAILED", `no TLS handshake with the HSM at ${context.address} within ${context.timeoutMs ?? 10_000} ms`));
    }, context.timeoutMs ?? 10_000);
    timer.unref();
    const onError = (error: unknown) => {
      clearTimeout(timer);
      socket.destroy();
      reject(toTlsError(error, context));
    };
    socket.once("error", onError);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      socket.off("error", onError);
      resolve(socket);
    });
  });
}
