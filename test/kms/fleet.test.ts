// KMS's own fleet (src/kms/fleet.ts) over a memory: token: every operation checked against
// node:crypto where it can be (signatures and OAEP through the SPKI the fleet hands out), and by
// tampering where it cannot (AES-GCM: no key ever leaves the chip to compare with).
import { constants as cryptoConstants, createHash, createPublicKey, publicEncrypt, verify as nodeVerify } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { KmsError } from "../../src/kms/errors.js";
import { FLEET_PIN_FILE, Fleet } from "../../src/kms/fleet.js";

let fleet: Fleet;
beforeAll(async () => {
  fleet = await Fleet.open({ target: "memory:?seed=0a0b0c0d&pinHashIterations=16" });
  await Promise.all([
    fleet.createKey("aes", "SYMMETRIC_DEFAULT"),
    fleet.createKey("aes-2", "SYMMETRIC_DEFAULT"),
    fleet.createKey("p256", "ECC_NIST_P256"),
    fleet.createKey("p384", "ECC_NIST_P384"),
    fleet.createKey("rsa", "RSA_2048"),
    fleet.createKey("hmac256", "HMAC_256"),
    fleet.createKey("hmac384", "HMAC_384"),
    fleet.createKey("hmac512", "HMAC_512"),
  ]);
}, 60_000);
afterAll(() => fleet.close());

async function kmsCode(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(KmsError);
    return (e as KmsError).code;
  }
  throw new Error("expected a KmsError");
}

const spkiOf = (label: string) => createPublicKey({ key: fleet.publicKey(label), format: "der", type: "spki" });
const digest = (hash: string, data: Buffer) => createHash(hash).update(data).digest();
const flip = (b: Buffer, at = 0) => {
  const c = Buffer.from(b);
  c[at] ^= 1;
  return c;
};

describe("symmetric encryption (AES-256-GCM)", () => {
  const aad = Buffer.from("header and context");

  it("decrypts what it encrypts: a 12-byte IV and ciphertext ‖ 16-byte tag", () => {
    for (const size of [0, 1, 15, 16, 1024, 4096]) {
      const plaintext = Buffer.alloc(size, size & 0xff);
      const { iv, ciphertext } = fleet.encrypt("aes", plaintext, aad);
      expect(iv.length).toBe(12);
      expect(ciphertext.length).toBe(size + 16);
      expect(fleet.decrypt("aes", iv, ciphertext, aad)).toEqual(plaintext);
    }
  });

  it("draws a fresh IV for every encryption", () => {
    const ivs = new Set<string>();
    for (let i = 0; i < 500; i++) ivs.add(fleet.encrypt("aes", Buffer.from("x"), aad).iv.toString("hex"));
    expect(ivs.size).toBe(500);
  });

  it("refuses a changed tag, body, IV or AAD, a truncation and another key with InvalidCiphertextException", async () => {
    const { iv, ciphertext } = fleet.encrypt("aes", Buffer.from("attack at dawn"), aad);
    const cases: [Buffer, Buffer, Buffer, string][] = [
      [iv, flip(ciphertext, ciphertext.length - 1), aad, "aes"],
      [iv, flip(ciphertext, 0), aad, "aes"],
      [flip(iv, 5), ciphertext, aad, "aes"],
      [iv, ciphertext, flip(aad, 3), "aes"],
      [iv, ciphertext, Buffer.alloc(0), "aes"],
      [iv, ciphertext.subarray(0, ciphertext.length - 1), aad, "aes"],
      [iv, ciphertext.subarray(0, 15), aad, "aes"],
      [iv.subarray(0, 11), ciphertext, aad, "aes"],
      [Buffer.concat([iv, Buffer.alloc(1)]), ciphertext, aad, "aes"],
      [iv, ciphertext, aad, "aes-2"],
    ];
    for (const [i, c, a, label] of cases) expect(await kmsCode(() => fleet.decrypt(label, i, c, a))).toBe("InvalidCiphertextException");
    // The session is still usable after every refusal.
    expect(fleet.decrypt("aes", iv, ciphertext, aad).toString()).toBe("attack at dawn");
  });

  it("refuses a key of another spec with InvalidKeyUsageException", async () => {
    expect(await kmsCode(() => fleet.encrypt("hmac256", Buffer.from("x"), aad))).toBe("InvalidKeyUsageException");
    expect(await kmsCode(() => fleet.encrypt("p256", Buffer.from("x"), aad))).toBe("InvalidKeyUsageException");
  });
});

describe("ECDSA", () => {
  const message = Buffer.from("the message");

  for (const [label, algorithm, hash] of [["p256", "ECDSA_SHA_256", "sha256"], ["p384", "ECDSA_SHA_384", "sha384"]] as const) {
    it(`${label}: DER signatures node:crypto verifies, RAW and DIGEST alike`, () => {
      const raw = fleet.sign(label, algorithm, message, "RAW");
      expect(raw[0]).toBe(0x30);
      expect(nodeVerify(hash, message, spkiOf(label), raw)).toBe(true);
      const overDigest = fleet.sign(label, algorithm, digest(hash, message), "DIGEST");
      expect(nodeVerify(hash, message, spkiOf(label), overDigest)).toBe(true);
      expect(fleet.verify(label, algorithm, message, "RAW", overDigest)).toBe(true);
      expect(fleet.verify(label, algorithm, digest(hash, message), "DIGEST", raw)).toBe(true);
    });

    it(`${label}: false for another message, a changed signature, r‖s or bad DER`, () => {
      const sig = fleet.sign(label, algorithm, message, "RAW");
      expect(fleet.verify(label, algorithm, Buffer.from("the messagf"), "RAW", sig)).toBe(false);
      expect(fleet.verify(label, algorithm, message, "RAW", flip(sig, sig.length - 1))).toBe(false);
      expect(fleet.verify(label, algorithm, message, "RAW", Buffer.concat([sig, Buffer.alloc(1)]))).toBe(false);
      expect(fleet.verify(label, algorithm, message, "RAW", sig.subarray(0, sig.length - 1))).toBe(false);
      expect(fleet.verify(label, algorithm, message, "RAW", Buffer.alloc(0))).toBe(false);
      const p1363 = Buffer.alloc(label === "p256" ? 64 : 96, 1); // r‖s, not DER
      expect(fleet.verify(label, algorithm, message, "RAW", p1363)).toBe(false);
      // RAW vs DIGEST: a digest signed as RAW is hashed twice and does not verify as the message.
      const twice = fleet.sign(label, algorithm, digest(hash, message), "RAW");
      expect(fleet.verify(label, algorithm, message, "RAW", twice)).toBe(false);
    });
  }

  it("refuses a DIGEST of the wrong length with ValidationException, and a curve's other hash with InvalidKeyUsageException", async () => {
    expect(await kmsCode(() => fleet.sign("p256", "ECDSA_SHA_256", Buffer.alloc(31), "DIGEST"))).toBe("ValidationException");
    expect(await kmsCode(() => fleet.sign("p384", "ECDSA_SHA_384", Buffer.alloc(32), "DIGEST"))).toBe("ValidationException");
    expect(await kmsCode(() => fleet.verify("p256", "ECDSA_SHA_256", Buffer.alloc(33), "DIGEST", Buffer.alloc(70)))).toBe("ValidationException");
    expect(await kmsCode(() => fleet.sign("p256", "ECDSA_SHA_384", message, "RAW"))).toBe("InvalidKeyUsageException");
    expect(await kmsCode(() => fleet.sign("p256", "RSASSA_PSS_SHA_256", message, "RAW"))).toBe("InvalidKeyUsageException");
    expect(await kmsCode(() => fleet.sign("aes", "ECDSA_SHA_256", message, "RAW"))).toBe("InvalidKeyUsageException");
    expect(await kmsCode(() => fleet.sign("p256", "ECDSA_SHA_256", message, "HASHED" as never))).toBe("ValidationException");
    expect(await kmsCode(() => fleet.sign("p256", "ECDSA_SHA_1" as never, message, "RAW"))).toBe("ValidationException");
  });

  it("gives the public key as SPKI DER of the right curve", () => {
    expect(spkiOf("p256").asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(spkiOf("p384").asymmetricKeyDetails?.namedCurve).toBe("secp384r1");
  });
});

describe("RSA", () => {
  const message = Buffer.from("an RSA message");
  const schemes = [
    ["RSASSA_PSS_SHA_256", "sha256", "pss"], ["RSASSA_PSS_SHA_384", "sha384", "pss"], ["RSASSA_PSS_SHA_512", "sha512", "pss"],
    ["RSASSA_PKCS1_V1_5_SHA_256", "sha256", "pkcs1"], ["RSASSA_PKCS1_V1_5_SHA_384", "sha384", "pkcs1"], ["RSASSA_PKCS1_V1_5_SHA_512", "sha512", "pkcs1"],
  ] as const;

  for (const [algorithm, hash, family] of schemes) {
    it(`${algorithm}: signatures node:crypto verifies (PSS salt = digest length), RAW and DIGEST`, () => {
      const key = family === "pss"
        ? { key: spkiOf("rsa"), padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: createHash(hash).digest().length }
        : { key: spkiOf("rsa"), padding: cryptoConstants.RSA_PKCS1_PADDING };
      for (const [input, type] of [[message, "RAW"], [digest(hash, message), "DIGEST"]] as const) {
        const sig = fleet.sign("rsa", algorithm, input, type);
        expect(sig.length).toBe(256);
        expect(nodeVerify(hash, message, key, sig)).toBe(true);
        expect(fleet.verify("rsa", algorithm, message, "RAW", sig)).toBe(true);
        expect(fleet.verify("rsa", algorithm, message, "RAW", flip(sig, 100))).toBe(false);
        expect(fleet.verify("rsa", algorithm, message, "RAW", sig.subarray(1))).toBe(false);
      }
      expect(fleet.verify("rsa", algorithm, Buffer.from("another"), "RAW", fleet.sign("rsa", algorithm, message, "RAW"))).toBe(false);
    });
  }

  it("PKCS#1 v1.5 over a digest is byte-identical to the hashing form (the DigestInfo prefix is right)", () => {
    for (const [algorithm, hash] of [["RSASSA_PKCS1_V1_5_SHA_256", "sha256"], ["RSASSA_PKCS1_V1_5_SHA_512", "sha512"]] as const) {
      expect(fleet.sign("rsa", algorithm, digest(hash, message), "DIGEST")).toEqual(fleet.sign("rsa", algorithm, message, "RAW"));
    }
  });

  for (const [algorithm, hash] of [["RSAES_OAEP_SHA_1", "sha1"], ["RSAES_OAEP_SHA_256", "sha256"]] as const) {
    it(`${algorithm}: decrypts node:crypto's encryption under the SPKI, and its own`, async () => {
      const plaintext = Buffer.from("a small secret");
      const fromNode = publicEncrypt({ key: spkiOf("rsa"), padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, plaintext);
      expect(fleet.asymmetricDecrypt("rsa", algorithm, fromNode)).toEqual(plaintext);
      const own = fleet.asymmetricEncrypt("rsa", algorithm, plaintext);
      expect(own.length).toBe(256);
      expect(fleet.asymmetricDecrypt("rsa", algorithm, own)).toEqual(plaintext);
      expect(await kmsCode(() => fleet.asymmetricDecrypt("rsa", algorithm, flip(own, 10)))).toBe("InvalidCiphertextException");
      expect(await kmsCode(() => fleet.asymmetricDecrypt("rsa", algorithm, own.subarray(1)))).toBe("InvalidCiphertextException");
      const limit = 256 - 2 * (hash === "sha1" ? 20 : 32) - 2;
      expect(fleet.asymmetricDecrypt("rsa", algorithm, fleet.asymmetricEncrypt("rsa", algorithm, Buffer.alloc(limit, 1))).length).toBe(limit);
      expect(await kmsCode(() => fleet.asymmetricEncrypt("rsa", algorithm, Buffer.alloc(limit + 1)))).toBe("ValidationException");
    });
  }

  it("the two OAEP hashes do not open each other's ciphertexts", async () => {
    const c = fleet.asymmetricEncrypt("rsa", "RSAES_OAEP_SHA_256", Buffer.from("x"));
    expect(await kmsCode(() => fleet.asymmetricDecrypt("rsa", "RSAES_OAEP_SHA_1", c))).toBe("InvalidCiphertextException");
  });

  it("gives a 2048-bit SPKI with exponent 65537; OAEP with an EC key is InvalidKeyUsageException", async () => {
    const details = spkiOf("rsa").asymmetricKeyDetails;
    expect(details?.modulusLength).toBe(2048);
    expect(details?.publicExponent).toBe(65537n);
    expect(await kmsCode(() => fleet.asymmetricEncrypt("p256", "RSAES_OAEP_SHA_256", Buffer.from("x")))).toBe("InvalidKeyUsageException");
    expect(await kmsCode(() => fleet.asymmetricEncrypt("rsa", "RSAES_PKCS1" as never, Buffer.from("x")))).toBe("ValidationException");
  });
});

describe("HMAC", () => {
  const message = Buffer.from("mac me");
  for (const [label, algorithm, bytes] of [["hmac256", "HMAC_SHA_256", 32], ["hmac384", "HMAC_SHA_384", 48], ["hmac512", "HMAC_SHA_512", 64]] as const) {
    it(`${algorithm}: deterministic ${bytes}-byte MACs that verify; tampering does not`, () => {
      const mac = fleet.generateMac(label, algorithm, message);
      expect(mac.length).toBe(bytes);
      expect(fleet.generateMac(label, algorithm, message)).toEqual(mac);
      expect(fleet.verifyMac(label, algorithm, message, mac)).toBe(true);
      expect(fleet.verifyMac(label, algorithm, Buffer.from("mac mf"), mac)).toBe(false);
      expect(fleet.verifyMac(label, algorithm, message, flip(mac, bytes - 1))).toBe(false);
      expect(fleet.verifyMac(label, algorithm, message, mac.subarray(0, bytes - 1))).toBe(false);
      expect(fleet.verifyMac(label, algorithm, message, Buffer.concat([mac, Buffer.alloc(1)]))).toBe(false);
      expect(fleet.verifyMac(label, algorithm, message, Buffer.alloc(0))).toBe(false);
    });
  }

  it("keys differ, and a key serves only its own algorithm", async () => {
    expect(fleet.generateMac("hmac256", "HMAC_SHA_256", message)).not.toEqual(fleet.recordMac(message));
    expect(await kmsCode(() => fleet.generateMac("hmac256", "HMAC_SHA_384", message))).toBe("InvalidKeyUsageException");
    expect(await kmsCode(() => fleet.verifyMac("hmac512", "HMAC_SHA_256", message, Buffer.alloc(32)))).toBe("InvalidKeyUsageException");
    expect(await kmsCode(() => fleet.generateMac("aes", "HMAC_SHA_256", message))).toBe("InvalidKeyUsageException");
    expect(await kmsCode(() => fleet.generateMac("hmac256", "HMAC_MD5" as never, message))).toBe("ValidationException");
  });
});

describe("KMS's own keys", () => {
  it("recordMac: 32 bytes, deterministic, input-sensitive", () => {
    const mac = fleet.recordMac(Buffer.from("row 1"));
    expect(mac.length).toBe(32);
    expect(fleet.recordMac(Buffer.from("row 1"))).toEqual(mac);
    expect(fleet.recordMac(Buffer.from("row 2"))).not.toEqual(mac);
  });

  it("seal/unseal: round trip, bound to the purpose, tamper-evident", async () => {
    const sealed = fleet.seal(Buffer.from("kmsuser password"), "cks-password:cks-1");
    expect(sealed.length).toBe(1 + 12 + 16 + 16);
    expect(fleet.unseal(sealed, "cks-password:cks-1").toString()).toBe("kmsuser password");
    expect(fleet.seal(Buffer.from("kmsuser password"), "cks-password:cks-1")).not.toEqual(sealed);
    expect(await kmsCode(() => fleet.unseal(sealed, "cks-password:cks-2"))).toBe("KMSInternalException");
    for (const at of [0, 1, 13, sealed.length - 1]) expect(await kmsCode(() => fleet.unseal(flip(sealed, at), "cks-password:cks-1"))).toBe("KMSInternalException");
    expect(await kmsCode(() => fleet.unseal(sealed.subarray(0, 28), "cks-password:cks-1"))).toBe("KMSInternalException");
    expect(await kmsCode(() => fleet.seal(Buffer.from("x"), ""))).toBe("KMSInternalException");
  });

  it("signTrail: DER ECDSA P-256 that verifies under trailPublicKeyPem", () => {
    const record = Buffer.from(JSON.stringify({ eventName: "Encrypt" }));
    const sig = fleet.signTrail(record);
    const pem = fleet.trailPublicKeyPem();
    expect(pem).toMatch(/^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n$/);
    expect(nodeVerify("sha256", record, pem, sig)).toBe(true);
    expect(nodeVerify("sha256", Buffer.from("other"), pem, sig)).toBe(false);
  });

  it("are not reachable by label, and their labels cannot be taken", async () => {
    for (const label of ["kms-internal/record-hmac", "kms-internal/sealing-aes", "kms-internal/trail-ecdsa"]) {
      expect(fleet.hasKey(label)).toBe(false);
      expect(await kmsCode(() => fleet.encrypt(label, Buffer.from("x"), Buffer.alloc(0)))).toBe("KMSInternalException");
      expect(await kmsCode(() => fleet.generateMac(label, "HMAC_SHA_256", Buffer.from("x")))).toBe("KMSInternalException");
      expect(await kmsCode(() => fleet.destroyKey(label))).toBe("KMSInternalException");
    }
    expect(await kmsCode(() => fleet.createKey("kms-internal/mine", "SYMMETRIC_DEFAULT"))).toBe("KMSInternalException");
  });
});

describe("keys by label", () => {
  it("hasKey, destroyKey, and a missing label as KMSInternalException", async () => {
    await fleet.createKey("doomed", "ECC_NIST_P256");
    expect(fleet.hasKey("doomed")).toBe(true);
    fleet.destroyKey("doomed");
    expect(fleet.hasKey("doomed")).toBe(false);
    expect(await kmsCode(() => fleet.sign("doomed", "ECDSA_SHA_256", Buffer.from("x"), "RAW"))).toBe("KMSInternalException");
    expect(await kmsCode(() => fleet.publicKey("nope"))).toBe("KMSInternalException");
    expect(await kmsCode(() => fleet.destroyKey("doomed"))).toBe("KMSInternalException");
    await fleet.createKey("doomed", "SYMMETRIC_DEFAULT"); // the label is free again
    expect(fleet.hasKey("doomed")).toBe(true);
  });

  it("refuses a second key under a label, even while the first is being made", async () => {
    const first = fleet.createKey("twice", "RSA_2048");
    expect(await kmsCode(() => fleet.createKey("twice", "SYMMETRIC_DEFAULT"))).toBe("KMSInternalException");
    await first;
    expect(await kmsCode(() => fleet.createKey("twice", "SYMMETRIC_DEFAULT"))).toBe("KMSInternalException");
    expect(await kmsCode(() => fleet.createKey("bad-spec", "AES_128" as never))).toBe("ValidationException");
    expect(await kmsCode(() => fleet.createKey("", "SYMMETRIC_DEFAULT"))).toBe("KMSInternalException");
  }, 30_000);

  it("serves synchronous calls on the shared session while a key is being made on its own", async () => {
    const making = fleet.createKey("slow-rsa", "RSA_3072");
    let rounds = 0;
    let done = false;
    void making.then(() => { done = true; });
    while (!done && rounds < 2000) {
      const { iv, ciphertext } = fleet.encrypt("aes", Buffer.from(`round ${rounds}`), Buffer.alloc(0));
      expect(fleet.decrypt("aes", iv, ciphertext, Buffer.alloc(0)).toString()).toBe(`round ${rounds}`);
      rounds++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    await making;
    expect(rounds).toBeGreaterThan(0);
    expect(spkiOf("slow-rsa").asymmetricKeyDetails?.modulusLength).toBe(3072);
    const sig = fleet.sign("slow-rsa", "RSASSA_PSS_SHA_256", Buffer.from("m"), "RAW");
    expect(sig.length).toBe(384);
  }, 60_000);

  it("an RSA key made for one usage refuses the other in the chip", async () => {
    await fleet.createKey("rsa-sign-only", "RSA_2048", "SIGN_VERIFY");
    expect(fleet.sign("rsa-sign-only", "RSASSA_PSS_SHA_256", Buffer.from("m"), "RAW").length).toBe(256);
    expect(await kmsCode(() => fleet.asymmetricEncrypt("rsa-sign-only", "RSAES_OAEP_SHA_256", Buffer.from("m")))).toBe("KMSInternalException");
  }, 30_000);
});

describe("random", () => {
  it("gives the bytes asked for; a bad length is ValidationException", async () => {
    expect(fleet.random(1).length).toBe(1);
    expect(fleet.random(1024).length).toBe(1024);
    expect(fleet.random(32)).not.toEqual(fleet.random(32));
    for (const n of [0, -1, 1.5, Number.NaN, "8" as never]) expect(await kmsCode(() => fleet.random(n))).toBe("ValidationException");
  });

  it("is deterministic for a seeded memory: fleet", async () => {
    const [a, b, c] = await Promise.all([
      Fleet.open({ target: "memory:?seed=feedface&pinHashIterations=16" }),
      Fleet.open({ target: "memory:?seed=feedface&pinHashIterations=16" }),
      Fleet.open({ target: "memory:?seed=feedfacf&pinHashIterations=16" }),
    ]);
    try {
      const first = a.random(64);
      expect(b.random(64)).toEqual(first);
      expect(c.random(64)).not.toEqual(first);
      expect(a.trailPublicKeyPem()).toBe(b.trailPublicKeyPem());
    } finally {
      a.close();
      b.close();
      c.close();
    }
  });
});

describe("a file: fleet", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "hsmsim-fleet-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("keeps its anchor (a data object, apart from its keys) across close and open, and a rewrite replaces it", async () => {
    const target = `file:${join(dir, "anchored")}?pinHashIterations=16`;
    const first = await Fleet.open({ target });
    expect(first.readAnchor()).toBeNull();
    first.writeAnchor(Buffer.from("one"));
    first.writeAnchor(Buffer.from("two"));
    expect(first.readAnchor()).toEqual(Buffer.from("two"));
    expect(() => first.writeAnchor(Buffer.alloc(0))).toThrow(KmsError);
    first.close();
    const again = await Fleet.open({ target });
    expect(again.readAnchor()).toEqual(Buffer.from("two"));
    again.close();
  });

  it("keeps its keys, its own keys and its PIN file across close and open; a second open is refused while it is open", async () => {
    const target = `file:${join(dir, "fleet")}?pinHashIterations=16`;
    const first = await Fleet.open({ target });
    await first.createKey("kept", "SYMMETRIC_DEFAULT");
    await first.createKey("kept-ec", "ECC_NIST_P384");
    const aad = Buffer.from("aad");
    const { iv, ciphertext } = first.encrypt("kept", Buffer.from("durable"), aad);
    const sealed = first.seal(Buffer.from("secret"), "p");
    const mac = first.recordMac(Buffer.from("row"));
    const pem = first.trailPublicKeyPem();
    const spki = first.publicKey("kept-ec");
    const pinMode = statSync(join(dir, "fleet", FLEET_PIN_FILE)).mode & 0o777;
    expect(pinMode).toBe(0o600);
    expect(statSync(join(dir, "fleet")).mode & 0o777).toBe(0o700);

    let refused: unknown;
    try {
      await Fleet.open({ target });
    } catch (e) {
      refused = e;
    }
    expect(refused).toBeInstanceOf(KmsError);
    expect((refused as KmsError).code).toBe("KMSInternalException");
    expect((refused as KmsError).message).toMatch(/open in another program/);
    first.close();
    first.close(); // a second close does nothing
    expect(await kmsCode(() => first.encrypt("kept", Buffer.from("x"), aad))).toBe("KMSInternalException");

    const again = await Fleet.open({ target });
    try {
      expect(again.hasKey("kept")).toBe(true);
      expect(again.decrypt("kept", iv, ciphertext, aad).toString()).toBe("durable");
      expect(again.unseal(sealed, "p").toString()).toBe("secret");
      expect(again.recordMac(Buffer.from("row"))).toEqual(mac);
      expect(again.trailPublicKeyPem()).toBe(pem);
      expect(again.publicKey("kept-ec")).toEqual(spki);
      again.destroyKey("kept");
    } finally {
      again.close();
    }
    const third = await Fleet.open({ target });
    expect(third.hasKey("kept")).toBe(false);
    expect(third.hasKey("kept-ec")).toBe(true);
    third.close();
  }, 30_000);

  it("a close during createKey lets the key reach the folder under the lock, then frees the folder", async () => {
    const target = `file:${join(dir, "closing")}?pinHashIterations=16`;
    const fleet = await Fleet.open({ target });
    const making = fleet.createKey("late", "RSA_2048");
    fleet.close();
    expect(await kmsCode(() => fleet.random(8))).toBe("KMSInternalException");
    await making;
    const again = await Fleet.open({ target });
    try {
      expect(again.hasKey("late")).toBe(true);
      expect(again.sign("late", "RSASSA_PKCS1_V1_5_SHA_256", Buffer.from("m"), "RAW").length).toBe(256);
    } finally {
      again.close();
    }
  }, 30_000);
});
