// The KMS store as an editor of the data folder attacks it: with the sqlite3 file in hand (here
// better-sqlite3, as the sqlite3 shell would), they edit, plant, drop, replay and swap rows, or
// hand the store to another fleet. Each is found when the store opens (STORE_TAMPERED, naming
// the first bad row or what happened to the set of rows). What the store cannot find, a rollback
// of the whole file, is shown too, so the limit is a tested fact rather than a hope.
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { KmsStore, KmsStoreError } from "../../src/kms/store.js";
import { ACCOUNT, OTHER_ACCOUNT, grantRecord, hmacUnder, keyRecord } from "../kms/store-fixtures.js";

const mac = hmacUnder("fleet-a");
let dir: string;
let path: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "kms-store-attack-"));
  path = join(dir, "kms.db");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `fn` with the store open, then closes it (SQLite checkpoints its WAL into the file). */
function withStore(fn: (store: KmsStore) => void, storeMac = mac): void {
  const store = KmsStore.open({ path, mac: storeMac });
  try {
    fn(store);
  } finally {
    store.close();
  }
}
/** What an editor of the folder does to the closed store's file. */
function edit(fn: (db: Database.Database) => void): void {
  const db = new Database(path);
  try {
    fn(db);
  } finally {
    db.close();
  }
}
function openFails(storeMac = mac): KmsStoreError {
  let caught: unknown;
  try {
    KmsStore.open({ path, mac: storeMac }).close();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(KmsStoreError);
  expect((caught as KmsStoreError).code).toBe("STORE_TAMPERED");
  return caught as KmsStoreError;
}
type Row = Record<string, unknown>;
const keyRow = (db: Database.Database, keyId: string): Row => db.prepare("SELECT * FROM keys WHERE key_id = ?").get(keyId) as Row;
function putRow(db: Database.Database, table: string, row: Row): void {
  const columns = Object.keys(row);
  db.prepare(`INSERT OR REPLACE INTO ${table} (${columns.join(", ")}) VALUES (${columns.map((c) => `@${c}`).join(", ")})`).run(row);
}

const k1 = keyRecord(1), k2 = keyRecord(2);
const g1 = grantRecord(1, k1), g2 = grantRecord(2, k1, { granteePrincipal: `arn:aws:iam::${ACCOUNT}:user/ops` });
function populate(): void {
  withStore((store) => {
    store.putKey(k1);
    store.putKey(k2);
    store.putGrant(g1);
    store.putGrant(g2);
  });
}

describe("the KMS store's file, edited", () => {
  it("opens untouched: the tamper checks have no false alarm", () => {
    populate();
    withStore((store) => expect(store.listGrants(k1.keyId)).toHaveLength(2));
  });

  it("finds a key policy edited to let another account in, and names the key", () => {
    populate();
    edit((db) => {
      const policy = JSON.parse(keyRow(db, k1.keyId).policy as string);
      policy.Statement.push({ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${OTHER_ACCOUNT}:root` }, Action: "kms:*", Resource: "*" });
      db.prepare("UPDATE keys SET policy = ? WHERE key_id = ?").run(JSON.stringify(policy), k1.keyId);
    });
    const error = openFails();
    expect(error.table).toBe("keys");
    expect(error.rowKey).toBe(k1.keyId);
    expect(error.message).toContain(k1.keyId);
  });

  it("finds a grant planted by copying another grant's row (MAC and all) under a new id", () => {
    populate();
    const planted = "f".repeat(64);
    edit((db) => {
      const row = db.prepare("SELECT * FROM grants WHERE grant_id = ?").get(g1.grantId) as Row;
      putRow(db, "grants", { ...row, grant_id: planted }); // the body and its MAC exactly as stored
    });
    const error = openFails();
    expect([error.table, error.rowKey]).toEqual(["grants", planted]);
  });

  it("finds a revoked grant put back from an older copy of the file", () => {
    populate();
    const copy = join(dir, "copy.db");
    copyFileSync(path, copy);
    withStore((store) => store.deleteGrant(g1.grantId)); // revoked
    edit((db) => {
      db.exec(`ATTACH DATABASE '${copy}' AS old`);
      db.prepare("INSERT INTO grants SELECT * FROM old.grants WHERE grant_id = ?").run(g1.grantId);
    });
    expect(openFails().message).toMatch(/1 row\(s\) were planted/);
  });

  it("finds a grant dropped", () => {
    populate();
    edit((db) => db.prepare("DELETE FROM grants WHERE grant_id = ?").run(g2.grantId));
    const error = openFails();
    expect(error.table).toBe("head");
    expect(error.message).toMatch(/1 row\(s\) were dropped/);
  });

  it("finds an old version of a key row replayed after the key was disabled", () => {
    populate();
    let enabled!: Row;
    edit((db) => (enabled = keyRow(db, k1.keyId)));
    withStore((store) => store.putKey({ ...k1, state: "Disabled" }));
    edit((db) => putRow(db, "keys", enabled));
    expect(openFails().message).toMatch(/replayed from an older version/);
  });

  it("finds an old key row replayed together with the old head, when anything else changed since", () => {
    populate();
    const copy = join(dir, "copy.db");
    copyFileSync(path, copy);
    withStore((store) => store.putKey({ ...k1, state: "Disabled" }));
    withStore((store) => store.putKey({ ...k2, description: "changed later" }));
    edit((db) => {
      db.exec(`ATTACH DATABASE '${copy}' AS old`);
      db.exec(`INSERT OR REPLACE INTO keys SELECT * FROM old.keys WHERE key_id = '${k1.keyId}'`);
      db.exec("INSERT OR REPLACE INTO head SELECT * FROM old.head");
    });
    expect(openFails().table).toBe("head");
  });

  it("finds two keys' bodies swapped (each MAC moved with its body)", () => {
    populate();
    withStore((store) => store.putKey({ ...k2, accountId: OTHER_ACCOUNT, arn: k2.arn.replace(ACCOUNT, OTHER_ACCOUNT) }));
    edit((db) => {
      const a = keyRow(db, k1.keyId), b = keyRow(db, k2.keyId);
      db.prepare("DELETE FROM keys").run();
      putRow(db, "keys", { ...b, key_id: k1.keyId });
      putRow(db, "keys", { ...a, key_id: k2.keyId });
    });
    expect(openFails().table).toBe("keys");
  });

  it("finds a row MAC replaced, the head edited or deleted, and a trigger planted", () => {
    populate();
    const pristine = join(dir, "pristine.db");
    copyFileSync(path, pristine);
    const restore = (): void => copyFileSync(pristine, path);

    edit((db) => db.prepare("UPDATE grants SET mac = ? WHERE grant_id = ?").run(Buffer.alloc(32, 7), g1.grantId));
    expect(openFails().rowKey).toBe(g1.grantId);
    restore();
    edit((db) => db.prepare("UPDATE head SET change_count = change_count + 1").run());
    expect(openFails().table).toBe("head");
    restore();
    edit((db) => db.prepare("UPDATE head SET row_count = row_count + 1").run());
    expect(openFails().table).toBe("head");
    restore();
    edit((db) => db.prepare("DELETE FROM head").run());
    expect(openFails().message).toMatch(/head row is missing/);
    restore();
    edit((db) => db.exec("CREATE TRIGGER leak AFTER INSERT ON grants BEGIN UPDATE keys SET policy = '{}'; END"));
    expect(openFails().message).toMatch(/trigger leak/);
    restore();
    withStore((store) => expect(store.listGrants(k1.keyId)).toHaveLength(2));
  });

  it("finds a store handed to another fleet (another record key), with rows or empty", () => {
    populate();
    expect(openFails(hmacUnder("fleet-b")).table).toBe("keys");
    rmSync(path);
    withStore(() => undefined); // empty: only the head is MAC'ed
    expect(openFails(hmacUnder("fleet-b")).table).toBe("head");
  });

  it("does not find a rollback of the whole file to an older copy (documented limit; head() lets a caller anchor it)", () => {
    populate();
    const copy = join(dir, "copy.db");
    copyFileSync(path, copy);
    let later = 0;
    withStore((store) => {
      store.putKey({ ...k1, state: "Disabled" });
      later = store.head().changeCount;
    });
    copyFileSync(copy, path);
    withStore((store) => {
      expect(store.getKey(k1.keyId)!.state).toBe("Enabled");
      expect(store.head().changeCount).toBeLessThan(later); // what an outside anchor would compare
    });
  });

  it("keeps a grant constraint whose context keys are __proto__ or constructor, across a reopen (never widened to {})", () => {
    const context = JSON.parse('{"__proto__": "tenant-a", "constructor": "x", "toString": "y"}') as Record<string, string>;
    const grant = grantRecord(3, k1, { constraints: { EncryptionContextEquals: context, EncryptionContextSubset: context } });
    withStore((store) => {
      store.putGrant(grant);
      expect(Object.keys(store.getGrant(grant.grantId)!.constraints!.EncryptionContextEquals!)).toEqual(["__proto__", "constructor", "toString"]);
    });
    withStore((store) => {
      const constraints = store.getGrant(grant.grantId)!.constraints!;
      for (const c of [constraints.EncryptionContextEquals!, constraints.EncryptionContextSubset!]) {
        expect(Object.getOwnPropertyDescriptor(c, "__proto__")?.value).toBe("tenant-a");
        expect(Object.getPrototypeOf(c)).toBe(Object.prototype);
        expect(Object.keys(c)).toHaveLength(3);
      }
    });
  });
});
