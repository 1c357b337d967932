// The chip's hooks for the CloudHSM device layer: principals and ownership, sharing,
// key quotas, CKM_CLOUDHSM_AES_GCM, and the masking key kept in a file.
import * as crypto from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, describe, expect, it } from "vitest";

import { P, chipTemplate } from "../helpers.js";

const RW = P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION;
const tmpl = chipTemplate;
const mech = (type: number, a: Buffer | null = null, b: Buffer | null = null, n = 0) =>
  [new Float64Array([type, a || b || n ? 1 : 0, n, 0, 0]), a, b] as [Float64Array, Buffer | null, Buffer | null];
const aesKey = (extra: [number, Buffer | boolean | number][] = []) =>
  tmpl([[P.CKA_CLASS, P.CKO_SECRET_KEY], [P.CKA_KEY_TYPE, P.CKK_AES], [P.CKA_VALUE, crypto.randomBytes(32)], [P.CKA_TOKEN, true], ...extra]);

function device(options: P.ChipOptions = {}) {
  const chip = P.createChip({ pinHashIterations: 1, ...options });
  chip.initToken(0, Buffer.from("so-pin-1"), Buffer.from("device"));
  return chip;
}

describe("principals and ownership", () => {
  it("a principal owns what it creates; others see it only when it is shared, and may only use it", () => {
    const chip = device();
    const alice = chip.openSession(0, RW);
    chip.loginPrincipal(alice, 7);
    const key = chip.createObject(alice, aesKey([[P.CKA_EXTRACTABLE, true]]));
    const kek = chip.createObject(alice, aesKey());
    expect(chip.ownership(0, key)).toEqual({ owner: 7, sharedWith: [] });
    chip.closeSession(alice);

    const bob = chip.openSession(0, RW);
    chip.loginPrincipal(bob, 8);
    expect(() => chip.getObjectSize(bob, key)).toThrow("CKR_OBJECT_HANDLE_INVALID");
    expect(() => chip.shareObject(0, key, 8, 8, true)).toThrow("CKR_OBJECT_HANDLE_INVALID"); // not its key
    chip.shareObject(0, key, 7, 8, true);
    chip.shareObject(0, key, 7, 8, true); // sharing twice is one share
    expect(chip.ownership(0, key)).toEqual({ owner: 7, sharedWith: [8] });
    chip.encryptInit(bob, key, ...mech(P.CKM_AES_ECB));
    expect(chip.encrypt(bob, Buffer.alloc(16), Buffer.alloc(16))).toBe(16);
    expect(() => chip.destroyObject(bob, key)).toThrow("CKR_ACTION_PROHIBITED");
    expect(() => chip.setAttributeValue(bob, key, tmpl([[P.CKA_LABEL, Buffer.from("mine")]]))).toThrow("CKR_ACTION_PROHIBITED");
    expect(() => chip.copyObject(bob, key, tmpl([]))).toThrow("CKR_ACTION_PROHIBITED");
    expect(() => chip.shareObject(0, key, 8, 9, true)).toThrow("CKR_ACTION_PROHIBITED");
    const own = chip.createObject(bob, aesKey());
    expect(() => chip.wrapKey(bob, own, key, Buffer.alloc(64), ...mech(P.CKM_AES_KEY_WRAP))).toThrow("CKR_KEY_NOT_WRAPPABLE");
    expect(() => chip.getObjectSize(bob, kek)).toThrow("CKR_OBJECT_HANDLE_INVALID");
    chip.shareObject(0, key, 7, 8, false);
    chip.logout(bob);
    chip.loginPrincipal(bob, 7);
    expect(chip.ownership(0, key).sharedWith).toEqual([]);
    chip.destroyObject(bob, key);
  });

  it("ownership and sharing travel in masked records; the internal attributes are not reachable through C_ calls", () => {
    const chip = device();
    const s = chip.openSession(0, RW);
    chip.loginPrincipal(s, 3);
    const key = chip.createObject(s, aesKey());
    chip.shareObject(0, key, 3, 4, true);
    const copy = chip.importMasked(0, chip.exportMasked(0, key, 1));
    expect(chip.ownership(0, copy)).toEqual({ owner: 3, sharedWith: [4] });
    expect(chip.getAttributeValue(s, key, [0xc8535301]).rv).toBe(P.CKR_ATTRIBUTE_TYPE_INVALID);
    expect(() => chip.createObject(s, aesKey([[0xc8535301, 9]]))).toThrow("CKR_ATTRIBUTE_TYPE_INVALID");
    expect(() => chip.loginPrincipal(s, 5)).toThrow("CKR_USER_ANOTHER_ALREADY_LOGGED_IN");
  });
});

describe("key quotas", () => {
  it("a key past the quota fails with CKR_DEVICE_MEMORY and nothing is stored", () => {
    const chip = device({ maxKeys: 3, maxAsymmetricKeys: 2 });
    const s = chip.openSession(0, RW);
    chip.loginPrincipal(s, 1);
    const ecParams = Buffer.from("06082a8648ce3d030107", "hex");
    const pair = () => chip.generateKeyPair(s, tmpl([[P.CKA_EC_PARAMS, ecParams]]), tmpl([]), ...mech(P.CKM_EC_KEY_PAIR_GEN));
    pair();
    expect(() => pair()).toThrow("CKR_DEVICE_MEMORY"); // two more asymmetric keys do not fit
    chip.createObject(s, aesKey());
    expect(() => chip.createObject(s, aesKey())).toThrow("CKR_DEVICE_MEMORY");
    chip.findObjectsInit(s, tmpl([]));
    expect(chip.findObjects(s, 100)).toHaveLength(3);
    chip.findObjectsFinal(s);
    // Data objects are not keys.
    chip.createObject(s, tmpl([[P.CKA_CLASS, P.CKO_DATA]]));
  });
});

describe("CKM_CLOUDHSM_AES_GCM", () => {
  it("the token picks a fresh 12-byte IV per encryption and prepends it; standard GCM agrees", () => {
    const chip = device();
    const s = chip.openSession(0, RW);
    chip.loginPrincipal(s, 1);
    const value = crypto.randomBytes(32);
    const key = chip.createObject(s, tmpl([[P.CKA_CLASS, P.CKO_SECRET_KEY], [P.CKA_KEY_TYPE, P.CKK_AES], [P.CKA_VALUE, value]]));
    const aad = Buffer.from("context");
    const seal = () => {
      chip.encryptInit(s, key, ...mech(P.CKM_CLOUDHSM_AES_GCM, Buffer.alloc(12), aad, 128));
      const out = Buffer.alloc(64);
      return Buffer.from(out.subarray(0, chip.encrypt(s, Buffer.from("secret"), out)));
    };
    const a = seal(), b = seal();
    expect(a).toHaveLength(12 + 6 + 16);
    expect(a.subarray(0, 12).equals(b.subarray(0, 12))).toBe(false);
    const decipher = crypto.createDecipheriv("aes-256-gcm", value, a.subarray(0, 12));
    decipher.setAAD(aad);
    decipher.setAuthTag(a.subarray(18));
    expect(Buffer.concat([decipher.update(a.subarray(12, 18)), decipher.final()]).toString()).toBe("secret");
    chip.decryptInit(s, key, ...mech(P.CKM_CLOUDHSM_AES_GCM, null, aad, 128));
    const plain = Buffer.alloc(64);
    expect(plain.subarray(0, chip.decrypt(s, a, plain)).toString()).toBe("secret");
    a[20] ^= 1;
    chip.decryptInit(s, key, ...mech(P.CKM_CLOUDHSM_AES_GCM, null, aad, 128));
    expect(() => chip.decrypt(s, a, plain)).toThrow("CKR_ENCRYPTED_DATA_INVALID");
    chip.decryptInit(s, key, ...mech(P.CKM_CLOUDHSM_AES_GCM, null, aad, 128));
    expect(() => chip.decrypt(s, a.subarray(0, 20), plain)).toThrow("CKR_ENCRYPTED_DATA_LEN_RANGE");
    chip.encryptInit(s, key, ...mech(P.CKM_CLOUDHSM_AES_GCM, null, null, 128));
    expect(() => chip.encryptUpdate(s, Buffer.alloc(4), Buffer.alloc(64))).toThrow("CKR_FUNCTION_NOT_SUPPORTED");
  });
});

describe("masking key transfer between chips", () => {
  it("a chip seals its masking key to another chip's transport key; only that chip opens it", () => {
    const sender = device(), receiver = device(), bystander = device();
    const s = sender.openSession(0, RW);
    sender.loginPrincipal(s, 1);
    const record = sender.exportMasked(0, sender.createObject(s, aesKey()), 1);
    expect(() => receiver.importMasked(0, record)).toThrow("CKR_DATA_INVALID");
    expect(() => receiver.importMaskingKey(0, Buffer.alloc(110))).toThrow("CKR_KEY_HANDLE_INVALID"); // no transport key yet
    const sealed = sender.exportMaskingKeyFor(0, receiver.transportPublicKey(0));
    expect(sealed.subarray(0, 4).toString()).toBe("HSMT");
    bystander.transportPublicKey(0);
    expect(() => bystander.importMaskingKey(0, sealed)).toThrow("CKR_WRAPPED_KEY_INVALID"); // sealed to someone else
    const tampered = Buffer.from(sealed);
    tampered[tampered.length - 1] ^= 1;
    expect(() => receiver.importMaskingKey(0, tampered)).toThrow("CKR_WRAPPED_KEY_INVALID");
    expect(() => receiver.importMaskingKey(0, sealed.subarray(0, 50))).toThrow("CKR_WRAPPED_KEY_INVALID");
    expect(() => sender.exportMaskingKeyFor(0, Buffer.alloc(65))).toThrow("CKR_ARGUMENTS_BAD"); // not a point
    receiver.importMaskingKey(0, sealed);
    expect(receiver.importMasked(0, record)).toBeGreaterThan(0);
    // The transfer never carries the key in the clear: compare with the key itself, written natively to a file.
    const dir = mkdtempSync(join(tmpdir(), "hsmsim-transfer-"));
    try {
      sender.saveMaskingKey(0, join(dir, "k"));
      expect(sealed.includes(readFileSync(join(dir, "k")))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("masking key file", () => {
  const dir = mkdtempSync(join(tmpdir(), "hsmsim-masking-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("is written owner-only, never over an existing file, and restores records in another chip", () => {
    const chip = device();
    const s = chip.openSession(0, RW);
    chip.loginPrincipal(s, 1);
    const key = chip.createObject(s, aesKey());
    const record = chip.exportMasked(0, key, 1);
    const path = join(dir, "masking.key");
    chip.saveMaskingKey(0, path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(path).size).toBe(32);
    expect(() => chip.saveMaskingKey(0, path)).toThrow("CKR_FUNCTION_FAILED");
    const other = device();
    expect(() => other.importMasked(0, record)).toThrow("CKR_DATA_INVALID");
    other.loadMaskingKey(0, path);
    expect(other.importMasked(0, record)).toBeGreaterThan(0);
  });

  it("refuses a file others can read, a file of the wrong size, and a missing file", () => {
    const chip = device();
    const loose = join(dir, "loose.key");
    writeFileSync(loose, crypto.randomBytes(32));
    chmodSync(loose, 0o644);
    expect(() => chip.loadMaskingKey(0, loose)).toThrow("CKR_FUNCTION_FAILED");
    const short = join(dir, "short.key");
    writeFileSync(short, crypto.randomBytes(31), { mode: 0o600 });
    expect(() => chip.loadMaskingKey(0, short)).toThrow("CKR_FUNCTION_FAILED");
    const long = join(dir, "long.key");
    writeFileSync(long, crypto.randomBytes(40), { mode: 0o600 });
    expect(() => chip.loadMaskingKey(0, long)).toThrow("CKR_FUNCTION_FAILED");
    expect(() => chip.loadMaskingKey(0, join(dir, "missing.key"))).toThrow("CKR_FUNCTION_FAILED");
    expect(() => chip.loadMaskingKey(0, 42 as unknown as string)).toThrow(TypeError);
  });
});
