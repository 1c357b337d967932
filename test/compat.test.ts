// The proof of compatibility: pkcs11js's constants, a pkcs11js program run unchanged
// against hsmsim and (when installed) SoftHSMv2, and graphene-pk11 driving hsmsim.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { runGrapheneProgram } from "../examples/graphene-program.js";
import { runProgram } from "../examples/pkcs11js-program.js";
import * as hsmsim from "../src/index.js";

const require = createRequire(import.meta.url);
const pkcs11js = require("pkcs11js") as typeof import("pkcs11js");
const SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so";

describe("pkcs11js compatibility", () => {
  it("exports every numeric constant pkcs11js exports, with the same value", () => {
    const ours = hsmsim as unknown as Record<string, unknown>;
    let count = 0;
    for (const [name, value] of Object.entries(pkcs11js)) {
      if (typeof value !== "number") continue;
      expect(ours[name], name).toBe(value);
      count++;
    }
    expect(count).toBeGreaterThan(600);
    expect(hsmsim.CKS_RW_USER_FUNCTIONS).toBe(3);
  });

  it("Pkcs11Error has pkcs11js's shape", () => {
    const pkcs11 = hsmsim.load("memory:");
    try {
      pkcs11.C_GetSlotList();
      expect.unreachable();
    } catch (e) {
      const error = e as hsmsim.Pkcs11Error;
      expect(error).toBeInstanceOf(Error);
      expect(error.name).toBe("Pkcs11Error");
      expect(error.message).toBe("CKR_CRYPTOKI_NOT_INITIALIZED");
      expect(error.code).toBe(pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED);
      expect(error.method).toBe("C_GetSlotList");
    }
  });

  it("runs a pkcs11js program against hsmsim with only the load line changed", () => {
    const pkcs11 = new hsmsim.PKCS11();
    pkcs11.load("memory:");
    const result = runProgram(pkcs11, pkcs11js);
    expect(result).toEqual({ decrypted: "Hello from a pkcs11js program", verified: true, unwrappedLength: 24, labels: ["ec private"] });
  });

  it.skipIf(!existsSync(SOFTHSM))("the same program gives the same results on SoftHSMv2 through pkcs11js", () => {
    const dir = mkdtempSync(join(tmpdir(), "hsmsim-softhsm-"));
    try {
      writeFileSync(join(dir, "softhsm2.conf"), `directories.tokendir = ${dir}\nobjectstore.backend = file\nlog.level = ERROR\n`);
      // pkcs11js loads SoftHSMv2 in this process, so its configuration is set in a child.
      const script = `
        process.env.SOFTHSM2_CONF = ${JSON.stringify(join(dir, "softhsm2.conf"))};
        const { register } = require("tsx/cjs/api"); register();
        const pkcs11js = require("pkcs11js");
        const { runProgram } = require(${JSON.stringify(join(__dirname, "..", "examples", "pkcs11js-program.ts"))});
        const p = new pkcs11js.PKCS11(); p.load(${JSON.stringify(SOFTHSM)});
        process.stdout.write(JSON.stringify(runProgram(p, pkcs11js)));`;
      const output = execFileSync(process.execPath, ["-e", script], { encoding: "utf8" });
      // SoftHSMv2 departs from the spec here: an unwrapped secret key reports CKA_VALUE_LEN 0.
      expect(JSON.parse(output)).toEqual({ decrypted: "Hello from a pkcs11js program", verified: true, unwrappedLength: 0, labels: ["ec private"] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("wrongly typed template values answer as SoftHSMv2 does through pkcs11js", () => {
  // pkcs11js hands the token a string's UTF-8 bytes; the token refuses a CK_ULONG or CK_BBOOL of the wrong length.
  const CASES = [["CKA_VALUE_LEN", '"32"'], ["CKA_ENCRYPT", '"true"'], ["CKA_VALUE_LEN", "true"]] as const;
  // One departure: SoftHSMv2 ignores a CKA_TOKEN of the wrong length (`value: 1` silently makes a
  // session key); hsmsim refuses it with CKR_ATTRIBUTE_VALUE_INVALID like every other one.
  const attempt = (p: import("pkcs11js").PKCS11, C: typeof import("pkcs11js"), attribute: string, value: unknown) => {
    const slot = p.C_GetSlotList(true)[0];
    p.C_InitToken(slot, "so-pin-1234", "types");
    const session = p.C_OpenSession(slot, C.CKF_RW_SESSION | C.CKF_SERIAL_SESSION);
    p.C_Login(session, C.CKU_SO, "so-pin-1234");
    p.C_InitPIN(session, "user-pin-1234");
    p.C_Logout(session);
    p.C_Login(session, C.CKU_USER, "user-pin-1234");
    const template = [{ type: C.CKA_VALUE_LEN, value: 32 }, { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }]
      .filter((a) => a.type !== (C as unknown as Record<string, number>)[attribute]);
    try {
      p.C_GenerateKey(session, { mechanism: C.CKM_AES_KEY_GEN }, [...template, { type: (C as unknown as Record<string, number>)[attribute], value: value as number }]);
      return "CKR_OK";
    } catch (e) {
      return (e as Error).message;
    }
  };

  it("hsmsim answers CKR_ATTRIBUTE_VALUE_INVALID", () => {
    for (const [attribute, value] of [...CASES, ["CKA_TOKEN", "1"]]) {
      const pkcs11 = hsmsim.load("memory:?pinHashIterations=16");
      pkcs11.C_Initialize();
      expect(attempt(pkcs11, pkcs11js, attribute, JSON.parse(value)), `${attribute}: ${value}`).toBe("CKR_ATTRIBUTE_VALUE_INVALID");
    }
  });

  it.skipIf(!existsSync(SOFTHSM))("SoftHSMv2 answers the same", () => {
    const dir = mkdtempSync(join(tmpdir(), "hsmsim-softhsm-"));
    try {
      writeFileSync(join(dir, "softhsm2.conf"), `directories.tokendir = ${dir}\nobjectstore.backend = file\nlog.level = ERROR\n`);
      const script = `
        process.env.SOFTHSM2_CONF = ${JSON.stringify(join(dir, "softhsm2.conf"))};
        const pkcs11js = require("pkcs11js");
        const attempt = ${attempt.toString()};
        const results = ${JSON.stringify(CASES)}.map(([attribute, value]) => {
          const p = new pkcs11js.PKCS11(); p.load(${JSON.stringify(SOFTHSM)}); p.C_Initialize();
          try { return attempt(p, pkcs11js, attribute, JSON.parse(value)); } finally { p.C_Finalize(); p.close(); }
        });
        process.stdout.write(JSON.stringify(results));`;
      const output = execFileSync(process.execPath, ["-e", script], { encoding: "utf8" });
      expect(JSON.parse(output)).toEqual(CASES.map(() => "CKR_ATTRIBUTE_VALUE_INVALID"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("graphene-pk11", () => {
  it("works when handed an hsmsim PKCS11 (no cast), from initialize to Module.close()", () => {
    expect(runGrapheneProgram("memory:?pinHashIterations=16")).toEqual({
      manufacturer: "hsmsim", decrypted: "graphene says hi", verified: true, privateKeys: 1,
    });
  });
});

it("the tsx loader is available for the SoftHSMv2 child", () => {
  expect(execFileSync(process.execPath, ["-e", "require('tsx/cjs/api'); process.stdout.write('ok')"], { encoding: "utf8" })).toBe("ok");
});

describe("package entry points (the build of `npm install`)", () => {
  it("require('hsmsim') and import('hsmsim') both give a working PKCS11", async () => {
    const cjs = require("hsmsim") as typeof hsmsim;
    const esm = (await import("hsmsim")) as unknown as typeof hsmsim;
    for (const entry of [cjs, esm]) {
      const pkcs11 = entry.load("memory:");
      pkcs11.C_Initialize();
      expect(pkcs11.C_GetInfo().manufacturerID.trim()).toBe("hsmsim");
      expect(entry.CKM_AES_GCM).toBe(pkcs11js.CKM_AES_GCM);
    }
    expect(require.resolve("hsmsim")).toMatch(/dist\/cjs\/index\.cjs$/);
  });
});
