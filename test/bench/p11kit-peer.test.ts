// The benchmark's p11-kit peer really is SoftHSMv2 behind `p11-kit server`: calls cross the
// socket and come back with SoftHSMv2's answers, GCM is refused as the issue says, and close()
// leaves no server process and no folder behind.
import * as crypto from "node:crypto";
import { existsSync, readFileSync } from "node:fs";

import { describe, expect, it } from "vitest";

import * as P from "../../src/index.js";
import { P11KIT_CLIENT_LIBRARY, p11kitPeer } from "../../bench/p11kit-peer.js";
import { processTree } from "../../bench/measure.js";
import { gcmMechanism, makeKeys, syncOperations } from "../../bench/remote-ops.js";

const installed = existsSync(P11KIT_CLIENT_LIBRARY) && existsSync("/usr/bin/p11-kit") && existsSync("/usr/lib/softhsm/libsofthsm2.so");

function alive(pid: number): boolean {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

describe.skipIf(!installed)("p11-kit peer", () => {
  it("serves SoftHSMv2 over the socket, refuses GCM parameters, and cleans up", async () => {
    const peer = await p11kitPeer();
    if (typeof peer === "string") throw new Error(peer);
    const { pkcs11, session, serverPid, folder } = peer;
    let closed = false;
    try {
      // The token is the one SoftHSMv2 initialized, reached through the p11-kit client module.
      expect(pkcs11.C_GetInfo().manufacturerID.trim()).toBe("PKCS#11 Kit");
      const slot = (pkcs11.C_GetSessionInfo(session) as unknown as { slotID: Buffer }).slotID;
      expect(pkcs11.C_GetTokenInfo(slot).manufacturerID.trim()).toBe("SoftHSM project");
      // One process serves this connection: the server or a child it forked for it.
      expect(processTree([serverPid]).length).toBeGreaterThanOrEqual(1);

      const keys = makeKeys(pkcs11, session, false);
      const ops = syncOperations(pkcs11, session, keys);
      ops["HMAC-SHA256 64 B"]();
      // An HMAC over the socket equals node:crypto's with the same key: the bytes went there and back.
      const key = pkcs11.C_CreateObject(session, [
        { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET },
        { type: P.CKA_VALUE, value: Buffer.alloc(32, 9) }, { type: P.CKA_SIGN, value: true }, { type: P.CKA_TOKEN, value: false },
      ]);
      pkcs11.C_SignInit(session, { mechanism: P.CKM_SHA256_HMAC }, key);
      const mac = pkcs11.C_Sign(session, Buffer.from("over the socket"), Buffer.alloc(32));
      expect(Buffer.from(mac).equals(crypto.createHmac("sha256", Buffer.alloc(32, 9)).update("over the socket").digest())).toBe(true);

      const random = pkcs11.C_GenerateRandom(session, Buffer.alloc(32));
      expect(Buffer.from(random).equals(Buffer.alloc(32))).toBe(false);

      // p11-kit's RPC cannot carry CK_GCM_PARAMS.
      expect(() => pkcs11.C_EncryptInit(session, gcmMechanism, keys.aes)).toThrow(/CKR_MECHANISM_INVALID/);

      peer.close();
      closed = true;
      expect(existsSync(folder)).toBe(false);
      const deadline = Date.now() + 10_000;
      while (alive(serverPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(alive(serverPid), "p11-kit server still running 10 s after close()").toBe(false);
    } finally {
      if (!closed) peer.close();
    }
  }, 60_000);
});
