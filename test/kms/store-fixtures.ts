// Records and a stand-in for the fleet's record MAC, shared by the KMS store's tests.
import { createHmac } from "node:crypto";

import type { AliasRecord, CustomKeyStoreRecord, GrantRecord, KeyRecord } from "../../src/kms/types.js";

export const ACCOUNT = "111122223333";
export const OTHER_ACCOUNT = "444455556666";

/** HMAC-SHA-256 under `secret`: the fleet's recordMac, without the fleet. */
export function hmacUnder(secret: string): (data: Buffer) => Buffer {
  return (data) => createHmac("sha256", secret).update(data).digest();
}

export function keyRecord(n: number, overrides: Partial<KeyRecord> = {}): KeyRecord {
  const keyId = `${String(n).padStart(8, "0")}-1111-2222-3333-444455556666`;
  return {
    keyId, arn: `arn:aws:kms:us-east-1:${ACCOUNT}:key/${keyId}`, accountId: ACCOUNT, keySpec: "SYMMETRIC_DEFAULT",
    keyUsage: "ENCRYPT_DECRYPT", origin: "AWS_KMS", customKeyStoreId: null, materialRef: `kms-key-${n}`, description: `key ${n}`,
    creationDateMs: 1_700_000_000_000 + n * 1000, state: "Enabled", deletionDateMs: null, pendingWindowInDays: null,
    policy: JSON.stringify({ Version: "2012-10-17", Statement: [{ Sid: "Enable IAM User Permissions", Effect: "Allow",
      Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: "kms:*", Resource: "*" }] }),
    tags: [{ TagKey: "team", TagValue: "payments" }],
    ...overrides,
  };
}

export function aliasRecord(name: string, targetKeyId: string, overrides: Partial<AliasRecord> = {}): AliasRecord {
  return { accountId: ACCOUNT, aliasName: `alias/${name}`, targetKeyId, creationDateMs: 1_700_000_100_000, lastUpdatedDateMs: 1_700_000_100_000, ...overrides };
}

export function grantRecord(n: number, key: KeyRecord, overrides: Partial<GrantRecord> = {}): GrantRecord {
  return {
    grantId: n.toString(16).padStart(64, "0"), keyId: key.keyId, keyArn: key.arn, accountId: key.accountId, name: `grant-${n}`,
    granteePrincipal: `arn:aws:iam::${OTHER_ACCOUNT}:user/app`, retiringPrincipal: `arn:aws:iam::${ACCOUNT}:user/admin`,
    operations: ["Decrypt", "Encrypt"], constraints: { EncryptionContextSubset: { tenant: "t1" } },
    issuingAccount: `arn:aws:iam::${ACCOUNT}:root`, creationDateMs: 1_700_000_200_000 + n, grantToken: `token-${n}`,
    ...overrides,
  };
}

export function customKeyStoreRecord(n: number, overrides: Partial<CustomKeyStoreRecord> = {}): CustomKeyStoreRecord {
  return {
    customKeyStoreId: `cks-${n.toString(16).padStart(17, "0")}`, accountId: ACCOUNT, name: `store-${n}`, cloudHsmClusterId: `cluster-${n}abcdefgh`,
    trustAnchorPem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", sealedPassword: Buffer.from([1, 2, 3, n]),
    connectionState: "DISCONNECTED", connectionErrorCode: null, creationDateMs: 1_700_000_300_000 + n, ...overrides,
  };
}
