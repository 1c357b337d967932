// `hsmsim up` when an HSM cannot start (its address is taken by another program): the HSM process
// exits with the reason, the supervisor keeps retrying with backoff, and up fails within its
// timeout saying why — never a silent hang. Down stops what did start.
import { rmSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

import { afterAll, describe, expect, it } from "vitest";

import { cli, placement, status } from "./helpers.js";

const where = placement();

describe("up with an HSM that cannot start", () => {
  const squatter = createServer();
  afterAll(async () => {
    await cli("down", "--data", where.dir);
    squatter.close();
    rmSync(join(where.dir, ".."), { recursive: true, force: true });
  }, 60_000);

  it("fails within --timeout-ms naming the HSM process's exits; the other HSM runs; status shows the DEGRADED one", async () => {
    const second = `127.${where.baseAddress.split(".")[1]}.${where.baseAddress.split(".")[2]}.3`;
    await new Promise<void>((resolve) => squatter.listen(where.port, second, resolve));
    const up = await cli("up", "--data", where.dir, "--hsms", "2", "--base-address", where.baseAddress, "--port", String(where.port), "--password-cost", "4",
      "--restart-delay-ms", "200", "--timeout-ms", "15000");
    expect(up.code).toBe(1);
    expect(up.stderr).toMatch(/did not come up within 15000 ms/);
    expect(up.stderr).toMatch(/process exited \(code 3\): cannot listen on/);
    const s = await status(where.dir);
    expect(s.hsms.map((h) => h.state)).toEqual(["ACTIVE", "DEGRADED"]);
    expect(s.state).toBe("INITIALIZED");
  }, 90_000);
});
