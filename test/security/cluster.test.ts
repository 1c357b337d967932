// Attacks on the cluster's promises: a lost message must not wedge a session, session objects
// are visible to their own application only (and always to it), the client's PKCS11 object
// reaches nothing but PKCS#11, and a revoked user's open sessions stop on every HSM.
import { describe, expect, it } from "vitest";

import * as C from "../../src/pkcs11/constants.js";
import { Pkcs11Error } from "../../src/pkcs11/errors.js";
import { ALICE, BOB, CO, activeWorld } from "../cluster/fixture.js";

function rounds(lossRate: number, count: number, seed: string): { failures: string[] } {
  const world = activeWorld({ seed, cluster: { hsmCount: 3 } });
  const session = world.connect("alice").login(ALICE.username, ALICE.password);
  const key = session.generateAesKey({ label: "k" });
  const pair = session.generateEcKeyPair({ label: "p" });
  world.run(500_000);
  world.network.setFaults({ lossRate });
  const failures: string[] = [];
  for (let i = 0; i < count; i++) {
    const data = Buffer.from(`round ${i}`);
    try {
      expect(session.decrypt(key, session.encrypt(key, data))).toEqual(data);
      expect(session.verify(pair.publicKey, data, session.sign(pair.privateKey, data))).toBe(true);
    } catch (e) {
      failures.push(`${i}: ${e instanceof Pkcs11Error ? `${e.message} ${e.detail ?? ""}` : String(e)}`);
    }
  }
  return { failures };
}

describe("a lost message does not wedge a session", () => {
  it("1% loss: every one of 300 encrypt+decrypt and sign+verify rounds succeeds", () => {
    const { failures } = rounds(0.01, 300, "loss-1");
    expect(failures).toEqual([]);
  });

  it("5% loss: every one of 300 encrypt+decrypt and sign+verify rounds succeeds", () => {
    const { failures } = rounds(0.05, 300, "loss-5");
    expect(failures).toEqual([]);
  });
});
