// The `file:` target (issue 9, "A persistent plain token"): a pkcs11js-style program in one
// process makes a token and keys; another process finds them by label and uses them; PIN
// failures and lockout carry over; kill -9 right after an acknowledged change keeps it; the
// folder's files hold no key or PIN in clear; one process has a folder at a time.
// Tampering: test/security/file-token-tamper.test.ts; the CLI: test/file-token-cli.test.ts.
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";

import { p256 } from "@noble/curves/nist.js";
import { describe, expect, it } from "vitest";

import * as P from "../src/pkcs11/index.js";
import { TokenFolderError } from "../src/pkcs11/token-folder.js";
import { IMPORTED_KEY, type Line, kill9, loadError, open, run, start, tokenFiles, tokenRoot } from "./file-token-helpers.js";

const { newFolder } = tokenRoot();

describe("a pkcs11js program finds in a later process the token it made", () => {
  const folder = newFolder();
  let made: Line;

  it("process 1 makes a token, keys, a ciphertext and a signature; process 2 finds the keys by label and uses them", () => {
    made = run("make", folder);
    const used = run("use", folder, made.ciphertext as string);
    expect(used.plain).toBe("persisted across processes");
    expect(used.verified).toBe(true);
    // The public key the first process saw verifies the second process's signature (independent check).
    const point = Buffer.from(made.point as string, "hex").subarray(2); // DER OCTET STRING around the point
    expect(p256.verify(Buffer.from(used.signature as string, "hex"), Buffer.alloc(32, 3), point, { prehash: false, lowS: false })).toBe(true);
    expect(p256.verify(Buffer.from(made.signature as string, "hex"), Buffer.alloc(32, 3), point, { prehash: false, lowS: false })).toBe(true);
    // Session objects never persist; the sensitive key stays sensitive.
    expect(used.sessionOnly).toBe(0);
    expect(used.importedValue).toBeNull();
    expect(used.importedSensitive).toBe(1);
    expect(used.labels).toEqual(["aes-1", "ec-1", "ec-1", "imported"]);
  });

  it("the token keeps its label and serial, and a second slot is free, as SoftHSMv2 shows them", () => {
    const pkcs11 = open(folder);
    try {
      const slots = pkcs11.C_GetSlotList(true);
      expect(slots.length).toBe(2);
      const info = pkcs11.C_GetTokenInfo(slots[0]);
      expect(info.label.trim()).toBe("app token");
      expect(info.serialNumber).toBe(made.serial);
      expect(info.flags & P.CKF_TOKEN_INITIALIZED).toBeTruthy();
      expect(info.flags & P.CKF_USER_PIN_INITIALIZED).toBeTruthy();
      expect(pkcs11.C_GetTokenInfo(slots[1]).flags & P.CKF_TOKEN_INITIALIZED).toBe(0);
    } finally {
      pkcs11.close();
    }
  });

  it("no file of the folder holds the imported key's value or a PIN in clear; files are owner-only", () => {
    const needles = [IMPORTED_KEY, Buffer.from(IMPORTED_KEY.toString("hex")), Buffer.from(IMPORTED_KEY.toString("base64")),
      Buffer.from("user-pin-1"), Buffer.from("so-pin-1")];
    const names = readdirSync(folder);
    expect(names.filter((n) => n.endsWith(".token")).length).toBe(1);
    for (const name of names) {
      const bytes = readFileSync(join(folder, name));
      for (const needle of needles) expect(bytes.includes(needle), `${name} holds ${needle.toString("hex")}`).toBe(false);
      expect(statSync(join(folder, name)).mode & 0o077).toBe(0);
    }
    expect(statSync(folder).mode & 0o077).toBe(0);
    // The control: the needle search finds a value that is there.
    expect(readFileSync(tokenFiles(folder)[0]).includes(Buffer.from("app token"))).toBe(true);
  });
});

describe("PIN failures and lockout persist across processes", () => {
  it("each wrong PIN is counted on disk; the fifth locks the PIN for every later process, the right PIN included", () => {
    const folder = newFolder();
    run("make", folder);
    expect(run("login", folder, "wrong-1")).toMatchObject({ login: "CKR_PIN_INCORRECT" });
    const second = run("login", folder, "wrong-2");
    expect(second.login).toBe("CKR_PIN_INCORRECT");
    expect((second.flags as number) & P.CKF_USER_PIN_COUNT_LOW).toBeTruthy();
    // A success resets the counter, and that is written too.
    expect(run("login", folder, "user-pin-1")).toMatchObject({ login: "CKR_OK" });
    expect((run("login", folder, "wrong-3").flags as number) & P.CKF_USER_PIN_FINAL_TRY).toBe(0);
    for (let i = 0; i < 3; i++) expect(run("login", folder, `wrong-${i}`).login).toBe("CKR_PIN_INCORRECT");
    const fifth = run("login", folder, "wrong-last");
    expect(fifth.login).toBe("CKR_PIN_INCORRECT");
    const after = run("login", folder, "user-pin-1");
    expect(after.login).toBe("CKR_PIN_LOCKED");
    expect((after.flags as number) & P.CKF_USER_PIN_LOCKED).toBeTruthy();
  });

  it("the SO's C_InitPIN unlocks the user, durably; C_SetPIN's new PIN is the one a later process takes", () => {
    const folder = newFolder();
    run("make", folder);
    for (let i = 0; i < 5; i++) run("login", folder, "bad-pin");
    let pkcs11 = open(folder);
    const slot = pkcs11.C_GetSlotList(true)[0];
    let session = pkcs11.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    pkcs11.C_Login(session, P.CKU_SO, "so-pin-1");
    pkcs11.C_InitPIN(session, "user-pin-2");
    pkcs11.close();
    expect(run("login", folder, "user-pin-2").login).toBe("CKR_OK");
    pkcs11 = open(folder);
    session = pkcs11.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    pkcs11.C_Login(session, P.CKU_USER, "user-pin-2");
    pkcs11.C_SetPIN(session, "user-pin-2", "user-pin-3");
    pkcs11.close();
    expect(run("login", folder, "user-pin-2").login).toBe("CKR_PIN_INCORRECT");
    expect(run("login", folder, "user-pin-3").login).toBe("CKR_OK");
  });
});

describe("kill -9 right after an acknowledged change keeps it", () => {
  it("objects created (sync and async) and objects destroyed survive SIGKILL of the process that was told so", async () => {
    const folder = newFolder();
    run("make", folder);
    for (let round = 0; round < 3; round++) {
      const { child, line } = await start("create", folder, `kept-${round}`);
      expect(line).toEqual({ created: `kept-${round}` });
      await kill9(child);
    }
    // A wrong PIN counted, then SIGKILL: the count is on disk.
    const counted = await start("login", folder, "wrong-pin");
    expect(counted.line.login).toBe("CKR_PIN_INCORRECT");
    await kill9(counted.child);
    // Three more make four only if the killed process's count was kept: then the next try is the last.
    let flags = 0;
    for (let i = 0; i < 3; i++) flags = run("login", folder, `wrong-${i}`).flags as number;
    expect(flags & P.CKF_USER_PIN_FINAL_TRY).toBeTruthy();
    expect(run("login", folder, "user-pin-1").login).toBe("CKR_OK");
    const destroyed = await start("destroy", folder, "kept-1");
    expect(destroyed.line).toEqual({ destroyed: "kept-1" });
    await kill9(destroyed.child);
    const pkcs11 = open(folder);
    try {
      const session = pkcs11.C_OpenSession(pkcs11.C_GetSlotList(true)[0], P.CKF_SERIAL_SESSION);
      pkcs11.C_Login(session, P.CKU_USER, "user-pin-1");
      const count = (label: string) => {
        pkcs11.C_FindObjectsInit(session, [{ type: P.CKA_LABEL, value: label }]);
        const found = pkcs11.C_FindObjects(session, 10);
        pkcs11.C_FindObjectsFinal(session);
        return found.length;
      };
      expect([count("kept-0"), count("kept-1"), count("kept-2"), count("aes-1")]).toEqual([2, 0, 2, 1]);
    } finally {
      pkcs11.close();
    }
    expect(readdirSync(folder).filter((n) => n.includes(".tmp-"))).toEqual([]);
  }, 180_000);
});

describe("one process has a folder at a time", () => {
  it("while another process holds the folder, load fails TOKEN_FOLDER_IN_USE; after its kill -9 the folder opens", async () => {
    const folder = newFolder();
    run("make", folder);
    const { child, line } = await start("hold", folder);
    expect(line).toEqual({ holding: folder });
    try {
      const error = loadError(folder);
      expect(error).toBeInstanceOf(TokenFolderError);
      expect((error as TokenFolderError).code).toBe("TOKEN_FOLDER_IN_USE");
      expect(run("login", folder, "user-pin-1")).toEqual({ loadError: "TOKEN_FOLDER_IN_USE" });
    } finally {
      await kill9(child);
    }
    expect(loadError(folder)).toBeUndefined();
  }, 180_000);

  it("in one process: a second PKCS11 on the folder is refused until the first is closed", () => {
    const folder = newFolder();
    const first = open(folder);
    expect((loadError(folder) as TokenFolderError).code).toBe("TOKEN_FOLDER_IN_USE");
    first.C_Finalize();
    first.close();
    const second = open(folder);
    second.close();
  });

  it("a second load refused in one process leaves the first's lock in force for other processes", () => {
    const folder = newFolder();
    run("make", folder);
    const first = open(folder);
    try {
      expect((loadError(folder) as TokenFolderError).code).toBe("TOKEN_FOLDER_IN_USE");
      // Closing any descriptor of the lock file would have dropped this process's POSIX lock.
      expect(run("login", folder, "user-pin-1")).toEqual({ loadError: "TOKEN_FOLDER_IN_USE" });
    } finally {
      first.close();
    }
    expect(run("login", folder, "user-pin-1")).toMatchObject({ login: "CKR_OK" });
  });
});

describe("target form", () => {
  it("rejects a seed, unknown options and bad values; pinHashIterations must match the folder's", () => {
    const folder = newFolder();
    expect(() => new P.PKCS11(`file:${folder}?seed=00`)).toThrow(TypeError);
    expect(() => new P.PKCS11(`file:${folder}?color=blue`)).toThrow(/unknown target option/);
    expect(() => new P.PKCS11(`file:${folder}?slots=0`)).toThrow(TypeError);
    const p = open(folder);
    p.C_InitToken(p.C_GetSlotList(true)[0], "so-pin-1", "t");
    p.close();
    let error: unknown;
    try {
      new P.PKCS11(`file:${folder}?pinHashIterations=65`).close();
    } catch (e) {
      error = e;
    }
    expect((error as TokenFolderError).code).toBe("TOKEN_FOLDER_OPTIONS");
    // The file URL form names the same folder.
    const viaUrl = new P.PKCS11(`file://${folder}?pinHashIterations=64`);
    viaUrl.C_Initialize();
    expect(viaUrl.C_GetTokenInfo(viaUrl.C_GetSlotList(true)[0]).label.trim()).toBe("t");
    viaUrl.close();
  });
});

describe("in one process", () => {
  it("C_InitToken on a token erases it durably (same file, new serial); a wrong SO PIN there is counted; a non-ASCII label survives", () => {
    const folder = newFolder();
    let pkcs11 = open(folder);
    const { session } = P.openUserSession(pkcs11, { soPin: "so-pin-1", userPin: "user-pin-1", label: "étiquette ünï" });
    pkcs11.C_CreateObject(session, [{ type: P.CKA_CLASS, value: P.CKO_DATA }, { type: P.CKA_TOKEN, value: true }, { type: P.CKA_LABEL, value: "old" }]);
    const firstSerial = pkcs11.C_GetTokenInfo(pkcs11.C_GetSlotList(true)[0]).serialNumber;
    pkcs11.close();
    pkcs11 = open(folder);
    let slot = pkcs11.C_GetSlotList(true)[0];
    expect(pkcs11.C_GetTokenInfo(slot).label.trim()).toBe("étiquette ünï");
    expect(() => pkcs11.C_InitToken(slot, "wrong-so-pin", "new")).toThrow("CKR_PIN_INCORRECT");
    pkcs11.close();
    pkcs11 = open(folder);
    slot = pkcs11.C_GetSlotList(true)[0];
    expect(pkcs11.C_GetTokenInfo(slot).flags & P.CKF_SO_PIN_COUNT_LOW).toBeTruthy();
    pkcs11.C_InitToken(slot, "so-pin-1", "new");
    pkcs11.close();
    expect(tokenFiles(folder).length).toBe(1);
    pkcs11 = open(folder);
    slot = pkcs11.C_GetSlotList(true)[0];
    const info = pkcs11.C_GetTokenInfo(slot);
    expect([info.label.trim(), info.serialNumber === firstSerial, info.flags & P.CKF_USER_PIN_INITIALIZED, info.flags & P.CKF_SO_PIN_COUNT_LOW]).toEqual(["new", false, 0, 0]);
    const s = pkcs11.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    pkcs11.C_Login(s, P.CKU_SO, "so-pin-1");
    pkcs11.C_FindObjectsInit(s, []);
    expect(pkcs11.C_FindObjects(s, 10)).toEqual([]);
    pkcs11.close();
  });

  it("C_SetAttributeValue, C_CopyObject and C_DestroyObject on token objects are written; session objects never are", () => {
    const folder = newFolder();
    let pkcs11 = open(folder);
    const { session } = P.openUserSession(pkcs11, { soPin: "so-pin-1", userPin: "user-pin-1" });
    const data = (label: string, token: boolean) => pkcs11.C_CreateObject(session, [{ type: P.CKA_CLASS, value: P.CKO_DATA }, { type: P.CKA_TOKEN, value: token }, { type: P.CKA_LABEL, value: label }]);
    const renamed = data("before", true);
    const doomed = data("doomed", true);
    const kept = data("kept", true);
    const sessionObject = data("session", false);
    pkcs11.C_SetAttributeValue(session, renamed, [{ type: P.CKA_LABEL, value: "after" }]);
    pkcs11.C_CopyObject(session, kept, [{ type: P.CKA_LABEL, value: "copy" }]);
    pkcs11.C_CopyObject(session, sessionObject, [{ type: P.CKA_LABEL, value: "copied-to-token" }, { type: P.CKA_TOKEN, value: true }]);
    pkcs11.C_CopyObject(session, kept, [{ type: P.CKA_LABEL, value: "session-copy" }, { type: P.CKA_TOKEN, value: false }]);
    pkcs11.C_DestroyObject(session, doomed);
    pkcs11.close();
    pkcs11 = open(folder);
    const s = pkcs11.C_OpenSession(pkcs11.C_GetSlotList(true)[0], P.CKF_SERIAL_SESSION);
    pkcs11.C_Login(s, P.CKU_USER, "user-pin-1");
    pkcs11.C_FindObjectsInit(s, []);
    const labels = pkcs11.C_FindObjects(s, 20).map((h) => (pkcs11.C_GetAttributeValue(s, h, [{ type: P.CKA_LABEL }])[0].value as Buffer).toString()).sort();
    pkcs11.close();
    expect(labels).toEqual(["after", "copied-to-token", "copy", "kept"]);
  });

  it("a change the folder cannot take fails CKR_DEVICE_ERROR and is not kept: the new token object is removed", () => {
    const folder = newFolder();
    const pkcs11 = open(folder);
    const { session } = P.openUserSession(pkcs11, { soPin: "so-pin-1", userPin: "user-pin-1" });
    const [file] = tokenFiles(folder);
    // The token's file replaced by a directory: the next write's rename fails.
    rmSync(file);
    mkdirSync(file);
    const template = [{ type: P.CKA_CLASS, value: P.CKO_DATA }, { type: P.CKA_TOKEN, value: true }, { type: P.CKA_LABEL, value: "unsaved" }];
    let error: unknown;
    try {
      pkcs11.C_CreateObject(session, template);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(P.Pkcs11Error);
    expect((error as P.Pkcs11Error).message).toBe("CKR_DEVICE_ERROR");
    expect((error as P.Pkcs11Error).detail).toMatch(/could not be written/);
    pkcs11.C_FindObjectsInit(session, [{ type: P.CKA_LABEL, value: "unsaved" }]);
    expect(pkcs11.C_FindObjects(session, 10)).toEqual([]);
    pkcs11.C_FindObjectsFinal(session);
    // A session object needs no write and still works.
    expect(pkcs11.C_CreateObject(session, [{ type: P.CKA_CLASS, value: P.CKO_DATA }, { type: P.CKA_LABEL, value: "s" }])).toBeInstanceOf(Buffer);
    pkcs11.close();
  });
});
