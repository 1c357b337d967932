// Custom key stores attacked: an editor of KMS's data moving a sealed kmsuser password between
// stores, hostile request members, another account, a disconnect racing a connect, and code in
// the process looking for the cluster connection or the password.
import { describe, expect, it } from "vitest";

import { type ClusterDirectory, DEFAULT_CLUSTER_ACCOUNT_ID, simClusterDirectory, simTrustAnchorPem } from "../../src/kms/cluster-directory.js";
import { decodePasswords } from "../../src/kms/cks-password.js";
import { CustomKeyStores } from "../../src/kms/custom-key-stores.js";
import { KmsError } from "../../src/kms/errors.js";
import { CO, activeWorld } from "../cluster/fixture.js";
import { counterBytes, fakeFleet, fakeStore, notes } from "../kms/cks-fakes.js";

const ACCOUNT = "111122223333";
const OTHER = "444455556666";
const PASSWORD = "kmsuser-pass-1";

function setup(options: { clusterAccountId?: string } = {}) {
  const world = activeWorld({ seed: "cks-attacks" });
  world.connect("co").console(CO.username, CO.password).createUser("kmsuser", "CU", PASSWORD);
  const store = fakeStore();
  const fleet = fakeFleet();
  const stores = new CustomKeyStores({ store, fleet, directory: simClusterDirectory(world, { accountId: options.clusterAccountId }), nowMs: () => 0, randomBytes: counterBytes() });
  const input = { CustomKeyStoreName: "Store", CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world), KeyStorePassword: PASSWORD };
  return { world, store, fleet, stores, input };
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

function kmsuserLogins(world: ReturnType<typeof activeWorld>): number {
  return world.cluster.liveNodes().flatMap((n) => n.hsm.auditLog()).filter((e) => e.operation === "LOGIN" && e.actor === "kmsuser").length;
}

describe("custom key stores under attack", () => {
  it("a sealed password moved from another store's row does not open: FAILED, and no login reaches the HSMs (nothing counts toward the lockout)", async () => {
    const s = setup();
    const { CustomKeyStoreId: id } = s.stores.create(ACCOUNT, s.input);
    const row = s.store.rows.get(id)!;
    // Sealed by the same fleet, for another store: what an editor of the database could copy in.
    row.sealedPassword = s.fleet.seal(Buffer.from(PASSWORD), "kms/custom-key-store/cks-00000000000000001/kmsuser-password");
    s.stores.connect(ACCOUNT, id);
    await s.stores.settled(id);
    expect(s.stores.connectionState(id)).toBe("FAILED");
    expect(kmsuserLogins(s.world)).toBe(0);
  });

  it("hostile members get a KmsError naming the member, never a raw error, and never echo a password", () => {
    const s = setup();
    const hostile: unknown[] = [null, 0, -1, 1e308, Number.NaN, true, [], [PASSWORD], {}, { toString: () => PASSWORD }, "", "x".repeat(100_000), "\u0000", Buffer.from("x")];
    const members = ["CustomKeyStoreName", "CloudHsmClusterId", "TrustAnchorCertificate", "KeyStorePassword", "CustomKeyStoreType"];
    let checked = 0;
    for (const member of members) {
      for (const value of hostile) {
        try {
          s.stores.create(ACCOUNT, { ...s.input, [member]: value });
          continue; // some values are acceptable for some members (an empty type is not; a name of one NUL is)
        } catch (e) {
          expect(e).toBeInstanceOf(KmsError);
          expect((e as KmsError).message).not.toContain(PASSWORD);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(50);
    const proto = JSON.parse(`{"CustomKeyStoreId": "cks-1", "__proto__": {"KeyStorePassword": "polluted"}}`) as Record<string, unknown>;
    expect(() => s.stores.update(ACCOUNT, proto)).toThrow(expect.objectContaining({ code: "CustomKeyStoreNotFoundException" }));
    for (const bad of [null, undefined, 5, "x".repeat(65), {}]) {
      expect(() => s.stores.connect(ACCOUNT, bad as string)).toThrow(KmsError);
      expect(() => s.stores.delete(ACCOUNT, bad as string, 0)).toThrow(KmsError);
    }
    for (const limit of ["5", 1.5, -3, 1e9, {}]) expect(() => s.stores.describe(ACCOUNT, { Limit: limit })).toThrow(KmsError);
  });

  it("another account can neither see, connect, disconnect, update nor delete a store, and learns nothing from trying", async () => {
    const s = setup();
    const { CustomKeyStoreId: id } = s.stores.create(ACCOUNT, s.input);
    const missing = (() => {
      try {
        s.stores.connect(OTHER, "cks-ffffffffffffffff0");
      } catch (e) {
        return (e as KmsError).code;
      }
    })();
    for (const attempt of [() => s.stores.connect(OTHER, id), () => s.stores.update(OTHER, { CustomKeyStoreId: id, KeyStorePassword: "attacker1" }),
      () => s.stores.delete(OTHER, id, 0), () => s.stores.describe(OTHER, { CustomKeyStoreId: id })]) {
      expect(attempt).toThrow(expect.objectContaining({ code: missing }));
    }
    await expect(s.stores.disconnect(OTHER, id)).rejects.toMatchObject({ code: missing });
    expect(s.store.rows.get(id)!.connectionState).toBe("DISCONNECTED");
    expect(decodePasswords(s.fleet.unseal(s.store.rows.get(id)!.sealedPassword, `kms/custom-key-store/${id}/kmsuser-password`)).current).toBe(PASSWORD);
  });

  it("a disconnect racing a connect ends DISCONNECTED with the connection closed (no store left half connected)", async () => {
    const s = setup();
    const { CustomKeyStoreId: id } = s.stores.create(ACCOUNT, s.input);
    s.stores.connect(ACCOUNT, id);
    await s.stores.disconnect(ACCOUNT, id);
    await s.stores.settled(id);
    expect(s.stores.connectionState(id)).toBe("DISCONNECTED");
    await expect(s.stores.random(id, 8)).rejects.toMatchObject({ code: "CustomKeyStoreInvalidStateException" });
    expect(s.store.history.filter((h) => h.id === id).map((h) => h.state)).toEqual(["DISCONNECTED", "CONNECTING", "DISCONNECTING", "DISCONNECTED"]);
  });

  it("nothing in the process reaches the cluster connection or the password through the store object", async () => {
    const s = setup();
    const { CustomKeyStoreId: id } = s.stores.create(ACCOUNT, s.input);
    s.stores.connect(ACCOUNT, id);
    await s.stores.settled(id);
    const n = notes();
    await s.stores.createBackingKey(id, "arn:aws:kms:us-east-1:111122223333:key/k", n);
    expect(Object.keys(s.stores)).toEqual([]);
    expect(Object.getOwnPropertyNames(s.stores)).toEqual([]);
    expect(Object.isFrozen(CustomKeyStores.prototype)).toBe(true);
    const rotated = decodePasswords(s.fleet.unseal(s.store.rows.get(id)!.sealedPassword, `kms/custom-key-store/${id}/kmsuser-password`)).current;
    const visible = JSON.stringify([n, s.stores.describe(ACCOUNT, {})]);
    expect(visible).not.toContain(rotated);
    expect(visible).not.toContain(PASSWORD);
    await s.stores.close();
  });

  it("another account's cluster is not found: it can neither claim it nor lock kmsuser out, and the refusal is a missing cluster's", () => {
    const s = setup();
    expect(simClusterDirectory(s.world).describe(s.world.cluster.clusterId)!.accountId).toBe(DEFAULT_CLUSTER_ACCOUNT_ID);
    const refusal = (accountId: string, clusterId: string) => {
      try {
        s.stores.create(accountId, { ...s.input, CloudHsmClusterId: clusterId });
      } catch (e) {
        expect(e).toBeInstanceOf(KmsError);
        return { code: (e as KmsError).code, message: (e as KmsError).message.replace(clusterId, "ID") };
      }
      throw new Error("created");
    };
    // The attacker has the trust anchor (a public certificate) and makes up a password.
    expect(refusal(OTHER, s.world.cluster.clusterId)).toEqual(refusal(OTHER, "cluster-ffffffffffff"));
    expect(refusal(OTHER, s.world.cluster.clusterId).code).toBe("CloudHsmClusterNotFoundException");
    expect(s.store.rows.size).toBe(0);
    expect(kmsuserLogins(s.world)).toBe(0);
    // The owner still can.
    expect(s.stores.create(ACCOUNT, s.input).CustomKeyStoreId).toMatch(/^cks-/);
  });

  it("a directory's accountId names the owner; a store whose cluster is not its account's neither connects nor resumes, and no login reaches the HSMs", async () => {
    expect(() => simClusterDirectory(activeWorld({ seed: "bad-account" }), { accountId: "12345" })).toThrow(RangeError);
    const s = setup({ clusterAccountId: OTHER });
    expect(kmsError(() => s.stores.create(ACCOUNT, s.input)).code).toBe("CloudHsmClusterNotFoundException");
    const id = s.stores.create(OTHER, s.input).CustomKeyStoreId;
    // The row, as an older KMS that did not check the owner may have left it: another account's store over this cluster.
    s.store.rows.get(id)!.accountId = ACCOUNT;
    expect(kmsError(() => s.stores.connect(ACCOUNT, id)).code).toBe("CloudHsmClusterNotFoundException");
    s.store.rows.get(id)!.connectionState = "CONNECTED";
    const resumed = new CustomKeyStores({ store: s.store, fleet: s.fleet, directory: simClusterDirectory(s.world, { accountId: OTHER }), nowMs: () => 0, randomBytes: counterBytes() });
    resumed.resume();
    await resumed.settled(id);
    expect(s.store.rows.get(id)!).toMatchObject({ connectionState: "FAILED", connectionErrorCode: "CLUSTER_NOT_FOUND" });
    expect(kmsuserLogins(s.world)).toBe(0);
  });

  it("UpdateCustomKeyStore cannot move a store onto another account's cluster, even one of the same lineage", () => {
    const world = activeWorld({ seed: "cks-update-account" });
    const real = simClusterDirectory(world);
    // A related cluster (restored from this one's backups) that belongs to another account.
    const directory: ClusterDirectory = {
      describe: (clusterId) => (clusterId === "cluster-aaaaaaaaaaaa" ? { ...real.describe(world.cluster.clusterId)!, clusterId, accountId: OTHER } : real.describe(clusterId)),
      open: (clusterId) => real.open(clusterId),
    };
    const stores = new CustomKeyStores({ store: fakeStore(), fleet: fakeFleet(), directory, nowMs: () => 0, randomBytes: counterBytes() });
    const { CustomKeyStoreId: id } = stores.create(ACCOUNT, { CustomKeyStoreName: "Store", CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world), KeyStorePassword: PASSWORD });
    expect(kmsError(() => stores.update(ACCOUNT, { CustomKeyStoreId: id, CloudHsmClusterId: "cluster-aaaaaaaaaaaa" })).code).toBe("CloudHsmClusterNotFoundException");
  });

  it("who cannot show the cluster's trust anchor learns nothing of whether it is in use", () => {
    const s = setup();
    s.stores.create(ACCOUNT, s.input);
    const second = { ...s.input, CustomKeyStoreName: "Second" };
    expect(kmsError(() => s.stores.create(ACCOUNT, { ...second, TrustAnchorCertificate: simTrustAnchorPem(activeWorld({ seed: "elsewhere" })) })).code).toBe("IncorrectTrustAnchorException");
    expect(kmsError(() => s.stores.create(ACCOUNT, second)).code).toBe("CloudHsmClusterInUseException");
  });
});
