import { chmodSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

import { CREDENTIALS_FILE, loadOrCreateCredentials, readCredentials } from "../../src/kms/credentials-file.js";
import { KmsError } from "../../src/kms/errors.js";
import type { KmsCredential } from "../../src/kms/types.js";

const ONE: KmsCredential[] = [{ accessKeyId: "AKIAOWNER00000000001", secretAccessKey: "s".repeat(40), accountId: "111122223333", arn: "arn:aws:iam::111122223333:user/owner" }];

function kmsDir(): string {
  return join(mkdtempSync(join(tmpdir(), "kms-cred-")), "kms");
}

describe("the KMS credentials file", () => {
  it("is written once (0600, in a 0700 folder) and read back at later starts", () => {
    const dir = kmsDir();
    let made = 0;
    const first = loadOrCreateCredentials(dir, () => (made++, ONE));
    expect(first).toMatchObject({ created: true, credentials: ONE });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, CREDENTIALS_FILE)).mode & 0o777).toBe(0o600);
    const again = loadOrCreateCredentials(dir, () => (made++, []));
    expect(again).toMatchObject({ created: false, credentials: ONE });
    expect(made).toBe(1);
  });

  it("refuses a file others can read, one that is not credentials, and a planted symlink", () => {
    const dir = kmsDir();
    loadOrCreateCredentials(dir, () => ONE);
    const path = join(dir, CREDENTIALS_FILE);
    chmodSync(path, 0o644);
    expect(() => readCredentials(path)).toThrow(/readable by others/);
    chmodSync(path, 0o600);
    writeFileSync(path, JSON.stringify({ credentials: [{ ...ONE[0], accountId: "12" }] }));
    expect(() => readCredentials(path)).toThrow(/accountId must be 12 digits/);
    writeFileSync(path, JSON.stringify({ credentials: [{ ...ONE[0], arn: "arn:aws:iam::999999999999:root" }] }));
    expect(() => readCredentials(path)).toThrow(/must be of account 111122223333/);
    writeFileSync(path, "{nope");
    expect(() => readCredentials(path)).toThrow(KmsError);

    const other = kmsDir();
    const target = join(other, "..", "elsewhere.json");
    writeFileSync(target, readFileSync(path));
    loadOrCreateCredentials(join(other, "..", "x"), () => ONE); // the folder exists…
    symlinkSync(target, join(other, "..", "x", "planted.json"));
    expect(() => readCredentials(join(other, "..", "x", "planted.json"))).toThrow(/cannot be opened \(ELOOP\)/);
  });
});
