// The package as npm would publish it (`npm pack --dry-run`): what an install needs to build the
// addon and run (dist/, the native sources and their build files, LICENSE, README), and nothing
// of the tests; package.json's entry points all inside it; README references that stay inside it.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as Record<string, unknown> & {
  bin: Record<string, string>; main: string; module: string; types: string; exports: Record<string, Record<string, Record<string, string>>>; files: string[];
};

function packedFiles(): string[] {
  // --ignore-scripts: list what is there, without `prepare` rebuilding dist/ under the test.
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const out = execFileSync(npm, ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: root, encoding: "utf8", timeout: 120_000,
    stdio: ["ignore", "pipe", "pipe"] });
  return (JSON.parse(out) as { files: { path: string }[] }[])[0].files.map((f) => f.path);
}

describe("the published package", () => {
  const files = packedFiles();
  const has = (path: string) => files.includes(path);

  it("is publishable under Apache-2.0 with the license text", () => {
    expect(pkg.private).toBeUndefined();
    expect(pkg.license).toBe("Apache-2.0");
    expect(has("LICENSE")).toBe(true);
    const license = readFileSync(join(root, "LICENSE"), "utf8");
    expect(license).toContain("Apache License");
    expect(license).toContain("Version 2.0, January 2004");
    expect(license).toContain("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION");
  });

  it("ships no test, benchmark or fuzz file, native or TypeScript", () => {
    const offending = files.filter((f) => /(^|\/)(test|tests|bench|fuzz|__tests__)\//.test(f) || /\.(test|spec|bench)\.[cm]?[jt]s$/.test(f) ||
      f.startsWith("native/test") || f.startsWith("build/") || f.startsWith("build-") || f === "vitest.config.ts" || f.startsWith(".ci/"));
    expect(offending).toEqual([]);
  });

  it("ships dist/, the README and what compiling the addon at install needs", () => {
    for (const path of ["README.md", "package.json", "binding.gyp", "sources.gypi", "dist/esm/index.js", "dist/esm/index.d.ts", "dist/cjs/index.cjs",
      "dist/cjs/index.d.ts"]) expect(has(path), path).toBe(true);
    const sources = JSON.parse(readFileSync(join(root, "sources.gypi"), "utf8")).variables as Record<string, string[]>;
    const native = [...sources.hsm_core_sources, ...sources.hsm_binding_sources];
    expect(native.length).toBeGreaterThan(10);
    for (const source of native) expect(has(source), source).toBe(true);
    // Every header the sources include sits beside them.
    const headers = files.filter((f) => f.startsWith("native/src/") && f.endsWith(".h"));
    expect(headers.length).toBeGreaterThan(5);
    expect(pkg.scripts).toMatchObject({ install: expect.stringContaining("node-gyp") });
    expect(Object.keys(pkg.dependencies as object)).toContain("node-addon-api");
  });

  it("every entry point package.json names is in the package", () => {
    const targets = [pkg.main, pkg.module, pkg.types, ...Object.values(pkg.bin), ...Object.values(pkg.exports).flatMap((e) => Object.values(e).flatMap((c) => Object.values(c)))];
    for (const target of targets) expect(has(target.replace(/^\.\//, "")), target).toBe(true);
    expect(readFileSync(join(root, pkg.bin.hsmsim), "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
  });

  it("the README's links and paths into shipped folders resolve inside the package, and none leaves it", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    expect(readme).not.toMatch(/\.\.\//);
    const links = [...readme.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1]).filter((l) => !/^[a-z]+:/.test(l));
    const shippedFolders = ["examples/", "dist/", "native/src/"];
    const paths = [...readme.matchAll(/`([\w./-]+\.(?:ts|cc|h|js|cjs|gyp|gypi))`/g)].map((m) => m[1]).filter((p) => shippedFolders.some((f) => p.startsWith(f)));
    expect(paths.length).toBeGreaterThan(0);
    for (const target of [...links, ...paths]) expect(has(target.replace(/^\.\//, "")) || files.some((f) => f.startsWith(target)), target).toBe(true);
    expect(existsSync(join(root, "examples", "pkcs11js-program.ts"))).toBe(true);
  });
});
