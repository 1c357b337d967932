// A quick in-process throughput table of the chip through the PKCS11 facade (no peers:
// the side-by-side comparison with SoftHSMv2 and node:crypto is `npm run bench`).
import { randomBytes } from "node:crypto";

import * as P from "../pkcs11/index.js";
import { AGAINST_HELP, AGAINST_OPTIONS, checkAgainstOptions, runBenchAgainst } from "./bench-against-cli.js";
import { defineCommand, shared, wholeNumber } from "./command.js";
import { textOutput } from "./format.js";

export interface ThroughputRow {
  operation: string;
  opsPerSecond: number;
}

function measure(durationMs: number, fn: () => void): number {
  for (let i = 0; i < 200; i++) fn(); // warm up
  let count = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(durationMs) * 1_000_000n;
  let elapsed = 0n;
  while (elapsed < budget) {
    for (let i = 0; i < 100; i++) fn();
    count += 100;
    elapsed = process.hrtime.bigint() - start;
  }
  return Math.round(count / (Number(elapsed) / 1e9));
}

/** Measures common operations on a logged-in R/W session of `pkcs11`. */
export function throughput(pkcs11: P.PKCS11, session: Buffer, durationMs = 250): ThroughputRow[] {
  const aes = pkcs11.C_GenerateKey(session, { mechanism: P.CKM_AES_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 32 }]);
  const hmac = pkcs11.C_GenerateKey(session, { mechanism: P.CKM_GENERIC_SECRET_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 32 }]);
  const ec = pkcs11.C_GenerateKeyPair(session, { mechanism: P.CKM_EC_KEY_PAIR_GEN },
    [{ type: P.CKA_EC_PARAMS, value: Buffer.from("06082a8648ce3d030107", "hex") }], [{ type: P.CKA_SIGN, value: true }]);
  const iv = randomBytes(12), block = randomBytes(4096), small = randomBytes(64), digest = randomBytes(32);
  const out = Buffer.alloc(4112), mac = Buffer.alloc(32), sig = Buffer.alloc(64), random = Buffer.alloc(32);
  const gcm = { mechanism: P.CKM_AES_GCM, parameter: { type: P.CK_PARAMS_AES_GCM, iv, tagBits: 128 } };
  const rows: ThroughputRow[] = [
    { operation: "AES-256-GCM encrypt 4 KiB", opsPerSecond: measure(durationMs, () => {
      pkcs11.C_EncryptInit(session, gcm, aes);
      pkcs11.C_Encrypt(session, block, out);
    }) },
    { operation: "HMAC-SHA256 sign 64 B", opsPerSecond: measure(durationMs, () => {
      pkcs11.C_SignInit(session, { mechanism: P.CKM_SHA256_HMAC }, hmac);
      pkcs11.C_Sign(session, small, mac);
    }) },
    { operation: "ECDSA P-256 sign", opsPerSecond: measure(durationMs, () => {
      pkcs11.C_SignInit(session, { mechanism: P.CKM_ECDSA }, ec.privateKey);
      pkcs11.C_Sign(session, digest, sig);
    }) },
    { operation: "C_GenerateRandom 32 B", opsPerSecond: measure(durationMs, () => void pkcs11.C_GenerateRandom(session, random)) },
  ];
  for (const key of [aes, hmac, ec.privateKey, ec.publicKey]) pkcs11.C_DestroyObject(session, key);
  return rows;
}

export const benchCommand = defineCommand({
  name: "bench",
  summary: "throughput of the chip through the PKCS#11 API, or (--against) of a running cluster under a load generator",
  description: `Without --against: a quick in-process table of the chip's throughput (side by side with SoftHSMv2: npm run bench).

${AGAINST_HELP}`,
  options: {
    ...shared.json,
    ms: { type: "string", valueName: "N", parse: wholeNumber(10, 600_000), description: "milliseconds per operation of the in-process table (default 500)" },
    ...AGAINST_OPTIONS,
  },
  conflicts: [["rate", "saturate"], ["ms", "against"]],
  examples: [
    "hsmsim bench",
    "hsmsim bench --against 127.0.0.2:2223 --ca .hsmsim/pki/customerCA.crt --user bench:bench-password-1 --saturate --op ecdsa-p256-sign",
    "hsmsim bench --against 127.0.0.2 --ca .hsmsim/pki/customerCA.crt --user bench:bench-password-1 --rate 2000 --op ecdsa-p256-sign=3 --op aes-gcm-4k --charts out/",
  ],
  async run({ values, io }) {
    checkAgainstOptions(values);
    if (values.against !== undefined) return runBenchAgainst(values, io);
    const pkcs11 = new P.PKCS11("memory:");
    pkcs11.C_Initialize();
    const { session } = P.openUserSession(pkcs11, { soPin: "cli-so-pin", userPin: "cli-user-pin" });
    const rows = throughput(pkcs11, session, values.ms ?? 500);
    pkcs11.C_Finalize();
    if (values.json) io.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    else textOutput((t) => io.stdout.write(t)).table(["operation", "ops/s"], rows.map((r) => [r.operation, r.opsPerSecond]));
    return 0;
  },
});
