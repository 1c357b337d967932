// graphene-pk11 on hsmsim: the module is handed an hsmsim PKCS11 as it is (no cast), and
// the whole lifecycle runs through graphene, down to Module.close().
import * as graphene from "graphene-pk11";

import { load } from "../src/index.js";

export interface GrapheneResult {
  manufacturer: string;
  decrypted: string;
  verified: boolean;
  privateKeys: number;
}

export function runGrapheneProgram(target = "memory:"): GrapheneResult {
  const mod = new graphene.Module(load(target));
  mod.initialize();
  try {
    const slot = mod.getSlots(0);
    slot.initToken("so-pin-1234", "graphene");
    const session = slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
    session.login("so-pin-1234", graphene.UserType.SO);
    session.initPin("user-pin-1234");
    session.logout();
    session.login("user-pin-1234", graphene.UserType.USER);
    const key = session.generateKey(graphene.KeyGenMechanism.AES, { keyType: graphene.KeyType.AES, valueLen: 32, encrypt: true, decrypt: true });
    const alg = { name: "AES_CBC_PAD", params: Buffer.alloc(16, 2) };
    const cipher = session.createCipher(alg, key);
    const encrypted = Buffer.concat([cipher.update(Buffer.from("graphene says hi")), cipher.final()]);
    const decipher = session.createDecipher(alg, key);
    const decrypted = Buffer.concat([decipher.update(encrypted), decipher.final()]).toString();
    const keys = session.generateKeyPair(graphene.KeyGenMechanism.EC,
      { keyType: graphene.KeyType.EC, paramsEC: Buffer.from("06082a8648ce3d030107", "hex"), verify: true },
      { keyType: graphene.KeyType.EC, sign: true });
    const signature = session.createSign("ECDSA_SHA256", keys.privateKey).once(Buffer.from("data"));
    const verified = session.createVerify("ECDSA_SHA256", keys.publicKey).once(Buffer.from("data"), signature);
    const privateKeys = session.find({ class: graphene.ObjectClass.PRIVATE_KEY }).length;
    session.logout();
    session.close();
    return { manufacturer: mod.manufacturerID.trim(), decrypted, verified, privateKeys };
  } finally {
    mod.finalize();
    mod.close();
  }
}
