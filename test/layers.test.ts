// The layer table of DESIGN.md: calls flow down, never up. Each folder may import only from the
// folders below it; the cluster and the client in particular know nothing of the simulator or of
// sockets, so the seeded sweep and the real-time cluster run the same code.
import { readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = join(__dirname, "..", "src");
/** Top to bottom; a folder may import from itself and from any folder after it. */
// src/sim/ sits above the client: its world, workload and checkers drive clients (its clock and
// network implement the runtime interfaces the cluster and the client see, as src/net/ does).
const ORDER = ["cli", "kms", "esdk", "sizing", "sim", "client", "net", "cluster", "runtime", "hsm", "pkcs11"];
/** Shared leaves every layer may use. */
const LEAVES = new Set(["primordials.js", "coded-error.js"]);

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
}

function layerOf(path: string): string {
  return relative(SRC, path).split("/")[0];
}

describe("layers", () => {
  const violations: string[] = [];
  for (const file of files(SRC)) {
    const layer = layerOf(file);
    if (!ORDER.includes(layer)) continue;
    const text = readFileSync(file, "utf8");
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
      const target = join(file, "..", match[1]);
      const targetLayer = layerOf(target);
      if (LEAVES.has(targetLayer) || targetLayer === layer) continue;
      if (!ORDER.includes(targetLayer) || ORDER.indexOf(targetLayer) < ORDER.indexOf(layer)) violations.push(`${relative(SRC, file)} imports ${match[1]}`);
    }
  }

  it("no folder imports from a folder above it", () => {
    expect(violations).toEqual([]);
  });

  it("the check sees an upward import (it is not vacuous)", () => {
    const sample = join(SRC, "cluster", "x.ts");
    expect(ORDER.indexOf(layerOf(join(sample, "..", "../sim/clock.js")))).toBeLessThan(ORDER.indexOf(layerOf(sample)));
  });
});
