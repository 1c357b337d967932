// Child of call-log.test.ts: a program run with HSMSIM_PKCS11_LOG set, making every call that
// carries a secret; prints (on stdout, as JSON) every secret it handled, for the parent to look
// for in the log.
import { randomBytes } from "node:crypto";

import * as P from "../../src/index.js";

const secrets: Record<string, Buffer> = {};
const keep = (name: string, value: Buffer) => ((secrets[name] = Buffer.from(value)), value);

const SO_PIN = "so-Zq8#pin-4471", USER_PIN = "usr-Kx2!pin-9013", NEW_PIN = "new-Vv5$pin-2286", WRONG_PIN = "bad-Rr7%pin-6650";
for (const [name, pin] of Object.entries({ SO_PIN, USER_PIN, NEW_PIN, WRONG_PIN })) keep(name, Buffer.from(pin));
const keyBytes = keep("keyBytes", randomBytes(32));
const plaintext = keep("plaintext", Buffer.from("Attack at dawn, gate 7, code word PELICAN"));
const hmacKey = keep("hmacKey", randomBytes(32));

const pkcs11 = new P.PKCS11();
pkcs11.load("memory:");
pkcs11.C_Initialize();
const [slot] = pkcs11.C_GetSlotList(true);
pkcs11.C_InitToken(slot, SO_PIN, "log test");
const session = pkcs11.C_OpenSession(slot, P.CKF_RW_SESSION | P.CKF_SERIAL_SESSION);
pkcs11.C_Login(session, P.CKU_SO, SO_PIN);
pkcs11.C_InitPIN(session, USER_PIN);
pkcs11.C_Logout(session);
try {
  pkcs11.C_Login(session, P.CKU_USER, WRONG_PIN);
} catch {
  // expected: CKR_PIN_INCORRECT, which the log must show
}
pkcs11.C_Login(session, P.CKU_USER, USER_PIN);
pkcs11.C_SetPIN(session, USER_PIN, NEW_PIN);

const aes = pkcs11.C_CreateObject(session, [
  { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES }, { type: P.CKA_VALUE, value: keyBytes },
  { type: P.CKA_LABEL, value: "visible-label" }, { type: P.CKA_ENCRYPT, value: true }, { type: P.CKA_DECRYPT, value: true },
  { type: P.CKA_WRAP, value: true }, { type: P.CKA_EXTRACTABLE, value: true }, { type: P.CKA_SENSITIVE, value: false },
]);
const hmac = pkcs11.C_CreateObject(session, [
  { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET }, { type: P.CKA_VALUE, value: hmacKey },
  { type: P.CKA_SIGN, value: true }, { type: P.CKA_EXTRACTABLE, value: true }, { type: P.CKA_SENSITIVE, value: false },
]);
const [read] = pkcs11.C_GetAttributeValue(session, aes, [{ type: P.CKA_VALUE }]);
keep("readBack", read.value as Buffer);

const gcm = { mechanism: P.CKM_AES_GCM, parameter: { type: P.CK_PARAMS_AES_GCM, iv: randomBytes(12), aad: Buffer.from("hdr"), tagBits: 128 } };
pkcs11.C_EncryptInit(session, gcm, aes);
const sealed = keep("ciphertext", pkcs11.C_Encrypt(session, plaintext, Buffer.alloc(128)));
pkcs11.C_DecryptInit(session, gcm, aes);
keep("decrypted", pkcs11.C_Decrypt(session, sealed, Buffer.alloc(128)));
pkcs11.C_SignInit(session, { mechanism: P.CKM_SHA256_HMAC }, hmac);
keep("mac", pkcs11.C_Sign(session, plaintext, Buffer.alloc(32)));
keep("random", pkcs11.C_GenerateRandom(session, Buffer.alloc(32)));
const wrapped = keep("wrapped", pkcs11.C_WrapKey(session, { mechanism: P.CKM_AES_KEY_WRAP_PAD }, aes, hmac, Buffer.alloc(64)));
void wrapped;

// The async and callback forms go through the same wrappers.
await pkcs11.C_EncryptInit(session, gcm, aes);
keep("asyncCiphertext", await pkcs11.C_EncryptAsync(session, plaintext, Buffer.alloc(128)));

pkcs11.C_Finalize();
pkcs11.close();
process.stdout.write(JSON.stringify(Object.fromEntries(Object.entries(secrets).map(([k, v]) => [k, v.toString("hex")]))));
