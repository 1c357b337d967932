// The remote client against a real-time cluster over TLS on loopback addresses (HSMs in a
// worker thread of this process, the client in its own worker thread; the test's thread blocks
// in synchronous calls as an application does): connect(), load("cloudhsm://…"), a pkcs11js
// program written for CloudHSM and graphene-pk11 unchanged, a foreign trust anchor refused.
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runCloudHsmGrapheneProgram } from "../../examples/cloudhsm-graphene-program.js";
import { runCloudHsmProgram } from "../../examples/cloudhsm-program.js";
import { ClientError } from "../../src/client/errors.js";
import { connect } from "../../src/client/remote/connect.js";
import { load } from "../../src/index.js";
import { createClusterCa } from "../../src/net/pki.js";
import * as C from "../../src/pkcs11/constants.js";
import { Pkcs11Error } from "../../src/pkcs11/errors.js";
import { ALICE, BOB, CO, type RealtimeCluster, startRealtimeCluster } from "./realtime-cluster.js";

let cluster: RealtimeCluster;
let target: string;

beforeAll(async () => {
  cluster = await startRealtimeCluster(2);
  target = `cloudhsm://${cluster.addresses[0]}?ca=${encodeURIComponent(cluster.trustAnchorPath)}`;
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

describe("remote client against a real-time cluster", () => {
  it("connect(): the typed API, the address list learned from one address, users managed", () => {
    const connection = connect({ address: cluster.addresses[0], trustAnchor: cluster.trustAnchorPem });
    try {
      expect(connection.health().members.map((m) => m.address).sort()).toEqual([...cluster.addresses].sort());
      const alice = connection.login(ALICE.username, ALICE.password);
      const key = alice.generateAesKey({ label: "remote-typed" });
      const sealed = alice.encrypt(key, Buffer.from("over TLS"), Buffer.from("aad"));
      expect(alice.decrypt(key, sealed, Buffer.from("aad")).toString()).toBe("over TLS");
      const pair = alice.generateEcKeyPair({ label: "remote-ec" });
      const signature = alice.sign(pair.privateKey, Buffer.from("data"));
      expect(alice.verify(pair.publicKey, Buffer.from("data"), signature)).toBe(true);
      expect(alice.findKeys("remote-typed").map((k) => k.id)).toEqual([key.id]);
      const users = connection.console(CO.username, CO.password).listUsers();
      expect(users.consistent).toBe(true);
      expect(users.users.map((u) => u.username)).toEqual(expect.arrayContaining([ALICE.username, BOB.username]));
      // One login per application, as PKCS#11 has it; another application (connection) is Bob's, and Alice's key is not his to use.
      expect(() => connection.login(BOB.username, BOB.password)).toThrow(/CKR_USER_ALREADY_LOGGED_IN/);
      alice.close();
      const other = connect({ address: cluster.addresses[1], trustAnchor: cluster.trustAnchorPath });
      try {
        const bob = other.login(BOB.username, BOB.password);
        expect(() => bob.encrypt(key, Buffer.from("x"))).toThrow(Pkcs11Error);
      } finally {
        other.close();
      }
    } finally {
      connection.close();
    }
  });

  it("a wrong password is the HSM's typed refusal, not a transport error", () => {
    const connection = connect({ address: cluster.addresses[1], trustAnchor: cluster.trustAnchorPath });
    try {
      expect(() => connection.login(ALICE.username, "not-her-password")).toThrow(/CKR_PIN_INCORRECT|CKR_USER/);
    } finally {
      connection.close();
    }
  });

  it("load('cloudhsm://…'): a pkcs11js program written for CloudHSM runs unchanged", () => {
    const result = runCloudHsmProgram(load(target), `${ALICE.username}:${ALICE.password}`);
    expect(result).toEqual({ decrypted: "hello from a CloudHSM program", verified: true, tampered: "CKR_ENCRYPTED_DATA_INVALID", foundByLabel: 1 });
  });

  it("graphene-pk11 runs unchanged over load('cloudhsm://…')", () => {
    expect(runCloudHsmGrapheneProgram(target, `${BOB.username}:${BOB.password}`)).toEqual({ decrypted: "graphene over TLS", verified: true });
  });

  it("callback calls keep many requests in flight without blocking; answers land in the callers' buffers", async () => {
    const pkcs11 = load(target);
    pkcs11.C_Initialize();
    try {
      const session = pkcs11.C_OpenSession(Buffer.alloc(8), C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION);
      pkcs11.C_Login(session, C.CKU_USER, `${ALICE.username}:${ALICE.password}`);
      const sessions = Array.from({ length: 32 }, () => pkcs11.C_OpenSession(Buffer.alloc(8), C.CKF_SERIAL_SESSION));
      const key = pkcs11.C_GenerateKey(session, { mechanism: C.CKM_GENERIC_SECRET_KEY_GEN }, [
        { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }, { type: C.CKA_KEY_TYPE, value: C.CKK_GENERIC_SECRET }, { type: C.CKA_VALUE_LEN, value: 32 },
        { type: C.CKA_SIGN, value: true }, { type: C.CKA_TOKEN, value: false }, { type: C.CKA_LABEL, value: "hmac" },
      ]);
      for (const s of sessions) pkcs11.C_SignInit(s, { mechanism: C.CKM_SHA256_HMAC }, key);
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 0);
      const outputs = sessions.map(() => Buffer.alloc(32));
      const macs = await Promise.all(sessions.map((s, i) => pkcs11.C_SignAsync(s, Buffer.from(`m${i % 2}`), outputs[i])));
      clearInterval(ticker);
      macs.forEach((mac, i) => {
        expect(mac.buffer).toBe(outputs[i].buffer);
        expect(mac.equals(macs[i % 2])).toBe(true); // same key, same message, same MAC — on whichever HSM
      });
      expect(macs[0].equals(macs[1])).toBe(false);
      expect(ticks).toBeGreaterThan(0);
    } finally {
      pkcs11.C_Finalize();
      pkcs11.close();
    }
  });
});

describe("remote client: what it refuses, with clear errors", () => {
  it("an HSM whose certificate another CA issued: refused at the first call, naming the trust anchor", async () => {
    const other = await createClusterCa({ commonName: "someone else CA" });
    const path = join(tmpdir(), `hsmsim-other-ca-${process.pid}.crt`);
    writeFileSync(path, other.certPem);
    let error: unknown;
    try {
      connect({ address: cluster.addresses[0], trustAnchor: path }).close();
    } catch (e) {
      error = e;
    }
    expect((error as { code?: string }).code).toBe("UNTRUSTED_HSM_CERTIFICATE");
    expect((error as Error).message).toMatch(/trust anchor/);
    const pkcs11 = load(`cloudhsm://${cluster.addresses[0]}?ca=${encodeURIComponent(path)}`);
    pkcs11.C_Initialize();
    let first: unknown;
    try {
      pkcs11.C_OpenSession(Buffer.alloc(8), C.CKF_SERIAL_SESSION); // local: sessions are logical
      pkcs11.C_GetTokenInfo(Buffer.alloc(8));
    } catch (e) {
      first = e;
    }
    expect(first).toBeInstanceOf(Pkcs11Error);
    expect((first as Pkcs11Error).code).toBe(C.CKR_DEVICE_ERROR);
    expect((first as Pkcs11Error).detail).toMatch(/UNTRUSTED_HSM_CERTIFICATE.*trust anchor/);
    pkcs11.close();
  });

  it("no HSM at the address: NO_REACHABLE_HSM or a refused connection, never a hang", () => {
    let error: unknown;
    try {
      connect({ address: "127.0.0.1:1", trustAnchor: cluster.trustAnchorPem });
    } catch (e) {
      error = e;
    }
    expect(String((error as { code?: string }).code)).toMatch(/CONNECTION_FAILED|NO_REACHABLE_HSM/);
  });

  it("bad targets and options fail before any thread or socket, naming the part", () => {
    const cases: [string, RegExp][] = [
      ["cloudhsm://127.0.0.2:2223", /needs ca=PATH/],
      ["cloudhsm://127.0.0.2:0?ca=x", /port '0'/],
      ["cloudhsm://127.0.0.2:2223?ca=/nonexistent/customerCA.crt", /cannot read the trust anchor \(ca\) file '\/nonexistent\/customerCA.crt': ENOENT/],
      [`cloudhsm://127.0.0.2?ca=${encodeURIComponent(cluster.trustAnchorPath)}&cert=/x`, /cert and key go together/],
      [`cloudhsm://127.0.0.2?ca=${encodeURIComponent(cluster.trustAnchorPath)}&ca=/x`, /given twice/],
      [`cloudhsm://127.0.0.2?ca=${encodeURIComponent(cluster.trustAnchorPath)}&timeout=5`, /unknown cloudhsm target option 'timeout'/],
      ["cloudhsm://no_such host?ca=x", /not "host:port"/],
      ["cloudhsm:127.0.0.2?ca=x", /is not cloudhsm:\/\/HOST/],
    ];
    for (const [bad, message] of cases) {
      let error: unknown;
      try {
        load(bad);
      } catch (e) {
        error = e;
      }
      expect(error, bad).toBeInstanceOf(ClientError);
      expect((error as ClientError).code).toBe("INVALID_TARGET");
      expect((error as Error).message, bad).toMatch(message);
    }
    expect(() => connect({ address: "127.0.0.2:2223", trustAnchor: "" })).toThrow(/trustAnchor must be PEM text or a file path/);
    expect(() => connect({ address: "127.0.0.2:70000", trustAnchor: cluster.trustAnchorPem })).toThrow(/port '70000'/);
    // PEM-shaped but not a certificate: refused by the worker's TLS setup, as a typed error through the bridge.
    let error: unknown;
    try {
      connect({ address: cluster.addresses[0], trustAnchor: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" });
    } catch (e) {
      error = e;
    }
    expect(typeof (error as { code?: unknown }).code).toBe("string");
    expect((error as Error).message).toMatch(/trust anchor/);
  });
});
