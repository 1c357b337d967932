// Red team 9, the remote client as a careless caller uses it: buffers larger than a frame, calls
// after close. Every one must end in a typed Pkcs11Error within seconds, never a hang to the 60 s
// bridge timeout, a dead worker or an unhandled error. The HSMs run in a worker thread of this
// process (test/client/realtime-cluster.ts) on random loopback addresses and ports.
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import * as C from "../../src/pkcs11/constants.js";
import { Pkcs11Error } from "../../src/pkcs11/errors.js";
import { load } from "../../src/index.js";
import { ALICE, type RealtimeCluster, startRealtimeCluster } from "../client/realtime-cluster.js";

let cluster: RealtimeCluster;
let target: string;

beforeAll(async () => {
  cluster = await startRealtimeCluster(1);
  target = `cloudhsm://${cluster.addresses[0]}?ca=${encodeURIComponent(cluster.trustAnchorPath)}`;
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

function timed(call: () => unknown): { error: unknown; ms: number } {
  const started = Date.now();
  try {
    call();
    return { error: undefined, ms: Date.now() - started };
  } catch (e) {
    return { error: e, ms: Date.now() - started };
  }
}

describe("redteam 9: a careless caller of the remote PKCS11", () => {
  it("an input larger than the wire's largest frame is CKR_ARGUMENTS_BAD at once (not an HSM \"gone\" after retries), and the module keeps working", () => {
    const pkcs11 = load(target);
    pkcs11.C_Initialize();
    try {
      const session = pkcs11.C_OpenSession(pkcs11.C_GetSlotList(true)[0], C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION);
      pkcs11.C_Login(session, C.CKU_USER, `${ALICE.username}:${ALICE.password}`);
      pkcs11.C_DigestInit(session, { mechanism: C.CKM_SHA256 });
      const { error } = timed(() => pkcs11.C_Digest(session, Buffer.alloc(20 * 1024 * 1024, 1), Buffer.alloc(32)));
      // It was CKR_DEVICE_REMOVED "the HSM … did not answer (after 4 attempts)" after ~9 s: the frame was never sent.
      expect(error).toBeInstanceOf(Pkcs11Error);
      expect((error as Pkcs11Error).code).toBe(C.CKR_ARGUMENTS_BAD); // refused before sending, not lost on the way
      // Still usable.
      pkcs11.C_DigestInit(session, { mechanism: C.CKM_SHA256 });
      expect(pkcs11.C_Digest(session, Buffer.from("abc"), Buffer.alloc(32)).toString("hex")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
      // An output larger than a frame: a typed refusal (or the bytes), never a hang (the test's own bound).
      const random = timed(() => pkcs11.C_GenerateRandom(session, Buffer.alloc(64 * 1024 * 1024)));
      if (random.error !== undefined) expect(random.error).toBeInstanceOf(Pkcs11Error);
    } finally {
      pkcs11.close();
    }
  }, 60_000);

  it("calls after close() are typed errors at once", () => {
    const pkcs11 = load(target);
    pkcs11.C_Initialize();
    const session = pkcs11.C_OpenSession(pkcs11.C_GetSlotList(true)[0], C.CKF_SERIAL_SESSION);
    pkcs11.close();
    for (const call of [() => pkcs11.C_GetSessionInfo(session), () => pkcs11.C_GenerateRandom(session, Buffer.alloc(8)), () => pkcs11.C_Initialize()]) {
      const { error } = timed(call);
      expect(error).toBeInstanceOf(Error);
    }
  }, 30_000);
});
