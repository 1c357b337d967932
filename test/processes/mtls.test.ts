// `hsmsim up --mtls`: the cluster gets a client CA (pki/clientCA.crt) and one client
// certificate (pki/client.crt/.key); its HSMs refuse, at the handshake, an application without a
// certificate from that CA, and serve one with it.
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { ClusterClient } from "../../src/client/client.js";
import { OsRandom } from "../../src/net/os-random.js";
import { RealClock } from "../../src/net/real-clock.js";
import { ClientTransport, clientTls } from "../../src/net/tls-transport.js";
import { startClient } from "../net/fixture.js";
import { type Status, cli, cliJson, placement, trustAnchorOf } from "./helpers.js";

const where = placement();
const dir = where.dir;
let up: Status;

describe("hsmsim up --mtls", () => {
  beforeAll(async () => {
    up = await cliJson<Status>("up", "--data", dir, "--hsms", "1", "--mtls", "--base-address", where.baseAddress, "--port", String(where.port), "--password-cost", "4");
  }, 180_000);
  afterAll(async () => {
    await cli("down", "--data", dir);
    rmSync(join(dir, ".."), { recursive: true, force: true });
  }, 60_000);

  it("refuses an application without a client certificate and serves one with pki/client.crt", async () => {
    expect(up.mtls).toBe(true);
    const address = up.hsms[0].address;
    // Without a certificate: the bootstrap fails, and the transport says why (the HSM's handshake alert).
    const errors: Error[] = [];
    const transport = new ClientTransport({ tls: clientTls({ trustAnchorPem: trustAnchorOf(dir) }), onError: (e) => errors.push(e) });
    const anonymous = new ClusterClient({ transport, clock: new RealClock(), rng: new OsRandom(), address: "app-anonymous", bootstrap: address, requestTimeoutUs: 3_000_000 });
    const refused = await new Promise<Error | null>((resolve) => anonymous.connect((e) => resolve(e)));
    anonymous.close();
    transport.close();
    expect(refused).not.toBeNull();
    expect(errors.map((e) => (e as { code?: string }).code)).toContain("CLIENT_CERTIFICATE_REQUIRED");
    const certificate = { certPem: readFileSync(join(dir, "pki", "client.crt"), "utf8"), keyPem: readFileSync(join(dir, "pki", "client.key"), "utf8") };
    const c = await startClient(address, trustAnchorOf(dir), true, certificate);
    try {
      expect(c.client.isMember(address)).toBe(true);
    } finally {
      c.close();
    }
  }, 120_000);
});
