// The CommonJS build: one bundle of src/index.ts for require('hsmsim'), plus CommonJS
// type declarations (dist/cjs is marked "type": "commonjs" so TypeScript reads them so).
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

import { build } from "esbuild";

const require = createRequire(import.meta.url);

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

mkdirSync("dist/cjs", { recursive: true });
writeFileSync("dist/cjs/package.json", '{ "type": "commonjs" }\n');
execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", "tsconfig.json", "--module", "commonjs",
  "--moduleResolution", "node10", "--outDir", "dist/cjs", "--emitDeclarationOnly", "--noCheck", "--sourceMap", "false"],
  { stdio: "inherit" });
