// `hsmsim demo`: a guided run over a fresh token, readable by a person.
import { randomBytes } from "node:crypto";

import * as P from "../pkcs11/index.js";
import { PKCS11 } from "../pkcs11/pkcs11.js";
import { defineCommand } from "./command.js";
import { runClusterDemo } from "./cluster-demo.js";
import { runDeviceDemo } from "./device-demo.js";
import { type Output, hexPreview, textOutput } from "./format.js";
import { runLiveClusterDemo } from "./live-demo.js";
import { runKmsDemo } from "./kms-demo.js";
import { runSizingDemo } from "./sizing-demo.js";
import { throughput } from "./throughput.js";

const SO_PIN = "demo-so-pin";
const USER_PIN = "demo-user-pin";

function expectError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof P.Pkcs11Error) return e.message;
    throw e;
  }
  throw new Error("the demo expected this call to fail");
}

function pinFlags(flags: number): string {
  const names = [
    [P.CKF_USER_PIN_COUNT_LOW, "USER_PIN_COUNT_LOW"],
    [P.CKF_USER_PIN_FINAL_TRY, "USER_PIN_FINAL_TRY"],
    [P.CKF_USER_PIN_LOCKED, "USER_PIN_LOCKED"],
  ] as const;
  return names.filter(([bit]) => flags & bit).map(([, name]) => name).join(" | ") || "none";
}

export function runDemo(out: Output, options: { benchMs?: number } = {}): void {
  const pkcs11 = new PKCS11("memory:");
  pkcs11.C_Initialize();
  const info = pkcs11.C_GetInfo();
  out.step("Load an in-memory token set");
  out.line(`${info.manufacturerID.trim()} ${info.libraryVersion.major}.${info.libraryVersion.minor}, PKCS#11 ${info.cryptokiVersion.major}.${info.cryptokiVersion.minor}`);
  const [slot] = pkcs11.C_GetSlotList(true);
  out.line(`slots: ${pkcs11.C_GetSlotList(true).length} (one free, uninitialized token)`);

  out.step("Initialize the token, set the user PIN, log in");
  pkcs11.C_InitToken(slot, SO_PIN, "hsmsim demo");
  out.line(`C_InitToken: label "hsmsim demo"; a new free slot appeared: ${pkcs11.C_GetSlotList(true).length} slots now`);
  const session = pkcs11.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
  pkcs11.C_Login(session, P.CKU_SO, SO_PIN);
  pkcs11.C_InitPIN(session, USER_PIN);
  pkcs11.C_Logout(session);
  pkcs11.C_Login(session, P.CKU_USER, USER_PIN);
  out.line(`SO set the user PIN; the user is logged in (session state ${pkcs11.C_GetSessionInfo(session).state} = CKS_RW_USER_FUNCTIONS)`);

  out.step("Generate an AES-256 key and an EC P-256 key pair inside the token");
  const aes = pkcs11.C_GenerateKey(session, { mechanism: P.CKM_AES_KEY_GEN }, [
    { type: P.CKA_VALUE_LEN, value: 32 }, { type: P.CKA_LABEL, value: "demo aes" }, { type: P.CKA_EXTRACTABLE, value: false },
  ]);
  const ec = pkcs11.C_GenerateKeyPair(session, { mechanism: P.CKM_EC_KEY_PAIR_GEN },
    [{ type: P.CKA_EC_PARAMS, value: Buffer.from("06082a8648ce3d030107", "hex") }, { type: P.CKA_VERIFY, value: true }],
    [{ type: P.CKA_SIGN, value: true }]);
  const [point] = pkcs11.C_GetAttributeValue(session, ec.publicKey, [{ type: P.CKA_EC_POINT }]);
  out.line(`AES key handle ${aes.readUInt32LE(0)}; its value is sensitive: C_GetAttributeValue(CKA_VALUE) → ${expectError(() => pkcs11.C_GetAttributeValue(session, aes, [{ type: P.CKA_VALUE }]))}`);
  out.line(`EC public point ${hexPreview(point.value)}`);

  out.step("Encrypt and decrypt with AES-256-GCM");
  const iv = randomBytes(12);
  const gcm = { mechanism: P.CKM_AES_GCM, parameter: { type: P.CK_PARAMS_AES_GCM, iv, aad: Buffer.from("header"), tagBits: 128 } };
  pkcs11.C_EncryptInit(session, gcm, aes);
  const sealed = Buffer.from(pkcs11.C_Encrypt(session, Buffer.from("Attack at dawn"), Buffer.alloc(64)));
  out.line(`ciphertext‖tag ${hexPreview(sealed, 30)}`);
  pkcs11.C_DecryptInit(session, gcm, aes);
  out.line(`decrypted: "${pkcs11.C_Decrypt(session, sealed, Buffer.alloc(64)).toString()}"`);
  sealed[0] ^= 1;
  pkcs11.C_DecryptInit(session, gcm, aes);
  out.line(`one flipped bit: ${expectError(() => pkcs11.C_Decrypt(session, sealed, Buffer.alloc(64)))}`);

  out.step("Sign and verify with ECDSA P-256");
  const message = Buffer.from("pay 100 to Alice");
  pkcs11.C_SignInit(session, { mechanism: P.CKM_ECDSA_SHA256 }, ec.privateKey);
  const signature = Buffer.from(pkcs11.C_Sign(session, message, Buffer.alloc(64)));
  out.line(`signature r‖s ${hexPreview(signature)}`);
  pkcs11.C_VerifyInit(session, { mechanism: P.CKM_ECDSA_SHA256 }, ec.publicKey);
  out.line(`verify original: ${pkcs11.C_Verify(session, message, signature)}`);
  pkcs11.C_VerifyInit(session, { mechanism: P.CKM_ECDSA_SHA256 }, ec.publicKey);
  out.line(`verify "pay 900 to Alice": ${expectError(() => pkcs11.C_Verify(session, Buffer.from("pay 900 to Alice"), signature))}`);

  out.step("Wrap and unwrap a key (AES key wrap with padding, RFC 5649)");
  const kek = pkcs11.C_GenerateKey(session, { mechanism: P.CKM_AES_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 32 }]);
  const shared = pkcs11.C_GenerateKey(session, { mechanism: P.CKM_AES_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 16 }, { type: P.CKA_EXTRACTABLE, value: true }]);
  const wrapped = Buffer.from(pkcs11.C_WrapKey(session, { mechanism: P.CKM_AES_KEY_WRAP_KWP }, kek, shared, Buffer.alloc(64)));
  out.line(`wrapped key ${hexPreview(wrapped)}`);
  const unwrapped = pkcs11.C_UnwrapKey(session, { mechanism: P.CKM_AES_KEY_WRAP_KWP }, kek, wrapped, [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES }, { type: P.CKA_ENCRYPT, value: true },
  ]);
  const sample = (key: Buffer) => {
    pkcs11.C_EncryptInit(session, { mechanism: P.CKM_AES_ECB }, key);
    return Buffer.from(pkcs11.C_Encrypt(session, Buffer.alloc(16), Buffer.alloc(16))).toString("hex");
  };
  out.line(`original and unwrapped key encrypt alike: ${sample(shared) === sample(unwrapped)}`);
  out.line(`wrapping the non-extractable demo key: ${expectError(() => pkcs11.C_WrapKey(session, { mechanism: P.CKM_AES_KEY_WRAP_KWP }, kek, aes, Buffer.alloc(64)))}`);

  out.step("Lock the user out with wrong PINs (SoftHSMv2 has no lockout; hsmsim does)");
  pkcs11.C_Logout(session);
  for (let attempt = 1; attempt <= 5; attempt++) {
    const result = expectError(() => pkcs11.C_Login(session, P.CKU_USER, "not-the-pin"));
    out.line(`wrong PIN #${attempt}: ${result}; token flags: ${pinFlags(pkcs11.C_GetTokenInfo(slot).flags)}`);
  }
  out.line(`right PIN now: ${expectError(() => pkcs11.C_Login(session, P.CKU_USER, USER_PIN))}`);
  pkcs11.C_Login(session, P.CKU_SO, SO_PIN);
  pkcs11.C_InitPIN(session, USER_PIN);
  pkcs11.C_Logout(session);
  pkcs11.C_Login(session, P.CKU_USER, USER_PIN);
  out.line("the SO reset the PIN with C_InitPIN; the user logs in again");

  out.step("Throughput through the PKCS#11 API (this machine, this run)");
  const rows = throughput(pkcs11, session, options.benchMs ?? 250);
  out.table(["operation", "ops/s"], rows.map((r) => [r.operation, r.opsPerSecond]));
  out.line("side by side with SoftHSMv2 and node:crypto: npm run bench");
  pkcs11.C_Finalize();
}

export const demoCommand = defineCommand({
  name: "demo",
  summary: "guided run over a fresh token, an HSM, a simulated 3-HSM cluster, sizing, KMS over the cluster, and a real cluster (what `npm start` runs)",
  description: `The last part starts a real cluster (hsmsim up: a supervisor and 3 HSM processes on 127.x.y.2–4, a
random high port, a temporary folder), runs an application in a second process against it and
kill -9s an HSM mid-run; it stops everything and removes the folder, also on failure (exit code 1).`,
  options: {
    "simulated-only": { type: "boolean", description: "skip the last part (the real cluster of processes on loopback addresses)" },
  },
  async run({ values, io }) {
    const out = textOutput((t) => io.stdout.write(t));
    runDemo(out);
    runDeviceDemo(out);
    runClusterDemo(out);
    runSizingDemo(out);
    await runKmsDemo(out);
    if (values["simulated-only"]) return 0;
    const live = await runLiveClusterDemo(out);
    if (!live.ok) {
      io.stderr.write(`hsmsim demo: the real-time cluster part failed: ${live.failure}\n`);
      return 1;
    }
    return 0;
  },
});
