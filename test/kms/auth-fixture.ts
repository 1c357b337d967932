// Small fakes for the auth tests: callers of two accounts, key records, grant records and a
// record MAC made with node:crypto (standing in for the fleet's record key).
import { createHmac, randomBytes } from "node:crypto";

import { expect } from "vitest";

import { KmsError } from "../../src/kms/errors.js";
import type { Caller, GrantRecord, KeyRecord } from "../../src/kms/types.js";

export const OWNER = "111122223333";
export const SAAS = "444455556666";
export const OTHER = "777788889999";

export function caller(accountId: string, user: string | null): Caller {
  return {
    accountId,
    arn: user === null ? `arn:aws:iam::${accountId}:root` : `arn:aws:iam::${accountId}:user/${user}`,
    accessKeyId: "AKIA" + accountId,
    userName: user,
    sourceIp: "127.0.0.1",
    userAgent: "test",
  };
}

export const ownerAdmin = caller(OWNER, "admin");
export const ownerRoot = caller(OWNER, null);
export const saasUser = caller(SAAS, "saas");
export const saasOther = caller(SAAS, "intern");
export const stranger = caller(OTHER, "mallory");

export function keyRecord(overrides: Partial<KeyRecord> = {}): KeyRecord {
  const keyId = overrides.keyId ?? "1234abcd-12ab-34cd-56ef-1234567890ab";
  const accountId = overrides.accountId ?? OWNER;
  return {
    keyId,
    arn: `arn:aws:kms:us-east-1:${accountId}:key/${keyId}`,
    accountId,
    keySpec: "SYMMETRIC_DEFAULT",
    keyUsage: "ENCRYPT_DECRYPT",
    origin: "AWS_KMS",
    customKeyStoreId: null,
    materialRef: "fleet-label",
    description: "",
    creationDateMs: 0,
    state: "Enabled",
    deletionDateMs: null,
    pendingWindowInDays: null,
    policy: "{}",
    tags: [],
    ...overrides,
  };
}

let grantCounter = 0;
export function grantRecord(key: KeyRecord, overrides: Partial<GrantRecord> = {}): GrantRecord {
  grantCounter += 1;
  return {
    grantId: grantCounter.toString(16).padStart(64, "0"),
    keyId: key.keyId,
    keyArn: key.arn,
    accountId: key.accountId,
    name: null,
    granteePrincipal: saasUser.arn,
    retiringPrincipal: null,
    operations: ["Encrypt", "Decrypt", "GenerateDataKey"],
    constraints: null,
    issuingAccount: `arn:aws:iam::${key.accountId}:root`,
    creationDateMs: 0,
    grantToken: "",
    ...overrides,
  };
}

/** An HMAC-SHA-256 under a fresh random key: the fleet's recordMac as a test sees it. */
export function testMac(): (data: Buffer) => Buffer {
  const key = randomBytes(32);
  return (data) => createHmac("sha256", key).update(data).digest();
}

/** Runs `fn`, expects a KmsError named `code`, returns it (for message checks). */
export function expectKmsError(fn: () => unknown, code: string): KmsError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(KmsError);
    expect((error as KmsError).code).toBe(code);
    return error as KmsError;
  }
  throw new Error(`expected ${code}, but nothing was thrown`);
}

export function policyText(...statements: object[]): string {
  return JSON.stringify({ Version: "2012-10-17", Statement: statements });
}
