// The remote client against a cluster started with `hsmsim up` (a supervisor and one process
// per HSM): activated and used from this process through connect() and load("cloudhsm://…"),
// graphene-pk11 and the CloudHSM pkcs11js program unchanged; `kill -9` of the HSM serving an
// application is invisible to its reads; `hsmsim down` at the end.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runCloudHsmGrapheneProgram } from "../../examples/cloudhsm-graphene-program.js";
import { runCloudHsmProgram } from "../../examples/cloudhsm-program.js";
import { connect } from "../../src/client/remote/connect.js";
import { load } from "../../src/index.js";
import { cli, cliJson, placement, type Status, until } from "../processes/helpers.js";

const ALICE = { username: "alice", password: "alice-pass-1" };
const CO = { username: "admin", password: "officer-pass-1" };
let dir = "";
let addresses: string[] = [];
let trustAnchor = "";

beforeAll(async () => {
  const place = placement();
  dir = place.dir;
  const up = await cliJson<Status>("up", "--data", dir, "--hsms", "3", "--base-address", place.baseAddress, "--port", String(place.port), "--password-cost", "4", "--restart-delay-ms", "200");
  addresses = up.hsms.map((h) => h.address);
  trustAnchor = join(dir, "pki", "customerCA.crt");
  const setup = connect({ address: addresses[0], trustAnchor });
  try {
    setup.console("admin", "password").changePassword("admin", CO.password);
    setup.console(CO.username, CO.password).createUser(ALICE.username, "CU", ALICE.password);
  } finally {
    setup.close();
  }
}, 180_000);

afterAll(async () => {
  if (dir) await cli("down", "--data", dir);
}, 60_000);

describe("remote client against `hsmsim up`", () => {
  it("the CloudHSM pkcs11js program and graphene-pk11 run unchanged through load('cloudhsm://…')", () => {
    const target = `cloudhsm://${addresses[1]}?ca=${encodeURIComponent(trustAnchor)}`;
    expect(runCloudHsmProgram(load(target), `${ALICE.username}:${ALICE.password}`))
      .toEqual({ decrypted: "hello from a CloudHSM program", verified: true, tampered: "CKR_ENCRYPTED_DATA_INVALID", foundByLabel: 1 });
    expect(runCloudHsmGrapheneProgram(target, `${ALICE.username}:${ALICE.password}`)).toEqual({ decrypted: "graphene over TLS", verified: true });
  });

  it("kill -9 of each HSM in turn: an application's encryptions with a token key carry on without an error", async () => {
    const connection = connect({ address: addresses[0], trustAnchor });
    try {
      const alice = connection.login(ALICE.username, ALICE.password);
      const key = alice.generateAesKey({ label: "up-failover" });
      const roundTrip = (i: number) => {
        const plaintext = Buffer.from(`message ${i}`);
        expect(alice.decrypt(key, alice.encrypt(key, plaintext)).equals(plaintext)).toBe(true);
      };
      for (let i = 0; i < 5; i++) roundTrip(i);
      await until(dir, (s) => s.hsms.every((h) => (h.keyCount ?? 0) >= 1), "the key on every HSM");
      // Each HSM in turn (so the one serving this application is among them), each time restarted before the next.
      const before = await cliJson<Status>("status", "--data", dir);
      const failoverMs: number[] = [];
      for (const victim of before.hsms) {
        await cliJson("hsm", "kill", victim.hsmId, "--data", dir);
        const startedMs = performance.now();
        roundTrip(100);
        failoverMs.push(performance.now() - startedMs);
        for (let i = 0; i < 10; i++) roundTrip(200 + i);
        await until(dir, (s) => { const h = s.hsms.find((x) => x.hsmId === victim.hsmId)!; return h.restarts > victim.restarts && h.pid !== victim.pid && (h.keyCount ?? 0) >= 1; },
          `${victim.hsmId} restarted`);
        await new Promise((resolve) => setTimeout(resolve, 1_500)); // the client's heartbeat sees it answer again
      }
      for (let i = 0; i < 5; i++) roundTrip(300 + i);
      console.log(`remote client vs hsmsim up: first call after each kill -9 took ${failoverMs.map((ms) => ms.toFixed(0)).join(", ")} ms`);
    } finally {
      connection.close();
    }
  }, 180_000);
});
