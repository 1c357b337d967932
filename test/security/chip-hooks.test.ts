// The chip hooks the data folder and revocation rest on, through the JavaScript binding:
// revoking a principal, the chip's keyed MAC, and masked records bound to an identity.
import * as crypto from "node:crypto";

import { describe, expect, it } from "vitest";

import { P, chipTemplate } from "../helpers.js";

const RW = P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION;
const tmpl = chipTemplate;
const aesKey = (token: boolean) => tmpl([[P.CKA_CLASS, P.CKO_SECRET_KEY], [P.CKA_KEY_TYPE, P.CKK_AES], [P.CKA_VALUE, crypto.randomBytes(32)],
  [P.CKA_TOKEN, token], [P.CKA_ENCRYPT, true]]);
const gcm = () => [new Float64Array([P.CKM_AES_GCM, 1, 128, 0, 0]), Buffer.alloc(12, 1), null] as [Float64Array, Buffer, null];

function device() {
  const chip = P.createChip({ pinHashIterations: 1 });
  chip.initToken(0, Buffer.from("so-pin-1"), Buffer.from("device"));
  return chip;
}

describe("revokePrincipal", () => {
  it("logs every application of the principal out at once: operations end, its session objects go, others are untouched", () => {
    const chip = device();
    const victimApp = chip.openApplication(), otherApp = chip.openApplication();
    const s1 = victimApp.openSession(0, RW), s2 = victimApp.openSession(0, RW), other = otherApp.openSession(0, RW);
    chip.loginPrincipal(s1, 7);
    chip.loginPrincipal(other, 8);
    const tokenKey = chip.createObject(s1, aesKey(true));
    const sessionKey = chip.createObject(s2, aesKey(false));
    const otherKey = chip.createObject(other, aesKey(false));
    chip.encryptInit(s2, tokenKey, ...gcm()); // an operation in progress with the principal's key
    chip.revokePrincipal(7);
    expect(chip.getSessionInfo(s1).state).toBe(P.CKS_RW_PUBLIC_SESSION);
    expect(() => chip.encrypt(s2, Buffer.from("secret"), Buffer.alloc(64))).toThrow("CKR_OPERATION_NOT_INITIALIZED");
    expect(() => chip.encryptInit(s2, tokenKey, ...gcm())).toThrow(/CKR_KEY_HANDLE_INVALID|CKR_OBJECT_HANDLE_INVALID/);
    expect(() => chip.getObjectSize(s1, sessionKey)).toThrow("CKR_OBJECT_HANDLE_INVALID");
    expect(() => chip.createObject(s1, aesKey(true))).toThrow(/CKR_USER_NOT_LOGGED_IN|CKR_ACTION_PROHIBITED/);
    expect(chip.getSessionInfo(other).state).toBe(P.CKS_RW_USER_FUNCTIONS);
    expect(chip.getObjectSize(other, otherKey)).toBeGreaterThan(0);
    expect(() => chip.revokePrincipal(0)).toThrow("CKR_ARGUMENTS_BAD");
    expect(() => chip.revokePrincipal(-1 as number)).toThrow();
  });
});

describe("deviceMac", () => {
  it("is HMAC-SHA-256 under a per-purpose key derived from the masking key, which never leaves the chip", () => {
    const a = device(), b = device();
    const data = Buffer.from("audit entry");
    const mac = a.deviceMac(0, 1, data);
    expect(mac).toHaveLength(32);
    expect(a.deviceMac(0, 1, data)).toEqual(mac);
    expect(a.deviceMac(0, 2, data)).not.toEqual(mac);
    expect(b.deviceMac(0, 1, data)).not.toEqual(mac);
    // Not a plain hash anyone could recompute.
    expect(mac).not.toEqual(crypto.createHash("sha256").update(data).digest());
    a.shareMaskingKey(0, b, 0);
    expect(b.deviceMac(0, 1, data)).toEqual(mac);
    expect(() => a.deviceMac(0, 0, data)).toThrow("CKR_ARGUMENTS_BAD");
    expect(() => a.deviceMac(0, 256, data)).toThrow("CKR_ARGUMENTS_BAD");
    expect(() => a.deviceMac(0, 1, "text" as unknown as Buffer)).toThrow(TypeError);
  });
});

describe("masked records bound to an identity", () => {
  it.each([1, 2])("algorithm %i: a record opens only under the binding it was written with", (algorithm) => {
    const chip = device();
    const s = chip.openApplication().openSession(0, RW);
    chip.loginPrincipal(s, 7);
    const key = chip.createObject(s, aesKey(true));
    const binding = Buffer.from('["key",1,5,7]');
    const record = chip.exportMasked(0, key, algorithm, binding);
    expect(chip.importMasked(0, record, binding)).toBeGreaterThan(0);
    expect(() => chip.importMasked(0, record, Buffer.from('["key",1,4,7]'))).toThrow("CKR_DATA_INVALID"); // an older version
    expect(() => chip.importMasked(0, record, Buffer.from('["key",2,5,7]'))).toThrow("CKR_DATA_INVALID"); // another key
    expect(() => chip.importMasked(0, record)).toThrow("CKR_DATA_INVALID");
    expect(() => chip.importMasked(0, record, Buffer.alloc(5000))).toThrow("CKR_ARGUMENTS_BAD");
  });
});
