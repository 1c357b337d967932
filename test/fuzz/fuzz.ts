// Standalone fuzz run: `npm run fuzz` (100,000 calls) or `tsx test/fuzz/fuzz.ts CALLS SEED`.
import { fuzzChip } from "./chip-fuzzer.js";
import { fuzz } from "./fuzzer.js";

const calls = Number(process.argv[2] ?? 100_000);
const seed = Number(process.argv[3] ?? Date.now() % 2 ** 31);
const started = Date.now();
const report = await fuzz(calls, seed);
console.log(`seed ${seed}: ${report.calls} calls in ${Date.now() - started} ms: ${report.returned} returned, ` +
  `${report.typeErrors} TypeError, ${report.pkcs11Errors} Pkcs11Error, ${report.findings.length} findings`);
const chipReport = await fuzzChip(calls, seed);
console.log(`seed ${seed}: ${chipReport.calls} calls straight at the native chip: ${chipReport.returned} returned, ` +
  `${chipReport.findings.length} findings`);
const findings = [...report.findings, ...chipReport.findings];
for (const finding of findings.slice(0, 20)) console.log(`  ${finding}`);
process.exit(findings.length ? 1 : 0);
