// One list of native sources (sources.gypi) feeds binding.gyp and CMakeLists.txt; this
// check fails when a source file exists that the list does not name, or the reverse. And the
// built package (dist/, as `npm install` builds it) has one implementation behind both entries.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

function sourcesUnder(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourcesUnder(join(dir, entry.name)) : entry.name.endsWith(".cc") ? [join(dir, entry.name)] : []);
}

describe("build files", () => {
  const list = JSON.parse(readFileSync(join(root, "sources.gypi"), "utf8")).variables as Record<string, string[]>;

  it("sources.gypi names exactly the .cc files under native/src", () => {
    const listed = [...list.hsm_core_sources, ...list.hsm_binding_sources].sort();
    expect(listed).toEqual(sourcesUnder("native/src").map((p) => relative(root, join(root, p))).sort());
  });

  it("binding.gyp and CMakeLists.txt both read the shared list", () => {
    const gyp = readFileSync(join(root, "binding.gyp"), "utf8");
    expect(gyp).toContain('"includes": ["sources.gypi"]');
    expect(gyp).toContain("<@(hsm_core_sources)");
    expect(gyp).toContain("<@(hsm_binding_sources)");
    const cmake = readFileSync(join(root, "CMakeLists.txt"), "utf8");
    expect(cmake).toContain("sources.gypi");
    expect(cmake).toContain("read_source_list(hsm_core_sources HSM_CORE)");
    expect(cmake).toContain("read_source_list(hsm_binding_sources HSM_BINDING)");
  });

  it("only native/src/crypto includes OpenSSL and only native/src/binding includes napi.h", () => {
    for (const file of sourcesUnder("native/src")) {
      const text = readFileSync(join(root, file), "utf8");
      if (!file.includes("/crypto/")) expect(text, file).not.toMatch(/#include <openssl\//);
      if (!file.includes("/binding/")) expect(text, file).not.toMatch(/#include <napi\.h>/);
    }
  });
});

// What a consumer sees through both entries: the same objects, errors that are instances of
// both entries' classes (thrown in JavaScript and in the native addon), the same export names.
const IDENTITY_CHECK = `
  const p = esm.load("memory:");
  p.C_Initialize();
  let fromNative, fromFacade;
  try { p.C_OpenSession(p.C_GetSlotList(true)[0], 0); } catch (e) { fromNative = e; }
  try { p.C_Initialize(); } catch (e) { fromFacade = e; }
  const names = Object.keys(cjs).sort();
  process.stdout.write(JSON.stringify({
    sameNames: JSON.stringify(Object.keys(esm).sort()) === JSON.stringify(names),
    sameValues: names.every((name) => esm[name] === cjs[name]),
    samePKCS11: esm.PKCS11 === cjs.PKCS11,
    nativeError: [fromNative.message, fromNative instanceof esm.Pkcs11Error, fromNative instanceof cjs.Pkcs11Error],
    facadeError: [fromFacade.message, fromFacade instanceof esm.Pkcs11Error, fromFacade instanceof cjs.Pkcs11Error],
    nativeErrorClass: esm.NativeError === cjs.NativeError && fromNative instanceof cjs.NativeError,
    worksThroughCjs: new cjs.PKCS11() instanceof esm.PKCS11,
  }));`;

describe("package entry points (dist/, built by npm run build:ts)", () => {
  const expected = {
    sameNames: true, sameValues: true, samePKCS11: true, nativeErrorClass: true, worksThroughCjs: true,
    nativeError: ["CKR_SESSION_PARALLEL_NOT_SUPPORTED", true, true],
    facadeError: ["CKR_CRYPTOKI_ALREADY_INITIALIZED", true, true],
  };
  let consumer = "";

  function run(file: string, source: string): unknown {
    writeFileSync(join(consumer, file), source);
    return JSON.parse(execFileSync(process.execPath, [join(consumer, file)], { cwd: consumer, encoding: "utf8" }));
  }

  it("the ES module entry is the generated wrapper of the CommonJS bundle (else: npm run build:ts)", () => {
    const entry = readFileSync(join(root, "dist", "esm", "index.js"), "utf8");
    expect(entry).toContain('import bundle from "../cjs/index.cjs";');
    expect(entry).toMatch(/export const \{[\s\S]*PKCS11,[\s\S]*\} = bundle;/);
  });

  it("an ES module consumer gets the same classes from import and require()", () => {
    consumer = mkdtempSync(join(tmpdir(), "hsmsim-consumer-"));
    try {
      mkdirSync(join(consumer, "node_modules"));
      symlinkSync(root, join(consumer, "node_modules", "hsmsim"), "dir");
      expect(run("esm.mjs", `
        import * as esm from "hsmsim";
        import { createRequire } from "node:module";
        const cjs = createRequire(import.meta.url)("hsmsim");
        ${IDENTITY_CHECK}`)).toEqual(expected);
      // A CommonJS consumer that loads its half first, then imports the other.
      expect(run("cjs.cjs", `
        const cjs = require("hsmsim");
        import("hsmsim").then((esm) => { ${IDENTITY_CHECK} });`)).toEqual(expected);
    } finally {
      rmSync(consumer, { recursive: true, force: true });
    }
  });
});
