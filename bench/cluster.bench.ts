// What the simulated cluster costs in wall-clock time per operation: the same AES-GCM 4 KiB
// encrypt through the chip, through one HSM's CU session, and through the cluster client over
// the simulated network (three HSMs, messages, queues, replication), in one run; and the seed
// sweep's runs per second. Run: npx tsx bench/cluster.bench.ts [--time MS] [--seeds N]
import * as crypto from "node:crypto";

import { Bench } from "tinybench";

import * as P from "../src/index.js";
import { devicePeer, hsmsimPeer, numberOption } from "./peers.js";

const timeMs = numberOption("--time", 600);
const seeds = numberOption("--seeds", 50);

const device = devicePeer({ passwordCost: 1 });

const world = new P.World({ seed: "bench", cluster: { hsmCount: 3 } });
world.cluster.initialize();
const app = world.connect("bench");
app.console("admin", "password").changePassword("admin", "admin-password");
app.console("admin", "admin-password").createUser("alice", "CU", "alice-password");
const alice = app.login("alice", "alice-password");
const chip = hsmsimPeer();

const aesTemplate: P.Template = [{ type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
  { type: P.CKA_VALUE, value: crypto.randomBytes(32) }, { type: P.CKA_TOKEN, value: true }, { type: P.CKA_ENCRYPT, value: true }];
const paths = [
  { name: "chip", pkcs11: chip.pkcs11 as P.PKCS11, session: chip.session },
  { name: "HSM (CU session)", pkcs11: device.pkcs11, session: device.session },
  { name: "cluster client (simulated network)", pkcs11: alice.pkcs11, session: alice.session },
].map((p) => ({ ...p, aes: p.pkcs11.C_CreateObject(p.session, aesTemplate) }));

const gcm: P.Mechanism = { mechanism: P.CKM_AES_GCM, parameter: { type: P.CK_PARAMS_AES_GCM, iv: crypto.randomBytes(12), tagBits: 128 } };
const block = crypto.randomBytes(4096), out = Buffer.alloc(4112);
const bench = new Bench({ time: timeMs, warmupTime: 100 });
for (const p of paths) {
  bench.add(p.name, () => {
    p.pkcs11.C_EncryptInit(p.session, gcm, p.aes);
    p.pkcs11.C_Encrypt(p.session, block, out);
  });
}
await bench.run();
const opsPerSecond = Object.fromEntries(bench.tasks.map((t) => [t.name, (t.result as { throughput: { mean: number } }).throughput.mean]));
console.log("AES-256-GCM encrypt 4 KiB (C_EncryptInit + C_Encrypt), wall-clock");
console.table(Object.entries(opsPerSecond).map(([path, ops]) => ({ path, "ops/s": Math.round(ops), "÷ chip": +(ops / opsPerSecond.chip).toFixed(4) })));

const sweep = await P.sweep(1, seeds);
console.log(`seed sweep: ${sweep.runs} runs, ${sweep.failed.length} failed, ${sweep.runsPerSecond.toFixed(2)} runs/s`);

world.dispose();
device.close();
