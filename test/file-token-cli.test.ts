// `hsmsim token init|list|delete` (src/cli/token.ts), run in-process through the command table.
import { readdirSync } from "node:fs";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { main } from "../src/cli/main.js";
import * as P from "../src/pkcs11/index.js";
import { tokenFiles, tokenRoot } from "./file-token-helpers.js";

const { root: ROOT, newFolder } = tokenRoot();

describe("hsmsim token init|list|delete", () => {
  async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = "", err = "";
    const code = await main(args, { stdout: { write: (t: string) => (out += t) }, stderr: { write: (t: string) => (err += t) }, env: {} });
    return { code, out, err };
  }

  it("init makes tokens a pkcs11js program then logs in to; list shows them; delete removes one by serial or label", async () => {
    const folder = newFolder();
    expect((await cli("token", "init", "--label", "alpha", "--so-pin", "so-pin-a", "--pin", "user-pin-a", "--folder", folder)).code).toBe(0);
    expect((await cli("token", "init", "--label", "beta", "--so-pin", "so-pin-b", "--pin", "user-pin-b", "--folder", folder)).code).toBe(0);
    const listed = JSON.parse((await cli("token", "list", "--folder", folder, "--json")).out) as { tokens: { label: string; serial: string; verified: boolean; userPinInitialized: boolean }[] };
    expect(listed.tokens.map((t) => [t.label, t.verified, t.userPinInitialized])).toEqual([["alpha", true, true], ["beta", true, true]]);

    // A program (default PIN cost: the CLI used it) logs in to the token the CLI made.
    const pkcs11 = new P.PKCS11(`file:${folder}`);
    pkcs11.C_Initialize();
    const slots = pkcs11.C_GetSlotList(true);
    const session = pkcs11.C_OpenSession(slots[1], P.CKF_SERIAL_SESSION);
    pkcs11.C_Login(session, P.CKU_USER, "user-pin-b");
    expect(pkcs11.C_GetTokenInfo(slots[1]).serialNumber).toBe(listed.tokens[1].serial);
    // While the program holds the folder: list shows headers, unverified; delete is refused.
    const busy = JSON.parse((await cli("token", "list", "--folder", folder, "--json")).out) as { tokens: { verified: boolean }[] };
    expect(busy.tokens.map((t) => t.verified)).toEqual([false, false]);
    const refused = await cli("token", "delete", "--label", "alpha", "--folder", folder);
    expect([refused.code, refused.err]).toEqual([1, expect.stringContaining("TOKEN_FOLDER_IN_USE")]);
    pkcs11.close();

    expect((await cli("token", "delete", "--serial", listed.tokens[0].serial, "--folder", folder)).code).toBe(0);
    const after = JSON.parse((await cli("token", "list", "--folder", folder, "--json")).out) as { tokens: { label: string }[] };
    expect(after.tokens.map((t) => t.label)).toEqual(["beta"]);
    const missing = await cli("token", "delete", "--label", "alpha", "--folder", folder);
    expect([missing.code, missing.err]).toEqual([1, expect.stringContaining("TOKEN_NOT_FOUND")]);
    expect((await cli("token", "init", "--label", "beta", "--so-pin", "so-pin-c", "--pin", "user-pin-c", "--folder", folder)).code).toBe(0);
    const twice = await cli("token", "delete", "--label", "beta", "--folder", folder);
    expect([twice.code, twice.err]).toEqual([1, expect.stringContaining("TOKEN_AMBIGUOUS")]);
    expect((await cli("token", "delete", "--label", "nope", "--folder", folder)).code).toBe(1);
    expect(tokenFiles(folder).length).toBe(2);
  });

  it("the default folder is $HSMSIM_TOKEN_DIR; bad command lines are usage errors (exit 2)", async () => {
    const folder = newFolder();
    let out = "";
    const io = { stdout: { write: (t: string) => (out += t) }, stderr: { write: () => true }, env: { HSMSIM_TOKEN_DIR: folder } };
    expect(await main(["token", "init", "--label", "env", "--so-pin", "so-pin-1", "--pin", "user-pin-1"], io)).toBe(0);
    expect(out).toContain(folder);
    expect(tokenFiles(folder).length).toBe(1);
    expect((await cli("token", "init", "--label", "x", "--so-pin", "so-pin-1", "--folder", folder)).code).toBe(2);
    expect((await cli("token", "init", "--label", "x", "--so-pin", "123", "--pin", "user-pin-1", "--folder", folder)).code).toBe(2);
    expect((await cli("token", "delete", "--folder", folder)).code).toBe(2);
    expect((await cli("token", "delete", "--label", "a", "--serial", "b", "--folder", folder)).code).toBe(2);
    expect((await cli("token", "lst")).code).toBe(2);
    // Listing or deleting in a folder that does not exist makes none.
    const nowhere = join(ROOT, "nowhere");
    expect(JSON.parse((await cli("token", "list", "--folder", nowhere, "--json")).out)).toEqual({ folder: nowhere, tokens: [] });
    expect((await cli("token", "delete", "--label", "x", "--folder", nowhere)).code).toBe(1);
    expect(readdirSync(ROOT)).not.toContain("nowhere");
    expect((await cli("token", "list", "--folder", folder, "--jsn")).code).toBe(2);
  });
});
