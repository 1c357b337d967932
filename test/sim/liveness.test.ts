// The availability checkers catch the holes of issue 8: with each bug brought back (a test-only
// switch), a sweep that passes today reports the violation the checker is for.
import { afterEach, describe, expect, it } from "vitest";

import { regressions } from "../../src/cluster/regressions.js";
import * as C from "../../src/pkcs11/constants.js";
import { Pkcs11Error } from "../../src/pkcs11/errors.js";
import { ClientError } from "../../src/client/errors.js";
import type { AuditEntry } from "../../src/hsm/audit.js";
import { checkRevocations } from "../../src/sim/invariants.js";
import { classify } from "../../src/sim/liveness.js";
import { runSimulation } from "../../src/sim/run.js";

afterEach(() => {
  regressions.wedgingOperations = false;
  regressions.strayFinds = false;
});

function invariants(seeds: number[]): Map<number, string[]> {
  return new Map(seeds.map((seed) => [seed, runSimulation(seed, { workloadUs: 10_000_000 }).violations.map((v) => `${v.invariant}: ${v.detail}`)]));
}

const availability = (v: string) => /^(unavailable|session-object-invisible|session-object-leaked):/.test(v);

// Seeds with 1% or 5% message loss (seed 12, 16 and 19: 5%).
const LOSSY = [6, 8, 12, 19];

describe("availability checkers", () => {
  it("pass on the fixed cluster for lossy seeds", () => {
    for (const [seed, violations] of invariants(LOSSY)) expect(violations.filter(availability), `seed ${seed}`).toEqual([]);
  });

  it("catch a lost message wedging a session (CKR_OPERATION_ACTIVE), which the safety checkers let through", () => {
    regressions.wedgingOperations = true;
    const found = [...invariants(LOSSY).values()].flat();
    expect(found.some((v) => v.startsWith("unavailable:") && v.includes("CKR_OPERATION_ACTIVE"))).toBe(true);
    // and no safety checker flags it: only the availability checker does (revocation is another hole, closed by B1/B2's device changes)
    expect(found.filter((v) => !v.startsWith("unavailable:") && !v.startsWith("revoked-user-acted:"))).toEqual([]);
  });

  it("catch session objects that their own application cannot find, or another one can", () => {
    regressions.strayFinds = true;
    const found = [...invariants([1, 2, 3, 6, 8]).values()].flat();
    expect(found.some((v) => v.startsWith("session-object-invisible:"))).toBe(true);
  });

  it("classify failures as the retry table says", () => {
    const lost = new Pkcs11Error(C.CKR_DEVICE_ERROR, "C_Encrypt", "HSM_UNREACHABLE: HSM at 10.0.0.11 did not answer (after 4 attempts)");
    expect(classify(lost, true, {}).violation).toBeNull();
    expect(classify(new ClientError("OUTCOME_UNKNOWN", "x"), true, {}).violation).toBeNull();
    expect(classify(new Pkcs11Error(C.CKR_OPERATION_ACTIVE, "C_EncryptInit"), false, {}).violation).toMatch(/CKR_OPERATION_ACTIVE/);
    const availability = new Pkcs11Error(C.CKR_FUNCTION_FAILED, "C_EncryptInit", "Key 5 does not meet the availability requirements");
    expect(classify(availability, false, {}).violation).toBeNull();
    expect(classify(availability, true, {}).violation).toMatch(/clean window/);
    const gone = new Pkcs11Error(C.CKR_KEY_HANDLE_INVALID, "C_EncryptInit");
    expect(classify(gone, false, {}).violation).toMatch(/CKR_KEY_HANDLE_INVALID/);
    expect(classify(gone, false, { keyMayBeGone: true }).violation).toBeNull();
  });
});

describe("revocation checker", () => {
  let seq = 0;
  const entry = (operation: string, actor: string | null, result: string, detail = ""): AuditEntry =>
    ({ seq: ++seq, timeUs: seq, reboot: 0, operation, actor, session: null, keys: [], result, detail }) as unknown as AuditEntry;

  it("flags a key made by a user after this HSM applied its delete, local or replicated, or a reset done here", () => {
    expect(checkRevocations("h", [entry("DELETE_USER", "admin", "OK", "temp0"), entry("GENERATE_KEY", "temp0", "OK")])).toHaveLength(1);
    expect(checkRevocations("h", [entry("SYNC", null, "OK", "user-delete user:temp1 from origin 2 seq 9"),
      entry("GENERATE_KEY_PAIR", "temp1", "OK")])).toHaveLength(1);
    expect(checkRevocations("h", [entry("CHANGE_PASSWORD", "admin", "OK", "victim"), entry("CREATE_KEY", "victim", "OK")])).toHaveLength(1);
  });

  it("allows what came before the change reached this HSM, refusals, and a fresh login after a reset", () => {
    expect(checkRevocations("h", [entry("GENERATE_KEY", "temp0", "OK"), entry("DELETE_USER", "admin", "OK", "temp0"),
      entry("GENERATE_KEY", "temp0", "CKR_USER_NOT_LOGGED_IN")])).toEqual([]);
    expect(checkRevocations("h", [entry("CHANGE_PASSWORD", "admin", "OK", "victim"), entry("LOGIN", "victim", "OK", "CU"),
      entry("GENERATE_KEY", "victim", "OK")])).toEqual([]);
    // a user changing its own password keeps its session
    expect(checkRevocations("h", [entry("CHANGE_PASSWORD", "alice", "OK", "alice"), entry("GENERATE_KEY", "alice", "OK")])).toEqual([]);
  });
});
