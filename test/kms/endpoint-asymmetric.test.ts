// Asymmetric and HMAC keys through the real AWS SDK, cross-checked with node:crypto: what the
// fleet signs verifies with the public key GetPublicKey gives, and what it encrypts with RSA-OAEP
// node:crypto can encrypt to as well.
import { createHash, createHmac, createPublicKey, publicEncrypt, verify as nodeVerify, constants } from "node:crypto";

import {
  CreateKeyCommand, DecryptCommand, EncryptCommand, GenerateMacCommand, GetPublicKeyCommand, SignCommand, VerifyCommand, VerifyMacCommand,
} from "@aws-sdk/client-kms";
import { describe, expect, it } from "vitest";

import { OWNER, failure, startKmsFixture } from "./kms-fixture.js";

describe("asymmetric and HMAC keys", () => {
  it("ECC_NIST_P256: Sign (RAW and DIGEST) verifies with node:crypto and with Verify; a bad signature is KMSInvalidSignatureException", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const key = (await owner.send(new CreateKeyCommand({ KeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY" }))).KeyMetadata!;
    expect(key.SigningAlgorithms).toEqual(["ECDSA_SHA_256"]);
    const message = Buffer.from("sign me");
    const signed = await owner.send(new SignCommand({ KeyId: key.KeyId, Message: message, SigningAlgorithm: "ECDSA_SHA_256" }));
    const spki = Buffer.from((await owner.send(new GetPublicKeyCommand({ KeyId: key.KeyId }))).PublicKey!);
    const publicKey = createPublicKey({ key: spki, format: "der", type: "spki" });
    expect(nodeVerify("sha256", message, publicKey, Buffer.from(signed.Signature!))).toBe(true);
    const digest = createHash("sha256").update(message).digest();
    const byDigest = await owner.send(new SignCommand({ KeyId: key.KeyId, Message: digest, MessageType: "DIGEST", SigningAlgorithm: "ECDSA_SHA_256" }));
    expect(nodeVerify("sha256", message, publicKey, Buffer.from(byDigest.Signature!))).toBe(true);
    expect((await owner.send(new VerifyCommand({ KeyId: key.KeyId, Message: message, Signature: signed.Signature, SigningAlgorithm: "ECDSA_SHA_256" }))).SignatureValid).toBe(true);
    const bad = Buffer.from(signed.Signature!);
    bad[bad.length - 3] ^= 1;
    expect((await failure(owner.send(new VerifyCommand({ KeyId: key.KeyId, Message: message, Signature: bad, SigningAlgorithm: "ECDSA_SHA_256" })))).name).toBe("KMSInvalidSignatureException");
    expect((await failure(owner.send(new SignCommand({ KeyId: key.KeyId, Message: message, SigningAlgorithm: "ECDSA_SHA_384" })))).name).toBe("InvalidKeyUsageException");
    expect((await failure(owner.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: message })))).name).toBe("InvalidKeyUsageException");
  });

  it("RSA_2048 ENCRYPT_DECRYPT: OAEP-SHA-256 ciphertext from node:crypto decrypts in KMS", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const key = (await owner.send(new CreateKeyCommand({ KeySpec: "RSA_2048", KeyUsage: "ENCRYPT_DECRYPT" }))).KeyMetadata!;
    const spki = Buffer.from((await owner.send(new GetPublicKeyCommand({ KeyId: key.KeyId }))).PublicKey!);
    const ciphertext = publicEncrypt({ key: createPublicKey({ key: spki, format: "der", type: "spki" }), oaepHash: "sha256", padding: constants.RSA_PKCS1_OAEP_PADDING }, Buffer.from("to the key"));
    const out = await owner.send(new DecryptCommand({ KeyId: key.KeyId, CiphertextBlob: ciphertext, EncryptionAlgorithm: "RSAES_OAEP_SHA_256" }));
    expect(Buffer.from(out.Plaintext!).toString()).toBe("to the key");
    const viaKms = await owner.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.from("round"), EncryptionAlgorithm: "RSAES_OAEP_SHA_1" }));
    expect(Buffer.from((await owner.send(new DecryptCommand({ KeyId: key.KeyId, CiphertextBlob: viaKms.CiphertextBlob, EncryptionAlgorithm: "RSAES_OAEP_SHA_1" }))).Plaintext!).toString()).toBe("round");
    expect((await failure(owner.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.from("x") })))).name).toBe("InvalidKeyUsageException");
  });

  it("HMAC_256: GenerateMac agrees with HMAC's definition under VerifyMac; a wrong MAC is KMSInvalidMacException", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const key = (await owner.send(new CreateKeyCommand({ KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC" }))).KeyMetadata!;
    const message = Buffer.from("mac me");
    const mac = Buffer.from((await owner.send(new GenerateMacCommand({ KeyId: key.KeyId, Message: message, MacAlgorithm: "HMAC_SHA_256" }))).Mac!);
    expect(mac.length).toBe(32);
    expect((await owner.send(new VerifyMacCommand({ KeyId: key.KeyId, Message: message, Mac: mac, MacAlgorithm: "HMAC_SHA_256" }))).MacValid).toBe(true);
    // No one outside the fleet holds the key: a MAC made under any other key does not verify.
    const foreign = createHmac("sha256", Buffer.alloc(32, 7)).update(message).digest();
    expect((await failure(owner.send(new VerifyMacCommand({ KeyId: key.KeyId, Message: message, Mac: foreign, MacAlgorithm: "HMAC_SHA_256" })))).name).toBe("KMSInvalidMacException");
    expect((await failure(owner.send(new GenerateMacCommand({ KeyId: key.KeyId, Message: message, MacAlgorithm: "HMAC_SHA_512" })))).name).toBe("InvalidKeyUsageException");
    expect((await failure(owner.send(new CreateKeyCommand({ KeySpec: "HMAC_256", KeyUsage: "ENCRYPT_DECRYPT" })))).name).toBe("ValidationException");
  });
});
