// The data folder's SQLite schema is part of what the HSM trusts: exactly hsmsim's, checked at
// every open (see also test/security/redteam.test.ts F9). A folder written before the
// unknown_logins table existed still opens, and gets the table.
import { createRequire } from "node:module";
import { join } from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { verifyFolder } from "../../src/hsm/verify-folder.js";
import { type Device, FAST, H, activatedDevice, restoreSnapshot, snapshotOf } from "./fixture.js";

const Database = createRequire(import.meta.url)("better-sqlite3") as typeof import("better-sqlite3");

let device: Device | undefined;
afterEach(() => {
  device?.cleanup();
  device = undefined;
});

const tables = (dir: string) => {
  const db = new Database(join(dir, "hsm.db"), { readonly: true });
  try {
    return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[]);
  } finally {
    db.close();
  }
};

describe("store schema", () => {
  it("a folder from before unknown_logins (no unknown-name failures recorded) opens, reads and gets the table", () => {
    device = activatedDevice();
    device.hsm.close();
    const db = new Database(join(device.dir, "hsm.db"));
    db.exec("DROP TABLE unknown_logins");
    db.close();
    expect(tables(device.dir)).not.toContain("unknown_logins");
    expect(verifyFolder(device.dir).ok).toBe(true); // a reader accepts it as it is
    const hsm = H.Hsm.open(device.dir, FAST);
    try {
      expect(() => hsm.login("nobody", "wrong-password")).toThrow(H.HsmError);
    } finally {
      hsm.close();
    }
    expect(tables(device.dir)).toContain("unknown_logins");
    expect(verifyFolder(device.dir).ok).toBe(true);
    H.Hsm.open(device.dir, FAST).close();
  });

  it("dropping unknown_logins while it holds a counter is refused (its rows are sealed)", () => {
    device = activatedDevice();
    expect(() => device!.hsm.login("nobody", "wrong-password")).toThrow(H.HsmError);
    device.hsm.close();
    const db = new Database(join(device.dir, "hsm.db"));
    db.exec("DROP TABLE unknown_logins");
    db.close();
    let code: string | undefined;
    try {
      H.Hsm.open(device.dir, FAST).close();
    } catch (e) {
      code = (e as H.HsmError).code;
    }
    expect(code).toBe("DATA_FOLDER_INVALID");
    expect(verifyFolder(device.dir).ok).toBe(false);
  });

  it("a restored HSM opened without passwordCost takes its accounts' cost, and keeps it", () => {
    device = activatedDevice({ passwordCost: 5 });
    const snapshot = snapshotOf(device.hsm);
    const dir = join(device.dir, "..", "restored");
    const restored = restoreSnapshot(dir, snapshot, device.hsm);
    restored.close();
    let code: string | undefined;
    try {
      H.Hsm.open(dir, { passwordCost: 15 }).close();
    } catch (e) {
      code = (e as H.HsmError).code;
    }
    expect(code).toBe("INVALID_ARGUMENT");
    H.Hsm.open(dir, { passwordCost: 5 }).close();
  });
});
