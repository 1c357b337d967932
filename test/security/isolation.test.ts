// Attacks from one application on another on the same HSM (issue 8, "Isolation between
// applications"): the attacker is a second `hsm.pkcs11()` that never logged in and knows, or
// guesses, the victim's session handles.
import { afterEach, describe, expect, it } from "vitest";

import { encodeTemplate } from "../../src/pkcs11/template.js";
import { expectCkr } from "../helpers.js";
import { type Device, H, activatedDevice, cuSession, tokenAesKey } from "../hsm/fixture.js";

let device: Device | undefined;
afterEach(() => {
  device?.cleanup();
  device = undefined;
});

const RW = H.CKF_SERIAL_SESSION | H.CKF_RW_SESSION;
const gcm = { mechanism: H.CKM_AES_GCM, parameter: { type: H.CK_PARAMS_AES_GCM, iv: Buffer.alloc(12), tagBits: 128 } };
const handleNumber = (h: Buffer) => Number(h.readBigUInt64LE(0));
const handleOf = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};

/** The victim: alice logged in, with a non-extractable and an extractable token key. */
function victimOn(hsm: H.Hsm) {
  const victim = cuSession(hsm, "alice", "alice-password");
  const locked = tokenAesKey(victim.pkcs11, victim.session, "locked", [{ type: H.CKA_EXTRACTABLE, value: false }]);
  const open = tokenAesKey(victim.pkcs11, victim.session, "open", [{ type: H.CKA_EXTRACTABLE, value: true }]);
  return { ...victim, locked, open };
}

function labelsSeenBy(pkcs11: H.PKCS11, session: Buffer): string[] {
  pkcs11.C_FindObjectsInit(session, []);
  const found = pkcs11.C_FindObjects(session, 100);
  pkcs11.C_FindObjectsFinal(session);
  return found.map((h) => pkcs11.C_GetAttributeValue(session, h, [{ type: H.CKA_LABEL }])[0].value!.toString()).sort();
}

describe("sessions belong to the application that opened them", () => {
  it("an application that never logged in can do nothing through another application's session", () => {
    device = activatedDevice();
    const { hsm } = device;
    const victim = victimOn(hsm);
    const attacker = hsm.pkcs11();
    attacker.C_Initialize();
    const slot = attacker.C_GetSlotList(true)[0];
    const own = attacker.C_OpenSession(slot, RW);
    const keysBefore = labelsSeenBy(victim.pkcs11, victim.session);
    const s = victim.session;
    const attacks: [string, () => unknown][] = [
      ["use the non-extractable key", () => attacker.C_EncryptInit(s, gcm, victim.locked)],
      ["plant a wrapping key", () => attacker.C_GenerateKey(s, { mechanism: H.CKM_AES_KEY_GEN },
        [{ type: H.CKA_VALUE_LEN, value: 32 }, { type: H.CKA_WRAP, value: true }])],
      ["import a known wrapping key", () => attacker.C_CreateObject(s, [{ type: H.CKA_CLASS, value: H.CKO_SECRET_KEY },
        { type: H.CKA_KEY_TYPE, value: H.CKK_AES }, { type: H.CKA_VALUE, value: Buffer.alloc(32, 7) }, { type: H.CKA_WRAP, value: true }])],
      ["wrap the extractable key out", () => attacker.C_WrapKey(s, { mechanism: H.CKM_AES_KEY_WRAP_KWP }, victim.open, victim.open, Buffer.alloc(64))],
      ["destroy a key", () => attacker.C_DestroyObject(s, victim.open)],
      ["change a key", () => attacker.C_SetAttributeValue(s, victim.open, [{ type: H.CKA_LABEL, value: "mine" }])],
      ["read attributes", () => attacker.C_GetAttributeValue(s, victim.locked, [{ type: H.CKA_LABEL }])],
      ["find objects", () => attacker.C_FindObjectsInit(s, [])],
      ["log the victim out", () => attacker.C_Logout(s)],
      ["log in on the victim's session", () => attacker.C_Login(s, H.CKU_USER, "bob:bob-password")],
      ["read session info", () => attacker.C_GetSessionInfo(s)],
      ["random from it", () => attacker.C_GenerateRandom(s, Buffer.alloc(8))],
      ["close it", () => attacker.C_CloseSession(s)],
    ];
    for (const [, attack] of attacks) expectCkr(attack, "CKR_SESSION_HANDLE_INVALID");
    // Closing every session of the slot closes the attacker's own only.
    attacker.C_CloseAllSessions(slot);
    expectCkr(() => attacker.C_GetSessionInfo(own), "CKR_SESSION_HANDLE_INVALID");

    // Nothing changed for the victim: still logged in, same keys, the locked key still works.
    expect(victim.pkcs11.C_GetSessionInfo(s).state).toBe(H.CKS_RW_USER_FUNCTIONS);
    expect(labelsSeenBy(victim.pkcs11, s)).toEqual(keysBefore);
    victim.pkcs11.C_EncryptInit(s, gcm, victim.locked);
    expect(victim.pkcs11.C_Encrypt(s, Buffer.from("still mine"), Buffer.alloc(64))).toHaveLength(26);
    expect(hsm.auditLog().filter((e) => e.operation === "DELETE_KEY" && e.result === "OK")).toEqual([]);
  });

  it("the same holds when the attacker is logged in as another crypto user", () => {
    device = activatedDevice();
    const victim = victimOn(device.hsm);
    const bob = cuSession(device.hsm, "bob", "bob-password");
    expectCkr(() => bob.pkcs11.C_EncryptInit(victim.session, gcm, victim.locked), "CKR_SESSION_HANDLE_INVALID");
    expectCkr(() => bob.pkcs11.C_DestroyObject(victim.session, victim.open), "CKR_SESSION_HANDLE_INVALID");
    expectCkr(() => bob.pkcs11.C_Logout(victim.session), "CKR_SESSION_HANDLE_INVALID");
    expect(victim.pkcs11.C_GetSessionInfo(victim.session).state).toBe(H.CKS_RW_USER_FUNCTIONS);
  });

  it("session handles are random, unique, nonzero and below 2^53: guessing finds nothing", () => {
    device = activatedDevice();
    const victim = victimOn(device.hsm);
    const more = Array.from({ length: 40 }, () => victim.pkcs11.C_OpenSession(victim.slot, RW));
    const numbers = [victim.session, ...more].map(handleNumber);
    expect(new Set(numbers).size).toBe(numbers.length);
    for (const n of numbers) {
      expect(n).toBeGreaterThan(0);
      expect(Number.isSafeInteger(n)).toBe(true);
    }
    // Not a counter: consecutive opens are not a step of one apart (1 chance in 2^53 each).
    const steps = numbers.slice(1).map((n, i) => n - numbers[i]);
    expect(steps.filter((d) => Math.abs(d) <= 1024)).toEqual([]);
    // The attacker walks the small handles and the neighbours of its own: none is the victim's.
    const attacker = device.hsm.pkcs11();
    attacker.C_Initialize();
    const own = handleNumber(attacker.C_OpenSession(attacker.C_GetSlotList(true)[0], RW));
    const guesses = [...Array.from({ length: 2048 }, (_, i) => i + 1), ...Array.from({ length: 256 }, (_, i) => own - 128 + i)];
    const hits = guesses.filter((n) => n !== own && n > 0).filter((n) => {
      try {
        attacker.C_GetSessionInfo(handleOf(n));
        return true;
      } catch (e) {
        expect((e as Error).message).toBe("CKR_SESSION_HANDLE_INVALID");
        return false;
      }
    });
    expect(hits).toEqual([]);
  });

  it("a session object is visible to its own application only", () => {
    const chip = H.createChip({ pinHashIterations: 1 });
    chip.initToken(0, Buffer.from("so-pin-1234"), Buffer.from("t"));
    const a = chip.openApplication();
    const b = chip.openApplication();
    const sa = a.openSession(0, RW);
    const sb = b.openSession(0, RW);
    const template = encodeTemplate([{ type: H.CKA_CLASS, value: H.CKO_DATA }, { type: H.CKA_LABEL, value: "a's" }], "template");
    const object = a.createObject(sa, template);
    expect(() => b.getAttributeValue(sb, object, [H.CKA_LABEL])).toThrow("CKR_OBJECT_HANDLE_INVALID");
    expect(() => b.destroyObject(sb, object)).toThrow("CKR_OBJECT_HANDLE_INVALID");
    b.findObjectsInit(sb, encodeTemplate([], "template"));
    expect(b.findObjects(sb, 10)).toEqual([]);
    expect(a.getAttributeValue(sa, object, [H.CKA_LABEL]).values[0]!.toString()).toBe("a's");
  });
});

describe("the session limit is per application", () => {
  it("one application exhausting its sessions leaves the others theirs", () => {
    device = activatedDevice();
    const greedy = device.hsm.pkcs11();
    greedy.C_Initialize();
    const slot = greedy.C_GetSlotList(true)[0];
    const held = Array.from({ length: 1024 }, () => greedy.C_OpenSession(slot, RW));
    expectCkr(() => greedy.C_OpenSession(slot, RW), "CKR_SESSION_COUNT");
    const other = device.hsm.pkcs11();
    other.C_Initialize();
    const mine = Array.from({ length: 10 }, () => other.C_OpenSession(slot, RW));
    expect(mine).toHaveLength(10);
    greedy.C_CloseSession(held[0]);
    greedy.C_OpenSession(slot, RW);
    expectCkr(() => greedy.C_OpenSession(slot, RW), "CKR_SESSION_COUNT");
  });

  it("the limit is a chip option", () => {
    const chip = H.createChip({ pinHashIterations: 1, maxSessionsPerApplication: 3 });
    chip.initToken(0, Buffer.from("so-pin-1234"), Buffer.from("t"));
    const a = chip.openApplication();
    const b = chip.openApplication();
    for (let i = 0; i < 3; i++) a.openSession(0, RW);
    expect(() => a.openSession(0, RW)).toThrow("CKR_SESSION_COUNT");
    for (let i = 0; i < 3; i++) b.openSession(0, RW);
    expect(() => b.openSession(0, RW)).toThrow("CKR_SESSION_COUNT");
    expect(() => H.createChip({ maxSessionsPerApplication: 0 })).toThrow(TypeError);
  });
});

describe("load('memory:') is one application of its own chip", () => {
  it("its session limit is the target's maxSessionsPerApplication", () => {
    const pkcs11 = H.load("memory:?pinHashIterations=1&maxSessionsPerApplication=2");
    pkcs11.C_Initialize();
    const slot = pkcs11.C_GetSlotList(true)[0];
    pkcs11.C_InitToken(slot, "so-pin-1234", "t");
    pkcs11.C_OpenSession(slot, RW);
    pkcs11.C_OpenSession(slot, RW);
    expectCkr(() => pkcs11.C_OpenSession(slot, RW), "CKR_SESSION_COUNT");
    expect(() => H.load("memory:?maxSessionsPerApplication=0")).toThrow(TypeError);
  });
});
