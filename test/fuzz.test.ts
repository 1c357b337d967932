// A sample of the fuzz run (the full 100,000-call run is `npm run fuzz`).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { CKF_RW_SESSION, CKF_SERIAL_SESSION, CKU_USER, Hsm } from "../src/index.js";

import { fuzzChip } from "./fuzz/chip-fuzzer.js";
import { fuzz, prng } from "./fuzz/fuzzer.js";

describe("fuzz sample", () => {
  it.each([1, 2, 3])("seed %i: 4,000 random calls give only TypeError or Pkcs11Error and never the locked key", async (seed) => {
    const report = await fuzz(4000, seed);
    expect(report.findings).toEqual([]);
    expect(report.calls).toBe(4000);
    // The run reaches past argument checks into the token, and some calls succeed.
    expect(report.pkcs11Errors).toBeGreaterThan(1000);
    expect(report.returned).toBeGreaterThan(100);
  });

  it.each([11, 12])("seed %i: 4,000 random calls straight at the native chip fail safe", async (seed) => {
    const report = await fuzzChip(4000, seed);
    expect(report.findings).toEqual([]);
    expect(report.calls).toBe(4000);
  });

  it("seed 21: 3,000 random calls at an HSM's CloudHSM profile fail safe, and its audit chain still verifies", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hsmsim-fuzz-hsm-"));
    const hsm = Hsm.create(join(dir, "hsm"), { passwordCost: 4, maxLoginFailures: 1000 });
    try {
      hsm.changePassword(hsm.login("admin", "password"), "admin", "admin-password");
      hsm.createUser(hsm.login("admin", "admin-password"), "fuzz", "CU", "fuzz-password");
      const pkcs11 = hsm.pkcs11();
      pkcs11.C_Initialize();
      const slot = pkcs11.C_GetSlotList(true)[0];
      const session = pkcs11.C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION);
      pkcs11.C_Login(session, CKU_USER, "fuzz:fuzz-password");
      const report = await fuzz(3000, 21, { pkcs11, slot, session, userPin: "fuzz:fuzz-password", close: () => undefined });
      expect(report.findings).toEqual([]);
      expect(report.returned).toBeGreaterThan(50);
      expect(hsm.verifyAudit().ok).toBe(true);
      expect(hsm.auditLog().length).toBeGreaterThan(10);
    } finally {
      hsm.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a seed replays the same run", async () => {
    const a = await fuzz(500, 99), b = await fuzz(500, 99);
    expect(a).toEqual(b);
    expect(prng(5)()).toBe(prng(5)());
  });
});
