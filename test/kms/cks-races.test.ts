// kmsuser's password rotation when the process stops or a disconnection lands in the middle of
// it, passwords sealed in the first format, and key operations in flight when their store is
// disconnected: kmsuser's password is never lost, and no raw error becomes a 500.
import { describe, expect, it } from "vitest";

import { ClientError } from "../../src/client/errors.js";
import { ClusterLinkClosedError, keyOperationError } from "../../src/kms/cks-errors.js";
import { CksLink, type LinkConnection } from "../../src/kms/cks-link.js";
import { type KmsuserPasswords, decodePasswords, encodePasswords } from "../../src/kms/cks-password.js";
import { type ClusterDirectory, simClusterDirectory, simTrustAnchorPem } from "../../src/kms/cluster-directory.js";
import { CustomKeyStores } from "../../src/kms/custom-key-stores.js";
import { KmsError } from "../../src/kms/errors.js";
import type { CustomKeyStoreRecord } from "../../src/kms/types.js";
import * as C from "../../src/pkcs11/constants.js";
import { Pkcs11Error } from "../../src/pkcs11/errors.js";
import type { World } from "../../src/sim/world.js";
import { CO, activeWorld } from "../cluster/fixture.js";
import { counterBytes, fakeFleet, fakeStore, notes } from "./cks-fakes.js";

const ACCOUNT = "111122223333";
const PASSWORD = "kmsuser-pass-1";
const ARN = "arn:aws:kms:us-east-1:111122223333:key/0b1e0c2a-1111-4222-8333-944455556666";

type LinkClass = new (connection: LinkConnection, options: { blocking: boolean }) => CksLink;

let linksOpened = 0;
/** The world's cluster, its connections made with `Link` (a CksLink with hooks). */
function directoryWith(world: World, Link: LinkClass): ClusterDirectory {
  const sim = simClusterDirectory(world);
  return {
    describe: (id) => sim.describe(id),
    open: async () => new Link(world.connect(`races-${++linksOpened}`) as unknown as LinkConnection, { blocking: true }),
  };
}

function setup(world: World = activeWorld({ seed: "cks-races" })) {
  world.connect("co").console(CO.username, CO.password).createUser("kmsuser", "CU", PASSWORD);
  const store = fakeStore();
  const fleet = fakeFleet();
  const purpose = (id: string) => `kms/custom-key-store/${id}/kmsuser-password`;
  const storesOver = (directory: ClusterDirectory, over = store) => new CustomKeyStores({ store: over, fleet, directory, nowMs: () => 0, randomBytes: counterBytes() });
  const input = { CustomKeyStoreName: "Store", CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world), KeyStorePassword: PASSWORD };
  const passwords = (row: CustomKeyStoreRecord): KmsuserPasswords => decodePasswords(fleet.unseal(row.sealedPassword, purpose(row.customKeyStoreId)));
  const seal = (id: string, passwords: KmsuserPasswords) => fleet.seal(encodePasswords(passwords), purpose(id));
  /** True when `password` logs kmsuser in now (a probe from outside KMS). */
  const logsIn = (password: string) => {
    try {
      world.connect(`probe-${++linksOpened}`).login("kmsuser", password).close();
      return true;
    } catch {
      return false;
    }
  };
  const failedLogins = () => world.cluster.liveNodes().flatMap((n) => n.hsm.auditLog()).filter((e) => e.operation === "LOGIN" && e.actor === "kmsuser" && e.result === "LOGIN_FAILED").length;
  return { world, store, fleet, storesOver, input, passwords, seal, logsIn, failedLogins };
}

/** A copy of the store's rows as they are now: what a process that stopped at this instant leaves behind. */
function snapshot(store: ReturnType<typeof fakeStore>): ReturnType<typeof fakeStore> {
  const copy = fakeStore();
  for (const row of store.rows.values()) copy.rows.set(row.customKeyStoreId, { ...row, sealedPassword: Buffer.from(row.sealedPassword) });
  return copy;
}

describe("kmsuser's password rotation, stopped halfway", () => {
  it("the process stops after recording the next password, before changing it in the cluster: the next start connects with the current one", async () => {
    const s = setup();
    let stoppedAt: ReturnType<typeof fakeStore> | null = null;
    const store = s.store;
    class StopsBeforeChange extends CksLink {
      override changeOwnPassword(username: string, oldPassword: string, newPassword: string): void {
        if (stoppedAt === null) {
          stoppedAt = snapshot(store);
          throw new Error("the process stopped here"); // the cluster never sees the change
        }
        super.changeOwnPassword(username, oldPassword, newPassword);
      }
    }
    const first = s.storesOver(directoryWith(s.world, StopsBeforeChange));
    const { CustomKeyStoreId: id } = first.create(ACCOUNT, s.input);
    first.connect(ACCOUNT, id);
    await first.settled(id);
    await first.close();
    // What was on disk when it stopped: the next password recorded beside the current one, the cluster unchanged.
    const left = s.passwords(stoppedAt!.rows.get(id)!);
    expect(left.current).toBe(PASSWORD);
    expect(left.next).toHaveLength(32);
    expect(s.logsIn(PASSWORD)).toBe(true);
    expect(s.logsIn(left.next!)).toBe(false);

    const restarted = s.storesOver(simClusterDirectory(s.world), stoppedAt!);
    restarted.resume();
    await restarted.settled(id);
    expect(restarted.connectionState(id)).toBe("CONNECTED");
    const now = s.passwords(stoppedAt!.rows.get(id)!);
    expect(now.next).toBeUndefined();
    expect([PASSWORD, left.next]).not.toContain(now.current);
    await restarted.close();
    expect(s.logsIn(now.current)).toBe(true);
  });

  it("the process stops after the cluster changed the password, before recording it: the next start logs in with the recorded next one", async () => {
    const s = setup();
    let stoppedAt: ReturnType<typeof fakeStore> | null = null;
    const store = s.store;
    class StopsAfterChange extends CksLink {
      override changeOwnPassword(username: string, oldPassword: string, newPassword: string): void {
        super.changeOwnPassword(username, oldPassword, newPassword);
        stoppedAt ??= snapshot(store);
      }
    }
    const first = s.storesOver(directoryWith(s.world, StopsAfterChange));
    const { CustomKeyStoreId: id } = first.create(ACCOUNT, s.input);
    first.connect(ACCOUNT, id);
    await first.settled(id);
    await first.close();
    const left = s.passwords(stoppedAt!.rows.get(id)!);
    expect(left.current).toBe(PASSWORD);
    expect(s.logsIn(PASSWORD)).toBe(false);
    expect(s.logsIn(left.next!)).toBe(true);
    const failedBefore = s.failedLogins();

    const restarted = s.storesOver(simClusterDirectory(s.world), stoppedAt!);
    restarted.resume();
    await restarted.settled(id);
    expect(restarted.connectionState(id)).toBe("CONNECTED");
    // One refused login (the recorded current password), then the next one: nothing near the lockout.
    expect(s.failedLogins() - failedBefore).toBe(1);
    const now = s.passwords(stoppedAt!.rows.get(id)!);
    expect(now.next).toBeUndefined();
    await restarted.close();
    expect(s.logsIn(now.current)).toBe(true);
  });

  it("a recorded next password that does not log in either fails as INVALID_CREDENTIALS after one try of each", async () => {
    const s = setup();
    const stores = s.storesOver(simClusterDirectory(s.world));
    const { CustomKeyStoreId: id } = stores.create(ACCOUNT, s.input);
    s.store.rows.get(id)!.sealedPassword = s.seal(id, { current: "wrong-current-1", next: "wrong-next-1" });
    stores.connect(ACCOUNT, id);
    await stores.settled(id);
    expect(s.store.rows.get(id)!).toMatchObject({ connectionState: "FAILED", connectionErrorCode: "INVALID_CREDENTIALS" });
    expect(s.failedLogins()).toBe(2);
    // Both stay recorded: nothing was learnt.
    expect(s.passwords(s.store.rows.get(id)!)).toEqual({ current: "wrong-current-1", next: "wrong-next-1" });
  });

  it("a password sealed in the first format (the password alone) still opens: connect, and CreateCustomKeyStore's retry", async () => {
    const s = setup();
    const stores = s.storesOver(simClusterDirectory(s.world));
    const { CustomKeyStoreId: id } = stores.create(ACCOUNT, s.input);
    s.store.rows.get(id)!.sealedPassword = s.fleet.seal(Buffer.from(PASSWORD, "utf8"), `kms/custom-key-store/${id}/kmsuser-password`);
    expect(stores.create(ACCOUNT, s.input).CustomKeyStoreId).toBe(id); // an identical request: a retry, the password compared
    stores.connect(ACCOUNT, id);
    await stores.settled(id);
    expect(stores.connectionState(id)).toBe("CONNECTED");
    expect(s.logsIn(s.passwords(s.store.rows.get(id)!).current)).toBe(true);
    await stores.close();
  });

  it("a sealed record in an unknown format fails the connection (INTERNAL_ERROR) before any login", async () => {
    expect(decodePasswords(Buffer.from("plain-password"))).toEqual({ current: "plain-password" });
    expect(decodePasswords(encodePasswords({ current: "a-password", next: "b-password" }))).toEqual({ current: "a-password", next: "b-password" });
    for (const bad of [Buffer.from([0xff]), Buffer.from([0xff, 2, 0x7b, 0x7d]), Buffer.concat([Buffer.from([0xff, 1]), Buffer.from("[1]")]),
      Buffer.concat([Buffer.from([0xff, 1]), Buffer.from('{"current":""}')]), Buffer.concat([Buffer.from([0xff, 1]), Buffer.from('{"current":"x","next":5}')])]) {
      expect(() => decodePasswords(bad)).toThrow(expect.objectContaining({ code: "KMSInternalException" }));
    }
    const s = setup();
    const stores = s.storesOver(simClusterDirectory(s.world));
    const { CustomKeyStoreId: id } = stores.create(ACCOUNT, s.input);
    s.store.rows.get(id)!.sealedPassword = s.fleet.seal(Buffer.from([0xff, 9]), `kms/custom-key-store/${id}/kmsuser-password`);
    stores.connect(ACCOUNT, id);
    await stores.settled(id);
    expect(s.store.rows.get(id)!).toMatchObject({ connectionState: "FAILED", connectionErrorCode: "INTERNAL_ERROR" });
    const attempts = s.world.cluster.liveNodes().flatMap((n) => n.hsm.auditLog()).filter((e) => e.operation === "LOGIN" && e.actor === "kmsuser");
    expect(attempts).toEqual([]);
  });
});

describe("a disconnection during the rotation", () => {
  it("landing while the new password is fetched: no change is made, the store connects again afterwards", async () => {
    const s = setup();
    let release!: () => void;
    let reached!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const fetching = new Promise<void>((r) => (reached = r));
    let held = false;
    class SlowRandom extends CksLink {
      override async random(length: number): Promise<Buffer> {
        if (!held) {
          held = true;
          reached();
          await gate;
        }
        return super.random(length);
      }
    }
    const stores = s.storesOver(directoryWith(s.world, SlowRandom));
    const { CustomKeyStoreId: id } = stores.create(ACCOUNT, s.input);
    stores.connect(ACCOUNT, id);
    await fetching;
    const disconnecting = stores.disconnect(ACCOUNT, id);
    expect(stores.connectionState(id)).toBe("DISCONNECTING");
    release();
    await disconnecting;
    expect(stores.connectionState(id)).toBe("DISCONNECTED");
    expect(s.passwords(s.store.rows.get(id)!)).toEqual({ current: PASSWORD });
    expect(s.logsIn(PASSWORD)).toBe(true);
    stores.connect(ACCOUNT, id);
    await stores.settled(id);
    expect(stores.connectionState(id)).toBe("CONNECTED");
    await stores.close();
  });

  it("landing once the cluster changed the password: the new one is recorded all the same, the store connects again afterwards", async () => {
    const s = setup();
    let stores!: CustomKeyStores;
    let id = "";
    let disconnecting: Promise<void> | null = null;
    class DisconnectedDuringChange extends CksLink {
      override changeOwnPassword(username: string, oldPassword: string, newPassword: string): void {
        super.changeOwnPassword(username, oldPassword, newPassword);
        // The operator's DisconnectCustomKeyStore arrives right as the cluster answers.
        disconnecting ??= stores.disconnect(ACCOUNT, id);
      }
    }
    stores = s.storesOver(directoryWith(s.world, DisconnectedDuringChange));
    id = stores.create(ACCOUNT, s.input).CustomKeyStoreId;
    stores.connect(ACCOUNT, id);
    await stores.settled(id);
    expect(disconnecting).not.toBeNull();
    await disconnecting;
    expect(stores.connectionState(id)).toBe("DISCONNECTED");
    const recorded = s.passwords(s.store.rows.get(id)!);
    expect(recorded.next).toBeUndefined();
    expect(recorded.current).not.toBe(PASSWORD);
    expect(s.logsIn(recorded.current)).toBe(true);
    expect(s.store.history.filter((h) => h.id === id).map((h) => h.state)).toEqual(["DISCONNECTED", "CONNECTING", "DISCONNECTING", "DISCONNECTED"]);
  });
});

/** A link whose `method` (once armed, when `when` says so of its argument) waits for release() before reaching the cluster. */
function gatedLink(method: "random" | "generateAesKey", when: (arg: unknown) => boolean) {
  let release!: () => void;
  let reached!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const inFlight = new Promise<void>((r) => (reached = r));
  let armed = false;
  class Gated extends CksLink {
    override async random(length: number): Promise<Buffer> {
      if (armed && method === "random" && when(length)) {
        armed = false;
        reached();
        await gate;
      }
      return super.random(length);
    }

    override async generateAesKey(label: string): Promise<number> {
      if (armed && method === "generateAesKey") {
        armed = false;
        reached();
        await gate;
      }
      return super.generateAesKey(label);
    }
  }
  return { Gated, inFlight, release: () => release(), arm: () => void (armed = true) };
}

describe("key operations in flight when their store is disconnected", () => {
  for (const [operation, method, code] of [
    ["encrypt", "random", "KMSInvalidStateException"],
    ["random", "random", "CustomKeyStoreInvalidStateException"],
    ["createBackingKey", "generateAesKey", "CustomKeyStoreInvalidStateException"],
  ] as const) {
    it(`${operation}: ${code} naming the disconnection, as when it was disconnected before`, async () => {
      const s = setup();
      // Encrypt's IVs come 64 at a time (768 bytes): that fetch is the one held.
      const gated = gatedLink(method, (length) => length === 768 || operation === "random");
      const stores = s.storesOver(directoryWith(s.world, gated.Gated));
      const { CustomKeyStoreId: id } = stores.create(ACCOUNT, s.input);
      stores.connect(ACCOUNT, id);
      await stores.settled(id);
      const backing = await stores.createBackingKey(id, ARN, notes());
      gated.arm();
      const call = operation === "encrypt" ? stores.encrypt(id, backing, Buffer.from("x"), Buffer.alloc(0), notes())
        : operation === "random" ? stores.random(id, 8) : stores.createBackingKey(id, `${ARN}-2`, notes());
      const outcome = call.then(() => null, (e: unknown) => e);
      await gated.inFlight;
      await stores.disconnect(ACCOUNT, id);
      gated.release();
      const error = await outcome;
      expect(error).toBeInstanceOf(KmsError);
      expect((error as KmsError).code).toBe(code);
      expect((error as KmsError).message).toContain("disconnected");
      expect((error as KmsError).message).toContain(id);
    });
  }

  it("keyOperationError maps a connection that is gone to KMSInvalidStateException, never KMSInternalException", () => {
    for (const gone of [new ClusterLinkClosedError(), new ClientError("CLOSED", "this connection was closed"), new Pkcs11Error(C.CKR_SESSION_HANDLE_INVALID, "C_Encrypt")]) {
      const mapped = keyOperationError(gone, "encrypt");
      expect(mapped.code).toBe("KMSInvalidStateException");
      expect(mapped.httpStatus).toBe(400);
    }
    expect(keyOperationError(new Error("something else"), "encrypt").code).toBe("KMSInternalException");
  });
});
