// hsmsim bench --against without a cluster: the command line's refusals (exit 2, naming the
// problem), the dilation correction, and the chip that spreads one load over several remote
// clients (sessions routed to the client that opened them). The run against real HSM processes
// is in test/processes/profile.test.ts.
import { describe, expect, it } from "vitest";

import { main } from "../../src/cli/main.js";
import { spreadChip, undilate } from "../../src/cli/bench-against.js";
import type { AsyncChip, ChipCallback, LoadResult } from "../../src/sizing/load.js";

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "", stderr = "";
  const code = await main(args, { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) }, env: {} });
  return { code, stdout, stderr };
}

describe("hsmsim bench --against: bad command lines", () => {
  const base = ["bench", "--against", "127.0.0.1:9", "--ca", "/nonexistent/ca.crt", "--user", "bench:pw"];
  it.each([
    [["bench", "--rate", "5"], /--rate apply only with --against/],
    [["bench", "--saturate", "--op", "ecdsa-p256-sign"], /--op, --saturate apply only with --against/],
    [["bench", "--against", "127.0.0.1:9", "--user", "a:b", "--saturate"], /needs --ca/],
    [["bench", "--against", "127.0.0.1:9", "--ca", "x", "--saturate"], /needs --user/],
    [[...base], /either --rate R .* or --saturate/],
    [[...base, "--rate", "10", "--saturate"], /cannot be given together/],
    [[...base, "--rate", "0"], /--rate takes a number/],
    [[...base, "--rate", "-5"], /--rate/],
    [[...base, "--saturate", "--op", "rsa-4096-sign"], /unknown operation "rsa-4096-sign"/],
    [[...base, "--saturate", "--op", "ecdsa-p256-sign=0"], /weight must be a positive number/],
    [[...base, "--saturate", "--op", "aes-gcm-4k", "--op", "aes-gcm-4k"], /names an operation twice/],
    [["bench", "--against", "127.0.0.1:9", "--ca", "x", "--user", "nocolon", "--saturate"], /--user takes NAME:PASSWORD/],
    [[...base, "--rate", "10", "--concurrency", "4"], /--concurrency applies only with --saturate/],
    [[...base, "--saturate", "--concurrency", "2", "--connections", "3"], /--concurrency must be at least --connections/],
    [[...base, "--saturate", "--time-dilation", "0.5"], /--time-dilation takes a number from 1/],
    [[...base, "--saturate", "--kill-at-s", "1"], /--kill-at-s needs --data/],
    [[...base, "--saturate", "--cert", "c.pem"], /--cert and --key go together/],
    [["bench", "--against", "127.0.0.1:9", "--ms", "100"], /cannot be given together/],
  ])("%j → exit 2", async (args, message) => {
    const ran = await cli(...args);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toMatch(message);
  });

  it("a trust anchor that cannot be read is a typed error, not a crash", async () => {
    const ran = await cli(...base, "--saturate", "--duration-s", "1");
    expect(ran.code).toBe(1);
    expect(ran.stderr).toMatch(/cannot read the --ca file '\/nonexistent\/ca.crt'/);
  });
});

describe("undilate: the profile's figures from a dilated run", () => {
  it("multiplies rates by K and divides latencies and times by K", () => {
    const lat = { count: 10, meanMs: 40, p50Ms: 30, p95Ms: 80, p99Ms: 100, maxMs: 120 };
    const result = {
      mode: { kind: "closed", concurrency: 4 }, measuredMs: 2000, warmUpMs: 0, completed: 10, failed: 1, unfinished: 0, failedByReason: {}, noFreeSession: 0,
      throughputPerSec: 5, offeredPerSec: 6, latency: lat, byOperation: { "ecdsa-p256-sign": { completed: 10, failed: 1, latency: lat } },
      timeline: [{ startMs: 0, endMs: 1000, opsPerSec: 4, failed: 0, p50Ms: 30, p99Ms: null }],
    } as LoadResult;
    const d = undilate(result, 10);
    expect(d.throughputPerSec).toBe(50);
    expect(d.offeredPerSec).toBe(60);
    expect(d.latency).toEqual({ count: 10, meanMs: 4, p50Ms: 3, p95Ms: 8, p99Ms: 10, maxMs: 12 });
    expect(d.byOperation["ecdsa-p256-sign"]).toMatchObject({ completed: 10, failed: 1, throughputPerSec: 50 });
    expect(d.timeline).toEqual([{ startMs: 0, endMs: 100, opsPerSec: 40, failed: 0, p50Ms: 3, p99Ms: null }]);
    expect(undilate(result, 1).latency).toEqual(lat);
  });
});

describe("spreadChip: one load over several remote clients", () => {
  function fakeChip(name: string, log: string[]): AsyncChip {
    let next = 1;
    return {
      start(method: string, args: unknown[], callback: ChipCallback) {
        log.push(`${name}:${method}:${String(args[0])}`);
        if (method === "openSession") return callback(null, next++);
        callback(null, `${name}-${method}`);
      },
    };
  }

  it("routes each call to the client whose session it names, with the session's own number", () => {
    const log: string[] = [];
    const chip = spreadChip([fakeChip("a", log), fakeChip("b", log), fakeChip("c", log)], [2, 2, 2]);
    const answers: unknown[] = [];
    // Composite numbers: local × 3 + index.
    chip.start("signInit", [1 * 3 + 0, 99], (_e, v) => answers.push(v));
    chip.start("sign", [2 * 3 + 1, Buffer.alloc(1)], (_e, v) => answers.push(v));
    chip.start("encrypt", [1 * 3 + 2, Buffer.alloc(1)], (_e, v) => answers.push(v));
    expect(log).toEqual(["a:signInit:1", "b:sign:2", "c:encrypt:1"]);
    expect(answers).toEqual(["a-signInit", "b-sign", "c-encrypt"]);
  });

  it("opens a new session on the client holding the fewest, and numbers it so later calls go back there", () => {
    const log: string[] = [];
    const chip = spreadChip([fakeChip("a", log), fakeChip("b", log)], [3, 1]);
    let session = -1;
    chip.start("openSession", [0, 6], (_e, v) => void (session = v as number));
    expect(log).toEqual(["b:openSession:0"]);
    expect(session % 2).toBe(1);
    chip.start("closeSession", [session], () => {});
    expect(log[1]).toBe(`b:closeSession:${Math.floor(session / 2)}`);
    // b is back to 1 session, a still holds 3: the next one goes to b again.
    chip.start("openSession", [0, 6], () => {});
    expect(log[2]).toBe("b:openSession:0");
  });

  it("refuses a call the load never makes instead of guessing its client", () => {
    const chip = spreadChip([fakeChip("a", []), fakeChip("b", [])], [1, 1]);
    let error: Error | null = null;
    chip.start("login", [0, 1, "x"], (e) => void (error = e));
    expect(error).toBeInstanceOf(Error);
    expect(String(error)).toMatch(/login is not a call of the load/);
  });
});
