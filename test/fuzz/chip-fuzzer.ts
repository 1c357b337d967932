// Fuzzes the native chip directly, past the TypeScript checks: every method gets random
// values in every position (numbers, Buffers, typed arrays, objects, functions …). The
// native side must re-check and fail safe: only TypeError or Pkcs11Error may come back.
import * as P from "../../src/index.js";
import { prng } from "./fuzzer.js";

export interface ChipFuzzReport {
  calls: number;
  returned: number;
  findings: string[];
}

export async function fuzzChip(calls: number, seed: number): Promise<ChipFuzzReport> {
  const random = prng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)];
  const chip = P.createChip({ pinHashIterations: 1 });
  chip.initToken(0, Buffer.from("so-pin-1"), Buffer.from("fuzz"));
  const session = chip.openSession(0, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
  // Every call but the one that writes files (its path checks have their own tests).
  const methods = Object.getOwnPropertyNames(chip)
    .filter((name) => typeof (chip as unknown as Record<string, unknown>)[name] === "function" && name !== "saveMaskingKey");
  const report: ChipFuzzReport = { calls: 0, returned: 0, findings: [] };
  const template = () => {
    // Sometimes a well-formed encoding, sometimes a broken one.
    const b = Buffer.alloc(4 + int(40));
    b.writeUInt32LE(random() < 0.5 ? int(3) : int(2 ** 32), 0);
    for (let i = 4; i < b.length; i++) b[i] = int(256);
    return b;
  };
  const value = (): unknown => pick<() => unknown>([
    () => session, () => int(10), () => int(2 ** 32), () => -1, () => 0.5, () => NaN, () => Infinity, () => 2 ** 60,
    () => Buffer.alloc(int(70)), () => Buffer.alloc(0), template, () => new Float64Array([P.CKM_AES_GCM, 1, 128, 0, 0]),
    () => new Float64Array(int(8)), () => new Uint16Array(4), () => new DataView(new ArrayBuffer(8)), () => "text",
    () => null, () => undefined, () => ({}), () => [1, 2], () => true, () => 10n, () => Symbol("s"), () => chip,
    () => () => undefined,
  ])();
  for (let i = 0; i < calls; i++) {
    const name = pick(methods);
    const args = Array.from({ length: int(12) }, value);
    report.calls++;
    try {
      const result = (chip as unknown as Record<string, (...a: unknown[]) => unknown>)[name](...args);
      report.returned++;
      void result;
    } catch (e) {
      if (!(e instanceof TypeError) && !(e instanceof P.Pkcs11Error)) report.findings.push(`seed ${seed} call ${i}: ${name} threw ${String(e)}`);
    }
  }
  // Let callbacks that were queued run, so their workers are exercised too.
  await new Promise((resolve) => setTimeout(resolve, 50));
  return report;
}
