// The remote client's bridge (main thread ↔ worker thread), with the worker hosting a memory
// chip: synchronous calls block and answer correctly into the caller's own buffers, callback
// calls never block the event loop, and a worker that dies or stops answering gives a typed
// CKR_DEVICE_ERROR instead of a hang.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";

import { RemoteLink, type RemoteLinkOptions } from "../../src/client/remote/link.js";
import type { BridgeFaults } from "../../src/client/remote/messages.js";
import * as C from "../../src/pkcs11/constants.js";
import { Pkcs11Error } from "../../src/pkcs11/errors.js";
import { PKCS11 } from "../../src/pkcs11/pkcs11.js";
import { openUserSession } from "../../src/pkcs11/setup.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const links: RemoteLink[] = [];

function remote(faults?: BridgeFaults, options?: RemoteLinkOptions) {
  const link = new RemoteLink({ kind: "memory", target: "memory:?pinHashIterations=16", faults }, options);
  links.push(link);
  const pkcs11 = new PKCS11(link.chip());
  pkcs11.C_Initialize();
  const { session } = openUserSession(pkcs11, { soPin: "so-pin-1", userPin: "user-pin-1" });
  return { link, pkcs11, session };
}

function aesKey(pkcs11: PKCS11, session: Buffer): Buffer {
  return pkcs11.C_GenerateKey(session, { mechanism: C.CKM_AES_KEY_GEN }, [
    { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }, { type: C.CKA_KEY_TYPE, value: C.CKK_AES }, { type: C.CKA_VALUE_LEN, value: 32 },
    { type: C.CKA_ENCRYPT, value: true }, { type: C.CKA_DECRYPT, value: true }, { type: C.CKA_LABEL, value: "bridge" },
  ]);
}

function expectDeviceError(call: () => unknown, detail: RegExp): Pkcs11Error {
  let error: unknown;
  try {
    call();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(Pkcs11Error);
  expect((error as Pkcs11Error).code).toBe(C.CKR_DEVICE_ERROR);
  expect((error as Pkcs11Error).detail).toMatch(detail);
  return error as Pkcs11Error;
}

afterEach(async () => {
  await Promise.all(links.splice(0).map((l) => l.terminate()));
});

describe("remote bridge: synchronous calls", () => {
  it("block until the worker answers, with the chip's results written into the caller's own buffers", () => {
    const { pkcs11, session } = remote();
    const data = Buffer.from("the quick brown fox");
    pkcs11.C_DigestInit(session, { mechanism: C.CKM_SHA256 });
    const out = Buffer.alloc(64, 0xee);
    const digest = pkcs11.C_Digest(session, data, out);
    expect(digest.toString("hex")).toBe(createHash("sha256").update(data).digest("hex"));
    expect(digest.buffer).toBe(out.buffer); // the caller's buffer, as pkcs11js returns it
    expect(out.subarray(32).every((b) => b === 0xee)).toBe(true); // bytes past the answer untouched

    const random = Buffer.alloc(48);
    expect(pkcs11.C_GenerateRandom(session, random)).toBe(random);
    expect(random.equals(Buffer.alloc(48))).toBe(false);

    const key = aesKey(pkcs11, session);
    const label = pkcs11.C_GetAttributeValue(session, key, [{ type: C.CKA_LABEL }]);
    expect(Buffer.isBuffer(label[0].value) && label[0].value.toString()).toBe("bridge");
    const gcm = { mechanism: C.CKM_AES_GCM, parameter: { type: C.CK_PARAMS_AES_GCM, iv: Buffer.alloc(12, 7), aad: Buffer.from("aad"), tagBits: 128 } };
    const plaintext = Buffer.alloc(4096, 0x61);
    pkcs11.C_EncryptInit(session, gcm, key);
    const sealed = Buffer.from(pkcs11.C_Encrypt(session, plaintext, Buffer.alloc(4096 + 16)));
    pkcs11.C_DecryptInit(session, gcm, key);
    expect(pkcs11.C_Decrypt(session, sealed, Buffer.alloc(4096 + 16)).equals(plaintext)).toBe(true);
    sealed[0] ^= 1;
    pkcs11.C_DecryptInit(session, gcm, key);
    expect(() => pkcs11.C_Decrypt(session, sealed, Buffer.alloc(4096 + 16))).toThrow(/CKR_ENCRYPTED_DATA_INVALID/);
  });

  it("carry the chip's typed errors back unchanged (code and method)", () => {
    const { pkcs11, session } = remote();
    let error: unknown;
    try {
      pkcs11.C_EncryptInit(session, { mechanism: C.CKM_AES_GCM, parameter: { type: C.CK_PARAMS_AES_GCM, iv: Buffer.alloc(12), tagBits: 128 } }, Buffer.from([9, 9, 9, 0, 0, 0, 0, 0]));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(Pkcs11Error);
    expect((error as Pkcs11Error).code).toBe(C.CKR_KEY_HANDLE_INVALID);
    expect((error as Pkcs11Error).method).toBe("C_EncryptInit");
    expect(() => pkcs11.C_GetSessionInfo(Buffer.from([77, 0, 0, 0, 0, 0, 0, 0]))).toThrow(/CKR_SESSION_HANDLE_INVALID/);
  });

  it("a pooled argument Buffer reaches the worker as its own bytes only", () => {
    const { pkcs11, session } = remote();
    const pooled = Buffer.from("abc"); // a slice of Node's shared 8 KiB pool
    expect(pooled.buffer.byteLength).toBeGreaterThan(pooled.length);
    pkcs11.C_DigestInit(session, { mechanism: C.CKM_SHA256 });
    expect(pkcs11.C_Digest(session, pooled, Buffer.alloc(32)).toString("hex")).toBe(createHash("sha256").update("abc").digest("hex"));
  });
});

describe("remote bridge: callback and async calls", () => {
  it("return at once and never block the event loop: it keeps ticking while 100 calls are in flight", async () => {
    const signal = new SharedArrayBuffer(4);
    const { pkcs11, session } = remote({ gate: { on: "digest", signal } });
    const inputs = Array.from({ length: 100 }, (_, i) => Buffer.from(`message ${i}`));
    const outputs = inputs.map(() => Buffer.alloc(32));
    let completed = 0;
    // One digest per session (an operation is per session), all started before the worker is held.
    const sessions = inputs.map((_, i) => (i === 0 ? session : pkcs11.C_OpenSession(pkcs11.C_GetSlotList(true)[0], C.CKF_SERIAL_SESSION)));
    for (const s of sessions) pkcs11.C_DigestInit(s, { mechanism: C.CKM_SHA256 });
    const results = sessions.map((s, i) => new Promise<Buffer>((resolve, reject) => {
      const returned = pkcs11.C_Digest(s, inputs[i], outputs[i], (error, value) => {
        completed++;
        if (error) reject(error);
        else resolve(value!);
      });
      expect(returned).toBeUndefined();
    }));
    // The worker holds every digest (the gate) while the event loop turns 50 times.
    let ticks = 0;
    for (let i = 0; i < 50; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      ticks++;
      expect(completed).toBe(0);
    }
    expect(ticks).toBe(50);
    const gate = new Int32Array(signal);
    Atomics.store(gate, 0, 1);
    Atomics.notify(gate, 0);
    const digests = await Promise.all(results);
    expect(completed).toBe(100);
    digests.forEach((d, i) => {
      expect(d.toString("hex")).toBe(createHash("sha256").update(inputs[i]).digest("hex"));
      expect(d.buffer).toBe(outputs[i].buffer); // written into the caller's buffer
    });
  });

  it("the …Async forms resolve with the same answers as the synchronous ones", async () => {
    const { pkcs11, session } = remote();
    const key = aesKey(pkcs11, session);
    const gcm = { mechanism: C.CKM_AES_GCM, parameter: { type: C.CK_PARAMS_AES_GCM, iv: Buffer.alloc(12, 1), tagBits: 128 } };
    pkcs11.C_EncryptInit(session, gcm, key);
    const sealed = await pkcs11.C_EncryptAsync(session, Buffer.from("secret"), Buffer.alloc(64));
    pkcs11.C_DecryptInit(session, gcm, key);
    expect((await pkcs11.C_DecryptAsync(session, sealed, Buffer.alloc(64))).toString()).toBe("secret");
    await expect(pkcs11.C_DecryptAsync(session, sealed, Buffer.alloc(64))).rejects.toThrow(/CKR_OPERATION_NOT_INITIALIZED/);
  });
});

describe("remote bridge: a dead or stuck worker is a typed error, never a hang", () => {
  it("a worker that exits during a synchronous call: CKR_DEVICE_ERROR at once, and for every later call", () => {
    const { pkcs11, session } = remote({ exitOn: "generateRandom" });
    expectDeviceError(() => pkcs11.C_GenerateRandom(session, Buffer.alloc(16)), /exited/);
    expectDeviceError(() => pkcs11.C_GetSessionInfo(session), /exited/);
  });

  it("a worker whose event loop stops: CKR_DEVICE_ERROR once its heartbeat has stopped for stallTimeoutMs", () => {
    const { pkcs11, session } = remote({ hangOn: "generateRandom" }, { stallTimeoutMs: 1_000 });
    expectDeviceError(() => pkcs11.C_GenerateRandom(session, Buffer.alloc(16)), /stopped responding/);
    expectDeviceError(() => pkcs11.C_GetSessionInfo(session), /stopped responding/);
  });

  it("a terminated worker fails callback calls in flight and later ones through their callbacks", async () => {
    const signal = new SharedArrayBuffer(4);
    const { link, pkcs11, session } = remote({ gate: { on: "digest", signal } });
    pkcs11.C_DigestInit(session, { mechanism: C.CKM_SHA256 });
    const inFlight = pkcs11.C_DigestAsync(session, Buffer.from("x"), Buffer.alloc(32));
    await link.terminate();
    await expect(inFlight).rejects.toMatchObject({ code: C.CKR_DEVICE_ERROR });
    await expect(pkcs11.C_DigestAsync(session, Buffer.from("x"), Buffer.alloc(32))).rejects.toMatchObject({ code: C.CKR_DEVICE_ERROR });
    expectDeviceError(() => pkcs11.C_GetSessionInfo(session), /terminated/);
  });

  it("close() (the facade's) ends the worker; calls after it fail as unloaded", () => {
    const { link, pkcs11 } = remote();
    pkcs11.close();
    expect(link.usable).toBe(false);
    expect(() => pkcs11.C_GetSlotList(true)).toThrow(/not loaded/);
  });
});

describe("remote bridge: the worker never keeps the process alive", () => {
  for (const ending of ["C_Finalize", "close", "nothing"]) {
    it(`a program that ends with ${ending} exits by itself`, () => {
      const script = [
        `import { RemoteLink } from ${JSON.stringify(join(ROOT, "src/client/remote/link.ts"))};`,
        `import { PKCS11 } from ${JSON.stringify(join(ROOT, "src/pkcs11/pkcs11.ts"))};`,
        `const p = new PKCS11(new RemoteLink({ kind: "memory", target: "memory:" }).chip());`,
        "p.C_Initialize();",
        "const slot = p.C_GetSlotList(true)[0];",
        "p.C_InitToken(slot, 'so-pin-1', 'x');",
        "const s = p.C_OpenSession(slot, 4);",
        "p.C_GenerateRandom(s, Buffer.alloc(8), );",
        "await new Promise((resolve) => p.C_DigestInit(s, { mechanism: 0x250 }) || p.C_Digest(s, Buffer.from('a'), Buffer.alloc(32), resolve));",
        ending === "C_Finalize" ? "p.C_Finalize();" : ending === "close" ? "p.C_Finalize(); p.close();" : "",
        "console.log('done');",
      ].join("\n");
      const child = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
      expect(child.error, "the child did not exit within 60 s: the worker kept it alive").toBeUndefined();
      expect(child.stderr).toBe("");
      expect(child.stdout.trim()).toBe("done");
      expect(child.status).toBe(0);
    });
  }
});
