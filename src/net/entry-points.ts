// How to start one of our own modules as a process: node on the built JS (dist/), or node
// with tsx's loader when running from source (tests, `npx tsx src/cli/main.ts`).
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = typeof __filename === "string" ? dirname(__filename) : dirname(fileURLToPath(import.meta.url));
const fromSource = here.split(/[\\/]/).includes("src") && !here.split(/[\\/]/).includes("dist");

/**
 * `name` is a module of src/net/ without extension, e.g. "hsm-process"; `folder` names another
 * folder of src/ instead (the demo starts an application from src/cli/).
 */
export function entryPoint(name: string, folder = "net"): { file: string; execArgv: string[] } {
  const dir = folder === "net" ? here : join(here, "..", folder);
  if (!fromSource) return { file: join(dir, `${name}.${typeof __filename === "string" ? "cjs" : "js"}`), execArgv: [] };
  const require = createRequire(join(here, "entry-points.ts"));
  const tsxLoader = join(dirname(require.resolve("tsx/package.json")), "dist", "loader.mjs");
  return { file: join(dir, `${name}.ts`), execArgv: ["--import", pathToFileURL(tsxLoader).href] };
}
