// One list of native sources (sources.gypi) feeds binding.gyp and CMakeLists.txt; this
// check fails when a source file exists that the list does not name, or the reverse.
import { readFileSync, readdirSync } from "node:fs";
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
