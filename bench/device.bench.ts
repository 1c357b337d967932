// The device's cost: the crypto path through a logged-in CU session of an HSM (ownership
// checks, per-application login) side by side with the chip's own path, in one run; and the
// login rate, which is slow on purpose (scrypt). Run: npx tsx bench/device.bench.ts [--time MS]
import * as crypto from "node:crypto";

import { Bench } from "tinybench";

import * as P from "../src/index.js";
import { devicePeer, hsmsimPeer, numberOption } from "./peers.js";

const timeMs = numberOption("--time", 600);
const device = devicePeer();
const hsm = device.hsm;
const chip = hsmsimPeer();

const keyBytes = crypto.randomBytes(32);
const aesTemplate: P.Template = [{ type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
  { type: P.CKA_VALUE, value: keyBytes }, { type: P.CKA_TOKEN, value: true }];
const hmacTemplate: P.Template = [{ type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET },
  { type: P.CKA_VALUE, value: keyBytes }, { type: P.CKA_TOKEN, value: true }];
const paths = [
  { name: "chip", pkcs11: chip.pkcs11, session: chip.session },
  { name: "HSM (CU session)", pkcs11: device.pkcs11, session: device.session },
].map((p) => ({ ...p, aes: p.pkcs11.C_CreateObject(p.session, aesTemplate), hmac: p.pkcs11.C_CreateObject(p.session, hmacTemplate) }));

const gcm: P.Mechanism = { mechanism: P.CKM_AES_GCM, parameter: { type: P.CK_PARAMS_AES_GCM, iv: crypto.randomBytes(12), tagBits: 128 } };
const block = crypto.randomBytes(4096), small = crypto.randomBytes(64), out = Buffer.alloc(4112), mac = Buffer.alloc(32);

const results: Record<string, Record<string, number>> = {};
for (const [label, make] of [
  ["AES-256-GCM encrypt 4 KiB", (p: (typeof paths)[number]) => () => {
    p.pkcs11.C_EncryptInit(p.session, gcm, p.aes);
    p.pkcs11.C_Encrypt(p.session, block, out);
  }],
  ["HMAC-SHA256 sign 64 B", (p: (typeof paths)[number]) => () => {
    p.pkcs11.C_SignInit(p.session, { mechanism: P.CKM_SHA256_HMAC }, p.hmac);
    p.pkcs11.C_Sign(p.session, small, mac);
  }],
] as const) {
  const bench = new Bench({ time: timeMs, warmupTime: 100 });
  for (const p of paths) bench.add(p.name, make(p));
  await bench.run();
  results[label] = Object.fromEntries(bench.tasks.map((t) => [t.name, (t.result as { throughput: { mean: number } }).throughput.mean]));
}

// Logins: each one is a scrypt (N = 2^15) over the password, by design.
const loginStart = process.hrtime.bigint();
let logins = 0;
while (process.hrtime.bigint() - loginStart < BigInt(timeMs * 3) * 1_000_000n) {
  hsm.logout(hsm.login("alice", "alice-password"));
  logins++;
}
const loginsPerSecond = logins / (Number(process.hrtime.bigint() - loginStart) / 1e9);

console.log("| operation | chip ops/s | HSM CU session ops/s | HSM ÷ chip |");
console.log("|---|---:|---:|---:|");
for (const [label, r] of Object.entries(results)) {
  console.log(`| ${label} | ${Math.round(r.chip).toLocaleString("en-US")} | ${Math.round(r["HSM (CU session)"]).toLocaleString("en-US")} | ${(r["HSM (CU session)"] / r.chip).toFixed(2)} |`);
}
console.log(`\nlogin (management API, scrypt N=2^15): ${loginsPerSecond.toFixed(1)} per second, ${(1000 / loginsPerSecond).toFixed(0)} ms each`);
const worst = Math.min(...Object.values(results).map((r) => r["HSM (CU session)"] / r.chip));
console.log(`target: the CU path within 10% of the chip's: ${worst >= 0.9 ? "MET" : "MISS"} (worst ratio ${worst.toFixed(2)})`);
device.close();
chip.close();
