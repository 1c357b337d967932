// A pkcs11js-style program run as a child process by file-token.test.ts: it loads
// `file:<folder>` and does one job, printing one JSON line per result. With `hang` it then
// waits (the parent kills it with SIGKILL, or it holds the folder's lock).
//   make FOLDER           C_InitToken, C_InitPIN, an AES token key, an imported AES key, an EC pair; encrypts and signs
//   use FOLDER            finds the keys by label, decrypts, verifies, signs again
//   login FOLDER PIN      one C_Login as the user: prints the result
//   create FOLDER LABEL   a token object by C_CreateObject and one by C_GenerateKeyAsync, then hangs
//   destroy FOLDER LABEL  destroys the token objects with that label, then hangs
//   hold FOLDER           loads, then hangs (holds the lock)
import * as P from "../src/pkcs11/index.js";

const [mode, folder, arg] = process.argv.slice(2);
const PARAMS_P256 = Buffer.from("06082a8648ce3d030107", "hex");
const IMPORTED_KEY = Buffer.from("9f1c2a7e5b3d4c6f8a0e1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a", "hex");
const DATA = Buffer.from("persisted across processes");
const IV = Buffer.alloc(12, 7);

function say(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function codeOf(e: unknown): string {
  return e instanceof P.Pkcs11Error ? e.message : `${(e as Error).name}:${(e as Error).message}`;
}

function userSession(pkcs11: P.PKCS11, pin = "user-pin-1"): Buffer {
  const slot = pkcs11.C_GetSlotList(true)[0];
  const session = pkcs11.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
  pkcs11.C_Login(session, P.CKU_USER, pin);
  return session;
}

function find(pkcs11: P.PKCS11, session: Buffer, template: P.Template): Buffer[] {
  pkcs11.C_FindObjectsInit(session, template);
  const found = pkcs11.C_FindObjects(session, 100);
  pkcs11.C_FindObjectsFinal(session);
  return found;
}

const gcm = { mechanism: P.CKM_AES_GCM, parameter: { type: P.CK_PARAMS_AES_GCM, iv: IV, tagBits: 128 } };

async function main(): Promise<void> {
  const pkcs11 = new P.PKCS11();
  try {
    pkcs11.load(`file:${folder}?pinHashIterations=64`);
  } catch (e) {
    say({ loadError: (e as { code?: string }).code ?? codeOf(e) });
    return;
  }
  pkcs11.C_Initialize();
  switch (mode) {
    case "make": {
      const slot = pkcs11.C_GetSlotList(true)[0];
      pkcs11.C_InitToken(slot, "so-pin-1", "app token");
      let session = pkcs11.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
      pkcs11.C_Login(session, P.CKU_SO, "so-pin-1");
      pkcs11.C_InitPIN(session, "user-pin-1");
      pkcs11.C_Logout(session);
      pkcs11.C_CloseSession(session);
      session = userSession(pkcs11);
      const aes = pkcs11.C_GenerateKey(session, { mechanism: P.CKM_AES_KEY_GEN }, [
        { type: P.CKA_TOKEN, value: true }, { type: P.CKA_LABEL, value: "aes-1" }, { type: P.CKA_VALUE_LEN, value: 32 },
        { type: P.CKA_ENCRYPT, value: true }, { type: P.CKA_DECRYPT, value: true }]);
      pkcs11.C_CreateObject(session, [
        { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES }, { type: P.CKA_TOKEN, value: true },
        { type: P.CKA_SENSITIVE, value: true }, { type: P.CKA_EXTRACTABLE, value: false }, { type: P.CKA_LABEL, value: "imported" },
        { type: P.CKA_VALUE, value: IMPORTED_KEY }, { type: P.CKA_ENCRYPT, value: true }, { type: P.CKA_DECRYPT, value: true }]);
      const { privateKey, publicKey } = pkcs11.C_GenerateKeyPair(session, { mechanism: P.CKM_EC_KEY_PAIR_GEN },
        [{ type: P.CKA_TOKEN, value: true }, { type: P.CKA_LABEL, value: "ec-1" }, { type: P.CKA_EC_PARAMS, value: PARAMS_P256 }, { type: P.CKA_VERIFY, value: true }],
        [{ type: P.CKA_TOKEN, value: true }, { type: P.CKA_LABEL, value: "ec-1" }, { type: P.CKA_SIGN, value: true }]);
      // A session key: it must not come back in the next process.
      pkcs11.C_GenerateKey(session, { mechanism: P.CKM_AES_KEY_GEN }, [{ type: P.CKA_TOKEN, value: false }, { type: P.CKA_LABEL, value: "session-only" }, { type: P.CKA_VALUE_LEN, value: 16 }]);
      pkcs11.C_EncryptInit(session, gcm, aes);
      const ciphertext = pkcs11.C_Encrypt(session, DATA, Buffer.alloc(DATA.length + 16));
      pkcs11.C_SignInit(session, { mechanism: P.CKM_ECDSA }, privateKey);
      const digest = Buffer.alloc(32, 3);
      const signature = pkcs11.C_Sign(session, digest, Buffer.alloc(64));
      const point = pkcs11.C_GetAttributeValue(session, publicKey, [{ type: P.CKA_EC_POINT }])[0].value as Buffer;
      say({ ciphertext: ciphertext.toString("hex"), signature: signature.toString("hex"), point: point.toString("hex"), serial: pkcs11.C_GetTokenInfo(slot).serialNumber });
      break;
    }
    case "use": {
      const session = userSession(pkcs11);
      const [aes] = find(pkcs11, session, [{ type: P.CKA_LABEL, value: "aes-1" }, { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }]);
      pkcs11.C_DecryptInit(session, gcm, aes);
      const plain = pkcs11.C_Decrypt(session, Buffer.from(arg, "hex"), Buffer.alloc(64));
      const [priv] = find(pkcs11, session, [{ type: P.CKA_LABEL, value: "ec-1" }, { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY }]);
      const [pub] = find(pkcs11, session, [{ type: P.CKA_LABEL, value: "ec-1" }, { type: P.CKA_CLASS, value: P.CKO_PUBLIC_KEY }]);
      const digest = Buffer.alloc(32, 3);
      pkcs11.C_SignInit(session, { mechanism: P.CKM_ECDSA }, priv);
      const signature = pkcs11.C_Sign(session, digest, Buffer.alloc(64));
      pkcs11.C_VerifyInit(session, { mechanism: P.CKM_ECDSA }, pub);
      const verified = pkcs11.C_Verify(session, digest, signature);
      const [imported] = find(pkcs11, session, [{ type: P.CKA_LABEL, value: "imported" }]);
      const sensitive = pkcs11.getAttributeValues(session, imported, [{ type: P.CKA_VALUE }, { type: P.CKA_SENSITIVE }]);
      say({
        plain: plain.toString(), verified, signature: signature.toString("hex"),
        sessionOnly: find(pkcs11, session, [{ type: P.CKA_LABEL, value: "session-only" }]).length,
        importedValue: sensitive.attributes[0].value, importedSensitive: sensitive.attributes[1].value?.[0],
        labels: find(pkcs11, session, []).map((h) => (pkcs11.C_GetAttributeValue(session, h, [{ type: P.CKA_LABEL }])[0].value as Buffer).toString()).sort(),
      });
      break;
    }
    case "login": {
      const slot = pkcs11.C_GetSlotList(true)[0];
      const session = pkcs11.C_OpenSession(slot, P.CKF_SERIAL_SESSION);
      try {
        pkcs11.C_Login(session, P.CKU_USER, arg);
        say({ login: "CKR_OK", flags: pkcs11.C_GetTokenInfo(slot).flags });
      } catch (e) {
        say({ login: codeOf(e), flags: pkcs11.C_GetTokenInfo(slot).flags });
      }
      break;
    }
    case "create": {
      const session = userSession(pkcs11);
      pkcs11.C_CreateObject(session, [{ type: P.CKA_CLASS, value: P.CKO_DATA }, { type: P.CKA_TOKEN, value: true }, { type: P.CKA_LABEL, value: arg }, { type: P.CKA_VALUE, value: Buffer.from("data") }]);
      await pkcs11.C_GenerateKeyAsync(session, { mechanism: P.CKM_AES_KEY_GEN }, [{ type: P.CKA_TOKEN, value: true }, { type: P.CKA_LABEL, value: arg }, { type: P.CKA_VALUE_LEN, value: 16 }]);
      say({ created: arg });
      break;
    }
    case "destroy": {
      const session = userSession(pkcs11);
      for (const h of find(pkcs11, session, [{ type: P.CKA_LABEL, value: arg }])) pkcs11.C_DestroyObject(session, h);
      say({ destroyed: arg });
      break;
    }
    case "hold":
      say({ holding: folder });
      break;
    default:
      throw new Error(`unknown mode ${mode}`);
  }
  if (process.argv.includes("hang")) {
    setInterval(() => {}, 1 << 30);
    return;
  }
  pkcs11.C_Finalize();
  pkcs11.close();
}

void main();
