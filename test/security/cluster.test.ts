// Attacks on the cluster's promises: a lost message must not wedge a session, session objects
// are visible to their own application only (and always to it), the client's PKCS11 object
// reaches nothing but PKCS#11, and a revoked user's open sessions stop on every HSM.
import { describe, expect, it } from "vitest";

import { internalsOf } from "../../src/hsm/internals.js";
import * as C from "../../src/pkcs11/constants.js";
import { Pkcs11Error } from "../../src/pkcs11/errors.js";
import { ALICE, BOB, CO, activeWorld } from "../cluster/fixture.js";

function rounds(lossRate: number, count: number, seed: string): { failures: string[] } {
  const world = activeWorld({ seed, cluster: { hsmCount: 3 } });
  const session = world.connect("alice").login(ALICE.username, ALICE.password);
  const key = session.generateAesKey({ label: "k" });
  const pair = session.generateEcKeyPair({ label: "p" });
  world.run(500_000);
  world.network.setFaults({ lossRate });
  const failures: string[] = [];
  for (let i = 0; i < count; i++) {
    const data = Buffer.from(`round ${i}`);
    try {
      expect(session.decrypt(key, session.encrypt(key, data))).toEqual(data);
      expect(session.verify(pair.publicKey, data, session.sign(pair.privateKey, data))).toBe(true);
    } catch (e) {
      failures.push(`${i}: ${e instanceof Pkcs11Error ? `${e.message} ${e.detail ?? ""}` : String(e)}`);
    }
  }
  return { failures };
}

describe("a lost message does not wedge a session", () => {
  it("1% loss: every one of 300 encrypt+decrypt and sign+verify rounds succeeds", () => {
    const { failures } = rounds(0.01, 300, "loss-1");
    expect(failures).toEqual([]);
  });

  it("5% loss: every one of 300 encrypt+decrypt and sign+verify rounds succeeds", () => {
    const { failures } = rounds(0.05, 300, "loss-5");
    expect(failures).toEqual([]);
  });
});

describe("session objects: their own application's only, and always to it", () => {
  function find(pkcs11: ReturnType<ReturnType<typeof activeWorld>["connect"]>["pkcs11"] extends () => infer P ? P : never, session: Buffer, label: string): Buffer[] {
    pkcs11.C_FindObjectsInit(session, [{ type: C.CKA_LABEL, value: label }]);
    try {
      return pkcs11.C_FindObjects(session, 100);
    } finally {
      pkcs11.C_FindObjectsFinal(session);
    }
  }

  it("another connection, of the same user or another, never finds them", () => {
    const world = activeWorld({ seed: "session-objects", cluster: { hsmCount: 3 } });
    const owner = world.connect("owner").login(ALICE.username, ALICE.password);
    owner.generateAesKey({ label: "volatile", token: false });
    const other = world.connect("other").login(ALICE.username, ALICE.password);
    const spy = world.connect("spy").login(BOB.username, BOB.password);
    const seen: string[] = [];
    for (let i = 0; i < 30; i++) {
      if (find(other.pkcs11, other.session, "volatile").length > 0) seen.push(`other, search ${i}`);
      if (find(spy.pkcs11, spy.session, "volatile").length > 0) seen.push(`spy, search ${i}`);
    }
    expect(seen).toEqual([]);
  });

  it("the creating application always finds them and their handles work, whichever HSM serves the search", () => {
    const world = activeWorld({ seed: "session-objects", cluster: { hsmCount: 3 } });
    const owner = world.connect("owner").login(ALICE.username, ALICE.password);
    const key = owner.generateAesKey({ label: "volatile", token: false });
    for (let i = 0; i < 30; i++) {
      const mine = find(owner.pkcs11, owner.session, "volatile");
      expect(mine.map((h) => h.toString("hex"))).toEqual([key.handle.toString("hex")]);
      // and the handle found works
      expect(owner.decrypt({ ...key, handle: mine[0] }, owner.encrypt(key, Buffer.from("x"))).toString()).toBe("x");
    }
    // A second session of the owning application sees it too (PKCS#11: session objects belong to the application).
    const second = owner.pkcs11.C_OpenSession(Buffer.alloc(8), C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION);
    expect(find(owner.pkcs11, second, "volatile")).toHaveLength(1);
  });

  it("a second session object lands on the same HSM as the first, so a search sees both", () => {
    const world = activeWorld({ seed: "session-objects-2", cluster: { hsmCount: 3 } });
    const owner = world.connect("owner").login(ALICE.username, ALICE.password);
    for (let i = 0; i < 12; i++) owner.generateAesKey({ label: "many", token: false });
    for (let i = 0; i < 10; i++) expect(find(owner.pkcs11, owner.session, "many")).toHaveLength(12);
  });

  it("die with their HSM: the handle answers CKR_KEY_HANDLE_INVALID and searches no longer list it; token keys carry on", () => {
    const world = activeWorld({ seed: "session-objects-3", cluster: { hsmCount: 3 } });
    const owner = world.connect("owner").login(ALICE.username, ALICE.password);
    const token = owner.generateAesKey({ label: "durable" });
    const volatile = owner.generateAesKey({ label: "volatile", token: false });
    world.run(500_000);
    const home = world.cluster.describe().find((h) => h.address === homeAddress(world))!;
    world.cluster.crashHsm(home.hsmId);
    world.cluster.restartHsm(home.hsmId);
    world.run(1_000_000);
    let error: unknown;
    try {
      owner.encrypt(volatile, Buffer.from("x"));
    } catch (e) {
      error = e;
    }
    expect((error as Pkcs11Error).message).toBe("CKR_KEY_HANDLE_INVALID");
    expect(find(owner.pkcs11, owner.session, "volatile")).toEqual([]);
    expect(owner.decrypt(token, owner.encrypt(token, Buffer.from("y"))).toString()).toBe("y");
    // A new session object starts a new home.
    owner.generateAesKey({ label: "again", token: false });
    for (let i = 0; i < 5; i++) expect(find(owner.pkcs11, owner.session, "again")).toHaveLength(1);
  });
});

/** The HSM that made the session key: the one whose audit log shows its creation (the client's record of it is private). */
function homeAddress(world: ReturnType<typeof activeWorld>): string {
  for (const node of world.cluster.liveNodes()) {
    const entries = [...internalsOf(node.hsm).store.auditEntries()];
    if (entries.some((e) => e.detail === "session key")) return node.address;
  }
  throw new Error("no HSM created the session key");
}
