// Second red team, issue 10: the queued-bytes bound (MAX_QUEUED_BYTES) against buffers it did not count.
import { describe, expect, it } from "vitest";

import { OPERATION_CLASSES, type OperationClass, type ServiceProfile, heldBytesOf, inputBytesOf, profileServiceTime } from "../../src/cluster/service-profile.js";
import { MAX_CALL_BUFFER_BYTES } from "../../src/cluster/protocol.js";
import type { World } from "../../src/sim/world.js";
import { Rng } from "../../src/sim/random.js";
import { activeWorld } from "../cluster/fixture.js";

function profile(costs: Partial<Record<OperationClass, number>>): ServiceProfile {
  const all = Object.fromEntries(OPERATION_CLASSES.map((c) => [c, { serviceUs: costs[c] ?? 0, perKiBUs: 0, contention: 0, coherency: 0 }]));
  return { type: "test", engines: 1, queueCapacity: 256, timeDilation: 1, distribution: "fixed", costs: all as ServiceProfile["costs"] };
}

function profiledWorld(p: ServiceProfile): World {
  return activeWorld({ seed: "red2-queue", cluster: { hsmCount: 1, node: { serviceTimeUs: profileServiceTime(p, new Rng("red2-queue/service")), engines: 1, queueCapacity: p.queueCapacity } } });
}

const session = { id: 1, flags: 6, login: null, continuation: false };

describe("the queued-bytes bound counts every buffer a request carries", () => {
  it("counts a Float64Array (a mechanism's numbers) and buffers nested in arrays", () => {
    const f64 = { kind: "call" as const, method: "generateKey", args: [1, Buffer.alloc(8), new Float64Array(1 << 20)] };
    expect(heldBytesOf(f64 as never)).toBeGreaterThanOrEqual(8 << 20);
    const nested = { kind: "call" as const, method: "encrypt", args: [1, [Buffer.alloc(1 << 20)], 16] };
    expect(heldBytesOf(nested as never)).toBeGreaterThanOrEqual(1 << 20);
    // Pricing stays as it was: the input is the top-level byte buffers.
    expect(inputBytesOf(f64 as never)).toBe(8);
  });

  it("answers busy to a queue of 16 MiB requests whose bytes hide in a Float64Array or a nested array", () => {
    const world = profiledWorld(profile({ "aes-keygen": 1_000_000, "aes-cbc": 1_000_000, control: 0 }));
    const node = world.cluster.liveNodes()[0];
    const to = node.address;
    const hostile = world.network.endpoint("10.9.9.9:1");
    hostile.attach("10.9.9.9:1", () => {});
    const big = MAX_CALL_BUFFER_BYTES;
    for (let i = 1; i <= 6; i++) {
      // A key generation (engine work on a profile) whose mechanism numbers, or template in an array, are 16 MiB.
      const args = i % 2 === 0 ? [1, Buffer.alloc(8), new Float64Array(big / 8)] : [1, [Buffer.alloc(big)], new Float64Array([0x1080])];
      hostile.send("10.9.9.9:1", to, { t: "req", id: i, conn: "hostile", after: [], op: { kind: "call", method: "generateKey", args, session } });
    }
    world.run(100_000);
    // Six 16 MiB requests: the HSM holds at most four calls' worth of bytes and answers the rest busy.
    expect(node.stats.busy).toBeGreaterThan(0);
  });

  it("bounds a huge queue (a profile's queueCapacity of 1,000,000) of small requests each carrying 4,096 causality heads", () => {
    const p = { ...profile({ "aes-keygen": 1_000_000 }), queueCapacity: 1_000_000 };
    const world = activeWorld({ seed: "red2-heads", cluster: { hsmCount: 1, node: { serviceTimeUs: profileServiceTime(p, new Rng("red2-heads/s")), engines: 1, queueCapacity: p.queueCapacity } } });
    const node = world.cluster.liveNodes()[0];
    const hostile = world.network.endpoint("10.9.9.8:1");
    hostile.attach("10.9.9.8:1", () => {});
    const after = Array.from({ length: 4096 }, (_, i) => [i + 1, 0]);
    // 300 × 4,096 heads: about 80 MB of small arrays in the queue, none of it a buffer.
    for (let i = 1; i <= 300; i++) {
      hostile.send("10.9.9.8:1", node.address, { t: "req", id: i, conn: "heads", after, op: { kind: "call", method: "generateKey", args: [1, Buffer.alloc(8), new Float64Array([0x1080])], session } });
    }
    world.run(100_000);
    expect(node.stats.busy).toBeGreaterThan(0);
  });
});
