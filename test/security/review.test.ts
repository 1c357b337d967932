// Attacks from the final review, kept as regression tests: a hostile client's message objects,
// a closed Hsm or client connection, connections per address, and a planted hsm.lock symlink.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

import * as P from "../../src/index.js";
import { ALICE, activeWorld } from "../cluster/fixture.js";
import { activatedDevice, cuSession, tokenAesKey } from "../hsm/fixture.js";

interface Opts { transport: { send(f: string, t: string, m: unknown): void; detach(a: string): void; attach(a: string, h: (f: string, m: unknown) => void): void }; address: string }
const optionsOf = (connection: unknown) => (connection as { client: { options: Opts } }).client.options;
const malformed = (world: ReturnType<typeof activeWorld>) => world.cluster.liveNodes().reduce((n, node) => n + node.stats.malformed, 0);

describe("a hostile client's message objects", () => {
  it("a request whose `t` is a throwing getter is dropped and counted; World.run goes on", () => {
    const world = activeWorld();
    const o = optionsOf(world.connect("mallory"));
    const bomb = { get t(): string { throw new Error("mallory's getter"); } };
    o.transport.send(o.address, world.cluster.addresses()[0], bomb);
    expect(() => world.run(100_000)).not.toThrow();
    expect(malformed(world)).toBe(1);
  });

  it("a Proxy sent to every HSM does not land in another application's synchronous call", () => {
    const world = activeWorld();
    const victim = world.connect("victim").pkcs11();
    const session = victim.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    const o = optionsOf(world.connect("mallory"));
    const targets = world.cluster.addresses();
    for (const target of targets) o.transport.send(o.address, target, new Proxy({}, { get() { throw new Error("proxy trap"); } }));
    expect(victim.C_GenerateRandom(session, Buffer.alloc(8))).toHaveLength(8);
    world.run(100_000);
    expect(malformed(world)).toBe(targets.length);
  });
});

describe("a closed Hsm", () => {
  it("hsm.pkcs11() and keyIdOf are CLOSED like every management call", () => {
    const d = activatedDevice();
    try {
      const { pkcs11, session } = cuSession(d.hsm, "alice", "alice-password");
      const key = tokenAesKey(pkcs11, session, "k");
      d.hsm.close();
      for (const call of [() => d.hsm.login("alice", "alice-password"), () => d.hsm.auditLog(), () => d.hsm.pkcs11(), () => d.hsm.keyIdOf(key)]) {
        expect(call).toThrow(expect.objectContaining({ name: "HsmError", code: "CLOSED" }));
      }
    } finally {
      d.cleanup();
    }
  });

  it("an application opened before close gets Pkcs11Error CKR_DEVICE_REMOVED from every call that reaches the device", () => {
    const d = activatedDevice();
    try {
      const { pkcs11, session } = cuSession(d.hsm, "alice", "alice-password");
      const key = tokenAesKey(pkcs11, session, "k", [{ type: P.CKA_ENCRYPT, value: true }]);
      d.hsm.close();
      const removed = expect.objectContaining({ name: "Pkcs11Error", code: P.CKR_DEVICE_REMOVED });
      expect(() => pkcs11.C_DestroyObject(session, key)).toThrow(removed);
      const s2 = pkcs11.C_OpenSession(pkcs11.C_GetSlotList(true)[0], P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
      expect(() => pkcs11.C_Login(s2, P.CKU_USER, "bob:bob-password")).toThrow(removed);
      expect(() => tokenAesKey(pkcs11, session, "k2")).toThrow(removed);
      expect(() => pkcs11.C_SetAttributeValue(session, key, [{ type: P.CKA_LABEL, value: "x" }])).toThrow(removed);
    } finally {
      d.cleanup();
    }
  });
});

describe("a client connection after close()", () => {
  it("answers at once: no request is sent, C_OpenSession and calls are CKR_DEVICE_REMOVED", () => {
    const world = activeWorld();
    const c = world.connect("careless");
    const p = c.pkcs11();
    const s = p.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    c.close();
    const t0 = world.clock.nowUs();
    expect(() => p.C_GenerateRandom(s, Buffer.alloc(8))).toThrow(expect.objectContaining({ code: P.CKR_DEVICE_REMOVED }));
    expect(world.clock.nowUs()).toBe(t0); // nothing was sent or waited for
    expect(() => p.C_OpenSession(Buffer.alloc(8), P.CKF_SERIAL_SESSION)).toThrow(expect.objectContaining({ code: P.CKR_DEVICE_REMOVED }));
    expect(() => c.login(ALICE.username, ALICE.password)).toThrow(expect.objectContaining({ code: P.CKR_DEVICE_REMOVED }));
    expect(() => c.close()).not.toThrow();
  });
});

describe("another client of the cluster: connections per address are bounded", () => {
  it("one address opening 1,100 connections on one HSM gets 64; the rest are answered busy", () => {
    const world = activeWorld();
    const o = optionsOf(world.connect("mallory"));
    const answers: { ok: boolean; error?: { kind: string } }[] = [];
    o.transport.detach(o.address);
    o.transport.attach(o.address, (_from, m) => {
      if ((m as { id: number }).id >= 9_200_000) answers.push(m as { ok: boolean }); // (not the client's own heartbeats)
    });
    const target = world.cluster.addresses()[0];
    const node = world.cluster.liveNodes().find((n) => n.address === target)!;
    const table = (node as unknown as { connections: { table: Map<string, unknown> } }).connections.table;
    let id = 9_200_000;
    for (let round = 0; round < 44; round++) {
      for (let i = 0; i < 25; i++) {
        const session = { id: 1, flags: P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION, login: null, continuation: false };
        o.transport.send(o.address, target, { t: "req", id: id++, conn: `c${round}-${i}`, op: { kind: "call", method: "generateRandom", args: [1, 8], session }, after: [] });
      }
      world.run(2_000_000); // paced under the queue capacity
    }
    const mine = [...table.keys()].filter((k) => k.startsWith(`${o.address}|`));
    expect(mine).toHaveLength(64);
    expect(answers.filter((a) => a.ok)).toHaveLength(64);
    expect(answers.filter((a) => a.error?.kind === "busy")).toHaveLength(1100 - 64);
    // Another client still connects and works.
    const alice = world.connect("other").login(ALICE.username, ALICE.password);
    const key = alice.generateAesKey({ label: "room" });
    expect(alice.decrypt(key, alice.encrypt(key, Buffer.from("room left"))).toString()).toBe("room left");
  });
});

describe("an editor of the data folder: a planted hsm.lock symlink", () => {
  it("is never followed: the target keeps its mode, nothing is created where it points, the open is refused", () => {
    const root = mkdtempSync(join(tmpdir(), "hsmsim-review-"));
    try {
      const dir = join(root, "hsm");
      P.Hsm.create(dir, { passwordCost: 4 }).close();
      const shared = join(root, "shared.txt");
      writeFileSync(shared, "shared config\n");
      chmodSync(shared, 0o644);
      rmSync(join(dir, "hsm.lock"));
      symlinkSync(shared, join(dir, "hsm.lock"));
      expect(() => P.Hsm.open(dir, { passwordCost: 4 })).toThrow(expect.objectContaining({ code: "DATA_FOLDER_INVALID" }));
      expect(statSync(shared).mode & 0o777).toBe(0o644);
      expect(readFileSync(shared, "utf8")).toBe("shared config\n");
      const planted = join(root, "planted-by-editor");
      rmSync(join(dir, "hsm.lock"));
      symlinkSync(planted, join(dir, "hsm.lock"));
      expect(() => P.Hsm.open(dir, { passwordCost: 4 })).toThrow(expect.objectContaining({ code: "DATA_FOLDER_INVALID" }));
      expect(existsSync(planted)).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
