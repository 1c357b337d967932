// A program written for pkcs11js and SoftHSMv2. It runs unchanged against hsmsim: only the
// import and the load line differ (see the README). It takes the module and the constants
// namespace so the same code runs against both in test/compat.test.ts.
import type * as pkcs11js from "pkcs11js";

type Constants = typeof pkcs11js;

export interface ProgramResult {
  decrypted: string;
  verified: boolean;
  unwrappedLength: number;
  labels: string[];
}

export function runProgram(pkcs11: pkcs11js.PKCS11, C: Constants, soPin = "12345678", userPin = "87654321"): ProgramResult {
  pkcs11.C_Initialize();
  try {
    const slot = pkcs11.C_GetSlotList(true)[0];
    pkcs11.C_InitToken(slot, soPin, "compat");
    const session = pkcs11.C_OpenSession(slot, C.CKF_RW_SESSION | C.CKF_SERIAL_SESSION);
    pkcs11.C_Login(session, C.CKU_SO, soPin);
    pkcs11.C_InitPIN(session, userPin);
    pkcs11.C_Logout(session);
    pkcs11.C_Login(session, C.CKU_USER, userPin);

    const aes = pkcs11.C_GenerateKey(session, { mechanism: C.CKM_AES_KEY_GEN }, [
      { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY },
      { type: C.CKA_TOKEN, value: false },
      { type: C.CKA_LABEL, value: "aes key" },
      { type: C.CKA_VALUE_LEN, value: 32 },
      { type: C.CKA_ENCRYPT, value: true },
      { type: C.CKA_DECRYPT, value: true },
      { type: C.CKA_WRAP, value: true },
      { type: C.CKA_UNWRAP, value: true },
      { type: C.CKA_EXTRACTABLE, value: true },
    ]);
    const iv = Buffer.alloc(16, 1);
    pkcs11.C_EncryptInit(session, { mechanism: C.CKM_AES_CBC_PAD, parameter: iv }, aes);
    const encrypted = Buffer.concat([
      pkcs11.C_EncryptUpdate(session, Buffer.from("Hello from a pkcs11js program"), Buffer.alloc(64)),
      pkcs11.C_EncryptFinal(session, Buffer.alloc(32)),
    ]);
    pkcs11.C_DecryptInit(session, { mechanism: C.CKM_AES_CBC_PAD, parameter: iv }, aes);
    const decrypted = pkcs11.C_Decrypt(session, encrypted, Buffer.alloc(64)).toString();

    const keys = pkcs11.C_GenerateKeyPair(session, { mechanism: C.CKM_EC_KEY_PAIR_GEN }, [
      { type: C.CKA_KEY_TYPE, value: C.CKK_EC },
      { type: C.CKA_LABEL, value: "ec public" },
      { type: C.CKA_EC_PARAMS, value: Buffer.from("06082A8648CE3D030107", "hex") },
      { type: C.CKA_VERIFY, value: true },
    ], [
      { type: C.CKA_KEY_TYPE, value: C.CKK_EC },
      { type: C.CKA_LABEL, value: "ec private" },
      { type: C.CKA_SIGN, value: true },
    ]);
    pkcs11.C_DigestInit(session, { mechanism: C.CKM_SHA256 });
    pkcs11.C_DigestUpdate(session, Buffer.from("mess"));
    pkcs11.C_DigestUpdate(session, Buffer.from("age"));
    const digest = pkcs11.C_DigestFinal(session, Buffer.alloc(32));
    pkcs11.C_SignInit(session, { mechanism: C.CKM_ECDSA }, keys.privateKey);
    const signature = pkcs11.C_Sign(session, digest, Buffer.alloc(256));
    pkcs11.C_VerifyInit(session, { mechanism: C.CKM_ECDSA }, keys.publicKey);
    const verified = pkcs11.C_Verify(session, digest, signature);

    const secret = pkcs11.C_GenerateKey(session, { mechanism: C.CKM_GENERIC_SECRET_KEY_GEN }, [
      { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY },
      { type: C.CKA_KEY_TYPE, value: C.CKK_GENERIC_SECRET },
      { type: C.CKA_VALUE_LEN, value: 24 },
      { type: C.CKA_EXTRACTABLE, value: true },
    ]);
    const wrapped = pkcs11.C_WrapKey(session, { mechanism: C.CKM_AES_KEY_WRAP }, aes, secret, Buffer.alloc(128));
    const unwrapped = pkcs11.C_UnwrapKey(session, { mechanism: C.CKM_AES_KEY_WRAP }, aes, wrapped, [
      { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY },
      { type: C.CKA_KEY_TYPE, value: C.CKK_GENERIC_SECRET },
      { type: C.CKA_TOKEN, value: false },
    ]);
    const [valueLen] = pkcs11.C_GetAttributeValue(session, unwrapped, [{ type: C.CKA_VALUE_LEN }]);

    pkcs11.C_FindObjectsInit(session, [{ type: C.CKA_CLASS, value: C.CKO_PRIVATE_KEY }]);
    const labels: string[] = [];
    let handle = pkcs11.C_FindObjects(session);
    while (handle) {
      labels.push(pkcs11.C_GetAttributeValue(session, handle, [{ type: C.CKA_LABEL }])[0].value!.toString());
      handle = pkcs11.C_FindObjects(session);
    }
    pkcs11.C_FindObjectsFinal(session);
    pkcs11.C_Logout(session);
    pkcs11.C_CloseSession(session);
    return { decrypted, verified, unwrappedLength: valueLen.value!.readUInt32LE(0), labels };
  } finally {
    pkcs11.C_Finalize();
  }
}
