// Fuzzes the native chip directly, past the TypeScript checks: every method of the device's
// chip and of two applications on it (one on a device-profile chip) gets random values in every
// position (numbers, Buffers, typed arrays, objects, functions, other applications' sessions …).
// The native side must re-check and fail safe: only TypeError or Pkcs11Error may come back, and
// no application may use another's session.
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
  const RW = P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION;
  const chip = P.createChip({ pinHashIterations: 1 });
  chip.initToken(0, Buffer.from("so-pin-1"), Buffer.from("fuzz"));
  const session = chip.openSession(0, RW);
  const deviceChip = P.createChip({ pinHashIterations: 1, deviceProfile: true });
  deviceChip.initToken(0, Buffer.from("so-pin-1"), Buffer.from("fuzz"));
  const apps = [chip.openApplication(), deviceChip.openApplication()];
  const appSessions = apps.map((app) => app.openSession(0, RW));
  deviceChip.loginPrincipal(appSessions[1], 1);
  // A session of another application on each chip: every use of it must fail.
  const foreign = [chip.openApplication().openSession(0, RW), deviceChip.openApplication().openSession(0, RW)];
  type Target = Record<string, (...a: unknown[]) => unknown>;
  // Every call but the one that writes files (its path checks have their own tests).
  const callsOf = (target: object) => Object.getOwnPropertyNames(target)
    .filter((name) => typeof (target as Record<string, unknown>)[name] === "function" && name !== "saveMaskingKey");
  const targets: { target: Target; methods: string[]; app: number }[] = [
    { target: chip as unknown as Target, methods: callsOf(chip), app: -1 },
    ...apps.map((app, i) => ({ target: app as unknown as Target, methods: callsOf(app), app: i })),
  ];
  const report: ChipFuzzReport = { calls: 0, returned: 0, findings: [] };
  const template = () => {
    // Sometimes a well-formed encoding, sometimes a broken one.
    const b = Buffer.alloc(4 + int(40));
    b.writeUInt32LE(random() < 0.5 ? int(3) : int(2 ** 32), 0);
    for (let i = 4; i < b.length; i++) b[i] = int(256);
    return b;
  };
  const value = (): unknown => pick<() => unknown>([
    () => session, () => pick(appSessions), () => pick(foreign), () => int(10), () => int(2 ** 32), () => -1, () => 0.5, () => NaN, () => Infinity, () => 2 ** 60,
    () => Buffer.alloc(int(70)), () => Buffer.alloc(0), template, () => new Float64Array([P.CKM_AES_GCM, 1, 128, 0, 0]),
    () => new Float64Array(int(8)), () => new Uint16Array(4), () => new DataView(new ArrayBuffer(8)), () => "text",
    () => null, () => undefined, () => ({}), () => [1, 2], () => true, () => 10n, () => Symbol("s"), () => chip,
    () => () => undefined,
  ])();
  for (let i = 0; i < calls; i++) {
    const { target, methods, app } = pick(targets);
    const name = pick(methods);
    const args = Array.from({ length: int(12) }, value);
    // An application call that names another application's session must not succeed, now or
    // (asynchronous forms) in its callback.
    const onForeign = app >= 0 && args[0] === foreign[app] && name !== "getSlotList";
    const finding = `seed ${seed} call ${i}: ${name} succeeded on another application's session`;
    if (onForeign) {
      for (let k = 0; k < args.length; k++) {
        if (typeof args[k] === "function") args[k] = (error: unknown) => { if (error === null) report.findings.push(finding); };
      }
    }
    report.calls++;
    try {
      const result = target[name](...args);
      report.returned++;
      if (onForeign && !args.some((a) => typeof a === "function")) report.findings.push(finding);
      void result;
    } catch (e) {
      if (!(e instanceof TypeError) && !(e instanceof P.Pkcs11Error)) report.findings.push(`seed ${seed} call ${i}: ${name} threw ${String(e)}`);
    }
  }
  // Let callbacks that were queued run, so their workers are exercised too.
  await new Promise((resolve) => setTimeout(resolve, 50));
  return report;
}
