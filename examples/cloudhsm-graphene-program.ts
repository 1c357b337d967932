// graphene-pk11 against an hsmsim cluster, as against CloudHSM: the module is handed
// load("cloudhsm://…") (on CloudHSM, Module.load of libcloudhsm_pkcs11.so), the crypto user
// logs in with "name:password", and the rest is plain graphene.
import * as graphene from "graphene-pk11";

import { load } from "../src/index.js";

export function runCloudHsmGrapheneProgram(target: string, credentials: string): { decrypted: string; verified: boolean } {
  const mod = new graphene.Module(load(target));
  mod.initialize();
  try {
    const session = mod.getSlots(0).open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
    session.login(credentials, graphene.UserType.USER);
    const key = session.generateKey(graphene.KeyGenMechanism.AES, { keyType: graphene.KeyType.AES, valueLen: 32, encrypt: true, decrypt: true, token: false });
    const alg = { name: "AES_CBC_PAD", params: Buffer.alloc(16, 3) };
    const cipher = session.createCipher(alg, key);
    const encrypted = Buffer.concat([cipher.update(Buffer.from("graphene over TLS")), cipher.final()]);
    const decipher = session.createDecipher(alg, key);
    const decrypted = Buffer.concat([decipher.update(encrypted), decipher.final()]).toString();
    const keys = session.generateKeyPair(graphene.KeyGenMechanism.EC,
      { keyType: graphene.KeyType.EC, paramsEC: Buffer.from("06082a8648ce3d030107", "hex"), verify: true, token: false },
      { keyType: graphene.KeyType.EC, sign: true, token: false });
    const signature = session.createSign("ECDSA_SHA256", keys.privateKey).once(Buffer.from("data"));
    const verified = session.createVerify("ECDSA_SHA256", keys.publicKey).once(Buffer.from("data"), signature);
    session.logout();
    session.close();
    return { decrypted, verified };
  } finally {
    mod.finalize();
    mod.close();
  }
}
