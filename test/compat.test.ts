// The proof of compatibility: pkcs11js's constants, a pkcs11js program run unchanged
// against hsmsim and (when installed) SoftHSMv2, and graphene-pk11 driving hsmsim.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { runProgram } from "../examples/pkcs11js-program.js";
import * as hsmsim from "../src/index.js";

const require = createRequire(import.meta.url);
const pkcs11js = require("pkcs11js") as typeof import("pkcs11js");
const graphene = require("graphene-pk11") as typeof import("graphene-pk11");
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
    const result = runProgram(pkcs11 as unknown as import("pkcs11js").PKCS11, pkcs11js);
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

describe("graphene-pk11", () => {
  it("works when handed an hsmsim PKCS11", () => {
    const pkcs11 = hsmsim.load("memory:?pinHashIterations=16");
    const mod = new graphene.Module(pkcs11 as unknown as import("pkcs11js").PKCS11);
    mod.initialize();
    try {
      expect(mod.manufacturerID.trim()).toBe("hsmsim");
      const slot = mod.getSlots(0);
      slot.initToken("so-pin-1234", "graphene");
      const session = slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
      session.login("so-pin-1234", graphene.UserType.SO);
      session.initPin("user-pin-1234");
      session.logout();
      session.login("user-pin-1234", graphene.UserType.USER);
      const key = session.generateKey(graphene.KeyGenMechanism.AES, { keyType: graphene.KeyType.AES, valueLen: 32, encrypt: true, decrypt: true });
      const alg = { name: "AES_CBC_PAD", params: Buffer.alloc(16, 2) };
      const cipher = session.createCipher(alg, key);
      const encrypted = Buffer.concat([cipher.update(Buffer.from("graphene says hi")), cipher.final()]);
      const decipher = session.createDecipher(alg, key);
      const decrypted = Buffer.concat([decipher.update(encrypted), decipher.final()]);
      expect(decrypted.toString()).toBe("graphene says hi");
      const keys = session.generateKeyPair(graphene.KeyGenMechanism.EC,
        { keyType: graphene.KeyType.EC, paramsEC: Buffer.from("06082a8648ce3d030107", "hex"), verify: true },
        { keyType: graphene.KeyType.EC, sign: true });
      const signature = session.createSign("ECDSA_SHA256", keys.privateKey).once(Buffer.from("data"));
      expect(session.createVerify("ECDSA_SHA256", keys.publicKey).once(Buffer.from("data"), signature)).toBe(true);
      expect(session.find({ class: graphene.ObjectClass.PRIVATE_KEY }).length).toBe(1);
      session.logout();
      session.close();
    } finally {
      mod.finalize();
    }
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
