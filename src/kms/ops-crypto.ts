// The symmetric cryptographic operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey,
// GenerateDataKeyWithoutPlaintext, GenerateRandom. A symmetric key's material is in KMS's fleet
// (AWS_KMS) or in the custom key store's cluster (AWS_CLOUDHSM); either way it encrypts there,
// under AES-256-GCM with the blob's header and the encryption context as AAD. Data keys'
// plaintext is in the JavaScript heap only where the API returns it, and is wiped otherwise.
import { blobAad, blobAadPrefix, decodeBlob, encodeBlob } from "./ciphertext.js";
import { KmsError } from "./errors.js";
import type { AsymmetricEncryptionAlgorithm } from "./fleet.js";
import {
  type Handler, type Input, type KmsParts, authorizeKey, checkUsable, contextOf, encryptionAlgorithms, fleetLabel, keyById, resolveKey,
  stopIfDryRun, takeCryptoQuota, tokensOf,
} from "./kms-context.js";
import type { KeyRecord, RequestContext } from "./types.js";

const DATA_KEY_BYTES: Record<string, number> = { AES_256: 32, AES_128: 16 };

function checkEncryptDecrypt(key: KeyRecord, operation: string): void {
  if (key.keyUsage !== "ENCRYPT_DECRYPT") {
    throw new KmsError("InvalidKeyUsageException", `${key.arn} key usage is ${key.keyUsage} which is not valid for ${operation}.`);
  }
}

function checkAlgorithm(key: KeyRecord, algorithm: unknown): string {
  const allowed = encryptionAlgorithms(key) ?? [];
  const asked = typeof algorithm === "string" ? algorithm : "SYMMETRIC_DEFAULT";
  if (!allowed.includes(asked)) throw new KmsError("InvalidKeyUsageException", `The encryption algorithm ${asked} is not valid for ${key.arn} (${key.keySpec}).`);
  return asked;
}

function checkSymmetricOnly(key: KeyRecord, operation: string): void {
  if (key.keySpec !== "SYMMETRIC_DEFAULT") throw new KmsError("InvalidKeyUsageException", `${operation} needs a symmetric encryption KMS key; ${key.arn} is ${key.keySpec}.`);
}

/** Encrypts `plaintext` under a symmetric key: the ciphertext blob. */
async function sealSymmetric(parts: KmsParts, key: KeyRecord, plaintext: Buffer, encryptionContext: Record<string, string> | undefined, context: RequestContext): Promise<Buffer> {
  const location = key.origin === "AWS_KMS" ? "fleet" : "custom-key-store";
  const aad = blobAad(blobAadPrefix(key.keyId, location), encryptionContext);
  const { iv, ciphertext } = key.origin === "AWS_KMS"
    ? parts.fleet.encrypt(fleetLabel(key.keyId), plaintext, aad)
    : await parts.customKeyStores.encrypt(key.customKeyStoreId!, key.materialRef, plaintext, aad, context.notes);
  return encodeBlob({ keyId: key.keyId, location, iv, ciphertext });
}

/** The key a symmetric ciphertext blob names (InvalidCiphertextException when there is none), checked against a KeyId the caller gave. */
async function blobKey(parts: KmsParts, context: RequestContext, blob: ReturnType<typeof decodeBlob>, keyIdInput: unknown): Promise<KeyRecord> {
  const key = await keyById(parts, blob.keyId);
  const expected = key !== null && (key.origin === "AWS_KMS") === (blob.location === "fleet");
  if (keyIdInput !== undefined) {
    const named = await resolveKey(parts, context, keyIdInput, { crossAccount: true });
    if (!expected || named.keyId !== key.keyId) {
      throw new KmsError("IncorrectKeyException", "The key ID in the request does not identify a KMS key that can perform this operation.");
    }
  }
  if (!expected) throw new KmsError("InvalidCiphertextException", "The ciphertext refers to a KMS key that does not exist, or is not this endpoint's.");
  if (keyIdInput === undefined) context.notes.resources.push({ ARN: key.arn, accountId: key.accountId, type: "AWS::KMS::Key" });
  return key;
}

async function openSymmetric(parts: KmsParts, key: KeyRecord, blob: ReturnType<typeof decodeBlob>, encryptionContext: Record<string, string> | undefined, context: RequestContext): Promise<Buffer> {
  const aad = blobAad(blobAadPrefix(key.keyId, blob.location), encryptionContext);
  return key.origin === "AWS_KMS"
    ? parts.fleet.decrypt(fleetLabel(key.keyId), blob.iv, blob.ciphertext, aad)
    : parts.customKeyStores.decrypt(key.customKeyStoreId!, key.materialRef, blob.iv, blob.ciphertext, aad, context.notes);
}

function refuseContextOnAsymmetric(key: KeyRecord, encryptionContext: unknown): void {
  if (encryptionContext !== undefined) throw new KmsError("ValidationException", `EncryptionContext is not supported with asymmetric KMS keys (${key.arn}).`);
}

/** Encrypt's and ReEncrypt's destination side: a symmetric blob, or RSA-OAEP ciphertext (no context). */
async function encryptUnder(parts: KmsParts, key: KeyRecord, algorithm: string, plaintext: Buffer, contextInput: unknown, context: RequestContext): Promise<Buffer> {
  if (algorithm === "SYMMETRIC_DEFAULT") return sealSymmetric(parts, key, plaintext, contextOf(contextInput), context);
  refuseContextOnAsymmetric(key, contextInput);
  return parts.fleet.asymmetricEncrypt(fleetLabel(key.keyId), algorithm as AsymmetricEncryptionAlgorithm, plaintext);
}

const encrypt: Handler = async (parts, input, context) => {
  const key = await resolveKey(parts, context, input.KeyId, { crossAccount: true });
  const encryptionContext = contextOf(input.EncryptionContext);
  authorizeKey(parts, context, key, "kms:Encrypt", { encryptionContext, grantTokens: tokensOf(input.GrantTokens) });
  checkUsable(parts, key);
  checkEncryptDecrypt(key, "Encrypt");
  const algorithm = checkAlgorithm(key, input.EncryptionAlgorithm);
  if (algorithm !== "SYMMETRIC_DEFAULT") refuseContextOnAsymmetric(key, input.EncryptionContext);
  stopIfDryRun(input);
  takeCryptoQuota(parts, context);
  const blob = await encryptUnder(parts, key, algorithm, input.Plaintext as Buffer, input.EncryptionContext, context);
  return { CiphertextBlob: blob, KeyId: key.arn, EncryptionAlgorithm: algorithm };
};

/**
 * Decrypt's and ReEncrypt's source side: the key and the plaintext. `checkOnly` (a ReEncrypt
 * DryRun) stops after the checks: no quota taken, nothing decrypted (the plaintext is empty).
 */
async function decryptSource(parts: KmsParts, context: RequestContext, input: Input, names: { blob: string; keyId: string; context: string; algorithm: string },
  action: string, checkOnly = false): Promise<{ key: KeyRecord; plaintext: Buffer; algorithm: string }> {
  const data = input[names.blob] as Buffer;
  const encryptionContext = contextOf(input[names.context]);
  const grantTokens = tokensOf(input.GrantTokens);
  const algorithm = typeof input[names.algorithm] === "string" ? (input[names.algorithm] as string) : "SYMMETRIC_DEFAULT";
  if (algorithm !== "SYMMETRIC_DEFAULT") {
    // Asymmetric ciphertext does not name its key: the caller must.
    if (input[names.keyId] === undefined) throw new KmsError("ValidationException", `${names.keyId} is required with ${names.algorithm} ${algorithm}.`);
    const key = await resolveKey(parts, context, input[names.keyId], { crossAccount: true });
    authorizeKey(parts, context, key, action, { grantTokens });
    checkUsable(parts, key);
    checkEncryptDecrypt(key, "Decrypt");
    checkAlgorithm(key, algorithm);
    refuseContextOnAsymmetric(key, input[names.context]);
    if (input.DestinationKeyId === undefined) stopIfDryRun(input); // ReEncrypt stops after checking its destination too
    if (checkOnly) return { key, plaintext: Buffer.alloc(0), algorithm };
    takeCryptoQuota(parts, context);
    return { key, plaintext: parts.fleet.asymmetricDecrypt(fleetLabel(key.keyId), algorithm as AsymmetricEncryptionAlgorithm, data), algorithm };
  }
  const blob = decodeBlob(data);
  const key = await blobKey(parts, context, blob, input[names.keyId]);
  authorizeKey(parts, context, key, action, { encryptionContext, grantTokens });
  checkUsable(parts, key);
  checkEncryptDecrypt(key, "Decrypt");
  checkSymmetricOnly(key, "Decrypt");
  if (input.DestinationKeyId === undefined) stopIfDryRun(input); // ReEncrypt stops after checking its destination too
  if (checkOnly) return { key, plaintext: Buffer.alloc(0), algorithm };
  takeCryptoQuota(parts, context);
  return { key, plaintext: await openSymmetric(parts, key, blob, encryptionContext, context), algorithm };
}

const decrypt: Handler = async (parts, input, context) => {
  const { key, plaintext, algorithm } = await decryptSource(parts, context, input,
    { blob: "CiphertextBlob", keyId: "KeyId", context: "EncryptionContext", algorithm: "EncryptionAlgorithm" }, "kms:Decrypt");
  return { KeyId: key.arn, Plaintext: plaintext, EncryptionAlgorithm: algorithm };
};

const reEncrypt: Handler = async (parts, input, context) => {
  const destination = await resolveKey(parts, context, input.DestinationKeyId, { crossAccount: true });
  const destinationContext = contextOf(input.DestinationEncryptionContext);
  const grantTokens = tokensOf(input.GrantTokens);
  const { key: source, plaintext, algorithm: sourceAlgorithm } = await decryptSource(parts, context, input,
    { blob: "CiphertextBlob", keyId: "SourceKeyId", context: "SourceEncryptionContext", algorithm: "SourceEncryptionAlgorithm" }, "kms:ReEncryptFrom", input.DryRun === true);
  try {
    authorizeKey(parts, context, destination, "kms:ReEncryptTo", { encryptionContext: destinationContext, grantTokens });
    checkUsable(parts, destination);
    checkEncryptDecrypt(destination, "ReEncrypt");
    const destinationAlgorithm = checkAlgorithm(destination, input.DestinationEncryptionAlgorithm);
    stopIfDryRun(input);
    const blob = await encryptUnder(parts, destination, destinationAlgorithm, plaintext, input.DestinationEncryptionContext, context);
    return { CiphertextBlob: blob, SourceKeyId: source.arn, KeyId: destination.arn, SourceEncryptionAlgorithm: sourceAlgorithm, DestinationEncryptionAlgorithm: destinationAlgorithm };
  } finally {
    plaintext.fill(0);
  }
};

/** GenerateDataKey's and …WithoutPlaintext's common part: the data key and its blob. */
async function generateDataKey(parts: KmsParts, input: Input, context: RequestContext, action: string): Promise<{ key: KeyRecord; plaintext: Buffer; blob: Buffer }> {
  const key = await resolveKey(parts, context, input.KeyId, { crossAccount: true });
  const encryptionContext = contextOf(input.EncryptionContext);
  authorizeKey(parts, context, key, action, { encryptionContext, grantTokens: tokensOf(input.GrantTokens) });
  const hasBytes = input.NumberOfBytes !== undefined;
  const hasSpec = input.KeySpec !== undefined;
  if (hasBytes === hasSpec) throw new KmsError("ValidationException", "Please specify either number of bytes or key spec.");
  checkUsable(parts, key);
  checkEncryptDecrypt(key, action.slice(4));
  checkSymmetricOnly(key, action.slice(4));
  stopIfDryRun(input);
  takeCryptoQuota(parts, context);
  const length = hasBytes ? (input.NumberOfBytes as number) : DATA_KEY_BYTES[input.KeySpec as string];
  if (length === undefined) throw new KmsError("ValidationException", `1 validation error detected: Value '${String(input.KeySpec)}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]`);
  const plaintext = parts.fleet.random(length);
  try {
    return { key, plaintext, blob: await sealSymmetric(parts, key, plaintext, encryptionContext, context) };
  } catch (e) {
    plaintext.fill(0);
    throw e;
  }
}

const generateDataKeyHandler: Handler = async (parts, input, context) => {
  const { key, plaintext, blob } = await generateDataKey(parts, input, context, "kms:GenerateDataKey");
  return { CiphertextBlob: blob, Plaintext: plaintext, KeyId: key.arn };
};

const generateDataKeyWithoutPlaintext: Handler = async (parts, input, context) => {
  const { key, plaintext, blob } = await generateDataKey(parts, input, context, "kms:GenerateDataKeyWithoutPlaintext");
  plaintext.fill(0);
  return { CiphertextBlob: blob, KeyId: key.arn };
};

const generateRandom: Handler = async (parts, input, context) => {
  if (input.NumberOfBytes === undefined) throw new KmsError("ValidationException", "1 validation error detected: Value null at 'numberOfBytes' failed to satisfy constraint: Member must not be null");
  const length = input.NumberOfBytes as number;
  takeCryptoQuota(parts, context);
  const storeId = input.CustomKeyStoreId;
  if (typeof storeId === "string") {
    if (parts.customKeyStores.accountOf(storeId) !== context.caller.accountId) throw new KmsError("CustomKeyStoreNotFoundException", `Custom key store ${storeId} does not exist.`);
    if (parts.customKeyStores.connectionState(storeId) !== "CONNECTED") throw new KmsError("CustomKeyStoreInvalidStateException", `Custom key store ${storeId} is not connected.`);
    context.notes.additionalEventData.customKeyStoreId = storeId;
    return { Plaintext: await parts.customKeyStores.random(storeId, length) };
  }
  return { Plaintext: parts.fleet.random(length) };
};

export const CRYPTO_OPERATIONS: Record<string, Handler> = {
  Encrypt: encrypt, Decrypt: decrypt, ReEncrypt: reEncrypt, GenerateDataKey: generateDataKeyHandler,
  GenerateDataKeyWithoutPlaintext: generateDataKeyWithoutPlaintext, GenerateRandom: generateRandom,
};
