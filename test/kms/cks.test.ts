// Custom key stores over a simulated cluster: every connection state and error code arising
// from the real cluster (kmsuser's login and lockout, HSMs killed), the backing keys and
// AES-GCM in the HSMs, the rate limit on an injected clock.
import { describe, expect, it } from "vitest";

import { keyHandle } from "../../src/client/api.js";
import { type ClusterDirectory, simClusterDirectory, simTrustAnchorPem } from "../../src/kms/cluster-directory.js";
import { decodePasswords } from "../../src/kms/cks-password.js";
import { CustomKeyStores } from "../../src/kms/custom-key-stores.js";
import { KmsError } from "../../src/kms/errors.js";
import * as C from "../../src/pkcs11/constants.js";
import type { World } from "../../src/sim/world.js";
import { CO, activeWorld, bareWorld } from "../cluster/fixture.js";
import { counterBytes, fakeFleet, fakeStore, notes } from "./cks-fakes.js";

const ACCOUNT = "111122223333";
const OTHER = "444455556666";
const KMSUSER_PASSWORD = "kmsuser-pass-1";
const ARN = "arn:aws:kms:us-east-1:111122223333:key/0b1e0c2a-1111-4222-8333-944455556666";

function setup(options: { world?: World; kmsuser?: boolean; requestsPerSecond?: number; directory?: (w: World) => ClusterDirectory } = {}) {
  const world = options.world ?? activeWorld();
  if (options.kmsuser !== false) world.connect("co").console(CO.username, CO.password).createUser("kmsuser", "CU", KMSUSER_PASSWORD);
  const store = fakeStore();
  const fleet = fakeFleet();
  let now = 1_700_000_000_000;
  const clock = { advance: (ms: number) => void (now += ms) };
  const directory = options.directory ? options.directory(world) : simClusterDirectory(world);
  const stores = new CustomKeyStores({ store, fleet, directory, nowMs: () => now, randomBytes: counterBytes(), requestsPerSecond: options.requestsPerSecond });
  const createInput = (overrides: Record<string, unknown> = {}) => ({
    CustomKeyStoreName: "ExampleKeyStore", CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world), KeyStorePassword: KMSUSER_PASSWORD, ...overrides,
  });
  /** kmsuser's password as KMS holds it now (the test can unseal it: it holds the fake fleet). */
  const currentPassword = (id: string) => decodePasswords(fleet.unseal(store.rows.get(id)!.sealedPassword, `kms/custom-key-store/${id}/kmsuser-password`)).current;
  return { world, store, fleet, clock, stores, createInput, currentPassword };
}

async function connected(s: ReturnType<typeof setup>): Promise<string> {
  const { CustomKeyStoreId: id } = s.stores.create(ACCOUNT, s.createInput());
  s.stores.connect(ACCOUNT, id);
  await s.stores.settled(id);
  expect(s.stores.connectionState(id)).toBe("CONNECTED");
  return id;
}

function kmsError(fn: () => unknown): KmsError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(KmsError);
    return e as KmsError;
  }
  throw new Error("expected a KmsError");
}

async function kmsErrorAsync(promise: Promise<unknown>): Promise<KmsError> {
  try {
    await promise;
  } catch (e) {
    expect(e).toBeInstanceOf(KmsError);
    return e as KmsError;
  }
  throw new Error("expected a KmsError");
}

function errorCode(s: ReturnType<typeof setup>, id: string): unknown {
  return (s.stores.describe(ACCOUNT, { CustomKeyStoreId: id }).CustomKeyStores as Record<string, unknown>[])[0].ConnectionErrorCode;
}

function kmsuserLoginFailures(world: World): number {
  return world.cluster.liveNodes().flatMap((n) => n.hsm.auditLog()).filter((e) => e.operation === "LOGIN" && e.actor === "kmsuser" && e.result === "LOGIN_FAILED").length;
}

describe("CreateCustomKeyStore", () => {
  it("checks its members and never echoes or stores the password in clear", () => {
    const s = setup({ kmsuser: false });
    const short = kmsError(() => s.stores.create(ACCOUNT, s.createInput({ KeyStorePassword: "secret" })));
    expect(short.code).toBe("ValidationException");
    expect(short.message).toContain("KeyStorePassword");
    expect(short.message).not.toContain("secret");
    expect(kmsError(() => s.stores.create(ACCOUNT, s.createInput({ KeyStorePassword: "x".repeat(33) }))).code).toBe("ValidationException");
    expect(kmsError(() => s.stores.create(ACCOUNT, s.createInput({ CustomKeyStoreName: undefined }))).message).toContain("CustomKeyStoreName");
    expect(kmsError(() => s.stores.create(ACCOUNT, s.createInput({ CloudHsmClusterId: 42 }))).code).toBe("SerializationException");
    expect(kmsError(() => s.stores.create(ACCOUNT, s.createInput({ CustomKeyStoreType: "EXTERNAL_KEY_STORE" }))).code).toBe("UnsupportedOperationException");
    expect(kmsError(() => s.stores.create(ACCOUNT, null as never)).code).toBe("SerializationException");

    const { CustomKeyStoreId: id } = s.stores.create(ACCOUNT, s.createInput());
    expect(id).toMatch(/^cks-[0-9a-f]{17}$/);
    const row = s.store.rows.get(id)!;
    expect(row.connectionState).toBe("DISCONNECTED");
    expect(row.sealedPassword.includes(Buffer.from(KMSUSER_PASSWORD))).toBe(false);
    expect(JSON.stringify({ ...row, sealedPassword: row.sealedPassword.toString("base64") })).not.toContain(KMSUSER_PASSWORD);
    expect(s.currentPassword(id)).toBe(KMSUSER_PASSWORD);
    const described = s.stores.describe(ACCOUNT, {}) as { CustomKeyStores: Record<string, unknown>[]; Truncated: boolean };
    expect(described.Truncated).toBe(false);
    expect(described.CustomKeyStores).toEqual([{
      CustomKeyStoreId: id, CustomKeyStoreName: "ExampleKeyStore", CloudHsmClusterId: s.world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(s.world),
      ConnectionState: "DISCONNECTED", CreationDate: new Date(1_700_000_000_000), CustomKeyStoreType: "AWS_CLOUDHSM",
    }]);
    expect(JSON.stringify(described)).not.toContain(KMSUSER_PASSWORD);

    // An identical request is a retry: same id. Another password or cluster under the name: name in use.
    expect(s.stores.create(ACCOUNT, s.createInput()).CustomKeyStoreId).toBe(id);
    expect(kmsError(() => s.stores.create(ACCOUNT, s.createInput({ KeyStorePassword: "another-pass" }))).code).toBe("CustomKeyStoreNameInUseException");
    // Another name over the same cluster: in use.
    expect(kmsError(() => s.stores.create(ACCOUNT, s.createInput({ CustomKeyStoreName: "Second" }))).code).toBe("CloudHsmClusterInUseException");
    // Another account sees none of it.
    expect(kmsError(() => s.stores.describe(OTHER, { CustomKeyStoreId: id })).code).toBe("CustomKeyStoreNotFoundException");
    expect((s.stores.describe(OTHER, {}) as { CustomKeyStores: unknown[] }).CustomKeyStores).toEqual([]);
  });

  it("refuses a missing cluster, a wrong trust anchor, a cluster not active or in fewer than two zones", () => {
    const s = setup({ kmsuser: false });
    expect(kmsError(() => s.stores.create(ACCOUNT, s.createInput({ CloudHsmClusterId: "cluster-000000000000" }))).code).toBe("CloudHsmClusterNotFoundException");
    const otherAnchor = simTrustAnchorPem(bareWorld({ seed: "another" }));
    expect(kmsError(() => s.stores.create(ACCOUNT, s.createInput({ TrustAnchorCertificate: otherAnchor }))).code).toBe("IncorrectTrustAnchorException");
    expect(kmsError(() => s.stores.create(ACCOUNT, s.createInput({ TrustAnchorCertificate: "not a certificate" }))).code).toBe("IncorrectTrustAnchorException");

    const bare = bareWorld({ seed: "uninitialized" });
    const u = setup({ world: bare, kmsuser: false });
    expect(kmsError(() => u.stores.create(ACCOUNT, u.createInput())).code).toBe("CloudHsmClusterNotActiveException");

    const oneZone = setup({ world: activeWorld({ seed: "one-zone", cluster: { availabilityZones: ["az-a"] } }), kmsuser: false });
    expect(kmsError(() => oneZone.stores.create(ACCOUNT, oneZone.createInput())).code).toBe("CloudHsmClusterInvalidConfigurationException");
  });

  it("DescribeCustomKeyStores pages with Limit and Marker, and filters by name", () => {
    const s = setup({ kmsuser: false });
    const a = s.stores.create(ACCOUNT, s.createInput()).CustomKeyStoreId;
    const first = s.stores.describe(ACCOUNT, { Limit: 1 }) as { CustomKeyStores: { CustomKeyStoreId: string }[]; Truncated: boolean; NextMarker?: string };
    expect(first.CustomKeyStores.map((x) => x.CustomKeyStoreId)).toEqual([a]);
    expect(first.Truncated).toBe(false);
    expect(kmsError(() => s.stores.describe(ACCOUNT, { Limit: 0 })).code).toBe("ValidationException");
    expect(kmsError(() => s.stores.describe(ACCOUNT, { Marker: "bogus" })).code).toBe("InvalidMarkerException");
    expect(kmsError(() => s.stores.describe(ACCOUNT, { CustomKeyStoreName: "nope" })).code).toBe("CustomKeyStoreNotFoundException");
    expect((s.stores.describe(ACCOUNT, { CustomKeyStoreName: "ExampleKeyStore" }) as { CustomKeyStores: unknown[] }).CustomKeyStores).toHaveLength(1);
  });
});

describe("connecting", () => {
  it("goes CONNECTING at once, then CONNECTED, rotating kmsuser's password as AWS KMS does", async () => {
    const s = setup();
    const { CustomKeyStoreId: id } = s.stores.create(ACCOUNT, s.createInput());
    s.stores.connect(ACCOUNT, id);
    expect(s.stores.connectionState(id)).toBe("CONNECTING");
    s.stores.connect(ACCOUNT, id); // again while connecting: no error
    await s.stores.settled(id);
    expect(s.stores.connectionState(id)).toBe("CONNECTED");
    expect(s.store.history.filter((h) => h.id === id).map((h) => h.state)).toEqual(["DISCONNECTED", "CONNECTING", "CONNECTED"]);
    const rotated = s.currentPassword(id);
    expect(rotated).not.toBe(KMSUSER_PASSWORD);
    expect(rotated).toHaveLength(32);
    // The old password no longer logs in; the new one does.
    const probe = s.world.connect("probe");
    expect(() => probe.login("kmsuser", KMSUSER_PASSWORD)).toThrow(expect.objectContaining({ code: C.CKR_PIN_INCORRECT }));
    probe.login("kmsuser", rotated).close();
    s.stores.connect(ACCOUNT, id); // connected: no error, no change
    expect(s.stores.connectionState(id)).toBe("CONNECTED");

    await s.stores.disconnect(ACCOUNT, id);
    expect(s.stores.connectionState(id)).toBe("DISCONNECTED");
    expect((await kmsErrorAsync(s.stores.disconnect(ACCOUNT, id))).code).toBe("CustomKeyStoreInvalidStateException");
    // Reconnecting works with the rotated password KMS stored.
    s.stores.connect(ACCOUNT, id);
    await s.stores.settled(id);
    expect(s.stores.connectionState(id)).toBe("CONNECTED");
    await s.stores.close();
  });

  it("five wrong kmsuser passwords: INVALID_CREDENTIALS each (counted by the HSM), then USER_LOCKED_OUT even with the right one", async () => {
    const s = setup();
    const { CustomKeyStoreId: id } = s.stores.create(ACCOUNT, s.createInput({ KeyStorePassword: "wrong-password" }));
    // Lockout counters are per HSM (AWS: with several HSMs a user may get more tries): one HSM
    // answering makes the count exact, as AWS advises for testing it.
    const [only, ...others] = s.world.cluster.describe();
    for (const h of others) s.world.cluster.crashHsm(h.hsmId);
    for (let attempt = 1; attempt <= 5; attempt++) {
      s.stores.connect(ACCOUNT, id);
      await s.stores.settled(id);
      expect(s.stores.connectionState(id)).toBe("FAILED");
      expect(errorCode(s, id)).toBe("INVALID_CREDENTIALS");
      // Connecting from FAILED without disconnecting first is refused.
      expect(kmsError(() => s.stores.connect(ACCOUNT, id)).code).toBe("CustomKeyStoreInvalidStateException");
      await s.stores.disconnect(ACCOUNT, id);
      expect(errorCode(s, id)).toBeUndefined();
    }
    const audit = s.world.cluster.node(only.hsmId)!.hsm.auditLog().filter((e) => e.operation === "LOGIN" && e.actor === "kmsuser");
    expect(audit.map((e) => e.result)).toEqual(Array(5).fill("LOGIN_FAILED"));
    s.stores.update(ACCOUNT, { CustomKeyStoreId: id, KeyStorePassword: KMSUSER_PASSWORD });
    s.stores.connect(ACCOUNT, id);
    await s.stores.settled(id);
    expect(s.stores.connectionState(id)).toBe("FAILED");
    expect(errorCode(s, id)).toBe("USER_LOCKED_OUT");
    expect(s.store.history.filter((h) => h.id === id && h.state === "FAILED").map((h) => h.code)).toEqual([...Array(5).fill("INVALID_CREDENTIALS"), "USER_LOCKED_OUT"]);
  });

  it("a cluster without kmsuser answers as a wrong password does (the HSM hides which users exist): INVALID_CREDENTIALS", async () => {
    const s = setup({ kmsuser: false });
    const { CustomKeyStoreId: id } = s.stores.create(ACCOUNT, s.createInput());
    s.stores.connect(ACCOUNT, id);
    await s.stores.settled(id);
    expect(s.stores.connectionState(id)).toBe("FAILED");
    expect(errorCode(s, id)).toBe("INVALID_CREDENTIALS");
  });

  it("HSMs killed: NETWORK_ERRORS while the control plane still lists them, INSUFFICIENT_CLOUDHSM_HSMS once it has seen them fail", async () => {
    const s = setup();
    const { CustomKeyStoreId: id } = s.stores.create(ACCOUNT, s.createInput());
    for (const h of s.world.cluster.describe()) s.world.cluster.crashHsm(h.hsmId);
    s.stores.connect(ACCOUNT, id);
    await s.stores.settled(id);
    expect(s.stores.connectionState(id)).toBe("FAILED");
    expect(errorCode(s, id)).toBe("NETWORK_ERRORS");
    await s.stores.disconnect(ACCOUNT, id);
    s.world.run(6_000_000); // the control plane's health check
    expect(s.world.cluster.describe().every((h) => h.state === "DEGRADED")).toBe(true);
    s.stores.connect(ACCOUNT, id);
    await s.stores.settled(id);
    expect(errorCode(s, id)).toBe("INSUFFICIENT_CLOUDHSM_HSMS");
    await s.stores.disconnect(ACCOUNT, id);
    // Back: connects again.
    for (const h of s.world.cluster.describe()) s.world.cluster.restartHsm(h.hsmId);
    s.stores.connect(ACCOUNT, id);
    await s.stores.settled(id);
    expect(s.stores.connectionState(id)).toBe("CONNECTED");
    await s.stores.close();
  });

  it("Update and Delete only when disconnected (the name may change while connected); another account's store is not found", async () => {
    const s = setup();
    const id = await connected(s);
    expect(kmsError(() => s.stores.update(ACCOUNT, { CustomKeyStoreId: id, KeyStorePassword: "another-pass" })).code).toBe("CustomKeyStoreInvalidStateException");
    expect(kmsError(() => s.stores.delete(ACCOUNT, id, 0)).code).toBe("CustomKeyStoreInvalidStateException");
    s.stores.update(ACCOUNT, { CustomKeyStoreId: id, NewCustomKeyStoreName: "Renamed" });
    expect(s.store.rows.get(id)!.name).toBe("Renamed");
    expect(kmsError(() => s.stores.connect(OTHER, id)).code).toBe("CustomKeyStoreNotFoundException");
    expect((await kmsErrorAsync(s.stores.disconnect(OTHER, id))).code).toBe("CustomKeyStoreNotFoundException");
    expect(kmsError(() => s.stores.update(OTHER, { CustomKeyStoreId: id, NewCustomKeyStoreName: "Mine" })).code).toBe("CustomKeyStoreNotFoundException");
    expect(kmsError(() => s.stores.delete(OTHER, id, 0)).code).toBe("CustomKeyStoreNotFoundException");
    await s.stores.disconnect(ACCOUNT, id);
    expect(kmsError(() => s.stores.delete(ACCOUNT, id, 1)).code).toBe("CustomKeyStoreHasCMKsException");
    s.stores.delete(ACCOUNT, id, 0);
    expect(s.stores.accountOf(id)).toBeNull();
    expect(kmsError(() => s.stores.connectionState(id)).code).toBe("CustomKeyStoreNotFoundException");
  });

  it("UpdateCustomKeyStore to another cluster needs one of the same backup lineage", () => {
    const world = activeWorld({ seed: "related" });
    const s = setup({
      world,
      directory: (w) => {
        const real = simClusterDirectory(w);
        // Two more clusters as a directory would list them: one restored from this one's backups, one unrelated.
        return {
          describe: (clusterId: string) => {
            const base = real.describe(w.cluster.clusterId)!;
            if (clusterId === "cluster-aaaaaaaaaaaa") return { ...base, clusterId };
            if (clusterId === "cluster-bbbbbbbbbbbb") return { ...base, clusterId, lineageId: "lineage-000000000000" };
            return real.describe(clusterId);
          },
          open: (clusterId: string) => real.open(clusterId),
        };
      },
    });
    const { CustomKeyStoreId: id } = s.stores.create(ACCOUNT, s.createInput());
    expect(kmsError(() => s.stores.update(ACCOUNT, { CustomKeyStoreId: id, CloudHsmClusterId: "cluster-bbbbbbbbbbbb" })).code).toBe("CloudHsmClusterNotRelatedException");
    expect(kmsError(() => s.stores.update(ACCOUNT, { CustomKeyStoreId: id, CloudHsmClusterId: "cluster-cccccccccccc" })).code).toBe("CloudHsmClusterNotFoundException");
    s.stores.update(ACCOUNT, { CustomKeyStoreId: id, CloudHsmClusterId: "cluster-aaaaaaaaaaaa" });
    expect(s.store.rows.get(id)!.cloudHsmClusterId).toBe("cluster-aaaaaaaaaaaa");
    // A related cluster counts as in use for another store.
    expect(kmsError(() => s.stores.create(ACCOUNT, s.createInput({ CustomKeyStoreName: "Second" }))).code).toBe("CloudHsmClusterInUseException");
  });

  it("resume() reconnects the stores recorded CONNECTED", async () => {
    const s = setup();
    const id = await connected(s);
    await s.stores.close();
    expect(s.store.rows.get(id)!.connectionState).toBe("CONNECTED");
    const again = new CustomKeyStores({ store: s.store, fleet: s.fleet, directory: simClusterDirectory(s.world), nowMs: () => 0, randomBytes: counterBytes() });
    again.resume();
    expect(again.connectionState(id)).toBe("CONNECTING");
    await again.settled(id);
    expect(again.connectionState(id)).toBe("CONNECTED");
    const r = await again.random(id, 16);
    expect(r).toHaveLength(16);
    await again.close();
  });
});

describe("keys in the cluster", () => {
  it("a backing key is kmsuser's non-extractable AES-256 token key labelled with the ARN; AES-GCM round trips in the HSMs", async () => {
    const s = setup();
    const id = await connected(s);
    const n = notes();
    const backing = await s.stores.createBackingKey(id, ARN, n);
    expect(backing).toMatch(/^[0-9]+$/);
    expect(n.additionalEventData).toEqual({ customKeyStoreId: id, clusterId: s.world.cluster.clusterId, backingKeyId: backing, hsmKeyIds: [Number(backing)] });
    expect(s.world.connect("co2").console(CO.username, CO.password).describeKey(Number(backing)).owner).toBe("kmsuser");
    // The HSMs' audit logs name kmsuser as the user who made it (the others log its replication, by no user).
    const made = s.world.cluster.liveNodes().flatMap((node) => node.hsm.auditLog()).filter((e) => e.keys.includes(Number(backing)));
    expect(new Set(made.map((e) => e.actor).filter((a) => a !== null))).toEqual(new Set(["kmsuser"]));
    const session = s.world.connect("inspect").login("kmsuser", s.currentPassword(id));
    const [label, extractable, token, valueLen] = session.pkcs11.C_GetAttributeValue(session.session, keyHandle(Number(backing)),
      [{ type: C.CKA_LABEL }, { type: C.CKA_EXTRACTABLE }, { type: C.CKA_TOKEN }, { type: C.CKA_VALUE_LEN }]);
    expect(String(label.value)).toBe(ARN);
    expect(Buffer.from(extractable.value as Buffer)[0]).toBe(0);
    expect(Buffer.from(token.value as Buffer)[0]).toBe(1);
    expect(Buffer.from(valueLen.value as Buffer).readUInt32LE(0)).toBe(32);

    const aad = Buffer.from("context");
    const plaintext = Buffer.from("the data key, say");
    const { iv, ciphertext } = await s.stores.encrypt(id, backing, plaintext, aad, notes());
    expect(iv).toHaveLength(12);
    expect(ciphertext).toHaveLength(plaintext.length + 16);
    const second = await s.stores.encrypt(id, backing, plaintext, aad, notes());
    expect(second.iv.equals(iv)).toBe(false);
    expect(await s.stores.decrypt(id, backing, iv, ciphertext, aad, notes())).toEqual(plaintext);
    const flipped = Buffer.from(ciphertext);
    flipped[0] ^= 1;
    expect((await kmsErrorAsync(s.stores.decrypt(id, backing, iv, flipped, aad, notes()))).code).toBe("InvalidCiphertextException");
    expect((await kmsErrorAsync(s.stores.decrypt(id, backing, iv, ciphertext, Buffer.from("other"), notes()))).code).toBe("InvalidCiphertextException");
    expect((await kmsErrorAsync(s.stores.decrypt(id, backing, iv.subarray(1), ciphertext, aad, notes()))).code).toBe("InvalidCiphertextException");

    // Deleted in the cluster by kmsuser's own session: operations fail with KMSInvalidStateException, the store stays connected.
    session.deleteKey({ handle: keyHandle(Number(backing)), id: Number(backing), label: ARN });
    s.world.run(1_000_000);
    const gone = await kmsErrorAsync(s.stores.encrypt(id, backing, plaintext, aad, notes()));
    expect(gone.code).toBe("KMSInvalidStateException");
    expect(gone.message).toContain("key material");
    expect((await kmsErrorAsync(s.stores.decrypt(id, backing, iv, ciphertext, aad, notes()))).code).toBe("KMSInvalidStateException");
    expect(s.stores.connectionState(id)).toBe("CONNECTED");
    expect(await s.stores.destroyBackingKey(id, backing)).toBe(false);
    await s.stores.close();
  });

  it("the cluster failing mid-use gives KMSInvalidStateException and the store stays CONNECTED; one HSM left refuses a new backing key", async () => {
    const s = setup();
    const id = await connected(s);
    const backing = await s.stores.createBackingKey(id, ARN, notes());
    const hsms = s.world.cluster.describe();
    for (const h of hsms) s.world.cluster.crashHsm(h.hsmId);
    expect((await kmsErrorAsync(s.stores.encrypt(id, backing, Buffer.from("x"), Buffer.alloc(0), notes()))).code).toBe("KMSInvalidStateException");
    expect(s.stores.connectionState(id)).toBe("CONNECTED");
    // Two HSMs back (the cluster wants a key on two before it is used): the same connection serves again.
    s.world.cluster.restartHsm(hsms[0].hsmId);
    s.world.cluster.restartHsm(hsms[1].hsmId);
    s.world.run(6_000_000);
    const sealed = await s.stores.encrypt(id, backing, Buffer.from("x"), Buffer.alloc(0), notes());
    expect(await s.stores.decrypt(id, backing, sealed.iv, sealed.ciphertext, Buffer.alloc(0), notes())).toEqual(Buffer.from("x"));
    // One active HSM in one zone: CreateKey's backing key is refused, as AWS documents.
    s.world.cluster.crashHsm(hsms[1].hsmId);
    s.world.run(6_000_000);
    expect((await kmsErrorAsync(s.stores.createBackingKey(id, ARN, notes()))).code).toBe("CloudHsmClusterInvalidConfigurationException");
    s.world.cluster.restartHsm(hsms[1].hsmId);
    s.world.run(6_000_000);
    expect(await s.stores.createBackingKey(id, `${ARN}-2`, notes())).toMatch(/^[0-9]+$/);
    expect(await s.stores.destroyBackingKey(id, backing)).toBe(true);
    await s.stores.close();
  });

  it("a disconnected store's keys are unavailable: crypto KMSInvalidStateException, key creation CustomKeyStoreInvalidStateException", async () => {
    const s = setup();
    const { CustomKeyStoreId: id } = s.stores.create(ACCOUNT, s.createInput());
    expect((await kmsErrorAsync(s.stores.encrypt(id, "1", Buffer.from("x"), Buffer.alloc(0), notes()))).code).toBe("KMSInvalidStateException");
    expect((await kmsErrorAsync(s.stores.createBackingKey(id, ARN, notes()))).code).toBe("CustomKeyStoreInvalidStateException");
    expect((await kmsErrorAsync(s.stores.random(id, 8))).code).toBe("CustomKeyStoreInvalidStateException");
    expect(await s.stores.destroyBackingKey(id, "1")).toBe(false);
  });
});

describe("the store's rate", () => {
  it("1,800 requests a second, counted before any cluster work, on the injected clock", async () => {
    const s = setup({ kmsuser: false });
    const { CustomKeyStoreId: id } = s.stores.create(ACCOUNT, s.createInput());
    const codes = new Map<string, number>();
    for (let i = 0; i < 1_801; i++) {
      const code = (await kmsErrorAsync(s.stores.encrypt(id, "1", Buffer.from("x"), Buffer.alloc(0), notes()))).code;
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    // The disconnected store answers each of the first 1,800; the 1,801st is throttled before that check.
    expect(Object.fromEntries(codes)).toEqual({ KMSInvalidStateException: 1_800, ThrottlingException: 1 });
    s.clock.advance(1); // 1.8 tokens
    expect((await kmsErrorAsync(s.stores.random(id, 8))).code).toBe("CustomKeyStoreInvalidStateException");
    expect((await kmsErrorAsync(s.stores.random(id, 8))).code).toBe("ThrottlingException");
    s.clock.advance(1_000);
    expect((await kmsErrorAsync(s.stores.random(id, 8))).code).toBe("CustomKeyStoreInvalidStateException");
  });

  it("throttles a connected store's operations with ThrottlingException, other stores unaffected", async () => {
    const s = setup({ requestsPerSecond: 3 });
    const id = await connected(s);
    for (let i = 0; i < 3; i++) expect(await s.stores.random(id, 4)).toHaveLength(4);
    expect((await kmsErrorAsync(s.stores.random(id, 4))).code).toBe("ThrottlingException");
    s.clock.advance(400);
    expect(await s.stores.random(id, 4)).toHaveLength(4);
    await s.stores.close();
  });
});
