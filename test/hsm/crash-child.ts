// Child of the crash test: opens the HSM in argv[2] and changes it as fast as it can,
// printing an "intent" line before and an "ack" line after each change, until killed.
import { writeSync } from "node:fs";

import * as H from "../../src/index.js";
import { prng } from "../fuzz/fuzzer.js";
import { internalsOf } from "../../src/hsm/internals.js";

const [dir, seedText] = process.argv.slice(2);
const random = prng(Number(seedText));
const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)];
const say = (line: object) => writeSync(1, `${JSON.stringify(line)}\n`);

const hsm = H.Hsm.open(dir, { passwordCost: 4 });
const passwords = new Map<string, string>(JSON.parse(process.argv[4] ?? "[]") as [string, string][]);
const co = hsm.login("admin", passwords.get("admin")!);
const pkcs11 = hsm.pkcs11();
pkcs11.C_Initialize();
const slot = pkcs11.C_GetSlotList(true)[0];
const session = pkcs11.C_OpenSession(slot, H.CKF_SERIAL_SESSION | H.CKF_RW_SESSION);
pkcs11.C_Login(session, H.CKU_USER, `alice:${passwords.get("alice")}`);
const alice = hsm.login("alice", passwords.get("alice")!);
const handles = new Map<number, Buffer>(); // key id → handle
for (const [handle, id] of internalsOf(hsm).keyIds) {
  const h = Buffer.alloc(8);
  h.writeUInt32LE(handle, 0);
  handles.set(id, h);
}
say({ ready: true });

for (let i = 0; ; i++) {
  const op = pick(["user", "password", "key", "key", "delete", "share"]);
  if (op === "user" && hsm.listUsers(co).length < 400) {
    const name = `u_${process.pid}_${i}`;
    say({ intent: "user", name });
    hsm.createUser(co, name, "CU", "initial-password");
    say({ ack: "user", name });
  } else if (op === "password") {
    const name = pick(["alice", "bob"]);
    const password = `pw-${process.pid}-${i}`;
    say({ intent: "password", name, password });
    hsm.changePassword(co, name, password);
    say({ ack: "password", name, password });
  } else if (op === "key") {
    say({ intent: "key" });
    const handle = pkcs11.C_GenerateKey(session, { mechanism: H.CKM_AES_KEY_GEN },
      [{ type: H.CKA_VALUE_LEN, value: 32 }, { type: H.CKA_TOKEN, value: true }, { type: H.CKA_LABEL, value: `k${i}` }]);
    const id = internalsOf(hsm).keyIds.get(handle.readUInt32LE(0))!;
    handles.set(id, handle);
    say({ ack: "key", id });
  } else if (op === "delete" && handles.size > 0) {
    const id = pick([...handles.keys()]);
    say({ intent: "delete", id });
    pkcs11.C_DestroyObject(session, handles.get(id)!);
    handles.delete(id);
    say({ ack: "delete", id });
  } else if (op === "share" && handles.size > 0) {
    const id = pick([...handles.keys()]);
    say({ intent: "share", id });
    hsm.shareKey(alice, id, "bob");
    say({ ack: "share", id });
  }
}
