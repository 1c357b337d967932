// The KMS layer's shared vocabulary: who is calling, and the records the store keeps. Plain
// data only (the store persists them, the trail and the CLI print them).

/** The principal a request was signed by, as SigV4 verification found it. */
export interface Caller {
  /** 12 digits. */
  accountId: string;
  /** The principal's ARN: arn:aws:iam::ACCOUNT:user/NAME, or arn:aws:iam::ACCOUNT:root. */
  arn: string;
  accessKeyId: string;
  /** The IAM user's name (null for the account's root). */
  userName: string | null;
  sourceIp: string;
  userAgent: string;
}

/** What one request's handler knows besides its input. */
export interface RequestContext {
  caller: Caller;
  /** A UUID; the x-amzn-RequestId header and the trail record's requestID. */
  requestId: string;
  /** The endpoint's region (every ARN it makes carries it). */
  region: string;
  /** What the handler adds to the request's trail record as it runs. */
  notes: TrailNotes;
}

/** The trail record's parts only the handler knows (CloudTrail's resources and additionalEventData). */
export interface TrailNotes {
  /** The keys the request used (CloudTrail: resources[]). */
  resources: { ARN: string; accountId: string; type: "AWS::KMS::Key" }[];
  /** e.g. { customKeyStoreId, clusterId, backingKeyId, hsmKeyIds: number[] } for custom key store work. */
  additionalEventData: Record<string, unknown>;
}

/** One configured access key: whose it is. Secrets stay on the server; requests carry only signatures. */
export interface KmsCredential {
  accessKeyId: string;
  secretAccessKey: string;
  accountId: string;
  /** The principal: arn:aws:iam::ACCOUNT:user/NAME or arn:aws:iam::ACCOUNT:root. */
  arn: string;
}

/** The key states a key can be stored in; `Unavailable` is derived (its custom key store is not connected). */
export type StoredKeyState = "Enabled" | "Disabled" | "PendingDeletion";
export type KeyState = StoredKeyState | "Unavailable";

export type KeySpec =
  | "SYMMETRIC_DEFAULT"
  | "ECC_NIST_P256" | "ECC_NIST_P384"
  | "RSA_2048" | "RSA_3072" | "RSA_4096"
  | "HMAC_256" | "HMAC_384" | "HMAC_512";
export type KeyUsage = "ENCRYPT_DECRYPT" | "SIGN_VERIFY" | "GENERATE_VERIFY_MAC";
export type Origin = "AWS_KMS" | "AWS_CLOUDHSM";

export interface Tag {
  TagKey: string;
  TagValue: string;
}

export interface KeyRecord {
  /** A UUID (what KMS calls the key id). */
  keyId: string;
  /** arn:aws:kms:REGION:ACCOUNT:key/KEYID */
  arn: string;
  accountId: string;
  keySpec: KeySpec;
  keyUsage: KeyUsage;
  origin: Origin;
  /** The custom key store the key is in (origin AWS_CLOUDHSM), else null. */
  customKeyStoreId: string | null;
  /**
   * Where the key material is: for AWS_KMS the label of its key in KMS's own fleet; for
   * AWS_CLOUDHSM the backing key's cluster-wide key id in the cluster, as a decimal string.
   */
  materialRef: string;
  description: string;
  /** Milliseconds since the Unix epoch. */
  creationDateMs: number;
  state: StoredKeyState;
  /** When a key pending deletion is deleted (ms since the Unix epoch), else null. */
  deletionDateMs: number | null;
  /** The waiting period it was scheduled with (7–30 days), else null. */
  pendingWindowInDays: number | null;
  /** The key policy, as the JSON text it was put with. */
  policy: string;
  tags: Tag[];
}

export interface AliasRecord {
  accountId: string;
  /** alias/NAME */
  aliasName: string;
  /** The key id (UUID) it points at. */
  targetKeyId: string;
  creationDateMs: number;
  lastUpdatedDateMs: number;
}

/** A grant's constraints: the encryption context a request must carry (exactly, or at least). */
export interface GrantConstraints {
  EncryptionContextSubset?: Record<string, string>;
  EncryptionContextEquals?: Record<string, string>;
}

export interface GrantRecord {
  /** 64 hex characters. */
  grantId: string;
  keyId: string;
  keyArn: string;
  /** The key's account. */
  accountId: string;
  name: string | null;
  granteePrincipal: string;
  retiringPrincipal: string | null;
  /** The grant's operations (Decrypt, Encrypt, GenerateDataKey, CreateGrant, RetireGrant, DescribeKey, …). */
  operations: string[];
  constraints: GrantConstraints | null;
  /** arn:aws:iam::ACCOUNT:root of the account that created the grant. */
  issuingAccount: string;
  creationDateMs: number;
  /** The grant token handed back by CreateGrant (opaque to callers; names this grant). */
  grantToken: string;
}

export type ConnectionState = "CONNECTED" | "CONNECTING" | "DISCONNECTED" | "DISCONNECTING" | "FAILED";

/** AWS's ConnectionErrorCode values that a CloudHSM key store can have here. */
export type ConnectionErrorCode =
  | "INVALID_CREDENTIALS" | "CLUSTER_NOT_FOUND" | "NETWORK_ERRORS" | "INTERNAL_ERROR" | "INSUFFICIENT_CLOUDHSM_HSMS"
  | "USER_LOCKED_OUT" | "USER_NOT_FOUND" | "USER_LOGGED_IN" | "SUBNET_NOT_FOUND";

export interface CustomKeyStoreRecord {
  /** cks- and 17 hex digits. */
  customKeyStoreId: string;
  accountId: string;
  name: string;
  cloudHsmClusterId: string;
  trustAnchorPem: string;
  /** The kmsuser password, sealed by KMS's fleet (never stored in clear). */
  sealedPassword: Buffer;
  connectionState: ConnectionState;
  connectionErrorCode: ConnectionErrorCode | null;
  creationDateMs: number;
}
