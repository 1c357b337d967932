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

describe("revocation reaches every HSM", () => {
  function expectRefused(fn: () => unknown): string {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(Pkcs11Error);
      return (e as Pkcs11Error).message;
    }
    throw new Error("the call succeeded");
  }

  for (const change of ["delete", "reset"] as const) {
    it(`after a CO ${change === "delete" ? "deletes a CU" : "resets a CU's password"}, its open sessions fail on every HSM on their next call`, () => {
      const world = activeWorld({ seed: `revoke-${change}`, cluster: { hsmCount: 3 } });
      const victim = world.connect("victim").login(ALICE.username, ALICE.password);
      const key = victim.generateAesKey({ label: "before" });
      world.run(500_000);
      // Sessions and logins on every HSM: the client spreads calls over all of them.
      for (let i = 0; i < 12; i++) victim.decrypt(key, victim.encrypt(key, Buffer.from("warm")));
      expect(world.cluster.liveNodes().length).toBe(3);
      const co = world.connect("co").console(CO.username, CO.password);
      if (change === "delete") {
        victim.deleteKey(key); // a CU that owns keys cannot be deleted
        co.deleteUser(ALICE.username);
      } else {
        co.changePassword(ALICE.username, "alice-new-pass-1");
      }
      world.run(1_000_000); // replicated to every HSM
      const codes = new Set<string>();
      const fresh = change === "delete" ? null : world.connect("fresh").login(ALICE.username, "alice-new-pass-1").generateAesKey({ label: "new" });
      for (let i = 0; i < 12; i++) {
        codes.add(expectRefused(() => victim.generateAesKey({ label: `after-${i}` })));
        if (fresh) codes.add(expectRefused(() => victim.encrypt(fresh, Buffer.from("no"))));
      }
      // The first refusal names the cause; the client then stops offering the revoked credentials.
      expect(codes.has("CKR_USER_NOT_LOGGED_IN")).toBe(true);
      expect(victim.pkcs11.C_GetSessionInfo(victim.session).state).not.toBe(C.CKS_RW_USER_FUNCTIONS);
      if (change === "reset") {
        // The old password's sessions did not lock the account out: the new password still logs in everywhere.
        const again = world.connect("again");
        for (let i = 0; i < 6; i++) again.login(ALICE.username, "alice-new-pass-1").close();
      }
    });
  }
});

describe("the client's PKCS11 object reaches PKCS#11 only", () => {
  const DEVICE_CALLS = ["exportMasked", "importMasked", "shareMaskingKey", "loginPrincipal", "shareObject", "ownership", "setTrusted",
    "removeObject", "saveMaskingKey", "loadMaskingKey", "transportPublicKey", "exportMaskingKeyFor", "importMaskingKey", "revokePrincipal"];

  it("no device chip call is reachable by walking its properties, not even as a stub", () => {
    const world = activeWorld({ seed: "reach", cluster: { hsmCount: 2 } });
    const connection = world.connect("app");
    const pkcs11 = connection.pkcs11();
    const found: string[] = [];
    const seen = new Set<unknown>();
    const walk = (value: unknown, path: string, depth: number) => {
      if (value === null || (typeof value !== "object" && typeof value !== "function") || seen.has(value) || depth > 4) return;
      seen.add(value);
      for (const name of Reflect.ownKeys(value as object)) {
        const descriptor = Object.getOwnPropertyDescriptor(value, name)!;
        if (DEVICE_CALLS.includes(String(name))) found.push(`${path}.${String(name)}`);
        if ("value" in descriptor) walk(descriptor.value, `${path}.${String(name)}`, depth + 1);
      }
    };
    walk(pkcs11, "pkcs11", 0);
    expect(found).toEqual([]);
    // The facade keeps its backend in #private fields, out of any walk's reach; walk the backend
    // the client hands it too (the client's own object, as an application would build it).
    const backend = (connection as unknown as { chip: { asChip(): object } }).chip.asChip();
    walk(backend, "backend", 0);
    expect(seen.size).toBeGreaterThan(3); // the walk did reach the backend's calls
    expect(Object.isFrozen(backend)).toBe(true);
    expect(found).toEqual([]);
  });
});

describe("multi-part operations and the length query survive lost messages", () => {
  it("5% loss: 150 multi-part GCM encryptions (Init, 3 Updates, Final) match the single-part result; a too-small buffer is answered and the operation goes on", () => {
    const world = activeWorld({ seed: "multi-part-loss", cluster: { hsmCount: 3 } });
    const alice = world.connect("alice").login(ALICE.username, ALICE.password);
    const key = alice.generateAesKey({ label: "k" });
    world.run(500_000);
    world.network.setFaults({ lossRate: 0.05, duplicateRate: 0.05 });
    const { pkcs11, session } = alice;
    const failures: string[] = [];
    for (let i = 0; i < 150; i++) {
      const iv = Buffer.alloc(12, i);
      const mechanism = { mechanism: C.CKM_AES_GCM, parameter: { type: C.CK_PARAMS_AES_GCM, iv, tagBits: 128 } };
      const parts = [Buffer.from(`part one ${i} `), Buffer.from("part two "), Buffer.from("part three")];
      try {
        pkcs11.C_EncryptInit(session, mechanism, key.handle);
        const out = parts.map((p) => pkcs11.C_EncryptUpdate(session, p, Buffer.alloc(p.length)));
        out.push(pkcs11.C_EncryptFinal(session, Buffer.alloc(16)));
        pkcs11.C_EncryptInit(session, mechanism, key.handle);
        const whole = Buffer.concat(parts);
        let small: unknown;
        try {
          pkcs11.C_Encrypt(session, whole, Buffer.alloc(4));
        } catch (e) {
          small = e;
        }
        expect((small as Pkcs11Error).message).toBe("CKR_BUFFER_TOO_SMALL");
        const single = pkcs11.C_Encrypt(session, whole, Buffer.alloc(whole.length + 16));
        expect(Buffer.concat(out).equals(single)).toBe(true);
      } catch (e) {
        failures.push(`${i}: ${e instanceof Pkcs11Error ? `${e.message} ${e.detail ?? ""}` : String(e)}`);
      }
    }
    expect(failures).toEqual([]);
  });
});
