// Red team 5 of the KMS endpoint: the last refactors (lazy grant reads in authorize, the custom key
// store split, the shared schema check). Each test attacks a promise the refactor might have broken.
// None of these attacks succeeded at a6eb02a: they pass, and stand as regression tests.
import {
  CreateGrantCommand, CreateKeyCommand, DecryptCommand, DescribeKeyCommand, EncryptCommand, GenerateMacCommand, GetPublicKeyCommand,
  ReEncryptCommand, RetireGrantCommand, SignCommand,
} from "@aws-sdk/client-kms";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";

import { KmsStore, KmsStoreError } from "../../src/kms/store.js";
import { OWNER, SAAS, outcome, policyAllowing, startKmsFixture } from "../kms/kms-fixture.js";
import { grantRecord, hmacUnder, keyRecord } from "../kms/store-fixtures.js";

const X = Buffer.from("x");

describe("red team 5: lazy grant reads", () => {
  it("a forged grant token is refused even when the key policy alone allows the request", async () => {
    const kms = await startKmsFixture({ durable: false });
    const owner = kms.client(OWNER);
    const key = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const forged = Buffer.concat([Buffer.from([1]), Buffer.alloc(64, 7)]).toString("base64url");
    expect(await outcome(owner.send(new EncryptCommand({ KeyId: key, Plaintext: X, GrantTokens: [forged] })))).toBe("InvalidGrantTokenException");
  });
  it("a forged grant token is refused by every operation that takes GrantTokens, whatever the policy allows", async () => {
    const kms = await startKmsFixture({ durable: false });
    const owner = kms.client(OWNER);
    const forged = [Buffer.concat([Buffer.from([1]), Buffer.alloc(64, 9)]).toString("base64url")];
    const sym = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const ecc = (await owner.send(new CreateKeyCommand({ KeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY" }))).KeyMetadata!.Arn!;
    const hmac = (await owner.send(new CreateKeyCommand({ KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC" }))).KeyMetadata!.Arn!;
    const blob = (await owner.send(new EncryptCommand({ KeyId: sym, Plaintext: X }))).CiphertextBlob!;
    const calls: [string, Promise<unknown>][] = [
      ["Decrypt", owner.send(new DecryptCommand({ CiphertextBlob: blob, GrantTokens: forged }))],
      ["ReEncrypt", owner.send(new ReEncryptCommand({ CiphertextBlob: blob, DestinationKeyId: sym, GrantTokens: forged }))],
      ["DescribeKey", owner.send(new DescribeKeyCommand({ KeyId: sym, GrantTokens: forged }))],
      ["GetPublicKey", owner.send(new GetPublicKeyCommand({ KeyId: ecc, GrantTokens: forged }))],
      ["Sign", owner.send(new SignCommand({ KeyId: ecc, Message: X, SigningAlgorithm: "ECDSA_SHA_256", GrantTokens: forged }))],
      ["GenerateMac", owner.send(new GenerateMacCommand({ KeyId: hmac, Message: X, MacAlgorithm: "HMAC_SHA_256", GrantTokens: forged }))],
      ["CreateGrant", owner.send(new CreateGrantCommand({ KeyId: sym, GranteePrincipal: SAAS.arn, Operations: ["Encrypt"], GrantTokens: forged }))],
    ];
    const seen: Record<string, string> = {};
    for (const [name, call] of calls) seen[name] = await outcome(call);
    expect(seen).toEqual(Object.fromEntries(calls.map(([name]) => [name, "InvalidGrantTokenException"])));
  });
  it("a policy Deny beats a grant (grants are read after the policy, but never override its Deny)", async () => {
    const kms = await startKmsFixture({ durable: false });
    const owner = kms.client(OWNER);
    const policy = policyAllowing([
      { Sid: "no saas", Effect: "Deny", Principal: { AWS: SAAS.arn }, Action: "kms:Encrypt", Resource: "*" },
    ]);
    const key = (await owner.send(new CreateKeyCommand({ Policy: policy }))).KeyMetadata!.Arn!;
    const grant = await owner.send(new CreateGrantCommand({ KeyId: key, GranteePrincipal: SAAS.arn, Operations: ["Encrypt"] }));
    expect(await outcome(kms.client(SAAS).send(new EncryptCommand({ KeyId: key, Plaintext: X })))).toBe("AccessDeniedException");
    expect(await outcome(kms.client(SAAS).send(new EncryptCommand({ KeyId: key, Plaintext: X, GrantTokens: [grant.GrantToken!] })))).toBe("AccessDeniedException");
  });
  it("a retired grant's token allows nothing, whether or not the key's grants are read", async () => {
    const kms = await startKmsFixture({ durable: false });
    const owner = kms.client(OWNER);
    const key = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const grant = await owner.send(new CreateGrantCommand({ KeyId: key, GranteePrincipal: SAAS.arn, Operations: ["Encrypt"] }));
    expect(await outcome(kms.client(SAAS).send(new EncryptCommand({ KeyId: key, Plaintext: X, GrantTokens: [grant.GrantToken!] })))).toBe("ok");
    await owner.send(new RetireGrantCommand({ KeyId: key, GrantId: grant.GrantId! }));
    expect(await outcome(kms.client(SAAS).send(new EncryptCommand({ KeyId: key, Plaintext: X, GrantTokens: [grant.GrantToken!] })))).toBe("AccessDeniedException");
    expect(await outcome(kms.client(SAAS).send(new EncryptCommand({ KeyId: key, Plaintext: X })))).toBe("AccessDeniedException");
  });
});

describe("red team 5: the shared schema check on the KMS store", () => {
  const mac = hmacUnder("fleet-a");
  const plants: [string, string][] = [
    ["an index", "CREATE INDEX spy ON grants (grant_id)"],
    ["a unique index", "CREATE UNIQUE INDEX spy ON keys (key_id)"],
    ["a view", "CREATE VIEW spy AS SELECT * FROM keys"],
    ["a trigger", "CREATE TRIGGER spy BEFORE DELETE ON grants BEGIN SELECT RAISE(IGNORE); END"],
    ["a table", "CREATE TABLE spy (x)"],
    ["ANALYZE's statistics", "ANALYZE"],
  ];
  for (const [what, sql] of plants) {
    it(`refuses ${what} planted in a closed store`, () => {
      const dir = mkdtempSync(join(tmpdir(), "kms-redteam5-"));
      const path = join(dir, "kms.db");
      try {
        const store = KmsStore.open({ path, mac });
        const key = keyRecord(1);
        store.putKey(key);
        store.putGrant(grantRecord(1, key));
        store.close();
        const db = new Database(path);
        db.exec(sql);
        db.close();
        let caught: unknown;
        try {
          KmsStore.open({ path, mac }).close();
        } catch (e) {
          caught = e;
        }
        expect(caught).toBeInstanceOf(KmsStoreError);
        expect((caught as KmsStoreError).code).toBe("STORE_TAMPERED");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
