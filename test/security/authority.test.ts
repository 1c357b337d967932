// What the chip enforces on the HSM (the device profile) and the classic PKCS#11 extraction
// paths (issue 8, "Authority"): unauthenticated applications create and see nothing,
// CKA_EXTRACTABLE is fixed at creation, C_DigestKey is no oracle, C_SetPIN checks lengths first,
// and a non-extractable key leaks through no path.
import { afterEach, describe, expect, it } from "vitest";

import { encodeTemplate } from "../../src/pkcs11/template.js";
import { expectCkr } from "../helpers.js";
import { type Device, FAST, H, activatedDevice, cuSession, tempDir, tokenAesKey } from "../hsm/fixture.js";

const RW = H.CKF_SERIAL_SESSION | H.CKF_RW_SESSION;
const KWP = { mechanism: H.CKM_AES_KEY_WRAP_KWP };
const aesTemplate = (extra: H.Template = [], value = Buffer.alloc(32, 1)): H.Template => [
  { type: H.CKA_CLASS, value: H.CKO_SECRET_KEY }, { type: H.CKA_KEY_TYPE, value: H.CKK_AES }, { type: H.CKA_VALUE, value }, ...extra,
];

let device: Device | undefined;
let cleanup: (() => void) | undefined;
afterEach(() => {
  device?.cleanup();
  cleanup?.();
  device = cleanup = undefined;
});

function anonymous(hsm: H.Hsm) {
  const pkcs11 = hsm.pkcs11();
  pkcs11.C_Initialize();
  const session = pkcs11.C_OpenSession(pkcs11.C_GetSlotList(true)[0], RW);
  return { pkcs11, session };
}

/** Every way an unauthenticated application could make a key: all must fail and store nothing. */
function expectNoKeysCreated(hsm: H.Hsm) {
  const { pkcs11, session } = anonymous(hsm);
  for (const token of [true, false]) {
    const common = [{ type: H.CKA_TOKEN, value: token }, { type: H.CKA_PRIVATE, value: false }];
    expectCkr(() => pkcs11.C_GenerateKey(session, { mechanism: H.CKM_AES_KEY_GEN }, [{ type: H.CKA_VALUE_LEN, value: 32 }, ...common]), "CKR_USER_NOT_LOGGED_IN");
    expectCkr(() => pkcs11.C_CreateObject(session, aesTemplate(common)), "CKR_USER_NOT_LOGGED_IN");
    expectCkr(() => pkcs11.C_CreateObject(session, [{ type: H.CKA_CLASS, value: H.CKO_DATA }, ...common]), "CKR_USER_NOT_LOGGED_IN");
    expectCkr(() => pkcs11.C_GenerateKeyPair(session, { mechanism: H.CKM_EC_KEY_PAIR_GEN },
      [{ type: H.CKA_EC_PARAMS, value: Buffer.from("06082a8648ce3d030107", "hex") }, ...common], common), "CKR_USER_NOT_LOGGED_IN");
  }
  expect(hsm.auditLog().filter((e) => e.result === "OK" && /KEY/.test(e.operation))).toEqual([]);
}

describe("an application that never logged in", () => {
  it("creates no key, token or session, on an activated HSM", () => {
    device = activatedDevice();
    expectNoKeysCreated(device.hsm);
  });

  it("creates no key on an HSM that was never activated", () => {
    const dir = tempDir();
    const hsm = H.Hsm.create(dir.path, FAST);
    cleanup = () => { hsm.close(); dir.cleanup(); };
    expect(hsm.activated).toBe(false);
    expectNoKeysCreated(hsm);
  });

  it("sees only public information: no object, by search or by guessed handle", () => {
    device = activatedDevice();
    const alice = cuSession(device.hsm, "alice", "alice-password");
    const key = tokenAesKey(alice.pkcs11, alice.session, "alice's", [{ type: H.CKA_PRIVATE, value: false }]);
    const { pkcs11, session } = anonymous(device.hsm);
    expect(pkcs11.C_GetTokenInfo(pkcs11.C_GetSlotList(true)[0]).label).toMatch(/^hsmsim/);
    pkcs11.C_FindObjectsInit(session, []);
    expect(pkcs11.C_FindObjects(session, 100)).toEqual([]);
    pkcs11.C_FindObjectsFinal(session);
    const gcm = { mechanism: H.CKM_AES_GCM, parameter: { type: H.CK_PARAMS_AES_GCM, iv: Buffer.alloc(12), tagBits: 128 } };
    expectCkr(() => pkcs11.C_EncryptInit(session, gcm, key), "CKR_USER_NOT_LOGGED_IN");
    expectCkr(() => pkcs11.C_GetAttributeValue(session, key, [{ type: H.CKA_LABEL }]), "CKR_USER_NOT_LOGGED_IN");
    expectCkr(() => pkcs11.C_DestroyObject(session, key), "CKR_USER_NOT_LOGGED_IN");
    expectCkr(() => pkcs11.C_CopyObject(session, key, []), "CKR_USER_NOT_LOGGED_IN");
  });
});

describe("the chip itself enforces the device profile", () => {
  function deviceChip() {
    const chip = H.createChip({ pinHashIterations: 1, deviceProfile: true });
    chip.initToken(0, Buffer.from("so-pin-1234"), Buffer.from("device"));
    return chip;
  }

  it("an application's session creates, finds and uses nothing until the device logs a principal in", () => {
    const chip = deviceChip();
    const app = chip.openApplication();
    const s = app.openSession(0, RW);
    const template = encodeTemplate(aesTemplate([{ type: H.CKA_TOKEN, value: true }]), "template");
    expect(() => app.createObject(s, template)).toThrow("CKR_USER_NOT_LOGGED_IN");
    chip.loginPrincipal(s, 7);
    const key = app.createObject(s, template);
    expect(chip.ownership(0, key).owner).toBe(7);
    const other = app.openSession(0, RW); // same application: same login
    expect(app.getAttributeValue(other, key, [H.CKA_CLASS]).values[0]).not.toBeNull();
    const stranger = chip.openApplication();
    const t = stranger.openSession(0, RW);
    expect(() => stranger.getAttributeValue(t, key, [H.CKA_CLASS])).toThrow("CKR_USER_NOT_LOGGED_IN");
    stranger.findObjectsInit(t, encodeTemplate([], "template"));
    expect(stranger.findObjects(t, 10)).toEqual([]);
  });

  it("PIN logins, C_InitPIN, C_SetPIN and C_InitToken are refused on an application", () => {
    const chip = deviceChip();
    const app = chip.openApplication();
    const s = app.openSession(0, RW);
    expect(() => app.login(s, H.CKU_SO, Buffer.from("so-pin-1234"))).toThrow("CKR_FUNCTION_NOT_SUPPORTED");
    expect(() => app.login(s, H.CKU_USER, Buffer.from("so-pin-1234"))).toThrow("CKR_FUNCTION_NOT_SUPPORTED");
    expect(() => app.initPin(s, Buffer.from("user-pin-1"))).toThrow("CKR_FUNCTION_NOT_SUPPORTED");
    expect(() => app.setPin(s, Buffer.from("so-pin-1234"), Buffer.from("user-pin-1"))).toThrow("CKR_FUNCTION_NOT_SUPPORTED");
    app.closeSession(s);
    expect(() => app.initToken(0, Buffer.from("so-pin-1234"), Buffer.from("mine"))).toThrow("CKR_FUNCTION_NOT_SUPPORTED");
  });
});

describe("CKA_EXTRACTABLE is fixed at creation on the HSM", () => {
  it("neither C_SetAttributeValue nor C_CopyObject changes it, either way", () => {
    device = activatedDevice();
    const { pkcs11, session } = cuSession(device.hsm, "alice", "alice-password");
    const open = tokenAesKey(pkcs11, session, "open", [{ type: H.CKA_EXTRACTABLE, value: true }]);
    const locked = tokenAesKey(pkcs11, session, "locked", [{ type: H.CKA_EXTRACTABLE, value: false }]);
    for (const [key, value] of [[open, false], [locked, true]] as const) {
      expectCkr(() => pkcs11.C_SetAttributeValue(session, key, [{ type: H.CKA_EXTRACTABLE, value }]), "CKR_ATTRIBUTE_READ_ONLY");
      expectCkr(() => pkcs11.C_CopyObject(session, key, [{ type: H.CKA_EXTRACTABLE, value }]), "CKR_ATTRIBUTE_READ_ONLY");
    }
    expect(pkcs11.C_GetAttributeValue(session, open, [{ type: H.CKA_EXTRACTABLE }])[0].value).toEqual(Buffer.from([1]));
    // Restating the current value is not a change.
    pkcs11.C_SetAttributeValue(session, open, [{ type: H.CKA_EXTRACTABLE, value: true }]);
  });

  it("outside the device profile PKCS#11's rule stays: true to false is allowed", () => {
    const pkcs11 = H.load("memory:?pinHashIterations=16");
    pkcs11.C_Initialize();
    const { session } = H.openUserSession(pkcs11, { soPin: "so-secret-1", userPin: "user-secret-1" });
    const key = pkcs11.C_CreateObject(session, aesTemplate([{ type: H.CKA_EXTRACTABLE, value: true }]));
    pkcs11.C_SetAttributeValue(session, key, [{ type: H.CKA_EXTRACTABLE, value: false }]);
    expectCkr(() => pkcs11.C_SetAttributeValue(session, key, [{ type: H.CKA_EXTRACTABLE, value: true }]), "CKR_ATTRIBUTE_READ_ONLY");
  });
});

describe("classic extraction paths", () => {
  it("a non-extractable key leaks through no path: wrap (any wrapping key, also one with decrypt), digest, attributes, copy", () => {
    device = activatedDevice();
    const { pkcs11, session } = cuSession(device.hsm, "alice", "alice-password");
    const secret = Buffer.alloc(32, 0x5a);
    const locked = pkcs11.C_CreateObject(session, aesTemplate([{ type: H.CKA_TOKEN, value: true }, { type: H.CKA_EXTRACTABLE, value: false }], secret));
    // The caller knows this key's value, and it may both wrap and decrypt.
    const known = pkcs11.C_CreateObject(session, aesTemplate([{ type: H.CKA_WRAP, value: true }, { type: H.CKA_DECRYPT, value: true }]));
    for (const mechanism of [KWP, { mechanism: H.CKM_AES_KEY_WRAP },
      { mechanism: H.CKM_AES_CBC_PAD, parameter: Buffer.alloc(16) }]) {
      expectCkr(() => pkcs11.C_WrapKey(session, mechanism, known, locked, Buffer.alloc(128)), "CKR_KEY_UNEXTRACTABLE");
    }
    pkcs11.C_DigestInit(session, { mechanism: H.CKM_SHA256 });
    expectCkr(() => pkcs11.C_DigestKey(session, locked), "CKR_KEY_INDIGESTIBLE");
    pkcs11.C_DigestFinal(session, Buffer.alloc(32));
    expectCkr(() => pkcs11.C_GetAttributeValue(session, locked, [{ type: H.CKA_VALUE }]), "CKR_ATTRIBUTE_SENSITIVE");
    expectCkr(() => pkcs11.C_CopyObject(session, locked, [{ type: H.CKA_EXTRACTABLE, value: true }]), "CKR_ATTRIBUTE_READ_ONLY");
    expectCkr(() => pkcs11.C_SetAttributeValue(session, locked, [{ type: H.CKA_SENSITIVE, value: false }]), "CKR_ATTRIBUTE_READ_ONLY");
  });

  it("C_DigestKey refuses a sensitive key even when it is extractable", () => {
    device = activatedDevice();
    const { pkcs11, session } = cuSession(device.hsm, "alice", "alice-password");
    const key = tokenAesKey(pkcs11, session, "sensitive", [{ type: H.CKA_EXTRACTABLE, value: true }, { type: H.CKA_SENSITIVE, value: true }]);
    pkcs11.C_DigestInit(session, { mechanism: H.CKM_SHA256 });
    expectCkr(() => pkcs11.C_DigestKey(session, key), "CKR_KEY_INDIGESTIBLE");
  });

  it("the owner of an extractable key may wrap it (it is extractable by definition); a user it is shared with may not", () => {
    device = activatedDevice();
    const { hsm } = device;
    const alice = cuSession(hsm, "alice", "alice-password");
    const key = tokenAesKey(alice.pkcs11, alice.session, "shared", [{ type: H.CKA_EXTRACTABLE, value: true }]);
    const aliceKek = alice.pkcs11.C_CreateObject(alice.session, aesTemplate([{ type: H.CKA_WRAP, value: true }]));
    expect(alice.pkcs11.C_WrapKey(alice.session, KWP, aliceKek, key, Buffer.alloc(64))).toHaveLength(40);
    const [keyId] = hsm.auditLog().filter((e) => e.operation === "GENERATE_KEY").map((e) => e.keys[0]);
    hsm.shareKey(hsm.login("alice", "alice-password"), keyId, "bob");
    const bob = cuSession(hsm, "bob", "bob-password");
    bob.pkcs11.C_FindObjectsInit(bob.session, [{ type: H.CKA_LABEL, value: "shared" }]);
    const [seen] = bob.pkcs11.C_FindObjects(bob.session, 10);
    bob.pkcs11.C_FindObjectsFinal(bob.session);
    const bobKek = bob.pkcs11.C_CreateObject(bob.session, aesTemplate([{ type: H.CKA_WRAP, value: true }]));
    expectCkr(() => bob.pkcs11.C_WrapKey(bob.session, KWP, bobKek, seen, Buffer.alloc(64)), "CKR_KEY_NOT_WRAPPABLE");
    expectCkr(() => bob.pkcs11.C_CopyObject(bob.session, seen, []), "CKR_ACTION_PROHIBITED");
  });
});

describe("C_SetPIN on the HSM", () => {
  it("a new password of the wrong length is CKR_PIN_LEN_RANGE, checked before the old one; a wrong old one is CKR_PIN_INCORRECT", () => {
    device = activatedDevice({ maxLoginFailures: 2 });
    const { pkcs11, session } = cuSession(device.hsm, "alice", "alice-password");
    expectCkr(() => pkcs11.C_SetPIN(session, "alice-password", "short"), "CKR_PIN_LEN_RANGE");
    expectCkr(() => pkcs11.C_SetPIN(session, "alice-password", "x".repeat(33)), "CKR_PIN_LEN_RANGE");
    // Wrong old password and bad length: the length answers, and no failure is counted.
    for (let i = 0; i < 3; i++) expectCkr(() => pkcs11.C_SetPIN(session, "wrong-password", "short"), "CKR_PIN_LEN_RANGE");
    expectCkr(() => pkcs11.C_SetPIN(session, "wrong-password", "new-password-1"), "CKR_PIN_INCORRECT");
    pkcs11.C_SetPIN(session, "alice-password", "new-password-1");
    expect(() => device!.hsm.login("alice", "new-password-1")).not.toThrow();
  });
});
