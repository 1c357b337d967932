// The CommonJS build: one bundle of src/index.ts for require('hsmsim'), with the ESM
// build's type declarations (dist/esm) serving both.
import { build } from "esbuild";

await build({
  entryPoints: ["src/index.ts"],
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  packages: "external",
  outfile: "dist/cjs/index.cjs",
  logLevel: "warning",
  // addon.ts reads import.meta only when __filename is absent, which never happens in CommonJS.
  logOverride: { "empty-import-meta": "silent" },
});
