// Backups: when they are taken, retention, restore into a new cluster of the same lineage,
// and refusal for any other lineage or a changed byte. Also the journal's rules at the
// device level (last writer wins, tombstones, order per origin).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { BackupVault, deliverMaskingKey } from "../../src/cluster/backup.js";
import { Cluster, DEFAULT_BACKUP_INTERVAL_US, DEFAULT_BACKUP_RETENTION_US, DEFAULT_NODE } from "../../src/cluster/cluster.js";
import { Hsm } from "../../src/hsm/hsm.js";
import * as P from "../../src/index.js";
import { Rng } from "../../src/sim/random.js";
import { ALICE, CO, activeWorld } from "./fixture.js";
import { restoreSnapshot, snapshotOf } from "../hsm/fixture.js";
import { internalsOf } from "../../src/hsm/internals.js";
import { recordBinding } from "../../src/hsm/state.js";

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

describe("backups", () => {
  it("are taken every backupIntervalUs (24 hours by default) and expire after the retention, the newest always kept", () => {
    expect(DEFAULT_NODE.replicationTimeoutUs).toBeLessThan(3_000_000); // below the client's write timeout
    expect(DEFAULT_BACKUP_INTERVAL_US).toBe(24 * 3600e6);
    expect(DEFAULT_BACKUP_RETENTION_US).toBe(90 * 24 * 3600e6);
    const world = activeWorld({ cluster: { backupIntervalUs: 10_000_000, backupRetentionUs: 25_000_000 } });
    const afterActivation = world.cluster.backups().length;
    world.run(60_000_000);
    const backups = world.cluster.backups();
    expect(backups.filter((b) => b.trigger === "periodic").length).toBeGreaterThanOrEqual(2);
    expect(backups.every((b) => world.clock.nowUs() - b.createdUs <= 25_000_000)).toBe(true);
    expect(afterActivation).toBeGreaterThan(0);
    expect(backups.some((b) => b.trigger === "activation")).toBe(false); // expired by now
    // However old, the newest backup stays.
    const lonely = activeWorld({ seed: "lonely", cluster: { backupIntervalUs: 0, backupRetentionUs: 1 } });
    lonely.run(5_000_000);
    lonely.cluster.backupNow();
    lonely.run(5_000_000);
    expect(lonely.cluster.backups()).toHaveLength(1);
  });

  it("restores into a new cluster of the same lineage, with the users and keys; other lineages and changed bytes are refused", () => {
    const world = activeWorld();
    const alice = world.connect("a").login(ALICE.username, ALICE.password);
    const key = alice.generateAesKey({ label: "kept in backup" });
    const sealed = alice.encrypt(key, Buffer.from("from the old cluster"));
    world.run(1_000_000);
    const backup = world.cluster.backupNow();
    expect(backup.sealed.includes(Buffer.from("alice"))).toBe(false); // encrypted, not just encoded

    const dataDir = mkdtempSync(join(tmpdir(), "hsmsim-restore-"));
    dirs.push(dataDir);
    const restored = Cluster.restore(backup.backupId, { clock: world.clock, transport: world.network, rng: new Rng("restore"), dataDir,
      vault: world.cluster.vault, lineageId: world.cluster.lineageId, passwordCost: 1, hsmCount: 2, addressPrefix: "10.1" });
    expect(restored.clusterId).not.toBe(world.cluster.clusterId);
    expect(restored.state).toBe("ACTIVE");
    expect(restored.describe()).toHaveLength(2);
    for (const node of restored.liveNodes()) expect(internalsOf(node.hsm).state.hasKey(key.id)).toBe(true);
    const client = world.connect("r", { bootstrap: restored.addresses()[0] });
    const again = client.login(ALICE.username, ALICE.password);
    expect(again.decrypt(key, sealed).toString()).toBe("from the old cluster");
    expect(client.console(CO.username, CO.password).listUsers().consistent).toBe(true);
    restored.shutdown();

    const stranger = new BackupVault((n) => new Rng("other").bytes(n));
    const otherLineage = stranger.newLineage();
    expect(() => world.cluster.vault.open(backup, otherLineage)).toThrow(expect.objectContaining({ code: "LINEAGE_MISMATCH" }));
    const tampered = { ...backup, sealed: Buffer.from(backup.sealed) };
    tampered.sealed[40] ^= 1;
    expect(() => world.cluster.vault.open(tampered, world.cluster.lineageId)).toThrow(expect.objectContaining({ code: "LINEAGE_MISMATCH" }));
    expect(() => world.cluster.vault.get("backup-none")).toThrow(expect.objectContaining({ code: "BACKUP_NOT_FOUND" }));
  });

  it("a backup holds the masking key only sealed to its lineage's chip: opened, it is not there in clear, yet it restores", () => {
    const world = activeWorld();
    const source = world.cluster.liveNodes()[0].hsm;
    const maskingKey = readFileSync(join(internalsOf(source).store.dir, "masking.key")); // the test reads the folder; no API does
    expect(maskingKey).toHaveLength(32);
    const backup = world.cluster.backupNow();
    const opened = world.cluster.vault.open(backup, world.cluster.lineageId);
    expect(Object.keys(opened)).not.toContain("maskingKey");
    expect(opened.sealedMaskingKey!.includes(maskingKey)).toBe(false);
    const plain = Buffer.from(JSON.stringify(opened, (_k, v) => (v?.type === "Buffer" ? Buffer.from(v.data).toString("base64") : v)));
    expect(plain.includes(maskingKey)).toBe(false);
    expect(plain.includes(Buffer.from(maskingKey.toString("base64")))).toBe(false);
    expect(plain.includes(Buffer.from(maskingKey.toString("hex")))).toBe(false);
    // Another lineage's chip cannot take the key: a backup restored under another vault fails.
    const stranger = new BackupVault((n) => new Rng("other").bytes(n));
    const otherLineage = stranger.newLineage();
    const target = P.createChip({ slotCount: 1, pinHashIterations: 1 });
    target.initToken(0, Buffer.from("pin-1234"), Buffer.from("t"));
    expect(() => deliverMaskingKey(stranger, otherLineage, opened.sealedMaskingKey!, target)).toThrow("CKR_WRAPPED_KEY_INVALID");
    // The HSM added from it holds the key (its chip MACs what the source's does).
    const added = world.cluster.addHsm();
    const node = world.cluster.liveNodes().find((n) => n.hsm.id === added.hsmId)!;
    const data = Buffer.from("same masking key?");
    expect(internalsOf(node.hsm).chip.deviceMac(0, 9, data)).toEqual(internalsOf(source).chip.deviceMac(0, 9, data));
    expect(readFileSync(join(internalsOf(node.hsm).store.dir, "masking.key"))).toEqual(maskingKey);
  });
});

describe("the journal on one HSM", () => {
  let twoHsmsSnapshot: ReturnType<typeof snapshotOf>;
  let twoHsmsSource: Hsm;
  function twoHsms(): [Hsm, Hsm] {
    const dir = mkdtempSync(join(tmpdir(), "hsmsim-journal-"));
    dirs.push(dir);
    const a = Hsm.create(join(dir, "a"), { origin: 1, passwordCost: 1 });
    twoHsmsSnapshot = snapshotOf(a);
    twoHsmsSource = a;
    const b = restoreSnapshot(join(dir, "b"), twoHsmsSnapshot, twoHsmsSource, { origin: 2, passwordCost: 1 });
    return [a, b];
  }

  it("applies each origin's entries in order, ignores duplicates, and lets the newest write win over older ones and deletes", () => {
    const [a, b] = twoHsms();
    const preco = a.login("admin", "password");
    a.changePassword(preco, "admin", CO.password);
    const co = a.login("admin", CO.password);
    a.createUser(co, "carol", "CU", "carol-pass-1");
    a.deleteUser(co, "carol");
    const entries = internalsOf(a).state.entriesAfter(1, 0);
    expect(entries.map((e) => e.change.kind)).toEqual(["user", "user", "activate", "user", "user-delete"]);
    expect(internalsOf(b).state.apply(entries[1])).toBe("gap");
    for (const e of entries) expect(internalsOf(b).state.apply(e)).toBe("applied");
    expect(internalsOf(b).state.apply(entries[0])).toBe("duplicate");
    expect(internalsOf(b).store.user("carol")).toBeUndefined();
    expect(internalsOf(b).store.tombstone("user", "carol")).toBeDefined();
    // An older write of carol from another origin loses to the tombstone.
    const stale = { origin: 3, seq: 1, change: { ...entries[3].change, version: entries[3].change.version } };
    expect(internalsOf(b).state.apply(stale)).toBe("superseded");
    expect(internalsOf(b).store.user("carol")).toBeUndefined();
    expect(b.activated).toBe(true);
    expect(b.verifyAudit().ok).toBe(true);
    a.close();
    b.close();
  });

  it("a key's delete is final: a concurrent write with a higher version does not bring the key back", () => {
    const [a, b] = twoHsms();
    a.changePassword(a.login("admin", "password"), "admin", CO.password);
    a.createUser(a.login("admin", CO.password), "dave", "CU", "dave-pass-1");
    const p = a.pkcs11();
    p.C_Initialize();
    const session = p.C_OpenSession(p.C_GetSlotList(true)[0], P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    p.C_Login(session, P.CKU_USER, "dave:dave-pass-1");
    const handle = p.C_GenerateKey(session, { mechanism: P.CKM_AES_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 32 }, { type: P.CKA_TOKEN, value: true }]);
    const keyId = a.keyIdOf(handle);
    p.C_DestroyObject(session, handle);
    const entries = internalsOf(a).state.entriesAfter(1, 0);
    for (const e of entries) internalsOf(b).state.apply(e);
    expect(internalsOf(b).state.hasKey(keyId)).toBe(false);
    const created = entries.find((e) => e.change.kind === "key")!;
    // The same key written again from another HSM, with a far higher version: refused.
    const racing = { origin: 2, seq: 1, change: { ...created.change, version: 2 ** 40 } };
    expect(internalsOf(b).state.apply(racing)).toBe("superseded");
    expect(internalsOf(b).state.hasKey(keyId)).toBe(false);
    expect(internalsOf(b).store.tombstone("key", String(keyId))).toBeDefined();
    // In the other order, the delete (lower version) still wins over the racing write.
    const c = restoreSnapshot(join(dirs[dirs.length - 1], "c"), twoHsmsSnapshot, twoHsmsSource, { origin: 3, passwordCost: 1 });
    const deleteAt = entries.findIndex((e) => e.change.kind === "key-delete");
    for (const e of entries.slice(0, deleteAt)) internalsOf(c).state.apply(e);
    // A genuine racing write carries a record bound to its own (id, version, owner): made by a chip that holds the key.
    const owner = (created.change as { owner: number }).owner;
    const record = internalsOf(c).chip.exportMasked(0, internalsOf(c).state.handleOf(keyId), 1, recordBinding(keyId, 2 ** 40, owner));
    expect(internalsOf(c).state.apply({ ...racing, change: { ...racing.change, record } as typeof racing.change })).toBe("applied");
    expect(internalsOf(c).state.apply(entries[deleteAt])).toBe("applied");
    expect(internalsOf(c).state.hasKey(keyId)).toBe(false);
    // Two deletes of the key at once from two HSMs: whatever the order, one tombstone version.
    const deleteEntry = entries[deleteAt];
    const otherDelete = { origin: 5, seq: 1, change: { ...deleteEntry.change, version: deleteEntry.change.version + 4096 } };
    expect(internalsOf(b).state.apply(otherDelete)).toBe("applied"); // after b's own copy of the first delete
    const d = restoreSnapshot(join(dirs[dirs.length - 1], "d"), twoHsmsSnapshot, twoHsmsSource, { origin: 4, passwordCost: 1 });
    for (const e of entries.slice(0, deleteAt)) internalsOf(d).state.apply(e);
    internalsOf(d).state.apply(otherDelete); // before the first delete
    internalsOf(d).state.apply(deleteEntry);
    expect(internalsOf(d).store.tombstone("key", String(keyId))).toEqual(internalsOf(b).store.tombstone("key", String(keyId)));
    a.close();
    b.close();
    c.close();
    d.close();
  });
});
