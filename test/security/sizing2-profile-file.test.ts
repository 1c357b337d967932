// Second red team, issue 10: `--profile FILE` given something that is not a profile file.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, describe, expect, it } from "vitest";

import { resolveProfile } from "../../src/cli/profile-option.js";

describe("--profile FILE that is not a profile file", () => {
  const dir = mkdtempSync(join(tmpdir(), "red2-profile-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("refuses /dev/zero at once (it was read until the process ran out of memory)", () => {
    expect(() => resolveProfile("/dev/zero")).toThrow(/not a regular file/);
  });

  it("refuses a FIFO at once (reading it waited forever for a writer)", () => {
    const fifo = join(dir, "profile.json");
    execFileSync("mkfifo", [fifo]);
    expect(() => resolveProfile(fifo)).toThrow(/not a regular file/);
  });

  it("refuses an oversized file before reading it", () => {
    const big = join(dir, "big.json");
    writeFileSync(big, " ".repeat(2 * 1024 * 1024));
    expect(() => resolveProfile(big)).toThrow(/more than a profile's/);
  });
});
