// Standalone frame fuzz run: `npm run fuzz:wire` (100,000 hostile frames at a live HSM over TLS)
// or `tsx test/fuzz/frames.ts FRAMES SEED`. Exits 1 on any finding.
import { fuzzFrames } from "./frame-fuzzer.js";

const frames = Number(process.argv[2] ?? 100_000);
const seed = Number(process.argv[3] ?? Date.now() % 2 ** 31);
const report = await fuzzFrames(frames, seed, { log: (line) => console.log(`  ${line}`) });
console.log(`seed ${seed}: ${report.frames} hostile frames over ${report.connections} connections (${report.resumed} TLS sessions resumed) in ${report.durationMs} ms ` +
  `(${Math.round(report.frames / (report.durationMs / 1000))} frames/s)`);
console.log(`  fatal frames: ${report.fatalSent} sent, ${report.closedByHsm} connections closed by the HSM, ` +
  `${report.leftToHandshakeTimeout} half-open handshakes left to the HSM's handshake timeout, ${report.notClosed} not closed`);
console.log(`  accepted frames: ${report.answered} hostile requests answered, ${report.peerDropped} forged peer envelopes dropped`);
console.log(`  legitimate client: ${report.legitChecks} checks (SHA-256 digest + random length), ${report.legitFailures.length} failed`);
console.log(`  HSM running: ${report.hsm.running}`);
console.log(`  HSM transport: ${JSON.stringify(report.hsm.transport)}`);
console.log(`  HSM node: ${JSON.stringify(report.hsm.node)}`);
for (const finding of report.findings.slice(0, 20)) console.log(`  FINDING: ${finding}`);
process.exit(report.findings.length > 0 || !report.hsm.running ? 1 : 0);
