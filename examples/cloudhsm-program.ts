// A pkcs11js program written for AWS CloudHSM (its PKCS#11 library logs a crypto user in with
// C_Login(session, CKU_USER, "name:password")). It runs unchanged against an hsmsim cluster:
// only the load line differs —
//   CloudHSM: const pkcs11 = new pkcs11js.PKCS11(); pkcs11.load("/opt/cloudhsm/lib/libcloudhsm_pkcs11.so");
//   hsmsim:   const pkcs11 = load("cloudhsm://127.0.0.2:2223?ca=.hsmsim/pki/customerCA.crt");
// It makes an AES token key, encrypts and decrypts with AES-GCM (IV from the HSM), shows a
// tampered ciphertext refused, signs and verifies with ECDSA P-256, finds its key by label,
// and deletes what it made.
import type * as pkcs11js from "pkcs11js";

import * as C from "../src/pkcs11/constants.js";

export interface CloudHsmProgramResult {
  decrypted: string;
  verified: boolean;
  tampered: string;
  foundByLabel: number;
}

export function runCloudHsmProgram(pkcs11: pkcs11js.PKCS11, credentials: string): CloudHsmProgramResult {
  pkcs11.C_Initialize();
  try {
    const slot = pkcs11.C_GetSlotList(true)[0];
    const session = pkcs11.C_OpenSession(slot, C.CKF_RW_SESSION | C.CKF_SERIAL_SESSION);
    pkcs11.C_Login(session, C.CKU_USER, credentials);
    const label = `app-key-${process.pid}-${Date.now()}`;
    const key = pkcs11.C_GenerateKey(session, { mechanism: C.CKM_AES_KEY_GEN }, [
      { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }, { type: C.CKA_KEY_TYPE, value: C.CKK_AES }, { type: C.CKA_VALUE_LEN, value: 32 },
      { type: C.CKA_TOKEN, value: true }, { type: C.CKA_LABEL, value: label }, { type: C.CKA_ENCRYPT, value: true }, { type: C.CKA_DECRYPT, value: true },
    ]);
    const iv = pkcs11.C_GenerateRandom(session, Buffer.alloc(12));
    const gcm = { mechanism: C.CKM_AES_GCM, parameter: { type: C.CK_PARAMS_AES_GCM, iv, aad: Buffer.from("header"), tagBits: 128 } };
    pkcs11.C_EncryptInit(session, gcm, key);
    const sealed = Buffer.from(pkcs11.C_Encrypt(session, Buffer.from("hello from a CloudHSM program"), Buffer.alloc(1024)));
    pkcs11.C_DecryptInit(session, gcm, key);
    const decrypted = pkcs11.C_Decrypt(session, sealed, Buffer.alloc(1024)).toString();
    sealed[sealed.length - 1] ^= 1;
    let tampered = "accepted";
    pkcs11.C_DecryptInit(session, gcm, key);
    try {
      pkcs11.C_Decrypt(session, sealed, Buffer.alloc(1024));
    } catch (e) {
      tampered = (e as Error).message;
    }

    const { publicKey, privateKey } = pkcs11.C_GenerateKeyPair(session, { mechanism: C.CKM_EC_KEY_PAIR_GEN },
      [{ type: C.CKA_EC_PARAMS, value: Buffer.from("06082a8648ce3d030107", "hex") }, { type: C.CKA_VERIFY, value: true }, { type: C.CKA_TOKEN, value: false }],
      [{ type: C.CKA_SIGN, value: true }, { type: C.CKA_TOKEN, value: false }]);
    pkcs11.C_SignInit(session, { mechanism: C.CKM_ECDSA_SHA256 }, privateKey);
    const signature = pkcs11.C_Sign(session, Buffer.from("message"), Buffer.alloc(128));
    pkcs11.C_VerifyInit(session, { mechanism: C.CKM_ECDSA_SHA256 }, publicKey);
    const verified = pkcs11.C_Verify(session, Buffer.from("message"), signature);

    pkcs11.C_FindObjectsInit(session, [{ type: C.CKA_LABEL, value: label }]);
    const found = pkcs11.C_FindObjects(session, 10);
    pkcs11.C_FindObjectsFinal(session);
    pkcs11.C_DestroyObject(session, key);
    pkcs11.C_Logout(session);
    pkcs11.C_CloseSession(session);
    return { decrypted, verified, tampered, foundByLabel: found.length };
  } finally {
    pkcs11.C_Finalize();
    pkcs11.close();
  }
}
