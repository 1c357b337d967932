// Run by native-boundary.test.ts in a child process (`node --expose-gc --import tsx`): hostile
// JavaScript values at the native boundary. Exits 0 and prints a JSON summary when the process
// survives; a crash (use after free, abort) is the failure the parent looks for.
import * as H from "../../src/index.js";
import { encodeTemplate } from "../../src/pkcs11/template.js";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --expose-gc");

const RW = H.CKF_SERIAL_SESSION | H.CKF_RW_SESSION;
const MIB = 1 << 20;

/** A Buffer over an ArrayBuffer of its own (large: freed memory is unmapped, so a stray access faults). */
function ownBuffer(size: number, fill = 0): Buffer {
  return Buffer.from(new ArrayBuffer(size)).fill(fill);
}

/** Moves the bytes away from `b` (detaching its ArrayBuffer) and drops them. */
function transferAway(b: Buffer): void {
  structuredClone(b.buffer, { transfer: [b.buffer] });
}

type Outcome = { ok: number; failed: Record<string, number> };
function tally(outcome: Outcome, error: Error | null) {
  if (error === null) outcome.ok++;
  else outcome.failed[`${error.constructor.name}:${error.message.split(":")[0]}`] = (outcome.failed[`${error.constructor.name}:${error.message.split(":")[0]}`] ?? 0) + 1;
}

async function asyncCalls(): Promise<Record<string, Outcome>> {
  const chip = H.createChip({ pinHashIterations: 1 });
  chip.initToken(0, Buffer.from("so-pin-1234"), Buffer.from("boundary"));
  // The device's own object: the same workers as an application's, and present in older builds too.
  const app = chip;
  const encode = (t: H.Template) => encodeTemplate(t, "template");
  const s0 = app.openSession(0, RW);
  const key = app.createObject(s0, encode([{ type: H.CKA_CLASS, value: H.CKO_SECRET_KEY }, { type: H.CKA_KEY_TYPE, value: H.CKK_AES },
    { type: H.CKA_VALUE, value: Buffer.alloc(32, 3) }, { type: H.CKA_SENSITIVE, value: false }, { type: H.CKA_EXTRACTABLE, value: true }, { type: H.CKA_PRIVATE, value: false }]));
  const hmacKey = app.createObject(s0, encode([{ type: H.CKA_CLASS, value: H.CKO_SECRET_KEY }, { type: H.CKA_KEY_TYPE, value: H.CKK_GENERIC_SECRET },
    { type: H.CKA_VALUE, value: Buffer.alloc(32, 4) }, { type: H.CKA_PRIVATE, value: false }]));
  const results: Record<string, Outcome> = {};
  const run = async (name: string, rounds: number, start: (session: number, done: (e: Error | null) => void) => Buffer[]) => {
    const outcome: Outcome = (results[name] = { ok: 0, failed: {} });
    const sessions = Array.from({ length: 16 }, () => app.openSession(0, RW));
    for (let round = 0; round < rounds; round++) {
      const pending: Promise<void>[] = [];
      const victims: Buffer[] = [];
      for (const session of sessions) {
        pending.push(new Promise((resolve) => {
          victims.push(...start(session, (e) => {
            tally(outcome, e);
            resolve();
          }));
        }));
      }
      for (const b of victims) transferAway(b);
      gc!();
      // Reuse the freed memory while the workers run.
      const filler = Array.from({ length: 8 }, () => ownBuffer(2 * MIB, 0xee));
      await Promise.all(pending);
      filler.length = 0;
    }
    for (const session of sessions) app.closeSession(session);
  };
  const iv = () => ownBuffer(16, 1);
  // C_Encrypt with its input and output transferred away (AES-CBC: no output expansion surprises).
  await run("encrypt in+out", 8, (session, done) => {
    const input = ownBuffer(2 * MIB, 7), output = ownBuffer(2 * MIB + 16), parameter = iv();
    app.encryptInit(session, key, new Float64Array([H.CKM_AES_CBC_PAD, 1, 0, 0, 0]), parameter, null);
    app.encrypt(session, input, output, (e: Error | null) => done(e));
    return [input, output, parameter];
  });
  await run("encrypt input only", 4, (session, done) => {
    const input = ownBuffer(2 * MIB, 7), output = Buffer.alloc(2 * MIB + 16);
    app.encryptInit(session, key, new Float64Array([H.CKM_AES_CBC_PAD, 1, 0, 0, 0]), iv(), null);
    app.encrypt(session, input, output, (e: Error | null) => done(e));
    return [input];
  });
  await run("digest", 4, (session, done) => {
    const input = ownBuffer(4 * MIB, 9), output = ownBuffer(64);
    app.digestInit(session, new Float64Array([H.CKM_SHA256, 0, 0, 0, 0]), null, null);
    app.digest(session, input, output, (e: Error | null) => done(e));
    return [input, output];
  });
  await run("sign+verify", 4, (session, done) => {
    const input = ownBuffer(4 * MIB, 9), signature = ownBuffer(32, 1);
    app.verifyInit(session, hmacKey, new Float64Array([H.CKM_SHA256_HMAC, 0, 0, 0, 0]), null, null);
    app.verify(session, input, signature, (e: Error | null) => done(e));
    return [input, signature];
  });
  await run("wrapKey", 4, (session, done) => {
    const output = ownBuffer(MIB), parameter = iv();
    app.wrapKey(session, key, key, output, new Float64Array([H.CKM_AES_CBC_PAD, 1, 0, 0, 0]), parameter, null, (e: Error | null) => done(e));
    return [output, parameter];
  });
  await run("unwrapKey", 4, (session, done) => {
    const wrapped = ownBuffer(48, 5), template = encode([{ type: H.CKA_CLASS, value: H.CKO_SECRET_KEY }, { type: H.CKA_KEY_TYPE, value: H.CKK_GENERIC_SECRET }, { type: H.CKA_PRIVATE, value: false }]);
    const parameter = iv();
    const ownTemplate = ownBuffer(template.length);
    template.copy(ownTemplate);
    app.unwrapKey(session, key, wrapped, ownTemplate, new Float64Array([H.CKM_AES_CBC_PAD, 1, 0, 0, 0]), parameter, null, (e: Error | null) => done(e));
    return [wrapped, ownTemplate, parameter];
  });
  // Through the facade, the C_*Async forms.
  const pkcs11 = H.load("memory:?pinHashIterations=1");
  pkcs11.C_Initialize();
  pkcs11.C_InitToken(pkcs11.C_GetSlotList(true)[0], "so-pin-1234", "boundary");
  const session = pkcs11.C_OpenSession(pkcs11.C_GetSlotList(true)[0], RW);
  const facadeKey = pkcs11.C_CreateObject(session, [{ type: H.CKA_CLASS, value: H.CKO_SECRET_KEY }, { type: H.CKA_KEY_TYPE, value: H.CKK_AES },
    { type: H.CKA_VALUE, value: Buffer.alloc(32, 3) }, { type: H.CKA_PRIVATE, value: false }]);
  const outcome: Outcome = (results["C_EncryptAsync"] = { ok: 0, failed: {} });
  for (let i = 0; i < 12; i++) {
    pkcs11.C_EncryptInit(session, { mechanism: H.CKM_AES_GCM, parameter: { type: H.CK_PARAMS_AES_GCM, iv: Buffer.alloc(12), tagBits: 128 } }, facadeKey);
    const input = ownBuffer(4 * MIB, 1), output = ownBuffer(4 * MIB + 16);
    const call = pkcs11.C_EncryptAsync(session, input, output).then(() => tally(outcome, null), (e: Error) => tally(outcome, e));
    transferAway(input);
    transferAway(output);
    gc!();
    await call;
  }
  return results;
}

function sparseTemplate(): string {
  const chip = H.createChip({ pinHashIterations: 1 });
  chip.initToken(0, Buffer.from("so-pin-1234"), Buffer.from("boundary"));
  const app = chip;
  const s = app.openSession(0, RW);
  const outcomes: string[] = [];
  for (const length of [2 ** 32 - 1, 2 ** 31, 5000]) {
    const sparse: number[] = [];
    sparse.length = length;
    try {
      app.getAttributeValue(s, 1, sparse);
      outcomes.push("returned");
    } catch (e) {
      outcomes.push((e as Error).constructor.name);
    }
  }
  return outcomes.join(",");
}

const mode = process.argv[2];
if (mode === "async") {
  console.log(JSON.stringify(await asyncCalls()));
} else if (mode === "sparse") {
  console.log(JSON.stringify(sparseTemplate()));
} else {
  throw new Error(`unknown mode ${mode}`);
}
