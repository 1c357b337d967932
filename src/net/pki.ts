// The cluster's certificates: its own CA (the customer's trust anchor, as CloudHSM's
// customerCA.crt), one certificate per HSM for its address, and an optional client CA for
// mutual TLS. ECDSA P-256 through @peculiar/x509 on Node's WebCrypto: no hand-built DER.
// Keys and certificates travel as PEM strings; key files are written 0600.
import { X509Certificate as NodeX509Certificate, KeyObject, createPrivateKey, webcrypto } from "node:crypto";
import { closeSync, constants, fsyncSync, lstatSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { isIP } from "node:net";
import { dirname, join, basename } from "node:path";
import { x509 } from "./x509-lib.js";
import { NetError } from "./net-error.js";

/** A certificate and its private key, both PEM. */
export interface CertificateAndKey {
  certPem: string;
  keyPem: string;
}

/** CloudHSM's port, and this simulator's default for every HSM. */
export const DEFAULT_HSM_PORT = 2223;
const DEFAULT_CA_DAYS = 3650;
const DEFAULT_LEAF_DAYS = 825;
const MAX_DAYS = 36500;
const DAY_MS = 86_400_000;
/** The URI scheme of the SAN that names an HSM's cluster address (host and port) in its certificate. */
export const HSM_ADDRESS_URI_SCHEME = "hsmsim";

const crypto = webcrypto as unknown as Crypto;
const EC_KEY: EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING: EcdsaParams = { name: "ECDSA", hash: "SHA-256" };

// Names go into a distinguished-name string, so they are limited to characters that need no escaping.
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/;
const HSM_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const DNS_PATTERN = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function checkName(what: string, value: unknown, pattern = NAME_PATTERN): string {
  if (typeof value !== "string" || !pattern.test(value)) {
    throw new NetError("INVALID_ARGUMENT", `${what} must be 1-64 characters of letters, digits, '.', '_', '-'${pattern === NAME_PATTERN ? " or spaces" : ""}, starting with a letter or digit; got ${JSON.stringify(value)}`);
  }
  return value;
}

function checkDays(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > MAX_DAYS) {
    throw new NetError("INVALID_ARGUMENT", `validDays must be an integer from 1 to ${MAX_DAYS}; got ${String(value)}`);
  }
  return value;
}

function checkValidFrom(value: unknown): Date {
  if (value === undefined) return new Date(Date.now() - 60_000); // a minute back: tolerate small clock skew between processes
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) throw new NetError("INVALID_ARGUMENT", "validFrom must be a valid Date");
  return value;
}

/** Checks an HSM host: an IP address (v4 or v6) or a DNS name. */
export function checkHost(host: unknown): string {
  if (typeof host === "string" && (isIP(host) !== 0 || DNS_PATTERN.test(host))) return host;
  throw new NetError("INVALID_ADDRESS", `host must be an IP address or a DNS name; got ${JSON.stringify(host)}`);
}

/** Checks a TCP port: an integer 1-65535. */
export function checkPort(port: unknown): number {
  if (typeof port === "number" && Number.isInteger(port) && port >= 1 && port <= 65535) return port;
  throw new NetError("INVALID_ADDRESS", `port must be an integer from 1 to 65535; got ${String(port)}`);
}

/** "host:port" for an HSM address ("[v6]:port" for an IPv6 host). */
export function formatAddress(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Splits an HSM cluster address "ip:port", "[v6]:port" or "name:port"; a clear error for anything else. */
export function parseAddress(address: unknown): { host: string; port: number } {
  if (typeof address !== "string" || address.length > 300) throw new NetError("INVALID_ADDRESS", `an HSM address is "host:port"; got ${JSON.stringify(address)}`);
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(address);
  if (!match) throw new NetError("INVALID_ADDRESS", `an HSM address is "host:port" (IPv6 as "[::1]:2223"); got ${JSON.stringify(address)}`);
  const host = match[1] ?? match[2];
  if (match[1] !== undefined && isIP(host) !== 6) throw new NetError("INVALID_ADDRESS", `"${address}": the bracketed host is not an IPv6 address`);
  if (match[2] !== undefined && isIP(host) === 6) throw new NetError("INVALID_ADDRESS", `"${address}": write an IPv6 host in brackets`);
  return { host: checkHost(host), port: checkPort(Number(match[3])) };
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(EC_KEY, true, ["sign", "verify"]) as Promise<CryptoKeyPair>;
}

function keyToPem(key: CryptoKey): string {
  return KeyObject.from(key as unknown as webcrypto.CryptoKey).export({ type: "pkcs8", format: "pem" }) as string;
}

async function importSigningKey(keyPem: string): Promise<CryptoKey> {
  let der: Buffer;
  try {
    const key = createPrivateKey(keyPem);
    if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") throw new Error("not an ECDSA P-256 key");
    der = key.export({ type: "pkcs8", format: "der" });
  } catch (e) {
    throw new NetError("INVALID_CERTIFICATE", `the CA's key is not a PEM ECDSA P-256 private key (${(e as Error).message})`);
  }
  return crypto.subtle.importKey("pkcs8", new Uint8Array(der), EC_KEY, false, ["sign"]);
}

function parseCertificate(what: string, certPem: unknown): x509.X509Certificate {
  if (typeof certPem !== "string") throw new NetError("INVALID_CERTIFICATE", `${what} must be a PEM certificate string`);
  try {
    return new x509.X509Certificate(certPem);
  } catch (e) {
    throw new NetError("INVALID_CERTIFICATE", `${what} is not a PEM X.509 certificate (${(e as Error).message})`);
  }
}

/** Checks that `ca` is a CA certificate and that its key pairs with it; returns what issuing needs. */
async function loadIssuer(ca: CertificateAndKey): Promise<{ cert: x509.X509Certificate; signingKey: CryptoKey }> {
  if (typeof ca !== "object" || ca === null) throw new NetError("INVALID_ARGUMENT", "the CA must be { certPem, keyPem }");
  const cert = parseCertificate("the CA certificate", ca.certPem);
  const constraints = cert.getExtension(x509.BasicConstraintsExtension);
  if (!constraints?.ca) throw new NetError("INVALID_CERTIFICATE", `"${cert.subject}" is not a CA certificate (basicConstraints cA is not set)`);
  const signingKey = await importSigningKey(ca.keyPem);
  // The key must belong to the certificate, or every certificate issued would fail verification later.
  const probe = new TextEncoder().encode("hsmsim CA key check");
  const signature = await crypto.subtle.sign(SIGNING, signingKey, probe);
  const publicKey = await cert.publicKey.export(EC_KEY, ["verify"], crypto);
  if (!(await crypto.subtle.verify(SIGNING, publicKey, signature, probe))) {
    throw new NetError("INVALID_CERTIFICATE", `the key given with CA "${cert.subject}" is not that CA's key`);
  }
  return { cert, signingKey };
}

async function createCa(role: string, options: { commonName: string; validDays?: number; validFrom?: Date }): Promise<CertificateAndKey> {
  if (typeof options !== "object" || options === null) throw new NetError("INVALID_ARGUMENT", `${role}: options must be { commonName, validDays? }`);
  const commonName = checkName("commonName", options.commonName);
  const days = checkDays(options.validDays, DEFAULT_CA_DAYS);
  const notBefore = checkValidFrom(options.validFrom);
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: `CN=${commonName}, O=hsmsim`,
      notBefore,
      notAfter: new Date(notBefore.getTime() + days * DAY_MS),
      signingAlgorithm: SIGNING,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true), // issues leaves only
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { certPem: cert.toString("pem"), keyPem: keyToPem(keys.privateKey) };
}

async function issueLeaf(
  ca: CertificateAndKey,
  subject: string,
  days: number,
  notBefore: Date,
  usages: x509.ExtendedKeyUsage[],
  altNames: x509.JsonGeneralName[],
): Promise<CertificateAndKey> {
  const issuer = await loadIssuer(ca);
  const keys = await generateKeys();
  const notAfter = new Date(Math.min(notBefore.getTime() + days * DAY_MS, issuer.cert.notAfter.getTime())); // never outlives its CA
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(usages, false),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
    await x509.AuthorityKeyIdentifierExtension.create(issuer.cert.publicKey, false, crypto),
  ];
  if (altNames.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(altNames, false));
  const cert = await x509.X509CertificateGenerator.create(
    { subject, issuer: issuer.cert.subject, notBefore, notAfter, signingAlgorithm: SIGNING, publicKey: keys.publicKey, signingKey: issuer.signingKey, extensions },
    crypto,
  );
  return { certPem: cert.toString("pem"), keyPem: keyToPem(keys.privateKey) };
}

/** The cluster's own CA: the trust anchor applications verify HSMs against (CloudHSM's customerCA.crt). */
export function createClusterCa(options: { commonName: string; validDays?: number; validFrom?: Date }): Promise<CertificateAndKey> {
  return createCa("createClusterCa", options);
}

/** A CA whose certificates clients present for mutual TLS; register its certificate on the cluster. */
export function createClientCa(options: { commonName: string; validDays?: number; validFrom?: Date }): Promise<CertificateAndKey> {
  return createCa("createClientCa", options);
}

export interface HsmCertificateOptions {
  /** The address the HSM listens on: an IP (SAN IP) or a DNS name (SAN DNS). */
  host: string;
  /** The HSM's cluster port; with the host it forms the address peers know it by (a SAN URI hsmsim://host:port). */
  port?: number;
  /** The HSM's id, the certificate's common name. */
  hsmId: string;
  /** More names (IP or DNS) the certificate also covers, e.g. a load balancer's name in front of it. */
  altHosts?: string[];
  validDays?: number;
  /** Start of validity (default: a minute ago). Tests use it for expired certificates. */
  validFrom?: Date;
}

/**
 * A certificate for one HSM, issued by the cluster CA: SAN IP (or DNS) for its host and a SAN URI
 * hsmsim://host:port for its cluster address; serverAuth and clientAuth, because HSMs also present
 * it to each other.
 */
export function issueHsmCertificate(clusterCa: CertificateAndKey, options: HsmCertificateOptions): Promise<CertificateAndKey> {
  if (typeof options !== "object" || options === null) return Promise.reject(new NetError("INVALID_ARGUMENT", "issueHsmCertificate: options must be { host, port?, hsmId }"));
  try {
    const host = checkHost(options.host);
    const port = checkPort(options.port ?? DEFAULT_HSM_PORT);
    const hsmId = checkName("hsmId", options.hsmId, HSM_ID_PATTERN);
    const altHosts = options.altHosts ?? [];
    if (!Array.isArray(altHosts) || altHosts.length > 16) throw new NetError("INVALID_ARGUMENT", "altHosts must be an array of at most 16 hosts");
    const altNames: x509.JsonGeneralName[] = [host, ...altHosts.map(checkHost)].map((h) => (isIP(h) !== 0 ? { type: "ip", value: h } : { type: "dns", value: h }));
    altNames.push({ type: "url", value: `${HSM_ADDRESS_URI_SCHEME}://${formatAddress(host, port)}` });
    return issueLeaf(clusterCa, `CN=${hsmId}, OU=hsm, O=hsmsim`, checkDays(options.validDays, DEFAULT_LEAF_DAYS), checkValidFrom(options.validFrom), [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], altNames);
  } catch (e) {
    return Promise.reject(e);
  }
}

/** A client certificate (clientAuth only) from the client CA, for mutual TLS. */
export function issueClientCertificate(clientCa: CertificateAndKey, options: { commonName: string; validDays?: number; validFrom?: Date }): Promise<CertificateAndKey> {
  if (typeof options !== "object" || options === null) return Promise.reject(new NetError("INVALID_ARGUMENT", "issueClientCertificate: options must be { commonName }"));
  try {
    const commonName = checkName("commonName", options.commonName);
    return issueLeaf(clientCa, `CN=${commonName}, OU=client, O=hsmsim`, checkDays(options.validDays, DEFAULT_LEAF_DAYS), checkValidFrom(options.validFrom), [x509.ExtendedKeyUsage.clientAuth], []);
  } catch (e) {
    return Promise.reject(e);
  }
}

/** What an HSM certificate says about its HSM (read from a peer's verified certificate). */
export interface HsmCertificateIdentity {
  hsmId: string;
  /** The cluster address "host:port" from the SAN URI, or undefined when the certificate has none. */
  address: string | undefined;
  /** The IP and DNS names the certificate covers. */
  hosts: string[];
}

/** Reads the HSM id and the cluster address out of an HSM certificate (it does not verify the certificate). */
export function hsmCertificateIdentity(cert: string | Buffer | NodeX509Certificate): HsmCertificateIdentity {
  const parsed = parseCertificate("the HSM certificate", cert instanceof NodeX509Certificate ? cert.toString() : Buffer.isBuffer(cert) ? new NodeX509Certificate(cert).toString() : cert);
  const hsmId = parsed.subjectName.getField("CN")[0] ?? "";
  const san = parsed.getExtension(x509.SubjectAlternativeNameExtension);
  const names = san?.names.toJSON() ?? [];
  const hosts = names.filter((n) => n.type === "ip" || n.type === "dns").map((n) => n.value);
  const prefix = `${HSM_ADDRESS_URI_SCHEME}://`;
  const uris = names.filter((n) => n.type === "url" && n.value.startsWith(prefix)).map((n) => n.value.slice(prefix.length));
  return { hsmId, address: uris.length === 1 ? uris[0] : undefined, hosts };
}

/** A one-line description of a certificate for error messages and status output. */
export function describeCertificate(certPem: string): { subject: string; issuer: string; notAfter: Date; fingerprint256: string } {
  const cert = parseCertificate("the certificate", certPem);
  const node = new NodeX509Certificate(certPem);
  return { subject: cert.subject, issuer: cert.issuer, notAfter: cert.notAfter, fingerprint256: node.fingerprint256 };
}

// Files ---------------------------------------------------------------------------------------

/** Writes `path` atomically (temp file created exclusively, fsync, rename), never through a symlink. */
function writeFileAtomic(path: string, text: string, mode: number): void {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0), mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(temp);
    throw e;
  }
  closeSync(fd);
  renameSync(temp, path);
}

/** Writes a certificate (0644) and its key (0600) to `certPath` and `keyPath`. */
export function writeCertificateFiles(pair: CertificateAndKey, paths: { certPath: string; keyPath: string }): void {
  parseCertificate("the certificate", pair.certPem);
  createPrivateKey(pair.keyPem); // refuse to write something that is not a key
  writeFileAtomic(paths.keyPath, pair.keyPem, 0o600);
  writeFileAtomic(paths.certPath, pair.certPem, 0o644);
}

/** Reads and checks a PEM certificate file. */
export function readCertificateFile(certPath: string): string {
  let text: string;
  try {
    text = readFileSync(certPath, "utf8");
  } catch (e) {
    throw new NetError("INVALID_CERTIFICATE", `cannot read the certificate ${certPath}: ${(e as Error).message}`);
  }
  parseCertificate(certPath, text);
  return text;
}

/** Reads a certificate and its key; refuses a key file that is a symlink or readable by group or others. */
export function readCertificateFiles(paths: { certPath: string; keyPath: string }): CertificateAndKey {
  const certPem = readCertificateFile(paths.certPath);
  let keyPem: string;
  try {
    const stat = lstatSync(paths.keyPath);
    if (stat.isSymbolicLink()) throw new Error("it is a symbolic link");
    if ((stat.mode & 0o077) !== 0) throw new Error(`its mode is ${(stat.mode & 0o777).toString(8)}; a key file must be 0600`);
    keyPem = readFileSync(paths.keyPath, "utf8");
    createPrivateKey(keyPem);
  } catch (e) {
    throw new NetError("INVALID_CERTIFICATE", `cannot use the key ${paths.keyPath}: ${(e as Error).message}`);
  }
  return { certPem, keyPem };
}
