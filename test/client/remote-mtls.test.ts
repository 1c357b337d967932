// Mutual TLS as CloudHSM offers it: with a client trust anchor registered and enforcement on,
// an application without a certificate from it is refused at the handshake; with one (through
// connect()'s clientCertificate or the target's cert= and key=) it works.
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { connect } from "../../src/client/remote/connect.js";
import { load } from "../../src/index.js";
import * as C from "../../src/pkcs11/constants.js";
import { ALICE, type RealtimeCluster, startRealtimeCluster } from "./realtime-cluster.js";

let cluster: RealtimeCluster;

beforeAll(async () => {
  cluster = await startRealtimeCluster(2, { mtls: true });
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

describe("remote client and mutual TLS", () => {
  it("without a client certificate: refused, with an error that says so", () => {
    let error: unknown;
    try {
      connect({ address: cluster.addresses[0], trustAnchor: cluster.trustAnchorPath }).close();
    } catch (e) {
      error = e;
    }
    expect(String((error as { code?: string }).code)).toMatch(/CLIENT_CERTIFICATE_REQUIRED|CONNECTION_FAILED/);
  });

  it("with the certificate through connect(): works", () => {
    const files = cluster.clientFiles!;
    const connection = connect({ address: cluster.addresses[0], trustAnchor: cluster.trustAnchorPath, clientCertificate: { certificate: files.certPath, key: files.keyPath } });
    try {
      const alice = connection.login(ALICE.username, ALICE.password);
      expect(alice.random(16).length).toBe(16);
    } finally {
      connection.close();
    }
  });

  it("with cert= and key= in the target: a pkcs11js-style login works", () => {
    const files = cluster.clientFiles!;
    const q = (path: string) => encodeURIComponent(path);
    const pkcs11 = load(`cloudhsm://${cluster.addresses[1]}?ca=${q(cluster.trustAnchorPath)}&cert=${q(files.certPath)}&key=${q(files.keyPath)}`);
    pkcs11.C_Initialize();
    try {
      const session = pkcs11.C_OpenSession(Buffer.alloc(8), C.CKF_SERIAL_SESSION);
      pkcs11.C_Login(session, C.CKU_USER, `${ALICE.username}:${ALICE.password}`);
      expect(pkcs11.C_GenerateRandom(session, Buffer.alloc(8)).length).toBe(8);
    } finally {
      pkcs11.C_Finalize();
      pkcs11.close();
    }
  });
});
