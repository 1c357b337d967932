// An application process for the fault tests: connects with the remote client (connect(), the
// client on a worker thread, blocking calls), logs in as a crypto user and runs until told to
// stop (a line "stop" on stdin): an idempotent call (C_GenerateRandom) over and over, and every
// `writeEvery` calls a write (a token AES key, or a user created through a CO's console).
// It reports on stdout, one line each:
//   o START END            an idempotent call succeeded (ms since the epoch)
//   e MESSAGE              an idempotent call failed (an error the application saw)
//   k START END LABEL      a token key write acknowledged (C_GenerateKey or C_CreateObject)
//   u START END NAME       a user write acknowledged
//   w START END KIND NAME MESSAGE   a write refused (allowed: not acknowledged, so nothing to keep)
//   done                   stopped
import { randomBytes } from "node:crypto";
import { writeSync } from "node:fs";

import { connect } from "../../../src/client/remote/index.js";
import * as C from "../../../src/pkcs11/constants.js";

interface LoadClientConfig {
  address: string;
  trustAnchor: string;
  name: string;
  user: { username: string; password: string };
  officer: { username: string; password: string };
  writeEvery: number;
  pauseMs: number;
}

const config = JSON.parse(process.argv[2] ?? "") as LoadClientConfig;
const say = (line: string) => writeSync(1, `${line.replace(/\n/g, " ")}\n`);
const describe = (e: unknown) => (e instanceof Error ? `${(e as { code?: string }).code ?? e.name}: ${e.message}` : String(e));

let stopping = false;
process.stdin.on("data", (d: Buffer) => {
  if (d.toString().includes("stop")) stopping = true;
});
process.stdin.on("end", () => (stopping = true));

const connection = connect({ address: config.address, trustAnchor: config.trustAnchor, callTimeoutMs: 120_000 });
const session = connection.login(config.user.username, config.user.password);
const officer = connection.console(config.officer.username, config.officer.password);
const pkcs11 = session.pkcs11;
say("ready");

let n = 0;
function step(): void {
  if (stopping) {
    connection.close();
    say("done");
    process.exit(0);
  }
  n++;
  const start = Date.now();
  try {
    const random = pkcs11.C_GenerateRandom(session.session, Buffer.alloc(32));
    if (random.length !== 32) throw new Error(`C_GenerateRandom returned ${random.length} bytes`);
    say(`o ${start} ${Date.now()}`);
  } catch (e) {
    say(`e ${describe(e)}`);
  }
  if (n % config.writeEvery === 0) {
    // Three kinds of write in turn: a generated token key, a user, an imported token key.
    const turn = (n / config.writeEvery) % 3;
    const write = turn === 1 ? "u" : "k";
    const name = `${config.name}${["g", "u", "i"][turn]}${n}`;
    const writeStart = Date.now();
    try {
      if (turn === 0) {
        pkcs11.C_GenerateKey(session.session, { mechanism: C.CKM_AES_KEY_GEN }, [
          { type: C.CKA_VALUE_LEN, value: 32 }, { type: C.CKA_TOKEN, value: true }, { type: C.CKA_LABEL, value: name },
        ]);
      } else if (turn === 1) {
        officer.createUser(name, "CU", "initial-password-1");
      } else {
        pkcs11.C_CreateObject(session.session, [
          { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }, { type: C.CKA_KEY_TYPE, value: C.CKK_AES }, { type: C.CKA_VALUE, value: randomBytes(32) },
          { type: C.CKA_TOKEN, value: true }, { type: C.CKA_LABEL, value: name },
        ]);
      }
      say(`${write} ${writeStart} ${Date.now()} ${name}`);
    } catch (e) {
      say(`w ${writeStart} ${Date.now()} ${write} ${name} ${describe(e)}`);
    }
  }
  setTimeout(step, config.pauseMs);
}
step();
