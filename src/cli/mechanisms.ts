// `hsmsim mechanisms`: the mechanisms the token offers, with key sizes and flags.
import * as P from "../pkcs11/index.js";
import { PKCS11 } from "../pkcs11/pkcs11.js";
import { defineCommand, shared } from "./command.js";
import { textOutput } from "./format.js";

const mechanismNames = new Map<number, string>();
for (const [name, value] of Object.entries(P)) {
  if (name.startsWith("CKM_") && typeof value === "number" && !mechanismNames.has(value)) mechanismNames.set(value, name);
}

export const mechanismsCommand = defineCommand({
  name: "mechanisms",
  summary: "the mechanisms the token offers, with key sizes and flags",
  options: { ...shared.json },
  run({ values, io }) {
    const pkcs11 = new PKCS11("memory:");
    pkcs11.C_Initialize();
    const [slot] = pkcs11.C_GetSlotList(true);
    const list = pkcs11.C_GetMechanismList(slot).map((m) => ({ mechanism: mechanismNames.get(m) ?? `0x${m.toString(16)}`, value: m, ...pkcs11.C_GetMechanismInfo(slot, m) }));
    pkcs11.C_Finalize();
    if (values.json) io.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
    else textOutput((t) => io.stdout.write(t)).table(["mechanism", "min", "max", "flags"], list.map((m) => [m.mechanism, m.minKeySize, m.maxKeySize, `0x${m.flags.toString(16)}`]));
    return 0;
  },
});
