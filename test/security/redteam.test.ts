// Red-team attacks on the promises of the README's "Threat model" and "The HSM device".
// Each `it` is a finding: it asserts the attack SUCCEEDS (so it passes on the code under review
// and must be inverted once the hole is fixed). Tests named "HELD:" assert a defence that held.
import { createCipheriv, createDecipheriv } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";

import { type Device, H, activatedDevice, cuSession, expectHsmError, tokenAesKey } from "../hsm/fixture.js";
import { expectCkr } from "../helpers.js";

let device: Device | undefined;
afterEach(() => {
  device?.cleanup();
  device = undefined;
});

const RW = H.CKF_SERIAL_SESSION | H.CKF_RW_SESSION;
const IV = Buffer.alloc(12, 3);
const gcm = { mechanism: H.CKM_AES_GCM, parameter: { type: H.CK_PARAMS_AES_GCM, iv: IV, tagBits: 128 } };

/** The victim: alice logged in, with a sensitive, non-extractable token key. */
function victimOn(hsm: H.Hsm) {
  const victim = cuSession(hsm, "alice", "alice-password");
  const locked = tokenAesKey(victim.pkcs11, victim.session, "locked", [
    { type: H.CKA_EXTRACTABLE, value: false }, { type: H.CKA_SENSITIVE, value: true },
  ]);
  victim.pkcs11.C_EncryptInit(victim.session, gcm, locked);
  const ciphertext = Buffer.from(victim.pkcs11.C_Encrypt(victim.session, Buffer.from("secret message"), Buffer.alloc(64)));
  return { ...victim, locked, ciphertext };
}

/** Decrypts an algorithm-1 masked record's attributes with a masking key (GCM is CTR: no AAD needed for the plaintext). */
function valueFromRecord(maskingKey: Buffer, record: Buffer): { label?: string; value?: Buffer } {
  const iv = record.subarray(6, 18), body = record.subarray(18, record.length - 16);
  const plain = createDecipheriv("aes-256-gcm", maskingKey, iv).update(body);
  const out: { label?: string; value?: Buffer } = {};
  let offset = 4;
  for (let i = 0, n = plain.readUInt32LE(0); i < n; i++) {
    const type = Number(plain.readBigUInt64LE(offset)), length = plain.readUInt32LE(offset + 8);
    offset += 12;
    if (type === H.CKA_VALUE) out.value = Buffer.from(plain.subarray(offset, offset + length));
    if (type === H.CKA_LABEL) out.label = plain.subarray(offset, offset + length).toString();
    offset += length;
  }
  return out;
}

function gcmEncrypt(key: Buffer, plaintext: Buffer): Buffer {
  const c = createCipheriv("aes-256-gcm", key, IV);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

describe("F1: an Actor reaches the Hsm, and Hsm.snapshot() puts the masking key in JavaScript", () => {
  it("a CU's own Actor yields every non-extractable key's plaintext", () => {
    device = activatedDevice();
    const { hsm } = device;
    const victim = victimOn(hsm);
    // Bob is a CU with an Actor of his own (e.g. handed to his service to call shareKey).
    const bob = hsm.login("bob", "bob-password");
    const reached = (bob as unknown as { hsm: H.Hsm }).hsm;
    expect(reached).toBe(hsm);
    const snapshot = reached.snapshot();
    expect(snapshot.maskingKey).toHaveLength(32); // "never passed through JavaScript"
    const record = snapshot.keys.map((k) => valueFromRecord(snapshot.maskingKey, k.record)).find((r) => r.label === "locked")!;
    // Alice's CKA_EXTRACTABLE=false, CKA_SENSITIVE=true key, in clear, in Bob's hands:
    expect(gcmEncrypt(record.value!, Buffer.from("secret message"))).toEqual(victim.ciphertext);
    // ... and every user's password hash.
    expect(snapshot.users.find((u) => u.name === "alice")!.hash).toBeDefined();
    // The same Actor can also close the whole HSM for every application.
    reached.close();
    expectHsmError(() => hsm.login("alice", "alice-password"), "CLOSED");
  });
});

describe("F2: prototype hooks take the Hsm and its internals from a PKCS11 application", () => {
  it("an application that never logs in hooks Object.freeze and WeakMap.prototype.get and gets chip, store and audit", () => {
    device = activatedDevice();
    const { hsm } = device;
    const attacker = hsm.pkcs11(); // never logged in
    attacker.C_Initialize();
    const slot = attacker.C_GetSlotList(true)[0];
    const own = attacker.C_OpenSession(slot, RW);

    let leakedHsm: H.Hsm | undefined;
    let internals: any;
    const freeze = Object.freeze;
    const get = WeakMap.prototype.get;
    try {
      Object.freeze = function (o: any) {
        if (o && typeof o === "object" && "hsm" in o) leakedHsm ??= o.hsm; // every Actor is { username, role, hsm }
        return freeze(o);
      } as typeof Object.freeze;
      WeakMap.prototype.get = function (this: WeakMap<object, unknown>, k: object) {
        const v = get.call(this, k) as any;
        if (v && typeof v === "object" && "chip" in v && "store" in v) internals ??= v;
        return v;
      };
      // Any later login by anyone (here: the victim application) hands the attacker the Hsm ...
      var victim = victimOn(hsm);
      // ... and any hsm.pkcs11() (the attacker may call it itself now) hands it the internals.
      leakedHsm!.pkcs11();
    } finally {
      Object.freeze = freeze;
      WeakMap.prototype.get = get;
    }
    expect(leakedHsm).toBe(hsm);
    expect(typeof internals.chip.loginPrincipal).toBe("function");

    // loginPrincipal: the attacker's own session becomes alice's, without her password.
    internals.chip.loginPrincipal(Number(own.readBigUInt64LE(0)), internals.principalOf("alice"));
    attacker.C_EncryptInit(own, gcm, victim.locked);
    expect(Buffer.from(attacker.C_Encrypt(own, Buffer.from("secret message"), Buffer.alloc(64)))).toEqual(victim.ciphertext);

    // The audit append: a forged entry, properly MACed, that verifyAudit accepts.
    internals.store.transaction(() => internals.audit("DELETE_USER", "admin", null, [], "OK", "forged by an application"));
    expect(hsm.verifyAudit().ok).toBe(true);
    expect(hsm.auditLog().at(-1)!.detail).toBe("forged by an application");

    // Masking-key export.
    const sealed = internals.chip.exportMaskingKeyFor(0, internals.chip.transportPublicKey(0));
    expect(sealed.length).toBeGreaterThan(32);
  });
});

describe("F3: a user a key is shared with reads its value", () => {
  it("a sharee reads CKA_VALUE of a non-sensitive extractable key (README: sharees 'may only use it')", () => {
    device = activatedDevice();
    const { hsm } = device;
    const alice = cuSession(hsm, "alice", "alice-password");
    const key = tokenAesKey(alice.pkcs11, alice.session, "open", [{ type: H.CKA_SENSITIVE, value: false }]);
    const aliceActor = hsm.login("alice", "alice-password");
    hsm.shareKey(aliceActor, hsm.keyIdOf(key), "bob");
    const bob = cuSession(hsm, "bob", "bob-password");
    bob.pkcs11.C_FindObjectsInit(bob.session, []);
    const [seen] = bob.pkcs11.C_FindObjects(bob.session, 10);
    bob.pkcs11.C_FindObjectsFinal(bob.session);
    const value = bob.pkcs11.C_GetAttributeValue(bob.session, seen, [{ type: H.CKA_VALUE }])[0].value!;
    expect(value).toEqual(alice.pkcs11.C_GetAttributeValue(alice.session, key, [{ type: H.CKA_VALUE }])[0].value);
    // C_DigestKey works for the sharee too; wrapping is the only refused path.
    bob.pkcs11.C_DigestInit(bob.session, { mechanism: H.CKM_SHA256 });
    bob.pkcs11.C_DigestKey(bob.session, seen);
    expect(bob.pkcs11.C_DigestFinal(bob.session, Buffer.alloc(32))).toHaveLength(32);
    // After the unshare Bob keeps the value he read: revocation cannot take it back.
    hsm.unshareKey(aliceActor, hsm.keyIdOf(key), "bob");
  });
});

describe("F4: whether an account exists still shows", () => {
  const code = (f: () => unknown) => {
    try {
      f();
      return "OK";
    } catch (e) {
      return (e as H.HsmError).code;
    }
  };

  it("after a restart, a locked unknown name is unlocked while a locked account stays locked", () => {
    device = activatedDevice();
    const { dir } = device;
    for (let i = 0; i < 5; i++) {
      code(() => device!.hsm.login("alice", "wrong-password"));
      code(() => device!.hsm.login("zed", "wrong-password"));
    }
    expect([code(() => device!.hsm.login("alice", "x")), code(() => device!.hsm.login("zed", "x"))]).toEqual(["ACCOUNT_LOCKED", "ACCOUNT_LOCKED"]);
    device.hsm.close();
    const reopened = H.Hsm.open(dir, { passwordCost: 4 });
    try {
      expect(code(() => reopened.login("alice", "wrong-password"))).toBe("ACCOUNT_LOCKED"); // exists
      expect(code(() => reopened.login("zed", "wrong-password"))).toBe("LOGIN_FAILED"); // does not
    } finally {
      reopened.close();
    }
  });

  it("10,000 other unknown names evict a locked unknown name's counter, never an account's", () => {
    device = activatedDevice();
    const { hsm } = device;
    for (let i = 0; i < 5; i++) {
      code(() => hsm.login("alice", "wrong-password"));
      code(() => hsm.login("zed", "wrong-password"));
    }
    for (let i = 0; i < 10_000; i++) code(() => hsm.login(`n${i}`, "wrong-password"));
    expect(code(() => hsm.login("alice", "wrong-password"))).toBe("ACCOUNT_LOCKED");
    expect(code(() => hsm.login("zed", "wrong-password"))).toBe("LOGIN_FAILED");
  }, 120_000);

  it("an HSM reopened with another passwordCost answers unknown names fast and accounts slowly", () => {
    device = activatedDevice({ passwordCost: 12 });
    const { dir } = device;
    device.hsm.close();
    const reopened = H.Hsm.open(dir, { passwordCost: 1 });
    try {
      const time = (name: string) => {
        const start = process.hrtime.bigint();
        code(() => reopened.login(name, "wrong-password"));
        return Number(process.hrtime.bigint() - start) / 1e6;
      };
      const known = Math.min(time("alice"), time("alice")), unknown = Math.max(time("nobody"), time("nobody"));
      expect(known).toBeGreaterThan(5 * unknown);
    } finally {
      reopened.close();
    }
  });
});

describe("F5: removing hsm.lock lets a second Hsm own a running HSM's folder", () => {
  it("Hsm.open succeeds on a folder in use once hsm.lock was unlinked; the first HSM then fails every write", async () => {
    const { unlinkSync } = await import("node:fs");
    const { join } = await import("node:path");
    device = activatedDevice();
    const { hsm, dir, co } = device;
    expectHsmError(() => H.Hsm.open(dir, { passwordCost: 4 }), "DATA_FOLDER_IN_USE");
    unlinkSync(join(dir, "hsm.lock"));
    const second = H.Hsm.open(dir, { passwordCost: 4 });
    try {
      second.createUser(second.login("admin", "co-password-1"), "carol", "CU", "carol-password");
      expectHsmError(() => hsm.createUser(co, "dave", "CU", "dave-password"), "DATA_FOLDER_INVALID");
    } finally {
      second.close();
    }
  });
});

describe("F6: a clone's hsm.db is accepted in another HSM's folder", () => {
  it("copying HSM A's hsm.db into clone B's folder opens B as A, undoing B's password reset", async () => {
    const { copyFileSync, existsSync, rmSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tempDir } = await import("../hsm/fixture.js");
    device = activatedDevice();
    const a = device.hsm;
    const folderB = tempDir();
    try {
      const b = H.Hsm.restore(folderB.path, a.snapshot(), { passwordCost: 4 }); // a backup restored / a cluster clone
      const idB = b.id;
      b.changePassword(b.login("admin", "co-password-1"), "alice", "new-alice-pass"); // B's operator resets alice
      a.close();
      b.close();
      for (const side of ["hsm.db-wal", "hsm.db-shm"]) if (existsSync(join(folderB.path, side))) rmSync(join(folderB.path, side));
      copyFileSync(join(device.dir, "hsm.db"), join(folderB.path, "hsm.db")); // an editor of B's folder, never reading masking.key
      const reopened = H.Hsm.open(folderB.path, { passwordCost: 4 });
      try {
        expect(reopened.id).not.toBe(idB); // B's folder now claims to be A
        expect(reopened.verifyAudit().ok).toBe(true);
        expect(reopened.login("alice", "alice-password").username).toBe("alice"); // the reset password is back
      } finally {
        reopened.close();
      }
    } finally {
      folderB.cleanup();
    }
  });
});

describe("F7: a key creation refused after its user was revoked leaves no audit entry", () => {
  it("an async token-key generation whose user is deleted meanwhile is neither kept nor audited", async () => {
    device = activatedDevice();
    const { hsm, co } = device;
    hsm.createUser(co, "carol", "CU", "carol-password");
    const carol = cuSession(hsm, "carol", "carol-password");
    const before = hsm.auditLog().length;
    const pending = carol.pkcs11.C_GenerateKeyAsync(carol.session, { mechanism: H.CKM_AES_KEY_GEN },
      [{ type: H.CKA_VALUE_LEN, value: 32 }, { type: H.CKA_TOKEN, value: true }]);
    // Let the worker finish (its result waits for the event loop), then revoke: the deterministic
    // form of the race. (Revoking while the worker still runs is audited as a refusal instead.)
    const until = Date.now() + 200;
    while (Date.now() < until) { /* the libuv pool finishes the AES key meanwhile */ }
    hsm.deleteUser(co, "carol");
    await expect(pending).rejects.toBeInstanceOf(H.Pkcs11Error);
    const since = hsm.auditLog().slice(before).map((e) => e.operation);
    expect(since).toEqual(["DELETE_USER"]); // README: every key creation, refused ones included, is an entry
    expect(hsm.snapshot().keys).toHaveLength(0); // (not kept: that part holds)
  });
});

describe("F8 (fixed): a cluster client cannot forge replication", () => {
  it("the client's endpoint refuses another node's address, and a forged push from the network itself is dropped by every HSM", async () => {
    const { scryptSync, randomBytes } = await import("node:crypto");
    const { activeWorld, ALICE } = await import("../cluster/fixture.js");
    const world = activeWorld();
    const attacker = world.connect("attacker"); // what an application in the world is handed
    const client = attacker.client as unknown as { options: { transport: { send(from: string, to: string, m: unknown): void } }; members: Map<string, unknown> };
    const transport = client.options.transport; // now an endpoint bound to "client-attacker", not the SimNetwork
    const members = [...client.members.keys()];
    expect(members.length).toBeGreaterThan(1);
    const salt = randomBytes(16), cost = 4;
    const hash = scryptSync("attacker-pass-1", salt, 32, { N: 2 ** cost, r: 8, p: 1 });
    const forged = { origin: 4000, seq: 1, change: { kind: "user", name: "mallory", version: 2 ** 40, role: "CO", principal: 4000 * 2 ** 20 + 1, salt, hash, cost } };
    // Peer messages were trusted by their claimed sender address: claim to be another member.
    for (const to of members) {
      expect(() => transport.send(members.find((m) => m !== to)!, to, { t: "push", entries: [forged] }))
        .toThrow(expect.objectContaining({ name: "NetworkError", code: "NOT_OWN_ADDRESS" }));
    }
    // Even an attacker on the network itself (who can claim any address) gets the bare push dropped: it carries no peer MAC.
    const rejectedBefore = world.cluster.liveNodes().reduce((n, node) => n + node.stats.peerRejected, 0);
    for (const to of members) world.network.send(members.find((m) => m !== to)!, to, { t: "push", entries: [forged] });
    world.run(1_000_000);
    const rejected = world.cluster.liveNodes().reduce((n, node) => n + node.stats.peerRejected, 0) - rejectedBefore;
    expect(rejected).toBe(members.length);
    expect(() => attacker.console("mallory", "attacker-pass-1").listUsers()).toThrow(expect.objectContaining({ code: "LOGIN_FAILED" }));
    // alice's password is unchanged.
    expect(attacker.login(ALICE.username, ALICE.password)).toBeDefined();
    expect(() => world.connect("attacker-2").login(ALICE.username, "stolen-pass-1")).toThrow(expect.objectContaining({ name: "Pkcs11Error", code: H.CKR_PIN_INCORRECT }));
  });
});

describe("F2b: the PKCS11 and Hsm prototypes are shared and writable: one application reads every other's passwords", () => {
  it("patching PKCS11.prototype.C_Login and Hsm.prototype.login records the victim's and the CO's passwords", () => {
    device = activatedDevice();
    const { hsm } = device;
    const stolen: string[] = [];
    const cLogin = H.PKCS11.prototype.C_Login, hLogin = H.Hsm.prototype.login;
    try {
      // The attacker application: it only needs to import the package.
      H.PKCS11.prototype.C_Login = function (this: H.PKCS11, session: Buffer, type: number, pin?: string) {
        stolen.push(String(pin));
        return cLogin.call(this, session, type, pin);
      };
      H.Hsm.prototype.login = function (this: H.Hsm, name: string, password: string, session?: number | null) {
        stolen.push(`${name}/${password}`);
        return hLogin.call(this, name, password, session);
      };
      cuSession(hsm, "alice", "alice-password"); // the victim application
      hsm.login("admin", "co-password-1"); // the operator's console
    } finally {
      H.PKCS11.prototype.C_Login = cLogin;
      H.Hsm.prototype.login = hLogin;
    }
    expect(stolen).toContain("alice:alice-password");
    expect(stolen).toContain("admin/co-password-1");
    expect(Object.isFrozen(H.PKCS11.prototype)).toBe(false);
  });
});

describe("F9: a SQL trigger planted in a closed hsm.db is not detected at open and runs inside the HSM", () => {
  it("a folder editor (no masking.key) replaces alice's password hash at START and logs in as alice; the HSM reopens cleanly", async () => {
    const { createRequire } = await import("node:module");
    const { randomBytes, scryptSync } = await import("node:crypto");
    const { join } = await import("node:path");
    const Database = createRequire(import.meta.url)("better-sqlite3");
    device = activatedDevice();
    const { dir } = device;
    const victim = victimOn(device.hsm);
    void victim;
    device.hsm.close();
    const salt = randomBytes(16), hash = scryptSync("mallory-pass-1", salt, 32, { N: 16, r: 8, p: 1 });
    const db = new Database(join(dir, "hsm.db"));
    db.exec(`CREATE TABLE stash AS SELECT * FROM users WHERE name = 'alice';
      CREATE TRIGGER swap AFTER INSERT ON audit WHEN NEW.operation = 'START' BEGIN
        UPDATE users SET salt = X'${salt.toString("hex")}', hash = X'${hash.toString("hex")}', cost = 4 WHERE name = 'alice'; END;
      CREATE TRIGGER put_back AFTER INSERT ON audit WHEN NEW.operation = 'LOGIN' AND NEW.actor = 'alice' AND NEW.result = 'OK' BEGIN
        UPDATE users SET salt = (SELECT salt FROM stash), hash = (SELECT hash FROM stash), cost = (SELECT cost FROM stash) WHERE name = 'alice'; END;`);
    db.close();

    const hsm = H.Hsm.open(dir, { passwordCost: 4 }); // the edit is not noticed
    const p = hsm.pkcs11();
    p.C_Initialize();
    const s = p.C_OpenSession(p.C_GetSlotList(true)[0], RW);
    p.C_Login(s, H.CKU_USER, "alice:mallory-pass-1"); // the attacker's password
    p.C_FindObjectsInit(s, [{ type: H.CKA_LABEL, value: "locked" }]);
    const [key] = p.C_FindObjects(s, 1);
    p.C_FindObjectsFinal(s);
    p.C_EncryptInit(s, gcm, key);
    expect(Buffer.from(p.C_Encrypt(s, Buffer.from("secret message"), Buffer.alloc(64)))).toEqual(victim.ciphertext);
    hsm.close();
    // The trigger put the hash back: the next open and the audit see nothing wrong.
    const again = H.Hsm.open(dir, { passwordCost: 4 });
    expect(again.verifyAudit().ok).toBe(true);
    again.close();
    device = { ...device, hsm: again };
  });
});
