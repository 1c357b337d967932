// Custom key stores attacked: an editor of KMS's data moving a sealed kmsuser password between
// stores, hostile request members, another account, a disconnect racing a connect, and code in
// the process looking for the cluster connection or the password.
import { describe, expect, it } from "vitest";

import { simClusterDirectory, simTrustAnchorPem } from "../../src/kms/cluster-directory.js";
import { decodePasswords } from "../../src/kms/cks-password.js";
import { CustomKeyStores } from "../../src/kms/custom-key-stores.js";
import { KmsError } from "../../src/kms/errors.js";
import { CO, activeWorld } from "../cluster/fixture.js";
import { counterBytes, fakeFleet, fakeStore, notes } from "../kms/cks-fakes.js";

const ACCOUNT = "111122223333";
const OTHER = "444455556666";
const PASSWORD = "kmsuser-pass-1";

function setup() {
  const world = activeWorld({ seed: "cks-attacks" });
  world.connect("co").console(CO.username, CO.password).createUser("kmsuser", "CU", PASSWORD);
  const store = fakeStore();
  const fleet = fakeFleet();
  const stores = new CustomKeyStores({ store, fleet, directory: simClusterDirectory(world), nowMs: () => 0, randomBytes: counterBytes() });
  const input = { CustomKeyStoreName: "Store", CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world), KeyStorePassword: PASSWORD };
  return { world, store, fleet, stores, input };
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
});
