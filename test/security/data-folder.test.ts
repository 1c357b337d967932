// Attacks on the data folder by someone with file access (better-sqlite3 opened straight on
// a closed folder), by a second process, and by a careless umask. Each fails on the seed's
// store: a plain SHA-256 chain, records bound to nothing, no lock, files 0644.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { afterEach, describe, expect, it } from "vitest";

import { runAudit } from "../../src/cli/audit.js";
import { internalsOf } from "../../src/hsm/internals.js";
import { verifyFolder } from "../../src/hsm/verify-folder.js";
import { type Device, FAST, H, activatedDevice, cloneHsm, cuSession, expectHsmError, tempDir, tokenAesKey } from "../hsm/fixture.js";

const require = createRequire(import.meta.url);
const Database = require("better-sqlite3") as typeof import("better-sqlite3");
const HERE = dirname(fileURLToPath(import.meta.url));
const MAIN = join(HERE, "..", "..", "src", "cli", "main.ts");

let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.reverse()) c();
  cleanups = [];
});

function device(): Device {
  const d = activatedDevice();
  cleanups.push(() => d.cleanup());
  return d;
}

/** Runs SQL on the closed folder's database, as an attacker with the file would. */
function tamper(dir: string, fn: (db: import("better-sqlite3").Database) => void): void {
  const db = new Database(join(dir, "hsm.db"));
  try {
    fn(db);
  } finally {
    db.close();
  }
}

/** `hsmsim audit` in-process: its exit code and what it printed. */
function audit(dir: string): { code: number; text: string } {
  let text = "";
  const code = runAudit(dir, { json: false }, (t) => {
    text += t;
    return true;
  });
  return { code, text };
}

function reopen(d: Device): H.Hsm {
  d.hsm = H.Hsm.open(d.dir, FAST);
  return d.hsm;
}

describe("audit log tamper evidence", () => {
  it("deleting the last entries (truncation) is detected: the HSM refuses to open and hsmsim audit exits 1", () => {
    const d = device();
    d.hsm.close();
    const before = audit(d.dir);
    expect(before.code).toBe(0);
    tamper(d.dir, (db) => db.prepare("DELETE FROM audit WHERE seq > (SELECT MAX(seq) - 3 FROM audit)").run());
    expectHsmError(() => reopen(d), "DATA_FOLDER_INVALID");
    const after = audit(d.dir);
    expect(after.code).toBe(1);
    expect(after.text).toMatch(/missing.*truncated/);
    const verdict = verifyFolder(d.dir);
    const last = verdict.entries.at(-1)!.seq;
    expect(verdict.audit.problem).toMatchObject({ seq: last + 1 });
  });

  it("deleting middle entries and recomputing plain SHA-256 hashes does not verify", () => {
    const d = device();
    d.hsm.close();
    tamper(d.dir, (db) => {
      db.prepare("DELETE FROM audit WHERE seq IN (3, 4)").run();
      // Renumber and re-chain the rest with the seed's algorithm: SHA-256(prev ‖ canonical fields).
      const rows = db.prepare("SELECT * FROM audit ORDER BY seq").all() as Record<string, unknown>[];
      db.prepare("DELETE FROM audit").run();
      let prev = "0".repeat(64);
      rows.forEach((r, i) => {
        const seq = i + 1;
        const canonical = JSON.stringify([seq, r.time_us, r.reboot, r.operation, r.actor, r.session, JSON.parse(r.keys as string), r.result, r.detail]);
        const hash = createHash("sha256").update(prev).update(canonical).digest("hex");
        db.prepare(`INSERT INTO audit (seq, time_us, reboot, operation, actor, session, keys, result, detail, prev_hash, hash)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(seq, r.time_us, r.reboot, r.operation, r.actor, r.session, r.keys, r.result, r.detail, prev, hash);
        prev = hash;
      });
    });
    expectHsmError(() => reopen(d), "DATA_FOLDER_INVALID");
    const result = audit(d.dir);
    expect(result.code).toBe(1);
    expect(verifyFolder(d.dir).audit).toMatchObject({ ok: false, problem: { seq: 1 } });
  });

  it("an edited entry is reported with its sequence number (the HSM still opens: its head is intact)", () => {
    const d = device();
    d.hsm.close();
    tamper(d.dir, (db) => db.prepare("UPDATE audit SET actor = 'mallory' WHERE seq = 5").run());
    expect(reopen(d).verifyAudit()).toMatchObject({ ok: false, problem: { seq: 5 } });
    d.hsm.close();
    const result = audit(d.dir);
    expect(result.code).toBe(1);
    expect(result.text).toContain("CHAIN BROKEN at entry 5");
  });

  it("editing the sealed head itself is detected", () => {
    const d = device();
    d.hsm.close();
    tamper(d.dir, (db) => {
      db.prepare("DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)").run();
      const last = db.prepare("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").get() as { seq: number; hash: string };
      db.prepare("UPDATE seal SET audit_seq = ?, audit_hash = ?").run(last.seq, last.hash);
    });
    expectHsmError(() => reopen(d), "DATA_FOLDER_INVALID");
    expect(audit(d.dir).code).toBe(1);
  });

  it("the CLI itself exits 1 on a tampered folder and 0 on an intact one", () => {
    const d = device();
    d.hsm.close();
    expect(spawnSync(process.execPath, ["--import", "tsx", MAIN, "audit", d.dir], { encoding: "utf8" }).status).toBe(0);
    tamper(d.dir, (db) => db.prepare("DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)").run());
    const broken = spawnSync(process.execPath, ["--import", "tsx", MAIN, "audit", d.dir], { encoding: "utf8" });
    expect(broken.status).toBe(1);
    expect(broken.stdout).toContain("CHAIN BROKEN");
  });
});

describe("stale, deleted and swapped key records", () => {
  function sharedKey() {
    const d = device();
    const alice = cuSession(d.hsm, "alice", "alice-password");
    const k1 = tokenAesKey(alice.pkcs11, alice.session, "k1");
    const k2 = tokenAesKey(alice.pkcs11, alice.session, "k2");
    const aliceActor = d.hsm.login("alice", "alice-password");
    const id1 = d.hsm.keyIdOf(k1), id2 = d.hsm.keyIdOf(k2);
    d.hsm.shareKey(aliceActor, id1, "bob");
    return { d, alice, aliceActor, id1, id2, k1 };
  }
  const row = (dir: string, id: number) => {
    let r: Record<string, unknown> | undefined;
    tamper(dir, (db) => (r = db.prepare("SELECT * FROM keys WHERE id = ?").get(id) as Record<string, unknown>));
    return r!;
  };

  it("an older record copied back after an unshare (with its version) is refused: the revoked share does not come back", () => {
    const { d, id1 } = sharedKey();
    d.hsm.close();
    const shared = row(d.dir, id1);
    reopen(d).unshareKey(d.hsm.login("alice", "alice-password"), id1, "bob");
    d.hsm.close();
    tamper(d.dir, (db) => db.prepare("UPDATE keys SET record = ?, version = ? WHERE id = ?").run(shared.record, shared.version, id1));
    expectHsmError(() => reopen(d), "DATA_FOLDER_INVALID");
    expect(audit(d.dir).code).toBe(1);
  });

  it("an older record alone, under the current version, does not open", () => {
    const { d, id1 } = sharedKey();
    d.hsm.close();
    const shared = row(d.dir, id1);
    reopen(d).unshareKey(d.hsm.login("alice", "alice-password"), id1, "bob");
    d.hsm.close();
    tamper(d.dir, (db) => db.prepare("UPDATE keys SET record = ? WHERE id = ?").run(shared.record, id1));
    expectHsmError(() => reopen(d), "DATA_FOLDER_INVALID");
  });

  it("a deleted key's record copied back (resurrection) is refused", () => {
    const { d, id1 } = sharedKey();
    d.hsm.close();
    const saved = row(d.dir, id1);
    reopen(d);
    const again = cuSession(d.hsm, "alice", "alice-password");
    again.pkcs11.C_FindObjectsInit(again.session, [{ type: H.CKA_LABEL, value: "k1" }]);
    const [found] = again.pkcs11.C_FindObjects(again.session, 1);
    again.pkcs11.C_FindObjectsFinal(again.session);
    again.pkcs11.C_DestroyObject(again.session, found);
    d.hsm.close();
    tamper(d.dir, (db) => {
      db.prepare("INSERT INTO keys (id, record, owner, version, created_seq) VALUES (?, ?, ?, ?, ?)")
        .run(saved.id, saved.record, saved.owner, saved.version, saved.created_seq);
      db.prepare("DELETE FROM tombstones WHERE kind = 'key' AND name = ?").run(String(id1));
    });
    expectHsmError(() => reopen(d), "DATA_FOLDER_INVALID");
    expect(audit(d.dir).code).toBe(1);
  });

  it("two keys' records swapped are refused", () => {
    const { d, id1, id2 } = sharedKey();
    d.hsm.close();
    const r1 = row(d.dir, id1), r2 = row(d.dir, id2);
    tamper(d.dir, (db) => {
      db.prepare("UPDATE keys SET record = ? WHERE id = ?").run(r2.record, id1);
      db.prepare("UPDATE keys SET record = ? WHERE id = ?").run(r1.record, id2);
    });
    expectHsmError(() => reopen(d), "DATA_FOLDER_INVALID");
  });

  it("an edited version or owner column is refused", () => {
    const { d, id1 } = sharedKey();
    d.hsm.close();
    tamper(d.dir, (db) => db.prepare("UPDATE keys SET version = version + 4096 WHERE id = ?").run(id1));
    expectHsmError(() => reopen(d), "DATA_FOLDER_INVALID");
    tamper(d.dir, (db) => db.prepare("UPDATE keys SET version = version - 4096, owner = owner + 1 WHERE id = ?").run(id1));
    expectHsmError(() => reopen(d), "DATA_FOLDER_INVALID");
    tamper(d.dir, (db) => db.prepare("UPDATE keys SET owner = owner - 1 WHERE id = ?").run(id1));
    expect(reopen(d).describeKey(d.hsm.login("alice", "alice-password"), id1).sharedWith).toEqual(["bob"]); // restored exactly: opens
  });

  it("a reset lockout counter or an old password hash copied back is refused", () => {
    const d = device();
    for (let i = 0; i < 5; i++) expectHsmError(() => d.hsm.login("bob", "wrong-password"), "LOGIN_FAILED");
    expectHsmError(() => d.hsm.login("bob", "bob-password"), "ACCOUNT_LOCKED");
    d.hsm.close();
    tamper(d.dir, (db) => db.prepare("UPDATE users SET failures = 0 WHERE name = 'bob'").run());
    expectHsmError(() => reopen(d), "DATA_FOLDER_INVALID");
    tamper(d.dir, (db) => db.prepare("UPDATE users SET failures = 5 WHERE name = 'bob'").run());
    const old = (() => {
      let r: Record<string, unknown> | undefined;
      tamper(d.dir, (db) => (r = db.prepare("SELECT * FROM users WHERE name = 'alice'").get() as Record<string, unknown>));
      return r!;
    })();
    reopen(d).changePassword(d.co = d.hsm.login("admin", "co-password-1"), "alice", "alice-password-2");
    d.hsm.close();
    tamper(d.dir, (db) => db.prepare("UPDATE users SET salt = ?, hash = ?, version = ? WHERE name = 'alice'").run(old.salt, old.hash, old.version));
    expectHsmError(() => reopen(d), "DATA_FOLDER_INVALID");
  });
});

describe("foreign masking key", () => {
  it("another HSM's masking.key is refused even while the HSM holds no keys", () => {
    const mine = tempDir(), other = tempDir();
    cleanups.push(() => mine.cleanup(), () => other.cleanup());
    H.Hsm.create(mine.path, FAST).close();
    H.Hsm.create(other.path, FAST).close();
    copyFileSync(join(other.path, "masking.key"), join(mine.path, "masking.key"));
    let message = "";
    try {
      H.Hsm.open(mine.path, FAST);
    } catch (e) {
      expect(e).toBeInstanceOf(H.HsmError);
      expect((e as H.HsmError).code).toBe("DATA_FOLDER_INVALID");
      message = (e as Error).message;
    }
    expect(message).toContain("masking.key is not this HSM's");
    expect(audit(mine.path).code).toBe(1);
  });
});

describe("one owner per folder", () => {
  function openInChild(dir: string, hold: boolean): { child: ChildProcess; first: Promise<string> } {
    const script = `
      import * as H from ${JSON.stringify(join(HERE, "..", "..", "src", "index.ts"))};
      try {
        const hsm = H.Hsm.open(${JSON.stringify(dir)}, { passwordCost: 4 });
        process.stdout.write("opened\\n");
        ${hold ? "setInterval(() => {}, 1000);" : "hsm.close();"}
      } catch (e) {
        process.stdout.write((e.code ?? String(e)) + "\\n");
      }`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    const first = new Promise<string>((resolve) => {
      let out = "";
      child.stdout!.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes("\n")) resolve(out.trim());
      });
      child.on("exit", () => resolve(out.trim()));
    });
    return { child, first };
  }

  it("a second open in the same process gets DATA_FOLDER_IN_USE, and the first keeps working", () => {
    const d = device();
    expectHsmError(() => H.Hsm.open(d.dir, FAST), "DATA_FOLDER_IN_USE");
    expectHsmError(() => H.Hsm.create(d.dir, FAST), "DATA_FOLDER_IN_USE");
    d.hsm.createUser(d.co, "carol", "CU", "carol-password");
    d.hsm.close();
    reopen(d); // the lock went with close()
    expect(d.hsm.listUsers(d.hsm.login("admin", "co-password-1")).map((u) => u.username)).toContain("carol");
  });

  it("a refused second open in this process does not hand the lock to another process", async () => {
    // Closing any descriptor of the lock file would drop this process's POSIX lock on it.
    const d = device();
    expectHsmError(() => H.Hsm.open(d.dir, FAST), "DATA_FOLDER_IN_USE");
    expect(await openInChild(d.dir, false).first).toBe("DATA_FOLDER_IN_USE");
  }, 60_000);

  it("another process gets DATA_FOLDER_IN_USE while the folder is open, and opens it once the owner is killed with -9", async () => {
    const d = device();
    expect(await openInChild(d.dir, false).first).toBe("DATA_FOLDER_IN_USE");
    d.hsm.close();
    const owner = openInChild(d.dir, true);
    expect(await owner.first).toBe("opened");
    expectHsmError(() => reopen(d), "DATA_FOLDER_IN_USE");
    // A reader still reads the running HSM's folder.
    expect(audit(d.dir).code).toBe(0);
    const exited = new Promise((resolve) => owner.child.on("exit", resolve));
    owner.child.kill("SIGKILL");
    await exited;
    expect(reopen(d).verifyAudit().ok).toBe(true); // no stale lock
  }, 60_000);

  it("every call after close() is a typed CLOSED error, never a raw SqliteError", () => {
    const d = device();
    const { hsm, co } = d;
    hsm.close();
    const calls: (() => unknown)[] = [
      () => hsm.login("admin", "co-password-1"), () => hsm.createUser(co, "dave", "CU", "dave-password"), () => hsm.listUsers(co),
      () => hsm.auditLog(), () => hsm.verifyAudit(), () => hsm.activated, () => internalsOf(hsm).snapshot(), () => hsm.deleteUser(co, "bob"),
    ];
    for (const call of calls) {
      let thrown: unknown;
      try {
        call();
      } catch (e) {
        thrown = e;
      }
      expect(thrown, String(call)).toBeInstanceOf(H.HsmError);
      expect(["CLOSED", "NOT_LOGGED_IN"]).toContain((thrown as H.HsmError).code);
    }
    expect(() => hsm.close()).not.toThrow();
    reopen(d);
  });
});

describe("owner-only files", () => {
  it("with umask 0 the folder is 0700 and hsm.db, its -wal and -shm, the lock and masking.key are 0600", () => {
    const dir = tempDir();
    cleanups.push(() => dir.cleanup());
    const script = `
      import { readdirSync, statSync } from "node:fs";
      import { join } from "node:path";
      import * as H from ${JSON.stringify(join(HERE, "..", "..", "src", "index.ts"))};
      process.umask(0);
      const hsm = H.Hsm.create(${JSON.stringify(dir.path)}, { passwordCost: 4 });
      hsm.changePassword(hsm.login("admin", "password"), "admin", "co-password-1");
      const modes = { ".": statSync(${JSON.stringify(dir.path)}).mode & 0o777 };
      for (const name of readdirSync(${JSON.stringify(dir.path)})) modes[name] = statSync(join(${JSON.stringify(dir.path)}, name)).mode & 0o777;
      process.stdout.write(JSON.stringify(modes));
      hsm.close();`;
    const result = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8" });
    expect(result.stderr).toBe("");
    const modes = JSON.parse(result.stdout) as Record<string, number>;
    expect(modes["."]).toBe(0o700);
    for (const name of ["hsm.db", "hsm.db-wal", "hsm.db-shm", "hsm.lock", "masking.key"]) expect(modes[name], name).toBe(0o600);
    for (const [name, mode] of Object.entries(modes)) if (name !== ".") expect(mode, name).toBe(0o600);
    expect(statSync(join(dir.path, "hsm.db")).mode & 0o777).toBe(0o600);
  });
});

describe("store format", () => {
  it("a folder of an older format is a typed DATA_FOLDER_INVALID naming the version", () => {
    const d = device();
    d.hsm.close();
    tamper(d.dir, (db) => db.prepare("UPDATE meta SET value = '2' WHERE name = 'version'").run());
    let message = "";
    try {
      reopen(d);
    } catch (e) {
      expect((e as H.HsmError).code).toBe("DATA_FOLDER_INVALID");
      message = (e as Error).message;
    }
    expect(message).toContain("format version 2");
    tamper(d.dir, (db) => db.prepare("UPDATE meta SET value = '3' WHERE name = 'version'").run());
    reopen(d);
  });
});

describe("records in replication", () => {
  it("a journal entry carrying an older record of the key under a newer version (a revoked share) is refused by the receiving HSM", () => {
    const root = tempDir();
    cleanups.push(() => root.cleanup());
    const a = H.Hsm.create(join(root.path, "a"), { origin: 1, passwordCost: 4 });
    const b = cloneHsm(a, join(root.path, "b"), { origin: 2, passwordCost: 4 });
    cleanups.push(() => a.close(), () => b.close());
    a.changePassword(a.login("admin", "password"), "admin", "co-password-1");
    const co = a.login("admin", "co-password-1");
    a.createUser(co, "alice", "CU", "alice-password");
    a.createUser(co, "bob", "CU", "bob-password");
    const { pkcs11, session } = cuSession(a, "alice", "alice-password");
    const keyId = a.keyIdOf(tokenAesKey(pkcs11, session, "shared"));
    const alice = a.login("alice", "alice-password");
    a.shareKey(alice, keyId, "bob");
    a.unshareKey(alice, keyId, "bob");
    const entries = internalsOf(a).state.entriesAfter(1, 0);
    const keyChanges = entries.filter((e) => e.change.kind === "key");
    const shared = keyChanges.at(-2)!, unshared = keyChanges.at(-1)!;
    // A hostile relay replays the shared record as if it were the newest write.
    const forged = entries.map((e) => (e === unshared ? { ...e, change: { ...unshared.change, record: (shared.change as { record: Buffer }).record } as typeof e.change } : e));
    let thrown: unknown;
    try {
      for (const e of forged) internalsOf(b).state.apply(e);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(H.HsmError);
    expect((thrown as H.HsmError).code).toBe("DATA_FOLDER_INVALID");
    // Nothing of the forged entry stayed; the genuine one applies, and the share is gone on b too.
    expect(internalsOf(b).state.apply(unshared)).toBe("applied");
    const bob = b.login("bob", "bob-password");
    expectHsmError(() => b.describeKey(bob, keyId), "KEY_NOT_FOUND");
  });
});

describe("no raw better-sqlite3 error", () => {
  it("a value the database cannot bind is a typed HsmError", () => {
    const d = device();
    let thrown: unknown;
    try {
      d.hsm.auditLog({} as unknown as number);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(H.HsmError);
  });
});
