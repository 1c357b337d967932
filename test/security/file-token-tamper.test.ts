// A `file:` token folder under attack: an altered, truncated, re-headed, swapped or foreign token
// file, or a foreign masking key, is a typed error and never loads; nothing but PKCS#11 is
// reachable from an application on it; the chip's sealed token records check their arguments.
import { copyFileSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import * as P from "../../src/pkcs11/index.js";
import { APPLICATION_CALLS } from "../../src/pkcs11/addon.js";
import { chipForTarget } from "../../src/pkcs11/target.js";
import { TokenFolderError } from "../../src/pkcs11/token-folder.js";
import { loadError, open, run, tokenFiles, tokenRoot } from "../file-token-helpers.js";
import { findForbidden } from "./walk.js";

const { newFolder } = tokenRoot();

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
