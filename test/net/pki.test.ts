// The cluster's certificates: what each one says, what is refused, and the files.
import { X509Certificate } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { NetError } from "../../src/net/net-error.js";
import {
  createClientCa,
  createClusterCa,
  describeCertificate,
  hsmCertificateIdentity,
  issueClientCertificate,
  issueHsmCertificate,
  parseAddress,
  readCertificateFiles,
  writeCertificateFiles,
  type CertificateAndKey,
} from "../../src/net/pki.js";

async function rejectsWith(promise: Promise<unknown> | (() => unknown), code: string): Promise<NetError> {
  try {
    await (typeof promise === "function" ? promise() : promise);
  } catch (e) {
    expect(e).toBeInstanceOf(NetError);
    expect((e as NetError).code).toBe(code);
    return e as NetError;
  }
  throw new Error(`expected a NetError ${code}, got success`);
}

describe("pki", () => {
  const dir = mkdtempSync(join(tmpdir(), "hsmsim-pki-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let clusterCa: CertificateAndKey;

  it("loading @peculiar/x509 leaves the global Reflect as it was", () => {
    expect((Reflect as unknown as { getMetadata?: unknown }).getMetadata).toBeUndefined();
  });

  it("the cluster CA is a self-signed ECDSA P-256 CA that issues leaves only", async () => {
    clusterCa = await createClusterCa({ commonName: "cluster-1 CA" });
    const cert = new X509Certificate(clusterCa.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toContain("CN=cluster-1 CA");
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(cert.toLegacyObject().ext_key_usage).toBeUndefined();
    expect(clusterCa.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it("an HSM certificate covers its IP and cluster address, for server and client auth, with the HSM id", async () => {
    const hsm = await issueHsmCertificate(clusterCa, { host: "127.0.0.2", port: 2223, hsmId: "hsm-abc" });
    const cert = new X509Certificate(hsm.certPem);
    const ca = new X509Certificate(clusterCa.certPem);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.checkIP("127.0.0.2")).toBe("127.0.0.2");
    expect(cert.checkIP("127.0.0.3")).toBeUndefined();
    expect(cert.subject).toContain("CN=hsm-abc");
    expect(cert.toLegacyObject().ext_key_usage).toEqual(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
    expect(hsmCertificateIdentity(hsm.certPem)).toEqual({ hsmId: "hsm-abc", address: "127.0.0.2:2223", hosts: ["127.0.0.2"] });
    expect(new Date(cert.validTo).getTime()).toBeLessThanOrEqual(new Date(ca.validTo).getTime());
  });

  it("a DNS host gets a DNS SAN; alternative hosts are added; IPv6 addresses are bracketed", async () => {
    const named = await issueHsmCertificate(clusterCa, { host: "hsm1.cluster.example", port: 3000, hsmId: "h1", altHosts: ["lb.example", "10.0.0.9"] });
    const cert = new X509Certificate(named.certPem);
    expect(cert.checkHost("hsm1.cluster.example")).toBe("hsm1.cluster.example");
    expect(cert.checkHost("lb.example")).toBe("lb.example");
    expect(cert.checkIP("10.0.0.9")).toBe("10.0.0.9");
    expect(hsmCertificateIdentity(named.certPem).address).toBe("hsm1.cluster.example:3000");
    const v6 = await issueHsmCertificate(clusterCa, { host: "::1", hsmId: "h6" });
    expect(hsmCertificateIdentity(v6.certPem).address).toBe("[::1]:2223");
  });

  it("a client certificate from the client CA is for client auth only", async () => {
    const clientCa = await createClientCa({ commonName: "apps CA" });
    const client = await issueClientCertificate(clientCa, { commonName: "app-1" });
    const cert = new X509Certificate(client.certPem);
    expect(cert.verify(new X509Certificate(clientCa.certPem).publicKey)).toBe(true);
    expect(cert.verify(new X509Certificate(clusterCa.certPem).publicKey)).toBe(false);
    expect(cert.toLegacyObject().ext_key_usage).toEqual(["1.3.6.1.5.5.7.3.2"]);
  });

  it("refuses bad names, hosts, ports and validity with clear codes", async () => {
    await rejectsWith(createClusterCa({ commonName: "CN=evil, O=x" }), "INVALID_ARGUMENT");
    await rejectsWith(createClusterCa({ commonName: "" }), "INVALID_ARGUMENT");
    await rejectsWith(createClusterCa({ commonName: "ok", validDays: 0 }), "INVALID_ARGUMENT");
    await rejectsWith(createClusterCa({ commonName: "ok", validDays: 1.5 }), "INVALID_ARGUMENT");
    await rejectsWith(createClusterCa(null as never), "INVALID_ARGUMENT");
    await rejectsWith(issueHsmCertificate(clusterCa, { host: "127.0.0.2", hsmId: "a,b" }), "INVALID_ARGUMENT");
    await rejectsWith(issueHsmCertificate(clusterCa, { host: "not a host!", hsmId: "h" }), "INVALID_ADDRESS");
    await rejectsWith(issueHsmCertificate(clusterCa, { host: "127.0.0.2", port: 70000, hsmId: "h" }), "INVALID_ADDRESS");
    await rejectsWith(issueHsmCertificate(clusterCa, { host: "127.0.0.2", hsmId: "h", altHosts: ["bad host"] }), "INVALID_ADDRESS");
    await rejectsWith(issueClientCertificate(clusterCa, { commonName: "x\ny" }), "INVALID_ARGUMENT");
  });

  it("refuses to issue from a non-CA certificate, a key that is not the CA's, or garbage", async () => {
    const hsm = await issueHsmCertificate(clusterCa, { host: "127.0.0.2", hsmId: "h" });
    const other = await createClusterCa({ commonName: "other" });
    await rejectsWith(issueHsmCertificate(hsm, { host: "127.0.0.3", hsmId: "x" }), "INVALID_CERTIFICATE");
    const wrongKey = await rejectsWith(issueHsmCertificate({ certPem: clusterCa.certPem, keyPem: other.keyPem }, { host: "127.0.0.3", hsmId: "x" }), "INVALID_CERTIFICATE");
    expect(wrongKey.message).toContain("not that CA's key");
    await rejectsWith(issueHsmCertificate({ certPem: "garbage", keyPem: clusterCa.keyPem }, { host: "127.0.0.3", hsmId: "x" }), "INVALID_CERTIFICATE");
    await rejectsWith(issueHsmCertificate({ certPem: clusterCa.certPem, keyPem: "garbage" }, { host: "127.0.0.3", hsmId: "x" }), "INVALID_CERTIFICATE");
  });

  it("parses cluster addresses and refuses malformed ones", async () => {
    expect(parseAddress("127.0.0.2:2223")).toEqual({ host: "127.0.0.2", port: 2223 });
    expect(parseAddress("[::1]:2223")).toEqual({ host: "::1", port: 2223 });
    expect(parseAddress("hsm.example:1")).toEqual({ host: "hsm.example", port: 1 });
    for (const bad of ["127.0.0.2", "127.0.0.2:0", "127.0.0.2:65536", "::1:2223", "[127.0.0.1]:5", ":5", "a b:5", 42, undefined, "x".repeat(400) + ":1"]) {
      await rejectsWith(() => parseAddress(bad), "INVALID_ADDRESS");
    }
  });

  it("writes keys 0600 and certificates 0644, reads them back, refuses a readable or symlinked key", async () => {
    const hsm = await issueHsmCertificate(clusterCa, { host: "127.0.0.2", hsmId: "h" });
    const paths = { certPath: join(dir, "hsm.crt"), keyPath: join(dir, "hsm.key") };
    writeCertificateFiles(hsm, paths);
    expect(statSync(paths.keyPath).mode & 0o777).toBe(0o600);
    expect(statSync(paths.certPath).mode & 0o777).toBe(0o644);
    expect(readCertificateFiles(paths)).toEqual(hsm);
    writeCertificateFiles(clusterCa, paths); // overwrites in place
    expect(readCertificateFiles(paths)).toEqual(clusterCa);
    chmodSync(paths.keyPath, 0o644);
    expect((await rejectsWith(() => readCertificateFiles(paths), "INVALID_CERTIFICATE")).message).toContain("0600");
    chmodSync(paths.keyPath, 0o600);
    symlinkSync(paths.keyPath, join(dir, "link.key"));
    await rejectsWith(() => readCertificateFiles({ certPath: paths.certPath, keyPath: join(dir, "link.key") }), "INVALID_CERTIFICATE");
    writeFileSync(join(dir, "bad.crt"), "not a certificate");
    await rejectsWith(() => readCertificateFiles({ certPath: join(dir, "bad.crt"), keyPath: paths.keyPath }), "INVALID_CERTIFICATE");
    await rejectsWith(() => readCertificateFiles({ certPath: join(dir, "missing.crt"), keyPath: paths.keyPath }), "INVALID_CERTIFICATE");
    expect(describeCertificate(hsm.certPem).subject).toContain("CN=h");
  });
});
