// PKCS#11 call logging (HSMSIM_PKCS11_LOG, load(target, { log })): every call with its arguments,
// result and duration, and never a secret. The attack: a program makes every call that carries a
// PIN, key material, plaintext or ciphertext, with logging on; the log is searched for each secret
// in every encoding a careless logger would use.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { afterAll, describe, expect, it } from "vitest";

import { RemoteLink } from "../../src/client/remote/link.js";
import * as P from "../../src/index.js";
import { PKCS11 } from "../../src/pkcs11/pkcs11.js";

const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "hsmsim-call-log-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function encodings(value: Buffer): string[] {
  const forms = [value.toString("hex"), value.toString("hex").toUpperCase(), value.toString("base64"), value.toString("base64url"),
    JSON.stringify([...value]).slice(1, -1), [...value].join(" ")];
  const text = value.toString("utf8");
  if (/^[\x20-\x7e]+$/.test(text)) forms.push(text);
  return forms.filter((f) => f.length >= 8);
}

describe("PKCS#11 call log", () => {
  it("logs every call of a program run with HSMSIM_PKCS11_LOG=<file>, and no PIN, key, plaintext or ciphertext in any encoding", () => {
    const log = join(dir, "pkcs11.log");
    const child = spawnSync(process.execPath, ["--import", "tsx", join(here, "call-log-child.ts")], {
      encoding: "utf8", env: { ...process.env, HSMSIM_PKCS11_LOG: log, HSMSIM_PKCS11_LOG_LEVEL: "" }, timeout: 60_000,
    });
    expect(child.stderr).toBe("");
    expect(child.status).toBe(0);
    const secrets = JSON.parse(child.stdout) as Record<string, string>;
    const text = readFileSync(log, "utf8");
    expect(statSync(log).mode & 0o777).toBe(0o600);

    // What a PKCS#11 user needs to see is there: each call, its arguments by name, its result.
    for (const expected of [
      /C_Login\(session=\d+, userType=CKU_SO, pin=\*\*\*\) = CKR_OK \(\d+\.\d{3} ms\)/,
      /C_Login\(session=\d+, userType=CKU_USER, pin=\*\*\*\) = CKR_PIN_INCORRECT/,
      /C_InitPIN\(session=\d+, pin=\*\*\*\) = CKR_OK/,
      /C_SetPIN\(session=\d+, oldPin=\*\*\*, newPin=\*\*\*\) = CKR_OK/,
      /C_InitToken\(slot=0, soPin=\*\*\*, label="log test"\) = CKR_OK/,
      /C_CreateObject\(session=\d+, template=\[CKA_CLASS=CKO_SECRET_KEY, CKA_KEY_TYPE=CKK_AES, CKA_VALUE=<redacted 32 bytes>, CKA_LABEL="visible-label", CKA_ENCRYPT=true/,
      /C_GetAttributeValue\(session=\d+, object=\d+, template=\[CKA_VALUE\]\) = CKR_OK → \[CKA_VALUE=<redacted 32 bytes>\]/,
      /C_EncryptInit\(session=\d+, mechanism=CKM_AES_GCM\(iv=<12 bytes>, aad=<3 bytes>, tagBits=128\), key=\d+\) = CKR_OK/,
      /C_Encrypt\(session=\d+, inData=<41 bytes>, outData=<128 bytes>\) = CKR_OK → <57 bytes>/,
      /C_Encrypt\(session=\d+, inData=<41 bytes>, outData=<128 bytes>\) \[callback\] = CKR_OK → <57 bytes>/,
      /C_Decrypt\(session=\d+, inData=<57 bytes>, outData=<128 bytes>\) = CKR_OK → <41 bytes>/,
      /C_Sign\(session=\d+, inData=<41 bytes>, outData=<32 bytes>\) = CKR_OK → <32 bytes>/,
      /C_WrapKey\(session=\d+, mechanism=CKM_AES_KEY_WRAP_PAD, wrappingKey=\d+, key=\d+, wrappedKey=<64 bytes>\) = CKR_OK → <40 bytes>/,
      /C_GenerateRandom\(session=\d+, out=<32 bytes>\) = CKR_OK → <32 bytes>/,
      /load\("memory:"\) level=calls/,
    ]) expect(text).toMatch(expected);
    // One line per call: the Async form is logged once, through its callback form.
    expect(text.match(/C_Encrypt\(/g)).toHaveLength(2);

    expect(Object.keys(secrets).sort()).toEqual(["NEW_PIN", "SO_PIN", "USER_PIN", "WRONG_PIN", "asyncCiphertext", "ciphertext", "decrypted",
      "hmacKey", "keyBytes", "mac", "plaintext", "random", "readBack", "wrapped"].sort());
    for (const [name, hex] of Object.entries(secrets)) {
      const value = Buffer.from(hex, "hex");
      for (const form of encodings(value)) expect(text.includes(form), `${name} appears in the log as ${form}`).toBe(false);
      // Nor any 8-byte piece of it (a truncated preview would leak the start).
      for (let i = 0; i + 8 <= value.length; i += 4) expect(text.includes(value.subarray(i, i + 8).toString("hex")), `${name} bytes ${i}..`).toBe(false);
    }
    for (const pin of ["Zq8#pin", "Kx2!pin", "Vv5$pin", "Rr7%pin"]) expect(text).not.toContain(pin);
  });

  it("a CloudHSM-style 'user:password' PIN is hidden whole", () => {
    const lines: string[] = [];
    const pkcs11 = new PKCS11();
    pkcs11.load("memory:", { log: (line) => lines.push(line) });
    pkcs11.C_Initialize();
    const [slot] = pkcs11.C_GetSlotList(true);
    pkcs11.C_InitToken(slot, "alice:S3cretPassw0rd", "t");
    const session = pkcs11.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    expect(() => pkcs11.C_Login(session, P.CKU_SO, "alice:Wr0ngPassw0rd")).toThrow("CKR_PIN_INCORRECT");
    pkcs11.close();
    const text = lines.join("\n");
    expect(text).toContain("pin=***) = CKR_PIN_INCORRECT");
    for (const part of ["alice", "S3cret", "Wr0ng", "Passw0rd"]) expect(text).not.toContain(part);
  });

  it("off, nothing is installed: the instance's functions are the shared prototype's", () => {
    const previous = process.env.HSMSIM_PKCS11_LOG;
    delete process.env.HSMSIM_PKCS11_LOG;
    try {
      const plain = new PKCS11("memory:");
      expect(Object.getOwnPropertyNames(plain).filter((n) => n.startsWith("C_"))).toEqual([]);
      expect(plain.C_Encrypt).toBe(PKCS11.prototype.C_Encrypt);
      // On for one module, the others are untouched; close() takes the wrappers away.
      const logged = new PKCS11();
      logged.load("memory:", { log: () => {} });
      expect(logged.C_Encrypt).not.toBe(PKCS11.prototype.C_Encrypt);
      expect(plain.C_Encrypt).toBe(PKCS11.prototype.C_Encrypt);
      logged.close();
      expect(Object.getOwnPropertyNames(logged).filter((n) => n.startsWith("C_"))).toEqual([]);
      // load() again without logging: still none.
      logged.load("memory:");
      expect(logged.C_Login).toBe(PKCS11.prototype.C_Login);
    } finally {
      if (previous !== undefined) process.env.HSMSIM_PKCS11_LOG = previous;
    }
  });

  it("the environment turns it on, { log: false } off; level 'errors' logs only failures; a bad level is refused", () => {
    const previous = { log: process.env.HSMSIM_PKCS11_LOG, level: process.env.HSMSIM_PKCS11_LOG_LEVEL };
    const file = join(dir, "env.log");
    process.env.HSMSIM_PKCS11_LOG = file;
    try {
      process.env.HSMSIM_PKCS11_LOG_LEVEL = "errors";
      const pkcs11 = new PKCS11("memory:");
      pkcs11.C_Initialize();
      pkcs11.C_GetSlotList(true);
      const noSuchSlot = Buffer.alloc(8);
      noSuchSlot.writeUInt32LE(40, 0);
      expect(() => pkcs11.C_OpenSession(noSuchSlot, P.CKF_SERIAL_SESSION)).toThrow("CKR_SLOT_ID_INVALID");
      pkcs11.close();
      const lines = readFileSync(file, "utf8").trim().split("\n");
      expect(lines).toHaveLength(2);
      expect(lines[0]).toContain('load("memory:") level=errors');
      expect(lines[1]).toMatch(/C_OpenSession\(slot=40, flags=0x4\) = CKR_SLOT_ID_INVALID/);

      const off = new PKCS11();
      off.load("memory:", { log: false });
      expect(off.C_Initialize).toBe(PKCS11.prototype.C_Initialize);

      process.env.HSMSIM_PKCS11_LOG_LEVEL = "everything";
      expect(() => new PKCS11("memory:")).toThrow(/log level is 'calls' or 'errors', not "everything"/);
      expect(() => new PKCS11().load("memory:", { log: 42 as unknown as string, logLevel: "calls" })).toThrow(TypeError);
    } finally {
      for (const [key, value] of [["HSMSIM_PKCS11_LOG", previous.log], ["HSMSIM_PKCS11_LOG_LEVEL", previous.level]] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });

  it("logging changes no answer: same results, same errors, and a failing sink does not fail the call", () => {
    const pkcs11 = new PKCS11();
    pkcs11.load("memory:?seed=01", { log: () => {
      throw new Error("disk full");
    } });
    pkcs11.C_Initialize();
    const [slot] = pkcs11.C_GetSlotList(true);
    pkcs11.C_InitToken(slot, "so-pin-1", "t");
    const session = pkcs11.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
    let error: unknown;
    try {
      pkcs11.C_Login(session, P.CKU_SO, "wrong");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(P.Pkcs11Error);
    expect((error as P.Pkcs11Error).code).toBe(P.CKR_PIN_INCORRECT);
    expect(() => pkcs11.C_Login(session, P.CKU_SO, 42 as unknown as string)).toThrow(TypeError);
    pkcs11.C_Login(session, P.CKU_SO, "so-pin-1");
    expect(pkcs11.C_GetSessionInfo(session).state).toBe(P.CKS_RW_SO_FUNCTIONS);
    return new Promise<void>((resolve, reject) => {
      pkcs11.C_DigestInit(session, { mechanism: P.CKM_SHA256 });
      pkcs11.C_Digest(session, Buffer.from("abc"), Buffer.alloc(32), (e, digest) => {
        try {
          expect(e).toBeNull();
          expect(digest!.toString("hex")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
          resolve();
        } catch (failure) {
          reject(failure);
        }
      });
    });
  });

  it("logs the same way over any backend: the remote client's worker-thread bridge, sync and callback forms", async () => {
    const link = new RemoteLink({ kind: "memory", target: "memory:?pinHashIterations=16" });
    try {
      const lines: string[] = [];
      const pkcs11 = new PKCS11(link.chip(), { log: (line) => lines.push(line) });
      pkcs11.C_Initialize();
      const [slot] = pkcs11.C_GetSlotList(true);
      pkcs11.C_InitToken(slot, "so-Remote#Pin1", "remote");
      const session = pkcs11.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
      pkcs11.C_Login(session, P.CKU_SO, "so-Remote#Pin1");
      pkcs11.C_InitPIN(session, "usr-Remote#Pin2");
      pkcs11.C_Logout(session);
      pkcs11.C_Login(session, P.CKU_USER, "usr-Remote#Pin2");
      const key = pkcs11.C_GenerateKey(session, { mechanism: P.CKM_AES_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 32 }, { type: P.CKA_ENCRYPT, value: true }]);
      const gcm = { mechanism: P.CKM_AES_GCM, parameter: { type: P.CK_PARAMS_AES_GCM, iv: Buffer.alloc(12, 1), tagBits: 128 } };
      const secret = Buffer.from("remote plaintext: launch code 0000");
      pkcs11.C_EncryptInit(session, gcm, key);
      const sealed = await pkcs11.C_EncryptAsync(session, secret, Buffer.alloc(128));
      pkcs11.C_Finalize();
      pkcs11.close();
      const text = lines.join("\n");
      expect(text).toMatch(/load\("backend:"\)/);
      expect(text).toMatch(/C_Login\(session=\d+, userType=CKU_USER, pin=\*\*\*\) = CKR_OK/);
      expect(text).toMatch(/C_GenerateKey\(session=\d+, mechanism=CKM_AES_KEY_GEN, template=\[CKA_VALUE_LEN=32, CKA_ENCRYPT=true\]\) = CKR_OK → \d+/);
      expect(text).toMatch(/C_Encrypt\(session=\d+, inData=<34 bytes>, outData=<128 bytes>\) \[callback\] = CKR_OK → <50 bytes>/);
      for (const form of ["Remote#Pin", secret.toString("hex"), "launch code", sealed.toString("hex").slice(0, 16)]) expect(text).not.toContain(form);
    } finally {
      await link.terminate();
    }
  });
});

describe("the log file is never someone else's", () => {
  const folder = mkdtempSync(join(tmpdir(), "hsmsim-calllog-planted-"));
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  it("a symlink planted at the log's path is not followed", () => {
    const victim = join(folder, "victim");
    writeFileSync(victim, "untouched\n");
    const path = join(folder, "pkcs11.log");
    symlinkSync(victim, path);
    expect(() => new PKCS11().load("memory:", { log: path })).toThrow(/ELOOP|symbolic|symlink/i);
    expect(readFileSync(victim, "utf8")).toBe("untouched\n");
  });

  it("an existing log file others may read is refused, not written", () => {
    const path = join(folder, "open.log");
    writeFileSync(path, "");
    chmodSync(path, 0o644);
    expect(() => new PKCS11().load("memory:", { log: path })).toThrow(/0600/);
    expect(readFileSync(path, "utf8")).toBe("");
  });
});
