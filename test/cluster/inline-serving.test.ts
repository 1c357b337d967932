// An HSM with no service time (real time: it takes as long as its chip does) serves each request
// as it arrives, so a burst of calls in flight never finds its queue full: busy is for genuine
// overload (service times, as the simulator models them), not for an event-loop turn.
import { describe, expect, it } from "vitest";

import { activeWorld } from "./fixture.js";

describe("an HSM with no service time", () => {
  it("answers 64 calls sent at once without busy, even with a queue of one", () => {
    const world = activeWorld({ cluster: { hsmCount: 1, node: { queueCapacity: 1, serviceTimeUs: () => 0 } } });
    const client = world.connect("burst");
    const answers: (Error | null)[] = [];
    for (let i = 0; i < 64; i++) {
      client.client.send({ kind: "call", method: "getTokenInfo", args: [0] }, { rule: "repeat" }, (error) => answers.push(error));
    }
    world.run(1_000_000);
    expect(answers).toHaveLength(64);
    expect(answers.filter((e) => e !== null)).toEqual([]);
    expect(client.client.stats.busy).toBe(0);
    expect(world.cluster.liveNodes()[0].stats.busy).toBe(0);
  });

  it("still answers busy when a service time keeps its queue full", () => {
    const world = activeWorld({ cluster: { hsmCount: 1, node: { queueCapacity: 1, serviceTimeUs: () => 1_000 } } });
    const client = world.connect("burst");
    for (let i = 0; i < 64; i++) client.client.send({ kind: "call", method: "getTokenInfo", args: [0] }, { rule: "repeat" }, () => {});
    world.run(1_000_000);
    expect(world.cluster.liveNodes()[0].stats.busy).toBeGreaterThan(0);
  });
});
