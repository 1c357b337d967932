// The `file:` target (issue 9, "A persistent plain token"): a pkcs11js-style program in one
// process makes a token and keys; another process finds them by label and uses them; PIN
// failures and lockout carry over; kill -9 right after an acknowledged change keeps it; the
// folder's files hold no key or PIN in clear; an altered, truncated or swapped file is a typed
// error; one process has a folder at a time.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { p256 } from "@noble/curves/nist.js";
import { afterAll, describe, expect, it } from "vitest";

import * as P from "../src/pkcs11/index.js";
import { TokenFolderError } from "../src/pkcs11/token-folder.js";
import { main } from "../src/cli/main.js";
import { APPLICATION_CALLS } from "../src/pkcs11/addon.js";
import { chipForTarget } from "../src/pkcs11/target.js";
import { findForbidden } from "./security/walk.js";

const CHILD = join(dirname(fileURLToPath(import.meta.url)), "file-token-child.ts");
const IMPORTED_KEY = Buffer.from("9f1c2a7e5b3d4c6f8a0e1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a", "hex");
const ROOT = mkdtempSync(join(tmpdir(), "hsmsim-file-token-"));
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));
let folders = 0;
const newFolder = () => join(ROOT, `f${++folders}`);

type Line = Record<string, unknown>;

/** Runs the child to completion; its last JSON line. */
function run(...args: string[]): Line {
  const child = spawnSync(process.execPath, ["--import", "tsx", CHILD, ...args], { encoding: "utf8", timeout: 120_000 });
  const last = child.stdout.trim().split("\n").pop() ?? "";
  if (child.status !== 0 || last === "") throw new Error(`child ${args.join(" ")} failed (${child.status} ${child.signal}): ${child.stderr}`);
  return JSON.parse(last) as Line;
}

/** Starts the child with `hang`; resolves with its first JSON line once printed (the acknowledgement). */
function start(...args: string[]): Promise<{ child: ChildProcess; line: Line }> {
  const child = spawn(process.execPath, ["--import", "tsx", CHILD, ...args, "hang"], { stdio: ["ignore", "pipe", "pipe"] });
  return new Promise((resolve, reject) => {
    let out = "", err = "";
    const timer = setTimeout(() => { child.kill("SIGKILL"); reject(new Error(`child ${args.join(" ")} printed nothing in 120 s: ${err}`)); }, 120_000);
    child.stderr!.on("data", (d) => (err += d));
    child.stdout!.on("data", (d) => {
      out += d;
      const end = out.indexOf("\n");
      if (end < 0) return;
      clearTimeout(timer);
      resolve({ child, line: JSON.parse(out.slice(0, end)) as Line });
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`child ${args.join(" ")} exited (${code}) before answering: ${err}`)); });
  });
}

function kill9(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.removeAllListeners("exit");
    child.on("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

/** Loads `folder` in this process; the caller must close it. */
function open(folder: string): P.PKCS11 {
  const pkcs11 = new P.PKCS11(`file:${folder}?pinHashIterations=64`);
  pkcs11.C_Initialize();
  return pkcs11;
}

function loadError(folder: string): unknown {
  try {
    open(folder).close();
  } catch (e) {
    return e;
  }
  return undefined;
}

function tokenFiles(folder: string): string[] {
  return readdirSync(folder).filter((n) => n.endsWith(".token")).map((n) => join(folder, n));
}

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

describe("a changed token file does not load silently", () => {
  function madeFolder(): { folder: string; file: string } {
    const folder = newFolder();
    run("make", folder);
    return { folder, file: tokenFiles(folder)[0] };
  }
  function expectInvalid(folder: string): void {
    const error = loadError(folder);
    expect(error).toBeInstanceOf(TokenFolderError);
    expect((error as TokenFolderError).code).toBe("TOKEN_RECORD_INVALID");
  }

  it("a flipped byte anywhere in the sealed record, the header's label, or a truncation: TOKEN_RECORD_INVALID", () => {
    const { folder, file } = madeFolder();
    const original = readFileSync(file);
    const headerEnd = 12 + original.readUInt32BE(8);
    for (const at of [headerEnd + 2, headerEnd + 20, Math.floor((headerEnd + original.length) / 2), original.length - 1]) {
      const altered = Buffer.from(original);
      altered[at] ^= 0x20;
      writeFileSync(file, altered);
      expectInvalid(folder);
    }
    writeFileSync(file, Buffer.from(original.toString("latin1").replace("app token", "app tokeN"), "latin1"));
    expectInvalid(folder);
    for (const length of [original.length - 1, headerEnd + 10, headerEnd, 20, 3, 0]) {
      writeFileSync(file, original);
      truncateSync(file, length);
      expectInvalid(folder);
    }
    writeFileSync(file, original); // the control: the untouched file loads
    expect(loadError(folder)).toBeUndefined();
  });

  it("a record swapped between two tokens, a file renamed over another, or a file from another folder: TOKEN_RECORD_INVALID", () => {
    const { folder } = madeFolder();
    // A second token in the same folder.
    const pkcs11 = open(folder);
    pkcs11.C_InitToken(pkcs11.C_GetSlotList(true)[1], "so-pin-2", "second");
    pkcs11.close();
    const [a, b] = tokenFiles(folder);
    const bytesA = readFileSync(a), bytesB = readFileSync(b);
    const split = (bytes: Buffer) => bytes.subarray(0, 12 + bytes.readUInt32BE(8));
    // A's header with B's record.
    writeFileSync(a, Buffer.concat([split(bytesA), bytesB.subarray(split(bytesB).length)]));
    expectInvalid(folder);
    writeFileSync(a, bytesA);
    // B's whole file under A's name.
    renameSync(a, `${a}.saved`);
    copyFileSync(b, a);
    expectInvalid(folder);
    renameSync(`${a}.saved`, a);
    expect(loadError(folder)).toBeUndefined();
    // A token file of another folder (another masking key), planted here.
    const other = madeFolder();
    copyFileSync(other.file, join(folder, other.file.split("/").pop()!));
    expectInvalid(folder);
  });

  it("a missing or foreign masking key: typed errors, not garbage", () => {
    const { folder } = madeFolder();
    const key = join(folder, "masking.key");
    const saved = readFileSync(key);
    rmSync(key);
    expect((loadError(folder) as TokenFolderError).code).toBe("TOKEN_FOLDER_INVALID");
    writeFileSync(key, Buffer.alloc(32, 1), { mode: 0o600 });
    expectInvalid(folder);
    writeFileSync(key, saved, { mode: 0o600 });
    expect(loadError(folder)).toBeUndefined();
  });
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

describe("hsmsim token init|list|delete", () => {
  async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = "", err = "";
    const code = await main(args, { stdout: { write: (t: string) => (out += t) }, stderr: { write: (t: string) => (err += t) }, env: {} });
    return { code, out, err };
  }

  it("init makes tokens a pkcs11js program then logs in to; list shows them; delete removes one by serial or label", async () => {
    const folder = newFolder();
    expect((await cli("token", "init", "--label", "alpha", "--so-pin", "so-pin-a", "--pin", "user-pin-a", "--folder", folder)).code).toBe(0);
    expect((await cli("token", "init", "--label", "beta", "--so-pin", "so-pin-b", "--pin", "user-pin-b", "--folder", folder)).code).toBe(0);
    const listed = JSON.parse((await cli("token", "list", "--folder", folder, "--json")).out) as { tokens: { label: string; serial: string; verified: boolean; userPinInitialized: boolean }[] };
    expect(listed.tokens.map((t) => [t.label, t.verified, t.userPinInitialized])).toEqual([["alpha", true, true], ["beta", true, true]]);

    // A program (default PIN cost: the CLI used it) logs in to the token the CLI made.
    const pkcs11 = new P.PKCS11(`file:${folder}`);
    pkcs11.C_Initialize();
    const slots = pkcs11.C_GetSlotList(true);
    const session = pkcs11.C_OpenSession(slots[1], P.CKF_SERIAL_SESSION);
    pkcs11.C_Login(session, P.CKU_USER, "user-pin-b");
    expect(pkcs11.C_GetTokenInfo(slots[1]).serialNumber).toBe(listed.tokens[1].serial);
    // While the program holds the folder: list shows headers, unverified; delete is refused.
    const busy = JSON.parse((await cli("token", "list", "--folder", folder, "--json")).out) as { tokens: { verified: boolean }[] };
    expect(busy.tokens.map((t) => t.verified)).toEqual([false, false]);
    const refused = await cli("token", "delete", "--label", "alpha", "--folder", folder);
    expect([refused.code, refused.err]).toEqual([1, expect.stringContaining("TOKEN_FOLDER_IN_USE")]);
    pkcs11.close();

    expect((await cli("token", "delete", "--serial", listed.tokens[0].serial, "--folder", folder)).code).toBe(0);
    const after = JSON.parse((await cli("token", "list", "--folder", folder, "--json")).out) as { tokens: { label: string }[] };
    expect(after.tokens.map((t) => t.label)).toEqual(["beta"]);
    const missing = await cli("token", "delete", "--label", "alpha", "--folder", folder);
    expect([missing.code, missing.err]).toEqual([1, expect.stringContaining("TOKEN_NOT_FOUND")]);
    expect((await cli("token", "init", "--label", "beta", "--so-pin", "so-pin-c", "--pin", "user-pin-c", "--folder", folder)).code).toBe(0);
    const twice = await cli("token", "delete", "--label", "beta", "--folder", folder);
    expect([twice.code, twice.err]).toEqual([1, expect.stringContaining("TOKEN_AMBIGUOUS")]);
    expect((await cli("token", "delete", "--label", "nope", "--folder", folder)).code).toBe(1);
    expect(tokenFiles(folder).length).toBe(2);
  });

  it("the default folder is $HSMSIM_TOKEN_DIR; bad command lines are usage errors (exit 2)", async () => {
    const folder = newFolder();
    let out = "";
    const io = { stdout: { write: (t: string) => (out += t) }, stderr: { write: () => true }, env: { HSMSIM_TOKEN_DIR: folder } };
    expect(await main(["token", "init", "--label", "env", "--so-pin", "so-pin-1", "--pin", "user-pin-1"], io)).toBe(0);
    expect(out).toContain(folder);
    expect(tokenFiles(folder).length).toBe(1);
    expect((await cli("token", "init", "--label", "x", "--so-pin", "so-pin-1", "--folder", folder)).code).toBe(2);
    expect((await cli("token", "init", "--label", "x", "--so-pin", "123", "--pin", "user-pin-1", "--folder", folder)).code).toBe(2);
    expect((await cli("token", "delete", "--folder", folder)).code).toBe(2);
    expect((await cli("token", "delete", "--label", "a", "--serial", "b", "--folder", folder)).code).toBe(2);
    expect((await cli("token", "lst")).code).toBe(2);
    // Listing or deleting in a folder that does not exist makes none.
    const nowhere = join(ROOT, "nowhere");
    expect(JSON.parse((await cli("token", "list", "--folder", nowhere, "--json")).out)).toEqual({ folder: nowhere, tokens: [] });
    expect((await cli("token", "delete", "--label", "x", "--folder", nowhere)).code).toBe(1);
    expect(readdirSync(ROOT)).not.toContain("nowhere");
    expect((await cli("token", "list", "--folder", folder, "--jsn")).code).toBe(2);
  });
});

describe("an application on a file: token reaches nothing but PKCS#11", () => {
  const FORBIDDEN = new Set(["exportToken", "importToken", "saveMaskingKey", "loadMaskingKey", "exportMasked", "importMasked",
    "removeObject", "openApplication", "shareMaskingKey", "exportMaskingKeyFor", "importMaskingKey", "deviceMac", "loginPrincipal"]);

  it("its PKCS11, and even the backend behind it, are frozen PKCS#11 calls with no path to the chip, the folder or its lock", () => {
    const folder = newFolder();
    const pkcs11 = open(folder);
    P.openUserSession(pkcs11, { soPin: "so-pin-1", userPin: "user-pin-1" });
    expect(findForbidden(pkcs11, new Map(), FORBIDDEN)).toEqual([]);
    pkcs11.close();
    const backend = chipForTarget(`file:${folder}?pinHashIterations=64`);
    try {
      expect(Object.isFrozen(backend)).toBe(true);
      expect(Reflect.ownKeys(backend).sort()).toEqual([...APPLICATION_CALLS, "unload"].sort());
      expect(findForbidden(backend, new Map(), FORBIDDEN)).toEqual([]);
    } finally {
      (backend as unknown as { unload(): void }).unload();
    }
    // The control: the walker does see these names where they are reachable.
    expect(findForbidden({ x: { exportToken() {} } }, new Map(), FORBIDDEN)).not.toEqual([]);
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

describe("the chip's sealed token records, through the binding", () => {
  it("check their arguments, refuse garbage, and are not on an application object", () => {
    const chip = P.createChip({ pinHashIterations: 1 });
    chip.initToken(0, Buffer.from("so-pin-1"), Buffer.from("t"));
    const record = chip.exportToken(0, Buffer.from("binding"));
    expect(() => chip.exportToken(0, "binding" as unknown as Buffer)).toThrow(TypeError);
    expect(() => chip.importToken(0, record, undefined as unknown as Buffer)).toThrow(TypeError);
    expect(() => chip.importToken(0, null as unknown as Buffer, Buffer.alloc(0))).toThrow(TypeError);
    expect(() => chip.exportToken(0, Buffer.alloc(4097))).toThrow("CKR_ARGUMENTS_BAD");
    expect(() => chip.exportToken(1, Buffer.alloc(0))).toThrow("CKR_TOKEN_NOT_RECOGNIZED");
    expect(() => chip.exportToken(99, Buffer.alloc(0))).toThrow("CKR_SLOT_ID_INVALID");
    expect(() => chip.importToken(0, Buffer.alloc(100, 7), Buffer.from("binding"))).toThrow("CKR_DATA_INVALID");
    expect(() => chip.importToken(0, record, Buffer.from("another"))).toThrow("CKR_DATA_INVALID");
    chip.importToken(0, record, Buffer.from("binding"));
    const app = chip.openApplication() as unknown as Record<string, unknown>;
    expect([app.exportToken, app.importToken]).toEqual([undefined, undefined]);
  });
});
