// A process that puts one key and says so, then waits to be killed (kill -9 durability test).
import { KmsStore } from "../../src/kms/store.js";
import { hmacUnder, keyRecord } from "./store-fixtures.js";

const [path, n] = process.argv.slice(2);
const store = KmsStore.open({ path: path!, mac: hmacUnder("fleet-a") });
store.putKey(keyRecord(Number(n)));
process.stdout.write("PUT\n");
setInterval(() => undefined, 1000);
