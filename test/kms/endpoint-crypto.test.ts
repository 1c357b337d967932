// Symmetric KMS through the real AWS SDK: Encrypt/Decrypt with the encryption context as AWS
// documents it, opaque self-identifying blobs, data keys, random, ReEncrypt.
import {
  CreateKeyCommand, DecryptCommand, EncryptCommand, GenerateDataKeyCommand, GenerateDataKeyWithoutPlaintextCommand, GenerateRandomCommand,
  ReEncryptCommand,
} from "@aws-sdk/client-kms";
import { describe, expect, it } from "vitest";

import { OWNER, failure, startKmsFixture } from "./kms-fixture.js";

async function ownerWithKey() {
  const kms = await startKmsFixture();
  const owner = kms.client(OWNER);
  const created = await owner.send(new CreateKeyCommand({ Description: "test key" }));
  return { kms, owner, keyId: created.KeyMetadata!.KeyId!, arn: created.KeyMetadata!.Arn! };
}

describe("Encrypt and Decrypt through the SDK", () => {
  it("round-trips; Decrypt needs no key id and answers with the key ARN", async () => {
    const { owner, keyId, arn } = await ownerWithKey();
    const plaintext = Buffer.from("attack at dawn");
    const enc = await owner.send(new EncryptCommand({ KeyId: keyId, Plaintext: plaintext, EncryptionContext: { tenant: "a", purpose: "test" } }));
    expect(enc.KeyId).toBe(arn);
    expect(enc.EncryptionAlgorithm).toBe("SYMMETRIC_DEFAULT");
    expect(Buffer.from(enc.CiphertextBlob!).includes(plaintext)).toBe(false);
    const dec = await owner.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: { purpose: "test", tenant: "a" } }));
    expect(Buffer.from(dec.Plaintext!)).toEqual(plaintext);
    expect(dec.KeyId).toBe(arn);
  });

  it("the encryption context must match exactly: case-sensitive, nothing missing or added", async () => {
    const { owner, keyId } = await ownerWithKey();
    const enc = await owner.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("x"), EncryptionContext: { Tenant: "a" } }));
    const contexts: (Record<string, string> | undefined)[] = [undefined, { tenant: "a" }, { Tenant: "A" }, { Tenant: "a", extra: "1" }, {}];
    for (const EncryptionContext of contexts) {
      const f = await failure(owner.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext })));
      expect(f.name).toBe("InvalidCiphertextException");
    }
  });

  it("a wrong KeyId on Decrypt is IncorrectKeyException", async () => {
    const { owner, keyId } = await ownerWithKey();
    const other = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const enc = await owner.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("x") }));
    expect((await failure(owner.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, KeyId: other })))).name).toBe("IncorrectKeyException");
    const ok = await owner.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, KeyId: keyId }));
    expect(Buffer.from(ok.Plaintext!).toString()).toBe("x");
  });

  it("a truncated, altered, foreign or garbage blob is InvalidCiphertextException", async () => {
    const { owner, keyId } = await ownerWithKey();
    const blob = Buffer.from((await owner.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("secret") }))).CiphertextBlob!);
    const foreign = await startKmsFixture();
    const foreignOwner = foreign.client(OWNER);
    const foreignKey = (await foreignOwner.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const foreignBlob = Buffer.from((await foreignOwner.send(new EncryptCommand({ KeyId: foreignKey, Plaintext: Buffer.from("secret") }))).CiphertextBlob!);
    const variants: Buffer[] = [blob.subarray(0, blob.length - 1), blob.subarray(0, 20), Buffer.from("not a blob at all"), foreignBlob];
    for (const at of [0, 1, 5, 20, 35, blob.length - 1]) {
      const altered = Buffer.from(blob);
      altered[at] ^= 0x01;
      variants.push(altered);
    }
    for (const v of variants) {
      expect((await failure(owner.send(new DecryptCommand({ CiphertextBlob: v })))).name).toBe("InvalidCiphertextException");
    }
  });

  it("ReEncrypt moves a ciphertext to another key and context without showing the plaintext", async () => {
    const { owner, keyId } = await ownerWithKey();
    const other = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!;
    const enc = await owner.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("moving"), EncryptionContext: { a: "1" } }));
    const re = await owner.send(new ReEncryptCommand({ CiphertextBlob: enc.CiphertextBlob, SourceEncryptionContext: { a: "1" }, DestinationKeyId: other.KeyId, DestinationEncryptionContext: { b: "2" } }));
    expect(re.KeyId).toBe(other.Arn);
    expect((re as unknown as Record<string, unknown>).Plaintext).toBeUndefined();
    const dec = await owner.send(new DecryptCommand({ CiphertextBlob: re.CiphertextBlob, EncryptionContext: { b: "2" } }));
    expect(Buffer.from(dec.Plaintext!).toString()).toBe("moving");
    expect(dec.KeyId).toBe(other.Arn);
  });
});

describe("data keys and random", () => {
  it("GenerateDataKey takes exactly one of KeySpec or NumberOfBytes (1–1024)", async () => {
    const { owner, keyId, arn } = await ownerWithKey();
    const aes = await owner.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: "AES_256", EncryptionContext: { file: "f1" } }));
    expect(aes.Plaintext!.length).toBe(32);
    expect(aes.KeyId).toBe(arn);
    const back = await owner.send(new DecryptCommand({ CiphertextBlob: aes.CiphertextBlob, EncryptionContext: { file: "f1" } }));
    expect(Buffer.from(back.Plaintext!)).toEqual(Buffer.from(aes.Plaintext!));
    expect((await owner.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: "AES_128" }))).Plaintext!.length).toBe(16);
    expect((await owner.send(new GenerateDataKeyCommand({ KeyId: keyId, NumberOfBytes: 1024 }))).Plaintext!.length).toBe(1024);
    expect((await owner.send(new GenerateDataKeyCommand({ KeyId: keyId, NumberOfBytes: 1 }))).Plaintext!.length).toBe(1);
    for (const bad of [{ NumberOfBytes: 1025 }, { NumberOfBytes: 0 }, {}, { KeySpec: "AES_256" as const, NumberOfBytes: 32 }]) {
      expect((await failure(owner.send(new GenerateDataKeyCommand({ KeyId: keyId, ...bad })))).name).toBe("ValidationException");
    }
  });

  it("GenerateDataKeyWithoutPlaintext returns a blob that decrypts to a fresh key, and no plaintext", async () => {
    const { owner, keyId } = await ownerWithKey();
    const out = await owner.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyId, KeySpec: "AES_256" }));
    expect((out as unknown as Record<string, unknown>).Plaintext).toBeUndefined();
    const one = Buffer.from((await owner.send(new DecryptCommand({ CiphertextBlob: out.CiphertextBlob }))).Plaintext!);
    const two = await owner.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyId, KeySpec: "AES_256" }));
    const other = Buffer.from((await owner.send(new DecryptCommand({ CiphertextBlob: two.CiphertextBlob }))).Plaintext!);
    expect(one.length).toBe(32);
    expect(one.equals(other)).toBe(false);
  });

  it("GenerateRandom gives the bytes asked (1–1024), different each time", async () => {
    const { owner } = await ownerWithKey();
    const a = Buffer.from((await owner.send(new GenerateRandomCommand({ NumberOfBytes: 64 }))).Plaintext!);
    const b = Buffer.from((await owner.send(new GenerateRandomCommand({ NumberOfBytes: 64 }))).Plaintext!);
    expect(a.length).toBe(64);
    expect(a.equals(b)).toBe(false);
    expect((await failure(owner.send(new GenerateRandomCommand({ NumberOfBytes: 1025 })))).name).toBe("ValidationException");
  });
});
