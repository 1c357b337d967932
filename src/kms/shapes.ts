// The operations' input shapes as the KMS API reference gives them: which members, their types,
// lengths and patterns, which are required. Input arrives as parsed JSON; blobs (base64 on the
// wire) come out as Buffers. Messages never quote a member's value (it may be a plaintext or a
// password); they name the member as AWS does (lower camel case, list items as name.N.member).
import { KmsError } from "./errors.js";

type Shape =
  | { type: "string"; min?: number; max?: number; pattern?: RegExp; enum?: readonly string[] }
  | { type: "blob"; min?: number; max?: number }
  | { type: "integer"; min?: number; max?: number }
  | { type: "boolean" }
  | { type: "list"; member: Shape; min?: number; max?: number }
  | { type: "map"; key: Shape; value: Shape }
  | { type: "structure"; members: Readonly<Record<string, Shape>>; required?: readonly string[] };

const str = (min?: number, max?: number, pattern?: RegExp): Shape => ({ type: "string", min, max, pattern });
const oneOf = (...values: string[]): Shape => ({ type: "string", enum: Object.freeze(values) });
const blob = (min: number, max: number): Shape => ({ type: "blob", min, max });
const int = (min: number, max: number): Shape => ({ type: "integer", min, max });
const bool: Shape = { type: "boolean" };
const list = (member: Shape, min?: number, max?: number): Shape => ({ type: "list", member, min, max });
const struct = (members: Record<string, Shape>, ...required: string[]): Shape => ({ type: "structure", members, required });

// The API reference's types.
const KeyId = str(1, 2048);
const Plaintext = blob(1, 4096);
const Ciphertext = blob(1, 6144);
const EncryptionContext: Shape = { type: "map", key: str(), value: str() };
const GrantTokens = list(str(1, 8192), 0, 10);
const NumberOfBytes = int(1, 1024);
const DataKeySpec = oneOf("AES_256", "AES_128");
const EncryptionAlgorithm = oneOf("SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE");
const Description = str(0, 8192);
// Printable Latin-1 and tab, line feed, carriage return; at most the 32 KiB a key policy may be.
const Policy = str(1, 32768, /^[\u0009\u000A\u000D\u0020-\u00FF]+$/);
const PolicyName = str(1, 128, /^[\w]+$/);
const AliasName = str(1, 256, /^[a-zA-Z0-9:/_-]+$/);
const Limit = int(1, 1000);
const Marker = str(1, 1024, /^[\u0020-\u00FF]*$/);
const PendingWindowInDays = int(7, 30);
const TagList = list(struct({ TagKey: str(1, 128), TagValue: str(0, 256) }, "TagKey", "TagValue"));
const TagKeyList = list(str(1, 128));
const GrantId = str(1, 128);
const GrantName = str(1, 256, /^[a-zA-Z0-9:/_-]+$/);
const Principal = str(1, 256, /^[\w+=,.@:/-]+$/);
const GrantOperations = list(
  oneOf(
    "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo", "Sign",
    "Verify", "GetPublicKey", "CreateGrant", "RetireGrant", "DescribeKey", "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac", "DeriveSharedSecret",
  ),
);
const GrantConstraints = struct({ EncryptionContextSubset: EncryptionContext, EncryptionContextEquals: EncryptionContext });
const KeyUsage = oneOf("SIGN_VERIFY", "ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT");
const KeySpecs = [
  "RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1",
  "SYMMETRIC_DEFAULT", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512", "SM2",
];
const KeySpec = oneOf(...KeySpecs, "ECC_NIST_EDWARDS25519", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87");
const CustomerMasterKeySpec = oneOf(...KeySpecs);
const Origin = oneOf("AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE");
const Message = blob(1, 4096);
const MessageType = oneOf("RAW", "DIGEST", "EXTERNAL_MU");
const SigningAlgorithm = oneOf(
  "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512", "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384",
  "RSASSA_PKCS1_V1_5_SHA_512", "ECDSA_SHA_256", "ECDSA_SHA_384", "ECDSA_SHA_512", "SM2DSA", "ML_DSA_SHAKE_256",
  "ED25519_SHA_512", "ED25519_PH_SHA_512",
);
const MacAlgorithm = oneOf("HMAC_SHA_224", "HMAC_SHA_256", "HMAC_SHA_384", "HMAC_SHA_512");
const CustomKeyStoreId = str(1, 64);
const CustomKeyStoreName = str(1, 256);
const CloudHsmClusterId = str(19, 24);
const TrustAnchorCertificate = str(1, 5000);
const KeyStorePassword = str(7, 32);
const CustomKeyStoreType = oneOf("AWS_CLOUDHSM", "EXTERNAL_KEY_STORE");
const DryRun = bool;

const SHAPES: Readonly<Record<string, Shape>> = {
  CreateKey: struct({
    Policy, Description, KeyUsage, CustomerMasterKeySpec, KeySpec, Origin, CustomKeyStoreId,
    BypassPolicyLockoutSafetyCheck: bool, Tags: TagList, MultiRegion: bool, XksKeyId: str(1, 128),
  }),
  DescribeKey: struct({ KeyId, GrantTokens }, "KeyId"),
  ListKeys: struct({ Limit, Marker }),
  CreateAlias: struct({ AliasName, TargetKeyId: KeyId }, "AliasName", "TargetKeyId"),
  ListAliases: struct({ KeyId, Limit, Marker }),
  UpdateAlias: struct({ AliasName, TargetKeyId: KeyId }, "AliasName", "TargetKeyId"),
  DeleteAlias: struct({ AliasName }, "AliasName"),
  Encrypt: struct({ KeyId, Plaintext, EncryptionContext, GrantTokens, EncryptionAlgorithm, DryRun }, "KeyId", "Plaintext"),
  Decrypt: struct({ CiphertextBlob: Ciphertext, EncryptionContext, GrantTokens, KeyId, EncryptionAlgorithm, DryRun }, "CiphertextBlob"),
  ReEncrypt: struct(
    {
      CiphertextBlob: Ciphertext, SourceEncryptionContext: EncryptionContext, SourceKeyId: KeyId, DestinationKeyId: KeyId,
      DestinationEncryptionContext: EncryptionContext, SourceEncryptionAlgorithm: EncryptionAlgorithm,
      DestinationEncryptionAlgorithm: EncryptionAlgorithm, GrantTokens, DryRun,
    },
    "CiphertextBlob", "DestinationKeyId",
  ),
  GenerateDataKey: struct({ KeyId, EncryptionContext, NumberOfBytes, KeySpec: DataKeySpec, GrantTokens, DryRun }, "KeyId"),
  GenerateDataKeyWithoutPlaintext: struct({ KeyId, EncryptionContext, KeySpec: DataKeySpec, NumberOfBytes, GrantTokens, DryRun }, "KeyId"),
  GenerateRandom: struct({ NumberOfBytes, CustomKeyStoreId }),
  EnableKey: struct({ KeyId }, "KeyId"),
  DisableKey: struct({ KeyId }, "KeyId"),
  ScheduleKeyDeletion: struct({ KeyId, PendingWindowInDays }, "KeyId"),
  CancelKeyDeletion: struct({ KeyId }, "KeyId"),
  GetKeyPolicy: struct({ KeyId, PolicyName }, "KeyId"),
  PutKeyPolicy: struct({ KeyId, PolicyName, Policy, BypassPolicyLockoutSafetyCheck: bool }, "KeyId", "Policy"),
  ListKeyPolicies: struct({ KeyId, Limit, Marker }, "KeyId"),
  CreateGrant: struct(
    { KeyId, GranteePrincipal: Principal, RetiringPrincipal: Principal, Operations: GrantOperations, Constraints: GrantConstraints, GrantTokens, Name: GrantName, DryRun },
    "KeyId", "GranteePrincipal", "Operations",
  ),
  ListGrants: struct({ Limit, Marker, KeyId, GrantId, GranteePrincipal: Principal }, "KeyId"),
  ListRetirableGrants: struct({ Limit, Marker, RetiringPrincipal: Principal }, "RetiringPrincipal"),
  RetireGrant: struct({ GrantToken: str(1, 8192), KeyId, GrantId, DryRun }),
  RevokeGrant: struct({ KeyId, GrantId, DryRun }, "KeyId", "GrantId"),
  TagResource: struct({ KeyId, Tags: TagList }, "KeyId", "Tags"),
  UntagResource: struct({ KeyId, TagKeys: TagKeyList }, "KeyId", "TagKeys"),
  ListResourceTags: struct({ KeyId, Limit, Marker }, "KeyId"),
  UpdateKeyDescription: struct({ KeyId, Description }, "KeyId", "Description"),
  Sign: struct({ KeyId, Message, MessageType, GrantTokens, SigningAlgorithm, DryRun }, "KeyId", "Message", "SigningAlgorithm"),
  Verify: struct(
    { KeyId, Message, MessageType, Signature: blob(1, 6144), SigningAlgorithm, GrantTokens, DryRun },
    "KeyId", "Message", "Signature", "SigningAlgorithm",
  ),
  GetPublicKey: struct({ KeyId, GrantTokens }, "KeyId"),
  GenerateMac: struct({ Message, KeyId, MacAlgorithm, GrantTokens, DryRun }, "Message", "KeyId", "MacAlgorithm"),
  VerifyMac: struct({ Message, KeyId, MacAlgorithm, Mac: blob(1, 6144), GrantTokens, DryRun }, "Message", "KeyId", "MacAlgorithm", "Mac"),
  CreateCustomKeyStore: struct(
    { CustomKeyStoreName, CloudHsmClusterId, TrustAnchorCertificate, KeyStorePassword, CustomKeyStoreType },
    "CustomKeyStoreName",
  ),
  DescribeCustomKeyStores: struct({ CustomKeyStoreId, CustomKeyStoreName, Limit, Marker }),
  ConnectCustomKeyStore: struct({ CustomKeyStoreId }, "CustomKeyStoreId"),
  DisconnectCustomKeyStore: struct({ CustomKeyStoreId }, "CustomKeyStoreId"),
  UpdateCustomKeyStore: struct(
    { CustomKeyStoreId, NewCustomKeyStoreName: CustomKeyStoreName, KeyStorePassword, CloudHsmClusterId },
    "CustomKeyStoreId",
  ),
  DeleteCustomKeyStore: struct({ CustomKeyStoreId }, "CustomKeyStoreId"),
};

/** Every operation the endpoint serves (X-Amz-Target: TrentService.<name>). */
export const OPERATIONS: readonly string[] = Object.freeze(Object.keys(SHAPES));

const OPERATION_SET: ReadonlySet<string> = new Set(OPERATIONS);

/** Whether `name` is an operation the endpoint serves (an own name, not Object.prototype's). */
export function isOperation(name: string): boolean {
  return OPERATION_SET.has(name);
}

/** AWS's name for a member in a validation message: KeyId → keyId. */
const wireName = (member: string) => member[0].toLowerCase() + member.slice(1);

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function typeError(path: string, expected: string): KmsError {
  return new KmsError("SerializationException", `Value at '${path}' must be ${expected}`);
}

class Checker {
  readonly problems: string[] = [];

  private fail(path: string, constraint: string): void {
    this.problems.push(`Value at '${path}' failed to satisfy constraint: ${constraint}`);
  }

  private length(path: string, length: number, min?: number, max?: number): boolean {
    if (min !== undefined && length < min) this.fail(path, `Member must have length greater than or equal to ${min}`);
    else if (max !== undefined && length > max) this.fail(path, `Member must have length less than or equal to ${max}`);
    else return true;
    return false;
  }

  /** `value` checked against `shape` (wrong JSON types throw SerializationException at once; constraints are collected). */
  check(shape: Shape, value: unknown, path: string): unknown {
    switch (shape.type) {
      case "string": {
        if (typeof value !== "string") throw typeError(path, "a string");
        if (shape.enum) {
          if (!shape.enum.includes(value)) this.fail(path, `Member must satisfy enum value set: [${shape.enum.join(", ")}]`);
        } else if (this.length(path, value.length, shape.min, shape.max) && shape.pattern && !shape.pattern.test(value)) {
          this.fail(path, `Member must satisfy regular expression pattern: ${shape.pattern.source}`);
        }
        return value;
      }
      case "blob": {
        if (typeof value !== "string") throw typeError(path, "a base64-encoded string");
        // The decoded size is known from the text's: no decoding of an oversized blob.
        const padding = value.endsWith("==") ? 2 : value.endsWith("=") ? 1 : 0;
        const decodedLength = (value.length / 4) * 3 - padding;
        if (value.length % 4 === 0 && !this.length(path, decodedLength, shape.min, shape.max)) return undefined;
        if (!BASE64.test(value)) throw typeError(path, "valid base64 (standard alphabet, padded)");
        return Buffer.from(value, "base64");
      }
      case "integer": {
        if (typeof value !== "number" || !Number.isSafeInteger(value)) throw typeError(path, "an integer");
        if (shape.min !== undefined && value < shape.min) this.fail(path, `Member must have value greater than or equal to ${shape.min}`);
        else if (shape.max !== undefined && value > shape.max) this.fail(path, `Member must have value less than or equal to ${shape.max}`);
        return value;
      }
      case "boolean":
        if (typeof value !== "boolean") throw typeError(path, "a boolean");
        return value;
      case "list": {
        if (!Array.isArray(value)) throw typeError(path, "a list");
        this.length(path, value.length, shape.min, shape.max);
        return value.map((item, index) => {
          if (item === null) throw typeError(`${path}.${index + 1}.member`, "a value, not null");
          return this.check(shape.member, item, `${path}.${index + 1}.member`);
        });
      }
      case "map": {
        if (!isPlainObject(value)) throw typeError(path, "a map");
        const out: Record<string, unknown> = Object.create(null);
        for (const [key, item] of Object.entries(value)) {
          this.check(shape.key, key, `${path}.key`);
          if (item === null) throw typeError(`${path}.value`, "a string, not null");
          out[key] = this.check(shape.value, item, `${path}.value`);
        }
        return out;
      }
      case "structure": {
        if (!isPlainObject(value)) throw typeError(path === "" ? "input" : path, "a structure (JSON object)");
        const out: Record<string, unknown> = {};
        for (const member of Object.keys(shape.members)) {
          const item = Object.hasOwn(value, member) ? value[member] : undefined;
          const memberPath = path === "" ? wireName(member) : `${path}.${wireName(member)}`;
          // JSON null is an absent member, as AWS reads it.
          if (item === undefined || item === null) {
            if (shape.required?.includes(member)) this.fail(memberPath, "Member must not be null");
            continue;
          }
          const checked = this.check(shape.members[member], item, memberPath);
          if (checked !== undefined) out[member] = checked;
        }
        return out;
      }
    }
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

function validationError(problems: readonly string[]): KmsError {
  const count = problems.length === 1 ? "1 validation error" : `${problems.length} validation errors`;
  return new KmsError("ValidationException", `${count} detected: ${problems.join("; ")}`);
}

/**
 * The validated input of `operation`: members checked and typed, blob members decoded to
 * Buffers, unknown members dropped. Throws KmsError: SerializationException (not a JSON object,
 * a member of the wrong JSON type, a blob that is not base64), ValidationException (a missing
 * required member, a length or range or enum violated: AWS's "1 validation error detected: Value
 * … at 'keyId' failed to satisfy constraint: …" message). An unknown operation is
 * UnknownOperationException.
 */
export function validateInput(operation: string, body: unknown): Record<string, unknown> {
  if (!isOperation(operation)) throw new KmsError("UnknownOperationException", `The operation '${String(operation).slice(0, 64)}' is not one this endpoint serves`);
  const checker = new Checker();
  const input = checker.check(SHAPES[operation], body, "") as Record<string, unknown>;
  if (checker.problems.length > 0) throw validationError(checker.problems);
  // Rules across members that the reference states in prose.
  if (operation === "GenerateDataKey" || operation === "GenerateDataKeyWithoutPlaintext") {
    if ((input.KeySpec === undefined) === (input.NumberOfBytes === undefined)) {
      throw new KmsError("ValidationException", "Please specify either number of bytes or key spec, and not both.");
    }
  }
  if (operation === "CreateKey" && input.KeySpec !== undefined && input.CustomerMasterKeySpec !== undefined) {
    throw new KmsError("ValidationException", "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec is deprecated.");
  }
  return input;
}

/** An operation's output as JSON: Buffers to base64, Dates to epoch seconds, undefined members dropped. */
export function encodeOutput(value: Record<string, unknown>): Record<string, unknown> {
  return encoded(value) as Record<string, unknown>;
}

function encoded(value: unknown): unknown {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64");
  if (value instanceof Date) return value.getTime() / 1000;
  if (Array.isArray(value)) return value.map((item) => (item === undefined ? null : encoded(item)));
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) if (item !== undefined) out[key] = encoded(item);
    return out;
  }
  return value;
}

export type { KmsError };
