// Red team of the fleet split (src/kms/fleet.ts ↔ src/kms/fleet-token.ts): an editor of
// DATA/kms/fleet who holds fleet.pin, and a careless caller of Fleet. Only what
// test/kms/fleet.test.ts and test/security/kms-crypto.test.ts do not already cover.
import { createHmac, createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import * as P from "../../src/pkcs11/index.js";
import { KmsError } from "../../src/kms/errors.js";
import { FLEET_PIN_FILE, FLEET_TOKEN_LABEL, Fleet } from "../../src/kms/fleet.js";
import { asPinHolder, freshFleetFolder, refusal } from "../kms/fleet-fixture.js";

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "hsmsim-rt-fleet-"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));




function find(p: P.PKCS11, s: P.Handle, label: string, cls?: number): P.Handle[] {
  const template: P.Template = [{ type: P.CKA_LABEL, value: label }];
  if (cls !== undefined) template.push({ type: P.CKA_CLASS, value: cls });
  p.C_FindObjectsInit(s, template);
  try {
    return p.C_FindObjects(s, 100);
  } finally {
    p.C_FindObjectsFinal(s);
  }
}

const importedAes = (label: string): P.Template => [
  { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES }, { type: P.CKA_VALUE, value: Buffer.alloc(32, 0x41) },
  { type: P.CKA_TOKEN, value: true }, { type: P.CKA_PRIVATE, value: true }, { type: P.CKA_SENSITIVE, value: true },
  { type: P.CKA_EXTRACTABLE, value: false }, { type: P.CKA_ENCRYPT, value: true }, { type: P.CKA_DECRYPT, value: true },
  { type: P.CKA_LABEL, value: label }, { type: P.CKA_ID, value: Buffer.from("SYMMETRIC_DEFAULT") },
];

const chipAes = (label: string): P.Template => [
  { type: P.CKA_VALUE_LEN, value: 32 }, { type: P.CKA_TOKEN, value: true }, { type: P.CKA_PRIVATE, value: true },
  { type: P.CKA_SENSITIVE, value: true }, { type: P.CKA_EXTRACTABLE, value: false }, { type: P.CKA_ENCRYPT, value: true },
  { type: P.CKA_DECRYPT, value: true }, { type: P.CKA_LABEL, value: label }, { type: P.CKA_ID, value: Buffer.from("SYMMETRIC_DEFAULT") },
];

describe("an editor of DATA/kms/fleet who holds fleet.pin", () => {
  it("an imported key under each of KMS's own labels fails the open; removing it lets the same folder open (the failed open closed its module)", async () => {
    const { dir, target } = freshFleetFolder(root);
    (await Fleet.open({ target })).close();
    for (const label of ["kms-internal/record-hmac", "kms-internal/sealing-aes", "kms-internal/trail-ecdsa", "kms-internal/other"]) {
      // Beside KMS's own key (refused as imported or as a second one, whichever the walk meets first).
      const saved = asPinHolder(dir, (p, s) => p.C_CreateObject(s, importedAes(label)));
      const e = await refusal(() => Fleet.open({ target }));
      expect(e.code).toBe("KMSInternalException");
      expect(e.message).toMatch(/did not make|second one/);
      // The failed open must have released the folder: the PIN holder opens it again at once.
      asPinHolder(dir, (p, s) => p.C_DestroyObject(s, saved));
      (await Fleet.open({ target })).close();
    }
  }, 60_000);

  it("an imported key under KMS's sealing label, with the real one gone, fails the open (never adopted as the sealing key)", async () => {
    const { dir, target } = freshFleetFolder(root);
    (await Fleet.open({ target })).close();
    asPinHolder(dir, (p, s) => {
      for (const h of find(p, s, "kms-internal/sealing-aes")) p.C_DestroyObject(s, h);
      p.C_CreateObject(s, importedAes("kms-internal/sealing-aes"));
    });
    expect((await refusal(() => Fleet.open({ target }))).message).toMatch(/did not make/);
  }, 30_000);

  it("a second chip-made key under a user label or KMS's own label fails the open, and the folder opens once it is gone", async () => {
    const { dir, target } = freshFleetFolder(root);
    const fleet = await Fleet.open({ target });
    await fleet.createKey("user", "SYMMETRIC_DEFAULT");
    fleet.close();
    for (const label of ["user", "kms-internal/sealing-aes"]) {
      const twin = asPinHolder(dir, (p, s) => p.C_GenerateKey(s, { mechanism: P.CKM_AES_KEY_GEN }, chipAes(label)));
      expect((await refusal(() => Fleet.open({ target }))).message).toMatch(/second one/);
      asPinHolder(dir, (p, s) => p.C_DestroyObject(s, twin));
      const again = await Fleet.open({ target });
      expect(again.hasKey("user")).toBe(true);
      again.close();
    }
  }, 30_000);

  it("a second public half under a pair's label fails the open", async () => {
    const { dir, target } = freshFleetFolder(root);
    const fleet = await Fleet.open({ target });
    await fleet.createKey("pair", "ECC_NIST_P256");
    fleet.close();
    asPinHolder(dir, (p, s) => {
      const k = p.C_GenerateKeyPair(s, { mechanism: P.CKM_EC_KEY_PAIR_GEN },
        [{ type: P.CKA_TOKEN, value: true }, { type: P.CKA_EC_PARAMS, value: Buffer.from("06082a8648ce3d030107", "hex") },
          { type: P.CKA_LABEL, value: "pair" }, { type: P.CKA_ID, value: Buffer.from("ECC_NIST_P256") }],
        [{ type: P.CKA_TOKEN, value: false }, { type: P.CKA_SENSITIVE, value: true }, { type: P.CKA_EXTRACTABLE, value: false }]);
      return k;
    });
    expect((await refusal(() => Fleet.open({ target }))).message).toMatch(/second one/);
  }, 30_000);

  it("a pair without its public half (a user key, and KMS's trail key) fails the open", async () => {
    for (const label of ["pair", "kms-internal/trail-ecdsa"]) {
      const { dir, target } = freshFleetFolder(root);
      const fleet = await Fleet.open({ target });
      await fleet.createKey("pair", "ECC_NIST_P384");
      fleet.close();
      asPinHolder(dir, (p, s) => {
        for (const h of find(p, s, label, P.CKO_PUBLIC_KEY)) p.C_DestroyObject(s, h);
      });
      expect((await refusal(() => Fleet.open({ target }))).message).toMatch(/lost its public half/);
    }
  }, 30_000);

  it("found and fixed: a pair's public half swapped for one whose private key the PIN holder exported is adopted (publicKey, verify and the trail's PEM then trust the attacker's key)", async () => {
    const { dir, target } = freshFleetFolder(root);
    const fleet = await Fleet.open({ target });
    await fleet.createKey("signer", "ECC_NIST_P256");
    const realSpki = fleet.publicKey("signer");
    const realPem = fleet.trailPublicKeyPem();
    fleet.close();
    // The chip generates the attacker's pair (so CKA_LOCAL is true on its public half), but its
    // private half is extractable and not sensitive: the attacker reads its value.
    const attackerPrivate = asPinHolder(dir, (p, s) => {
      const swap = (label: string): Buffer => {
        for (const h of find(p, s, label, P.CKO_PUBLIC_KEY)) p.C_DestroyObject(s, h);
        const k = p.C_GenerateKeyPair(s, { mechanism: P.CKM_EC_KEY_PAIR_GEN },
          [{ type: P.CKA_TOKEN, value: true }, { type: P.CKA_EC_PARAMS, value: Buffer.from("06082a8648ce3d030107", "hex") },
            { type: P.CKA_LABEL, value: label }, { type: P.CKA_ID, value: Buffer.from("ECC_NIST_P256") }, { type: P.CKA_VERIFY, value: true }],
          [{ type: P.CKA_TOKEN, value: false }, { type: P.CKA_SENSITIVE, value: false }, { type: P.CKA_EXTRACTABLE, value: true }, { type: P.CKA_SIGN, value: true }]);
        const d = p.getAttributeValues(s, k.privateKey, [{ type: P.CKA_VALUE }]).attributes[0].value;
        expect(d).not.toBeNull(); // the attacker knows this private key
        return d as Buffer;
      };
      return { signer: swap("signer"), trail: swap("kms-internal/trail-ecdsa") };
    });
    let opened: Fleet | null = null;
    try {
      opened = await Fleet.open({ target });
    } catch (e) {
      expect(e).toBeInstanceOf(KmsError); // the correct behaviour: refused at open
    }
    if (opened !== null) {
      const fleet2 = opened;
      try {
        const message = Buffer.from("forged by the PIN holder, offline");
        const forged = nodeSign("sha256", message, ecPrivate(attackerPrivate.signer));
        const fakeTrail = nodeSign("sha256", message, ecPrivate(attackerPrivate.trail));
        const report = {
          verifiesForgery: fleet2.verify("signer", "ECDSA_SHA_256", message, "RAW", forged),
          publicKeyChanged: !fleet2.publicKey("signer").equals(realSpki),
          trailPemChanged: fleet2.trailPublicKeyPem() !== realPem,
          trailPemTrustsForgery: nodeVerify("sha256", message, createPublicKey(fleet2.trailPublicKeyPem()), fakeTrail),
        };
        // Correct behaviour: none of this (the open should have been refused).
        expect(report).toEqual({ verifiesForgery: false, publicKeyChanged: false, trailPemChanged: false, trailPemTrustsForgery: false });
      } finally {
        fleet2.close();
      }
    }
  }, 30_000);

  it("found and fixed: a chip-made HMAC key of 1 byte under an HMAC_256 label (never extractable, but brute-forced in 256 tries) is adopted", async () => {
    const { dir, target } = freshFleetFolder(root);
    (await Fleet.open({ target })).close();
    asPinHolder(dir, (p, s) => p.C_GenerateKey(s, { mechanism: P.CKM_GENERIC_SECRET_KEY_GEN }, [
      { type: P.CKA_VALUE_LEN, value: 1 }, { type: P.CKA_TOKEN, value: true }, { type: P.CKA_PRIVATE, value: true },
      { type: P.CKA_SENSITIVE, value: true }, { type: P.CKA_EXTRACTABLE, value: false }, { type: P.CKA_SIGN, value: true },
      { type: P.CKA_VERIFY, value: true }, { type: P.CKA_LABEL, value: "not-yet-made" }, { type: P.CKA_ID, value: Buffer.from("HMAC_256") },
    ]));
    let opened: Fleet | null = null;
    try {
      opened = await Fleet.open({ target });
    } catch (e) {
      expect(e).toBeInstanceOf(KmsError); // the correct behaviour: refused at open
    }
    if (opened !== null) {
      try {
        const mac = opened.generateMac("not-yet-made", "HMAC_SHA_256", Buffer.from("m"));
        let recovered: number | null = null;
        for (let b = 0; b < 256 && recovered === null; b++) {
          if (createHmac("sha256", Buffer.from([b])).update("m").digest().equals(mac)) recovered = b;
        }
        expect(recovered, "the key's value, recovered offline from one MAC").toBeNull();
      } finally {
        opened.close();
      }
    }
  }, 30_000);

  it("found and fixed: a token half-initialized by a first open that stopped after C_InitToken (no user PIN yet) opens", async () => {
    const { dir, target } = freshFleetFolder(root);
    mkdirSync(dir, { mode: 0o700 });
    const pins = { format: 1, soPin: "so-pin-of-the-first-open", userPin: "user-pin-of-the-first-open" };
    writeFileSync(join(dir, FLEET_PIN_FILE), JSON.stringify(pins), { mode: 0o600 });
    const p = new P.PKCS11(`file:${dir}?pinHashIterations=16`);
    p.C_Initialize();
    try {
      const slot = p.C_GetSlotList(true).find((s) => (p.C_GetTokenInfo(s).flags & P.CKF_TOKEN_INITIALIZED) === 0)!;
      p.C_InitToken(slot, pins.soPin, FLEET_TOKEN_LABEL);
    } finally {
      p.C_Finalize();
      p.close();
    }
    let fleet: Fleet | null = null;
    let error: unknown = null;
    try {
      fleet = await Fleet.open({ target });
    } catch (e) {
      error = e;
    }
    fleet?.close();
    expect(error === null ? "opened" : `refused: ${(error as Error).message}`, "BUG: a crash between C_InitToken and C_InitPIN leaves the folder unopenable for good").toBe("opened");
  }, 30_000);

  it("a token initialized with its user PIN but none of KMS's keys yet (a first open that stopped before generating them) opens and makes them", async () => {
    const { dir, target } = freshFleetFolder(root);
    mkdirSync(dir, { mode: 0o700 });
    const pins = { format: 1, soPin: "so-pin-2", userPin: "user-pin-2" };
    writeFileSync(join(dir, FLEET_PIN_FILE), JSON.stringify(pins), { mode: 0o600 });
    const p = new P.PKCS11(`file:${dir}?pinHashIterations=16`);
    p.C_Initialize();
    try {
      const slot = p.C_GetSlotList(true).find((s) => (p.C_GetTokenInfo(s).flags & P.CKF_TOKEN_INITIALIZED) === 0)!;
      p.C_InitToken(slot, pins.soPin, FLEET_TOKEN_LABEL);
      const s = p.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
      p.C_Login(s, P.CKU_SO, pins.soPin);
      p.C_InitPIN(s, pins.userPin);
    } finally {
      p.C_Finalize();
      p.close();
    }
    const fleet = await Fleet.open({ target });
    expect(fleet.recordMac(Buffer.from("x")).length).toBe(32);
    fleet.close();
  }, 30_000);
});

function ecPrivate(d: Buffer): KeyObject {
  // SEC1 ECPrivateKey for P-256 from the raw scalar.
  const der = Buffer.concat([Buffer.from("30310201010420", "hex"), d, Buffer.from("a00a06082a8648ce3d030107", "hex")]);
  return createPrivateKey({ key: der, format: "der", type: "sec1" });
}

describe("a careless caller", () => {
  it("bad targets are KmsErrors, and each leaves nothing open (the same folder then opens)", async () => {
    const { dir, target } = freshFleetFolder(root);
    for (const bad of [null, undefined, {}, { target: new String("memory:") }, { target: "memory:?seed=zz" },
      { target: `file:${dir}?pinHashIterations=-1` }, { target: `file:${dir}?nope=1` }, { target: `file:${dir}\0x` }]) {
      await refusal(() => Fleet.open(bad as never));
    }
    (await Fleet.open({ target })).close();
  }, 30_000);

  it("found and fixed: a bare 'file:' target (no DIR) is refused, not silently put in the shared default token folder", async () => {
    // Sandboxed: HSMSIM_TOKEN_DIR points the default folder (else ~/.hsmsim/tokens) into this test's root.
    const sandbox = join(root, "default-token-dir");
    const saved = process.env.HSMSIM_TOKEN_DIR;
    process.env.HSMSIM_TOKEN_DIR = sandbox;
    let opened: Fleet | null = null;
    try {
      opened = await Fleet.open({ target: "file:?pinHashIterations=16" });
    } catch (e) {
      expect(e).toBeInstanceOf(KmsError);
    } finally {
      opened?.close();
      if (saved === undefined) delete process.env.HSMSIM_TOKEN_DIR;
      else process.env.HSMSIM_TOKEN_DIR = saved;
    }
    expect(opened === null ? "refused" : `opened in ${sandbox} (fleet.pin written there: ${existsSync(join(sandbox, FLEET_PIN_FILE))})`).toBe("refused");
  });

  it("found and fixed: a target getter that throws is a KmsError, never a raw error", async () => {
    const hostile = { get target(): string { throw new TypeError("boom"); } };
    let caught: unknown;
    try {
      await Fleet.open(hostile);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(KmsError);
  });

  it("every public method after close is a KMSInternalException (KMS's own included); a second close does nothing", async () => {
    const fleet = await Fleet.open({ target: "memory:?pinHashIterations=16" });
    await fleet.createKey("k", "SYMMETRIC_DEFAULT");
    const sealed = fleet.seal(Buffer.from("s"), "p");
    fleet.close();
    const calls: [string, () => unknown][] = [
      ["createKey", () => fleet.createKey("k2", "SYMMETRIC_DEFAULT")], ["hasKey", () => fleet.hasKey("k")], ["destroyKey", () => fleet.destroyKey("k")],
      ["encrypt", () => fleet.encrypt("k", Buffer.from("x"), Buffer.alloc(0))], ["random", () => fleet.random(4)],
      ["recordMac", () => fleet.recordMac(Buffer.from("x"))], ["seal", () => fleet.seal(Buffer.from("x"), "p")], ["unseal", () => fleet.unseal(sealed, "p")],
      ["signTrail", () => fleet.signTrail(Buffer.from("x"))], ["trailPublicKeyPem", () => fleet.trailPublicKeyPem()],
      ["readAnchor", () => fleet.readAnchor()], ["writeAnchor", () => fleet.writeAnchor(Buffer.from("a"))], ["publicKey", () => fleet.publicKey("k")],
    ];
    for (const [name, call] of calls) expect((await refusal(call)).code, name).toBe("KMSInternalException");
    fleet.close();
  });

  it("close during several createKeys: all settle, every key reaches the folder, and the folder is free after", async () => {
    const { target } = freshFleetFolder(root);
    const fleet = await Fleet.open({ target });
    const making = [fleet.createKey("a", "ECC_NIST_P256"), fleet.createKey("b", "SYMMETRIC_DEFAULT"), fleet.createKey("c", "HMAC_512")];
    fleet.close();
    expect((await refusal(() => fleet.createKey("d", "SYMMETRIC_DEFAULT"))).code).toBe("KMSInternalException");
    const settled = await Promise.allSettled(making);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "fulfilled", "fulfilled"]);
    const again = await Fleet.open({ target });
    try {
      expect(["a", "b", "c", "d"].map((l) => again.hasKey(l))).toEqual([true, true, true, false]);
    } finally {
      again.close();
    }
  }, 30_000);

  it("a failed createKey during close still frees the folder", async () => {
    const { target } = freshFleetFolder(root);
    const fleet = await Fleet.open({ target });
    // The second createKey of a label under way is refused; the close waits for the first.
    const first = fleet.createKey("x", "RSA_2048");
    const dup = fleet.createKey("x", "RSA_2048");
    fleet.close();
    expect((await Promise.allSettled([first, dup])).map((s) => s.status)).toEqual(["fulfilled", "rejected"]);
    (await Fleet.open({ target })).close();
  }, 60_000);

  it("createKey refuses KMS's labels and near misses of them do not reach KMS's keys", async () => {
    const fleet = await Fleet.open({ target: "memory:?pinHashIterations=16" });
    try {
      for (const label of ["kms-internal/record-hmac", "kms-internal/sealing-aes", "kms-internal/trail-ecdsa", "kms-internal/anchor", "kms-internal/"]) {
        expect((await refusal(() => fleet.createKey(label, "SYMMETRIC_DEFAULT"))).code).toBe("KMSInternalException");
      }
      for (const label of ["kms-internal/trail-ecdsa", "kms-internal/anchor", "KMS-INTERNAL/sealing-aes", "kms-internal/sealing-aes\0", " kms-internal/sealing-aes"]) {
        expect(fleet.hasKey(label)).toBe(false);
        expect((await refusal(() => fleet.publicKey(label))).code).toBe("KMSInternalException");
        expect((await refusal(() => fleet.sign(label, "ECDSA_SHA_256", Buffer.from("m"), "RAW"))).code).toBe("KMSInternalException");
      }
      // A label differing only in case or padding is an ordinary label, not KMS's key.
      await fleet.createKey("KMS-INTERNAL/sealing-aes", "SYMMETRIC_DEFAULT");
      const { iv, ciphertext } = fleet.encrypt("KMS-INTERNAL/sealing-aes", Buffer.from("x"), Buffer.alloc(0));
      const sealed = fleet.seal(Buffer.from("x"), "p");
      expect((await refusal(() => fleet.decrypt("KMS-INTERNAL/sealing-aes", sealed.subarray(1, 13), sealed.subarray(13), Buffer.alloc(0)))).code).toBe("InvalidCiphertextException");
      expect(iv.length + ciphertext.length).toBe(12 + 17);
      // Prototype-ish labels do not reach anything.
      for (const label of ["__proto__", "constructor", "toString"]) expect(fleet.hasKey(label)).toBe(false);
    } finally {
      fleet.close();
    }
  });

  it("fleet-token.ts reads no key's value either (the source scan in kms-crypto.test.ts predates it)", () => {
    const text = readFileSync(join(__dirname, "..", "..", "src", "kms", "fleet-token.ts"), "utf8");
    expect(text.match(/CKA_VALUE(?!_LEN)\b/g) ?? []).toEqual([]);
    expect(text.match(/CKA_PRIVATE_EXPONENT|CKA_PRIME_|exportToken|C_WrapKey/g) ?? []).toEqual([]);
  });
});
