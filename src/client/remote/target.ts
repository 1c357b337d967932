// The `cloudhsm:` load target and connect()'s options, checked before any thread or socket
// exists, each failure a ClientError INVALID_TARGET naming the part that is wrong:
//
//   cloudhsm://HOST[:PORT]?ca=PATH[&cert=PATH&key=PATH][&timeoutMs=N]
//
//   HOST       one HSM's address (IPv4, [IPv6] or a DNS name): the client learns the others from it
//   PORT       default 2223 (CloudHSM's)
//   ca         the cluster's trust anchor, a PEM file (CloudHSM's customerCA.crt); required
//   cert, key  a client certificate and its key, PEM files, for clusters that enforce mutual TLS
//   timeoutMs  the longest a synchronous call waits for its answer (default 60000)
//
// Paths are file paths (relative ones from the working directory), percent-encoded where a
// URL needs it (a space as %20).
import { readFileSync } from "node:fs";
import { isIP } from "node:net";

import { ClientError } from "../errors.js";

export const DEFAULT_HSM_PORT = 2223;
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----/;
const PEM_KEY = /-----BEGIN (?:[A-Z ]+ )?PRIVATE KEY-----/;

export interface CloudHsmTarget {
  /** "host:port", or "[v6]:port". */
  bootstrap: string;
  trustAnchorPem: string;
  clientCertificatePem?: string;
  clientKeyPem?: string;
  callTimeoutMs?: number;
}

function invalid(message: string): ClientError {
  return new ClientError("INVALID_TARGET", message);
}

/** "host[:port]" checked, with the default port: the address form the cluster's member list uses. */
export function checkAddress(address: unknown, what = "address"): string {
  if (typeof address !== "string" || address.length === 0) throw invalid(`${what} must be a non-empty "host:port" string such as "127.0.0.2:2223"`);
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]/?#@\s]+)(?::([^:]*))?$/.exec(address);
  if (!match) throw invalid(`${what} '${address}' is not "host:port" (an IPv6 host goes in brackets: "[::1]:2223")`);
  const host = match[1];
  const bare = host.startsWith("[") ? host.slice(1, -1) : host;
  if (host.startsWith("[") ? isIP(bare) !== 6 : !(isIP(bare) === 4 || /^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,62}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,62}[a-zA-Z0-9])?)*$/.test(bare))) {
    throw invalid(`${what} host '${host}' is neither an IP address nor a host name`);
  }
  const portText = match[2];
  if (portText === undefined) return `${host}:${DEFAULT_HSM_PORT}`;
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) throw invalid(`${what} port '${portText}' must be an integer from 1 to 65535`);
  return `${host}:${port}`;
}

/** A PEM file's text, or the reason it cannot be used. */
export function readPemFile(path: string, what: string, pattern: RegExp): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw invalid(`cannot read the ${what} file '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!pattern.test(text)) throw invalid(`the ${what} file '${path}' holds no PEM ${what.includes("key") ? "private key" : "certificate"}`);
  return text;
}

export function checkCertificatePem(pem: unknown, what: string): string {
  if (typeof pem !== "string" || !PEM_CERTIFICATE.test(pem)) throw invalid(`${what} must be a PEM certificate (text, or a path to a .crt/.pem file)`);
  return pem;
}

export function checkKeyPem(pem: unknown, what: string): string {
  if (typeof pem !== "string" || !PEM_KEY.test(pem)) throw invalid(`${what} must be a PEM private key (text, or a path to a key file)`);
  return pem;
}

/** PEM text as given, or the file it names. */
export function pemOrFile(value: unknown, what: string, kind: "certificate" | "key"): string {
  if (typeof value !== "string" || value.length === 0) throw invalid(`${what} must be PEM text or a file path`);
  if (value.includes("-----BEGIN")) return kind === "key" ? checkKeyPem(value, what) : checkCertificatePem(value, what);
  return readPemFile(value, what, kind === "key" ? PEM_KEY : PEM_CERTIFICATE);
}

export function parseCloudHsmTarget(target: string): CloudHsmTarget {
  const match = /^cloudhsm:\/\/([^/?#]*)\/?(?:\?([^#]*))?$/i.exec(target);
  if (!match) throw invalid(`target '${target}' is not cloudhsm://HOST[:PORT]?ca=PATH (see the README, "Connecting to a cluster")`);
  const bootstrap = checkAddress(match[1], "cloudhsm target address");
  const params = new URLSearchParams(match[2] ?? "");
  const seen = new Set<string>();
  for (const key of params.keys()) {
    if (!["ca", "cert", "key", "timeoutMs"].includes(key)) throw invalid(`unknown cloudhsm target option '${key}' (known: ca, cert, key, timeoutMs)`);
    if (seen.has(key)) throw invalid(`cloudhsm target option '${key}' is given twice`);
    seen.add(key);
  }
  const ca = params.get("ca");
  if (ca === null || ca === "") throw invalid("cloudhsm target needs ca=PATH: the cluster's trust anchor (customerCA.crt), to verify the HSMs");
  const result: CloudHsmTarget = { bootstrap, trustAnchorPem: readPemFile(ca, "trust anchor (ca)", PEM_CERTIFICATE) };
  const cert = params.get("cert");
  const key = params.get("key");
  if ((cert === null) !== (key === null)) throw invalid("cloudhsm target options cert and key go together: a client certificate and its private key");
  if (cert !== null && key !== null) {
    result.clientCertificatePem = readPemFile(cert, "client certificate (cert)", PEM_CERTIFICATE);
    result.clientKeyPem = readPemFile(key, "client key (key)", PEM_KEY);
  }
  const timeout = params.get("timeoutMs");
  if (timeout !== null) {
    const ms = Number(timeout);
    if (!/^\d+$/.test(timeout) || ms < 1 || ms > 3_600_000) throw invalid("cloudhsm target timeoutMs must be an integer from 1 to 3600000");
    result.callTimeoutMs = ms;
  }
  return result;
}
