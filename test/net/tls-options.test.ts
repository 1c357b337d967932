// TLS between real node:tls sockets on loopback: the trust anchor, the HSM's address, mutual
// TLS off and on, expired certificates, and the inbound classification an HSM relies on.
import * as tls from "node:tls";
import type { AddressInfo } from "node:net";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { NetError, TlsError } from "../../src/net/net-error.js";
import { createClientCa, createClusterCa, issueClientCertificate, issueHsmCertificate, type CertificateAndKey } from "../../src/net/pki.js";
import {
  applicationTlsOptions,
  classifyInboundSocket,
  closedAfterHandshakeError,
  connectTls,
  hsmPeerTlsOptions,
  hsmServerTlsOptions,
  toTlsError,
  type HsmServerTlsConfig,
} from "../../src/net/tls-options.js";

const HOST = "127.0.0.2";
const servers: tls.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

interface Started {
  address: string;
  port: number;
  /** What the server decided for each inbound socket, in order. */
  decisions: (string | Error)[];
  handshakeFailures: number;
}

/**
 * A plain node:tls server that classifies every inbound socket and answers with its decision.
 * `makeConfig` gets the port it listens on (an HSM certificate names its cluster address, port
 * included): the server starts with a placeholder context, then takes the real one.
 */
async function startServer(makeConfig: (port: number) => Promise<HsmServerTlsConfig>, placeholder: HsmServerTlsConfig, host = HOST): Promise<Started> {
  const started: Started = { address: "", port: 0, decisions: [], handshakeFailures: 0 };
  let config = placeholder;
  const server = tls.createServer(hsmServerTlsOptions(placeholder), (socket) => {
    socket.on("error", () => undefined);
    try {
      const peer = classifyInboundSocket(socket, config);
      const text = peer.kind === "hsm" ? `hsm ${peer.hsmId} ${peer.address}` : `client ${peer.commonName ?? "-"}`;
      started.decisions.push(text);
      socket.end(text);
    } catch (e) {
      started.decisions.push(e as Error);
      socket.destroy();
    }
  });
  server.on("tlsClientError", () => started.handshakeFailures++);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  started.port = (server.address() as AddressInfo).port;
  started.address = `${host}:${started.port}`;
  config = await makeConfig(started.port);
  server.setSecureContext(hsmServerTlsOptions(config));
  return started;
}

/** Connects, then reads what the server answers; any failure comes back as a TlsError. */
async function talk(options: tls.ConnectionOptions, context: { address: string; trustAnchorPem: string }): Promise<string> {
  const socket = await connectTls(options, context);
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => reject(new Error("no answer within 10 s")), 10_000);
    socket.setEncoding("utf8");
    socket.on("data", (chunk) => (text += chunk));
    socket.on("error", (e) => {
      clearTimeout(timer);
      reject(toTlsError(e, context));
    });
    socket.on("close", () => {
      clearTimeout(timer);
      if (text === "") reject(closedAfterHandshakeError({ address: context.address, presentedClientCertificate: options.cert !== undefined }));
      else resolve(text);
    });
  });
}

async function refusedWith(promise: Promise<unknown>, code: string): Promise<TlsError> {
  try {
    const value = await promise;
    throw new Error(`expected TlsError ${code}, got ${JSON.stringify(value)}`);
  } catch (e) {
    if (!(e instanceof TlsError)) throw e;
    expect(e.code).toBe(code);
    return e;
  }
}

describe("TLS options", () => {
  let clusterCa: CertificateAndKey;
  let foreignCa: CertificateAndKey;
  let clientCa: CertificateAndKey;
  let appCert: CertificateAndKey;
  let foreignAppCert: CertificateAndKey;
  beforeAll(async () => {
    [clusterCa, foreignCa, clientCa] = await Promise.all([createClusterCa({ commonName: "cluster CA" }), createClusterCa({ commonName: "impostor CA" }), createClientCa({ commonName: "apps CA" })]);
    appCert = await issueClientCertificate(clientCa, { commonName: "app-1" });
    foreignAppCert = await issueClientCertificate(foreignCa, { commonName: "app-x" });
  });

  let placeholderHsm: CertificateAndKey;
  /** An HSM server on HOST whose certificate is `issue(port)` (default: from the cluster CA for its own address). */
  async function hsmServer(extra: Partial<HsmServerTlsConfig> = {}, issue?: (port: number) => Promise<CertificateAndKey>) {
    placeholderHsm ??= await issueHsmCertificate(clusterCa, { host: HOST, hsmId: "placeholder" });
    const make = async (port: number) => ({
      hsm: await (issue ?? ((p: number) => issueHsmCertificate(clusterCa, { host: HOST, port: p, hsmId: "hsm-2" })))(port),
      clusterCaPem: clusterCa.certPem,
      ...extra,
    });
    return startServer(make, { hsm: placeholderHsm, clusterCaPem: clusterCa.certPem, ...extra });
  }
  const appContext = (address: string) => ({ address, trustAnchorPem: clusterCa.certPem });

  it("an application trusting the cluster CA gets through; the server sees an anonymous client", async () => {
    const started = await hsmServer();
    expect(await talk(applicationTlsOptions(appContext(started.address)), appContext(started.address))).toBe("client -");
  });

  it("an HSM presenting another CA's certificate is refused with an error naming the address and the trust anchor", async () => {
    const started = await hsmServer({}, (port) => issueHsmCertificate(foreignCa, { host: HOST, port, hsmId: "impostor" }));
    const error = await refusedWith(talk(applicationTlsOptions(appContext(started.address)), appContext(started.address)), "UNTRUSTED_HSM_CERTIFICATE");
    expect(error).toBeInstanceOf(NetError);
    expect(error.message).toContain(started.address);
    expect(error.message).toContain("cluster CA");
    // A peer HSM refuses it the same way.
    const me = await issueHsmCertificate(clusterCa, { host: "127.0.0.4", hsmId: "me" });
    await refusedWith(talk(hsmPeerTlsOptions({ hsm: me, clusterCaPem: clusterCa.certPem, peerAddress: started.address }), appContext(started.address)), "UNTRUSTED_HSM_CERTIFICATE");
    expect(started.decisions).toEqual([]);
  });

  it("a certificate for another address is refused (application and peer HSM)", async () => {
    const started = await hsmServer({}, (port) => issueHsmCertificate(clusterCa, { host: "127.0.0.3", port, hsmId: "hsm-3" }));
    const error = await refusedWith(talk(applicationTlsOptions(appContext(started.address)), appContext(started.address)), "HSM_ADDRESS_MISMATCH");
    expect(error.message).toContain(started.address);
    const me = await issueHsmCertificate(clusterCa, { host: "127.0.0.4", hsmId: "me" });
    await refusedWith(talk(hsmPeerTlsOptions({ hsm: me, clusterCaPem: clusterCa.certPem, peerAddress: started.address }), appContext(started.address)), "HSM_ADDRESS_MISMATCH");
  });

  it("between HSMs the port is part of the identity; an application checks the host only", async () => {
    const started = await hsmServer({}, () => issueHsmCertificate(clusterCa, { host: HOST, port: 2223, hsmId: "hsm-2" }));
    expect(await talk(applicationTlsOptions(appContext(started.address)), appContext(started.address))).toBe("client -");
    const me = await issueHsmCertificate(clusterCa, { host: "127.0.0.4", hsmId: "me" });
    const error = await refusedWith(talk(hsmPeerTlsOptions({ hsm: me, clusterCaPem: clusterCa.certPem, peerAddress: started.address }), appContext(started.address)), "HSM_ADDRESS_MISMATCH");
    expect(error.message).toContain(`${HOST}:2223`);
  });

  it("an expired HSM certificate is refused", async () => {
    const started = await hsmServer({}, (port) => issueHsmCertificate(clusterCa, { host: HOST, port, hsmId: "old", validFrom: new Date(Date.now() - 10 * 86_400_000), validDays: 2 }));
    const error = await refusedWith(talk(applicationTlsOptions(appContext(started.address)), appContext(started.address)), "HSM_CERTIFICATE_EXPIRED");
    expect(error.message).toContain(started.address);
  });

  it("an HSM peer is recognised by the cluster address in its certificate, and verifies the server's", async () => {
    const started = await hsmServer();
    const me = await issueHsmCertificate(clusterCa, { host: "127.0.0.4", port: 4444, hsmId: "hsm-4" });
    expect(await talk(hsmPeerTlsOptions({ hsm: me, clusterCaPem: clusterCa.certPem, peerAddress: started.address }), appContext(started.address))).toBe("hsm hsm-4 127.0.0.4:4444");
  });

  it("an HSM certificate from a foreign CA does not make its bearer an HSM peer", async () => {
    const started = await hsmServer();
    const forged = await issueHsmCertificate(foreignCa, { host: "127.0.0.4", port: 4444, hsmId: "hsm-4" });
    await refusedWith(talk(hsmPeerTlsOptions({ hsm: forged, clusterCaPem: clusterCa.certPem, peerAddress: started.address }), appContext(started.address)), "CLIENT_CERTIFICATE_REJECTED");
    expect(started.decisions).toHaveLength(1);
    expect((started.decisions[0] as TlsError).code).toBe("CLIENT_CERTIFICATE_REJECTED");
    expect((started.decisions[0] as TlsError).message).toMatch(/127\.0\.0\.\d+:\d+/);
    // An expired HSM certificate from the right CA is refused too.
    const expired = await issueHsmCertificate(clusterCa, { host: "127.0.0.4", port: 4444, hsmId: "hsm-4", validFrom: new Date(Date.now() - 10 * 86_400_000), validDays: 2 });
    await expect(talk(hsmPeerTlsOptions({ hsm: expired, clusterCaPem: clusterCa.certPem, peerAddress: started.address }), appContext(started.address))).rejects.toBeInstanceOf(TlsError);
    expect((started.decisions[1] as TlsError).code).toBe("HSM_CERTIFICATE_EXPIRED");
  });

  it("mutual TLS off: a client without a certificate is served; one with a certificate from the registered anchor is named", async () => {
    const started = await hsmServer({ clientCaPem: clientCa.certPem });
    expect(await talk(applicationTlsOptions(appContext(started.address)), appContext(started.address))).toBe("client -");
    expect(await talk(applicationTlsOptions({ ...appContext(started.address), clientCertificate: appCert }), appContext(started.address))).toBe("client app-1");
  });

  it("mutual TLS on: no certificate, or one from a foreign CA, is refused at the handshake; the anchor's certificate and HSM peers pass", async () => {
    const started = await hsmServer({ clientCaPem: clientCa.certPem, enforceMutualTls: true });
    const context = appContext(started.address);
    const none = await refusedWith(talk(applicationTlsOptions(context), context), "CLIENT_CERTIFICATE_REQUIRED");
    expect(none.message).toContain(started.address);
    expect(started.handshakeFailures).toBe(1);
    // A foreign certificate: node's TLS server verifies after the handshake and destroys the
    // socket before 'secureConnection', so the client sees a close before any answer.
    await refusedWith(talk(applicationTlsOptions({ ...context, clientCertificate: foreignAppCert }), context), "CLIENT_CERTIFICATE_REJECTED");
    // Neither socket ever reached the server's code.
    expect(started.decisions).toEqual([]);
    expect(await talk(applicationTlsOptions({ ...context, clientCertificate: appCert }), context)).toBe("client app-1");
    const peer = await issueHsmCertificate(clusterCa, { host: "127.0.0.4", port: 4444, hsmId: "hsm-4" });
    expect(await talk(hsmPeerTlsOptions({ hsm: peer, clusterCaPem: clusterCa.certPem, peerAddress: started.address }), context)).toBe("hsm hsm-4 127.0.0.4:4444");
  });

  it("a client certificate, even from the registered anchor, never makes an HSM peer", async () => {
    const started = await hsmServer({ clientCaPem: clientCa.certPem, enforceMutualTls: true });
    const context = appContext(started.address);
    expect(await talk(applicationTlsOptions({ ...context, clientCertificate: appCert }), context)).toBe("client app-1");
    // The client CA's own certificate and key presented: refused (not a leaf for client auth), never an HSM.
    await refusedWith(talk(applicationTlsOptions({ ...context, clientCertificate: clientCa }), context), "CLIENT_CERTIFICATE_REJECTED");
    // The cluster CA's own certificate and key (a stolen CA is game over, but it is still not an HSM's identity).
    await expect(talk(applicationTlsOptions({ ...context, clientCertificate: clusterCa }), context)).rejects.toBeInstanceOf(TlsError);
    expect(started.decisions.filter((d) => typeof d === "string" && d.startsWith("hsm"))).toEqual([]);
  });

  it("TLS 1.2 is refused", async () => {
    const started = await hsmServer();
    const context = appContext(started.address);
    const options = { ...applicationTlsOptions(context), minVersion: "TLSv1.2" as const, maxVersion: "TLSv1.2" as const };
    await expect(talk(options, context)).rejects.toBeInstanceOf(TlsError);
  });

  it("refuses a server configuration that cannot be safe, and bad addresses", async () => {
    const hsm = await issueHsmCertificate(clusterCa, { host: HOST, hsmId: "h" });
    expect(() => hsmServerTlsOptions({ hsm, clusterCaPem: clusterCa.certPem, enforceMutualTls: true })).toThrow(/client trust anchor is registered/);
    expect(() => hsmServerTlsOptions({ hsm, clusterCaPem: clusterCa.certPem, clientCaPem: clusterCa.certPem })).toThrow(/other than the cluster CA/);
    expect(() => hsmServerTlsOptions({ hsm, clusterCaPem: hsm.certPem })).toThrow(NetError);
    expect(() => applicationTlsOptions({ address: "127.0.0.2", trustAnchorPem: clusterCa.certPem })).toThrow(expect.objectContaining({ code: "INVALID_ADDRESS" }));
    expect(() => applicationTlsOptions({ address: "127.0.0.2:2223", trustAnchorPem: "nope" })).toThrow(expect.objectContaining({ code: "INVALID_CERTIFICATE" }));
  });

  it("a refused connection becomes CONNECTION_FAILED naming the address", async () => {
    const started = await hsmServer();
    await new Promise((r) => servers.pop()!.close(r));
    const error = await refusedWith(connectTls(applicationTlsOptions(appContext(started.address)), appContext(started.address)), "CONNECTION_FAILED");
    expect(error.message).toContain(started.address);
  });
});
