// The hsmsim command: the demo `npm start` runs, the mechanism list, errors.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

const main = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.ts");
const run = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", main, ...args], { encoding: "utf8" });

describe("hsmsim command", () => {
  it("demo walks through init, keys, GCM, ECDSA, wrap, lockout and a throughput table", () => {
    const result = run("demo");
    expect(result.status).toBe(0);
    for (const text of ['decrypted: "Attack at dawn"', "one flipped bit: CKR_ENCRYPTED_DATA_INVALID", "verify original: true",
      "CKR_SIGNATURE_INVALID", "original and unwrapped key encrypt alike: true", "CKR_KEY_UNEXTRACTABLE",
      "wrong PIN #5: CKR_PIN_INCORRECT; token flags: USER_PIN_LOCKED", "right PIN now: CKR_PIN_LOCKED", "AES-256-GCM encrypt 4 KiB"]) {
      expect(result.stdout).toContain(text);
    }
  });

  it("lists mechanisms as JSON", () => {
    const result = run("mechanisms", "--json");
    expect(result.status).toBe(0);
    const list = JSON.parse(result.stdout) as { mechanism: string }[];
    expect(list.map((m) => m.mechanism)).toContain("CKM_AES_GCM");
  });

  it("answers an unknown command with usage and exit code 2", () => {
    const result = run("launch-missiles");
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("unknown command 'launch-missiles'");
    expect(run("bench", "--ms", "fast").status).toBe(2);
  });
});
