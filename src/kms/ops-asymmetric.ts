// Asymmetric and HMAC keys of KMS's fleet: Sign, Verify, GetPublicKey, GenerateMac, VerifyMac.
import { KmsError } from "./errors.js";
import type { MacAlgorithm, SigningAlgorithm } from "./fleet.js";
import {
  type Handler, type KmsParts, MAC_ALGORITHMS, SIGNING_ALGORITHMS, authorizeKey, checkUsable, encryptionAlgorithms, fleetLabel, resolveKey,
  stopIfDryRun, takeCryptoQuota,
} from "./kms-context.js";
import type { KeyRecord, KeyUsage, RequestContext } from "./types.js";

async function usableKey(parts: KmsParts, input: Record<string, unknown>, context: RequestContext, action: string, usage: KeyUsage): Promise<KeyRecord> {
  const key = await resolveKey(parts, context, input.KeyId, { crossAccount: true });
  authorizeKey(parts, context, key, action, { grantTokens: input.GrantTokens as string[] | undefined });
  checkUsable(parts, key);
  if (key.keyUsage !== usage) throw new KmsError("InvalidKeyUsageException", `${key.arn} key usage is ${key.keyUsage} which is not valid for ${action.slice(4)}.`);
  return key;
}

function signingAlgorithm(key: KeyRecord, value: unknown): SigningAlgorithm {
  const algorithm = value as string;
  if (!(SIGNING_ALGORITHMS[key.keySpec] ?? []).includes(algorithm)) {
    throw new KmsError("InvalidKeyUsageException", `Signing algorithm ${algorithm} is not valid for ${key.arn} (${key.keySpec}).`);
  }
  return algorithm as SigningAlgorithm;
}

function macAlgorithm(key: KeyRecord, value: unknown): MacAlgorithm {
  if (MAC_ALGORITHMS[key.keySpec] !== value) throw new KmsError("InvalidKeyUsageException", `MAC algorithm ${String(value)} is not valid for ${key.arn} (${key.keySpec}).`);
  return value as MacAlgorithm;
}

function messageType(value: unknown): "RAW" | "DIGEST" {
  if (value === undefined || value === "RAW" || value === "DIGEST") return value === "DIGEST" ? "DIGEST" : "RAW";
  throw new KmsError("ValidationException", `MessageType ${String(value)} is not valid for ECC or RSA keys (RAW or DIGEST; EXTERNAL_MU is for ML-DSA keys).`);
}

/** The checks done: DryRun stops here, else the request counts against the account's quota. */
function ready(parts: KmsParts, input: Record<string, unknown>, context: RequestContext): void {
  stopIfDryRun(input);
  takeCryptoQuota(parts, context);
}

const sign: Handler = async (parts, input, context) => {
  const key = await usableKey(parts, input, context, "kms:Sign", "SIGN_VERIFY");
  const algorithm = signingAlgorithm(key, input.SigningAlgorithm);
  const type = messageType(input.MessageType);
  ready(parts, input, context);
  const signature = parts.fleet.sign(fleetLabel(key.keyId), algorithm, input.Message as Buffer, type);
  return { KeyId: key.arn, Signature: signature, SigningAlgorithm: algorithm };
};

const verify: Handler = async (parts, input, context) => {
  const key = await usableKey(parts, input, context, "kms:Verify", "SIGN_VERIFY");
  const algorithm = signingAlgorithm(key, input.SigningAlgorithm);
  const type = messageType(input.MessageType);
  ready(parts, input, context);
  if (!parts.fleet.verify(fleetLabel(key.keyId), algorithm, input.Message as Buffer, type, input.Signature as Buffer)) {
    throw new KmsError("KMSInvalidSignatureException", "The signature is not valid for this message, key and signing algorithm.");
  }
  return { KeyId: key.arn, SignatureValid: true, SigningAlgorithm: algorithm };
};

const getPublicKey: Handler = async (parts, input, context) => {
  const key = await resolveKey(parts, context, input.KeyId, { crossAccount: true });
  authorizeKey(parts, context, key, "kms:GetPublicKey", { grantTokens: input.GrantTokens as string[] | undefined });
  checkUsable(parts, key);
  if (key.keyUsage === "GENERATE_VERIFY_MAC" || key.keySpec === "SYMMETRIC_DEFAULT") {
    throw new KmsError("UnsupportedOperationException", `${key.arn} is not an asymmetric KMS key: it has no public key.`);
  }
  return {
    KeyId: key.arn, PublicKey: parts.fleet.publicKey(fleetLabel(key.keyId)), KeySpec: key.keySpec, CustomerMasterKeySpec: key.keySpec,
    KeyUsage: key.keyUsage, EncryptionAlgorithms: encryptionAlgorithms(key),
    SigningAlgorithms: key.keyUsage === "SIGN_VERIFY" ? SIGNING_ALGORITHMS[key.keySpec] : undefined,
  };
};

const generateMac: Handler = async (parts, input, context) => {
  const key = await usableKey(parts, input, context, "kms:GenerateMac", "GENERATE_VERIFY_MAC");
  const algorithm = macAlgorithm(key, input.MacAlgorithm);
  ready(parts, input, context);
  return { Mac: parts.fleet.generateMac(fleetLabel(key.keyId), algorithm, input.Message as Buffer), MacAlgorithm: algorithm, KeyId: key.arn };
};

const verifyMac: Handler = async (parts, input, context) => {
  const key = await usableKey(parts, input, context, "kms:VerifyMac", "GENERATE_VERIFY_MAC");
  const algorithm = macAlgorithm(key, input.MacAlgorithm);
  ready(parts, input, context);
  if (!parts.fleet.verifyMac(fleetLabel(key.keyId), algorithm, input.Message as Buffer, input.Mac as Buffer)) {
    throw new KmsError("KMSInvalidMacException", "The MAC is not valid for this message, key and MAC algorithm.");
  }
  return { KeyId: key.arn, MacValid: true, MacAlgorithm: algorithm };
};

export const ASYMMETRIC_OPERATIONS: Record<string, Handler> = {
  Sign: sign, Verify: verify, GetPublicKey: getPublicKey, GenerateMac: generateMac, VerifyMac: verifyMac,
};
