// The KMS store: every record type round-trips, reads are copies, orders are as documented,
// deleteKey cascades, transactions are all-or-nothing (in SQLite and in the cache), and an
// acknowledged write survives close, reopen and kill -9.
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { KmsStore, KmsStoreError } from "../../src/kms/store.js";
import { ACCOUNT, OTHER_ACCOUNT, aliasRecord, customKeyStoreRecord, grantRecord, hmacUnder, keyRecord } from "./store-fixtures.js";

const here = dirname(fileURLToPath(import.meta.url));
const mac = hmacUnder("fleet-a");

function expectStoreError(fn: () => unknown, code: string, pattern?: RegExp): KmsStoreError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(KmsStoreError);
  const error = caught as KmsStoreError;
  expect(error.code).toBe(code);
  if (pattern) expect(error.message).toMatch(pattern);
  return error;
}

let dir: string;
let path: string;
const open: KmsStore[] = [];
function openStore(p: string | null = path): KmsStore {
  const store = KmsStore.open({ path: p, mac });
  open.push(store);
  return store;
}
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "kms-store-"));
  path = join(dir, "kms.db");
});
afterEach(() => {
  for (const store of open.splice(0)) store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe.each([["file", true], ["memory", false]] as const)("KmsStore (%s)", (_kind, durable) => {
  const storeFor = (): KmsStore => openStore(durable ? path : null);

  it("round-trips every record type, and answers copies", () => {
    const store = storeFor();
    const key = keyRecord(1, { customKeyStoreId: "cks-00000000000000001", origin: "AWS_CLOUDHSM", state: "PendingDeletion",
      deletionDateMs: 1_800_000_000_000, pendingWindowInDays: 7, tags: [] });
    const alias = aliasRecord("payments", key.keyId);
    const grant = grantRecord(1, key, { constraints: { EncryptionContextEquals: { a: "1", b: "2" } } });
    const bare = grantRecord(2, key, { name: null, retiringPrincipal: null, constraints: null });
    const cks = customKeyStoreRecord(1, { connectionState: "FAILED", connectionErrorCode: "USER_LOCKED_OUT" });
    store.putKey(key);
    store.putAlias(alias);
    store.putGrant(grant);
    store.putGrant(bare);
    store.putCustomKeyStore(cks);
    expect(store.getKey(key.keyId)).toEqual(key);
    expect(store.getAlias(ACCOUNT, alias.aliasName)).toEqual(alias);
    expect(store.getGrant(grant.grantId)).toEqual(grant);
    expect(store.getGrant(bare.grantId)).toEqual(bare);
    expect(store.grantByToken(grant.grantToken)).toEqual(grant);
    expect(store.getCustomKeyStore(cks.customKeyStoreId)).toEqual(cks);

    // Mutating what was put, or what was read, changes nothing stored.
    key.tags.push({ TagKey: "x", TagValue: "y" });
    key.policy = "{}";
    cks.sealedPassword[0] = 99;
    const read = store.getKey(key.keyId)!;
    read.tags[0] = { TagKey: "evil", TagValue: "evil" };
    read.state = "Enabled";
    const readGrant = store.getGrant(grant.grantId)!;
    readGrant.operations.push("CreateGrant");
    readGrant.constraints!.EncryptionContextEquals!.a = "other";
    store.getCustomKeyStore(cks.customKeyStoreId)!.sealedPassword.fill(0);
    expect(store.getKey(key.keyId)).toMatchObject({ tags: [], state: "PendingDeletion" });
    expect(store.getKey(key.keyId)!.policy).not.toBe("{}");
    expect(store.getGrant(grant.grantId)).toMatchObject({ operations: ["Decrypt", "Encrypt"], constraints: { EncryptionContextEquals: { a: "1", b: "2" } } });
    expect(store.getCustomKeyStore(cks.customKeyStoreId)!.sealedPassword).toEqual(Buffer.from([1, 2, 3, 1]));
    expect(store.listKeys(ACCOUNT)[0]!.tags).toEqual([]);
  });

  it("answers null for what is not there", () => {
    const store = storeFor();
    expect(store.getKey("nope")).toBeNull();
    expect(store.getAlias(ACCOUNT, "alias/nope")).toBeNull();
    expect(store.getGrant("nope")).toBeNull();
    expect(store.grantByToken("nope")).toBeNull();
    expect(store.getCustomKeyStore("nope")).toBeNull();
    expect(store.listKeys(ACCOUNT)).toEqual([]);
    expect(store.listGrants("nope")).toEqual([]);
    store.deleteKey("nope"); // deleting what is not there is no error
    store.deleteAlias(ACCOUNT, "alias/nope");
    store.deleteGrant("nope");
    store.deleteCustomKeyStore("nope");
    expect(store.head().changeCount).toBe(0);
  });

  it("lists keys and grants oldest first, aliases by name, per account", () => {
    const store = storeFor();
    const k3 = keyRecord(3), k1 = keyRecord(1), k2 = keyRecord(2), foreign = keyRecord(4, { accountId: OTHER_ACCOUNT });
    for (const k of [k3, k1, foreign, k2]) store.putKey(k);
    expect(store.listKeys(ACCOUNT).map((k) => k.keyId)).toEqual([k1.keyId, k2.keyId, k3.keyId]);
    expect(store.listKeys(OTHER_ACCOUNT).map((k) => k.keyId)).toEqual([foreign.keyId]);
    store.putAlias(aliasRecord("zeta", k1.keyId));
    store.putAlias(aliasRecord("alpha", k2.keyId));
    store.putAlias(aliasRecord("mid", k1.keyId));
    store.putAlias(aliasRecord("alpha", foreign.keyId, { accountId: OTHER_ACCOUNT }));
    expect(store.listAliases(ACCOUNT).map((a) => a.aliasName)).toEqual(["alias/alpha", "alias/mid", "alias/zeta"]);
    expect(store.listAliases(ACCOUNT, k1.keyId).map((a) => a.aliasName)).toEqual(["alias/mid", "alias/zeta"]);
    expect(store.listAliases(OTHER_ACCOUNT).map((a) => a.targetKeyId)).toEqual([foreign.keyId]);
    // Repointing an alias moves it between keys.
    store.putAlias(aliasRecord("zeta", k2.keyId));
    expect(store.listAliases(ACCOUNT, k2.keyId).map((a) => a.aliasName)).toEqual(["alias/alpha", "alias/zeta"]);
    const g5 = grantRecord(5, k1, { creationDateMs: 5 }), g2 = grantRecord(2, k1, { creationDateMs: 2, retiringPrincipal: "p" }),
      g9 = grantRecord(9, k2, { creationDateMs: 1, retiringPrincipal: "p" });
    for (const g of [g5, g2, g9]) store.putGrant(g);
    expect(store.listGrants(k1.keyId).map((g) => g.grantId)).toEqual([g2.grantId, g5.grantId]);
    expect(store.listRetirableGrants("p").map((g) => g.grantId)).toEqual([g9.grantId, g2.grantId]);
    const c2 = customKeyStoreRecord(2, { creationDateMs: 10 }), c1 = customKeyStoreRecord(1, { creationDateMs: 20, accountId: OTHER_ACCOUNT });
    store.putCustomKeyStore(c1);
    store.putCustomKeyStore(c2);
    expect(store.listCustomKeyStores(ACCOUNT).map((c) => c.customKeyStoreId)).toEqual([c2.customKeyStoreId]);
    expect(store.allCustomKeyStores().map((c) => c.customKeyStoreId)).toEqual([c2.customKeyStoreId, c1.customKeyStoreId]);
  });

  it("deleteKey removes the key with its aliases and grants, and nothing else", () => {
    const store = storeFor();
    const doomed = keyRecord(1), kept = keyRecord(2);
    store.putKey(doomed);
    store.putKey(kept);
    store.putAlias(aliasRecord("a", doomed.keyId));
    store.putAlias(aliasRecord("b", kept.keyId));
    store.putGrant(grantRecord(1, doomed));
    store.putGrant(grantRecord(2, kept));
    const before = store.head();
    store.deleteKey(doomed.keyId);
    expect(store.head()).toEqual({ changeCount: before.changeCount + 1, rowCount: 3 }); // one transaction; the kept key, its alias and grant remain
    expect(store.getKey(doomed.keyId)).toBeNull();
    expect(store.getAlias(ACCOUNT, "alias/a")).toBeNull();
    expect(store.getGrant(grantRecord(1, doomed).grantId)).toBeNull();
    expect(store.grantByToken("token-1")).toBeNull();
    expect(store.listRetirableGrants(grantRecord(1, doomed).retiringPrincipal!).map((g) => g.grantId)).toEqual([grantRecord(2, kept).grantId]);
    expect(store.getAlias(ACCOUNT, "alias/b")).not.toBeNull();
    expect(store.listGrants(kept.keyId)).toHaveLength(1);
  });

  it("a transaction that throws leaves neither SQLite nor the cache changed; a nested one that throws undoes only itself", () => {
    const store = storeFor();
    const k1 = keyRecord(1), k2 = keyRecord(2), k3 = keyRecord(3);
    store.putKey(k1);
    const head = store.head();
    expect(() => store.transaction(() => {
      store.putKey(k2);
      store.putKey({ ...k1, state: "Disabled" });
      store.deleteKey(k1.keyId);
      throw new Error("handler failed");
    })).toThrow("handler failed"); // the caller's own error, as it is
    expect(store.getKey(k2.keyId)).toBeNull();
    expect(store.getKey(k1.keyId)).toEqual(k1);
    expect(store.head()).toEqual(head);
    store.transaction(() => {
      store.putKey(k2);
      expect(() => store.transaction(() => {
        store.putKey(k3);
        store.deleteKey(k2.keyId);
        throw new Error("inner");
      })).toThrow("inner");
      expect(store.getKey(k3.keyId)).toBeNull();
      expect(store.getKey(k2.keyId)).toEqual(k2);
    });
    expect(store.listKeys(ACCOUNT).map((k) => k.keyId)).toEqual([k1.keyId, k2.keyId]);
    if (durable) {
      store.close();
      expect(openStore().listKeys(ACCOUNT).map((k) => k.keyId)).toEqual([k1.keyId, k2.keyId]);
    }
  });

  it("refuses an asynchronous transaction function, and keeps none of its writes", () => {
    const store = storeFor();
    expectStoreError(() => store.transaction((async () => {
      store.putKey(keyRecord(1));
      await Promise.resolve();
    }) as never), "INVALID_ARGUMENT", /synchronous/);
    expect(store.getKey(keyRecord(1).keyId)).toBeNull();
    expect(store.head()).toEqual({ changeCount: 0, rowCount: 0 });
    expectStoreError(() => store.transaction("not a function" as never), "INVALID_ARGUMENT");
  });

  it("refuses a record that does not fit, naming the member, and changes nothing", () => {
    const store = storeFor();
    expectStoreError(() => store.putKey(keyRecord(1, { creationDateMs: 1.5 })), "INVALID_RECORD", /creationDateMs/);
    expectStoreError(() => store.putKey(keyRecord(1, { state: "Unavailable" as never })), "INVALID_RECORD", /state/);
    expectStoreError(() => store.putKey({ ...keyRecord(1), policy: undefined as never }), "INVALID_RECORD", /policy/);
    expectStoreError(() => store.putKey(keyRecord(1, { tags: [{ TagKey: "k", TagValue: 3 as never }] })), "INVALID_RECORD", /tags\[0\]\.TagValue/);
    expectStoreError(() => store.putCustomKeyStore(customKeyStoreRecord(1, { sealedPassword: "secret" as never })), "INVALID_RECORD", /sealedPassword/);
    expectStoreError(() => store.putGrant(grantRecord(1, keyRecord(1), { operations: "Decrypt" as never })), "INVALID_RECORD", /operations/);
    expectStoreError(() => store.putKey(null as never), "INVALID_RECORD", /object/);
    expectStoreError(() => store.putGrant(undefined as never), "INVALID_RECORD", /object/);
    expectStoreError(() => store.putAlias(aliasRecord("a\u0000b", keyRecord(1).keyId)), "INVALID_RECORD", /aliasName/);
    expectStoreError(() => store.putKey(keyRecord(1, { keyId: "" })), "INVALID_RECORD", /keyId/);
    store.putGrant(grantRecord(1, keyRecord(1)));
    expectStoreError(() => store.putGrant(grantRecord(2, keyRecord(1), { grantToken: "token-1" })), "INVALID_RECORD", /grantToken/);
    expect(store.listKeys(ACCOUNT)).toEqual([]);
    expect(store.head().rowCount).toBe(1);
  });

  it("is closed after close()", () => {
    const store = storeFor();
    store.close();
    expectStoreError(() => store.getKey("x"), "STORE_CLOSED");
    expectStoreError(() => store.putKey(keyRecord(1)), "STORE_CLOSED");
    expectStoreError(() => store.transaction(() => 1), "STORE_CLOSED");
    store.close(); // twice is fine
  });
});

describe("KmsStore on disk", () => {
  it("keeps every record across close and reopen", () => {
    const store = openStore();
    const key = keyRecord(1), alias = aliasRecord("a", key.keyId), grant = grantRecord(1, key), cks = customKeyStoreRecord(1);
    store.putKey(key);
    store.putAlias(alias);
    store.putGrant(grant);
    store.putCustomKeyStore(cks);
    store.putKey({ ...key, state: "Disabled" });
    const head = store.head();
    store.close();
    const again = openStore();
    expect(again.getKey(key.keyId)).toEqual({ ...key, state: "Disabled" });
    expect(again.getAlias(ACCOUNT, alias.aliasName)).toEqual(alias);
    expect(again.grantByToken(grant.grantToken)).toEqual(grant);
    expect(again.getCustomKeyStore(cks.customKeyStoreId)).toEqual(cks);
    expect(again.head()).toEqual(head);
  });

  it("makes the file 0600, and refuses a folder others can enter", () => {
    openStore().putKey(keyRecord(1));
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(`${path}-wal`).mode & 0o777).toBe(0o600);
    const shared = mkdtempSync(join(tmpdir(), "kms-store-shared-"));
    try {
      chmodSync(shared, 0o755);
      expectStoreError(() => KmsStore.open({ path: join(shared, "kms.db"), mac }), "STORE_INVALID", /0700/);
      expectStoreError(() => KmsStore.open({ path: join(shared, "missing", "kms.db"), mac }), "STORE_INVALID", /does not exist/);
    } finally {
      rmSync(shared, { recursive: true, force: true });
    }
  });

  it("refuses options it cannot work with, and a mac that is not 32 bytes", () => {
    expectStoreError(() => KmsStore.open({ path, mac: undefined as never }), "STORE_INVALID", /options\.mac/);
    expectStoreError(() => KmsStore.open({ path: "", mac }), "STORE_INVALID", /options\.path/);
    expectStoreError(() => KmsStore.open({ path, mac: (d) => mac(d).subarray(0, 16) }), "STORE_INVALID", /32 bytes/);
    // Nothing was left half made: a proper open afterwards works.
    openStore().putKey(keyRecord(1));
    const plainArrays = KmsStore.open({ path: null, mac: (d) => new Uint8Array(mac(d)) as Buffer }); // a Uint8Array is fine
    open.push(plainArrays);
    plainArrays.putKey(keyRecord(2));
    expect(plainArrays.head().rowCount).toBe(1);
  });

  it("refuses a second opener while the first holds the file", () => {
    openStore();
    expectStoreError(() => KmsStore.open({ path, mac }), "STORE_IN_USE");
  });

  it("refuses a symlinked database file or side file", () => {
    const elsewhere = join(dir, "elsewhere.db");
    writeFileSync(elsewhere, "");
    symlinkSync(elsewhere, path);
    expectStoreError(() => KmsStore.open({ path, mac }), "STORE_INVALID", /not a regular file/);
    rmSync(path);
    symlinkSync(elsewhere, `${path}-wal`);
    expectStoreError(() => KmsStore.open({ path, mac }), "STORE_INVALID", /not a regular file/);
  });

  it("refuses a file that is not a KMS store, without damaging it", () => {
    writeFileSync(path, "not a database at all, just some text that is long enough to look like a header.....");
    expectStoreError(() => KmsStore.open({ path, mac }), "STORE_INVALID");
    rmSync(path);
    const other = new Database(path);
    other.exec("CREATE TABLE t (x)");
    other.close();
    expectStoreError(() => KmsStore.open({ path, mac }), "STORE_TAMPERED", /schema/);
  });

  it("keeps a put that returned, when its process is killed with SIGKILL right after", async () => {
    openStore().putKey(keyRecord(7));
    open.pop()!.close();
    const child = spawn(process.execPath, ["--import", "tsx", join(here, "store-child.ts"), path, "8"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += String(d)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d) => {
        if (String(d).includes("PUT")) {
          child.kill("SIGKILL");
          resolve();
        }
      });
      child.on("exit", () => reject(new Error(`the child ended before its put: ${stderr}`)));
    });
    const exit = await new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
    expect(exit).toBe("SIGKILL");
    const store = openStore();
    expect(store.getKey(keyRecord(8).keyId)).toEqual(keyRecord(8));
    expect(store.getKey(keyRecord(7).keyId)).toEqual(keyRecord(7));
  });
});
