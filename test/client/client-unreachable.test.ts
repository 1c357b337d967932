// ClusterClient.unreachable(address): what the real-time transport calls when a connection to an
// HSM is refused or its handshake fails. The requests waiting on that address are treated as
// timed out on the clock's next turn (no virtual time passes), so reads fail over and writes report.
import { describe, expect, it } from "vitest";

import { ClusterClient } from "../../src/client/client.js";
import type { Transport } from "../../src/runtime/transport.js";
import { VirtualClock } from "../../src/sim/clock.js";
import { Rng } from "../../src/sim/random.js";

function silentClient() {
  const sent: string[] = [];
  const transport: Transport = { attach: () => {}, detach: () => {}, send: (_from, to) => void sent.push(to) };
  const clock = new VirtualClock();
  const client = new ClusterClient({ transport, clock, rng: new Rng("unreachable"), address: "app", bootstrap: "10.0.0.1:2223" });
  return { client, clock, sent };
}

describe("ClusterClient.unreachable", () => {
  it("fails a waiting bootstrap at once, with no time passing", () => {
    const { client, clock } = silentClient();
    let error: Error | null | undefined;
    client.connect((e) => (error = e));
    expect(error).toBeUndefined();
    client.unreachable("10.0.0.1:2223");
    expect(error).toBeUndefined(); // never inside the transport's call
    clock.runUntil(0);
    expect(clock.nowUs()).toBe(0);
    expect((error as { code?: string } | null)?.code).toBe("NO_REACHABLE_HSM");
    expect(client.stats.timeouts).toBe(1);
  });

  it("leaves requests to other addresses waiting", () => {
    const { client, clock } = silentClient();
    let error: Error | null | undefined;
    client.connect((e) => (error = e));
    client.unreachable("10.0.0.9:2223");
    clock.runUntil(0);
    expect(error).toBeUndefined();
    expect(client.stats.timeouts).toBe(0);
    client.close();
  });
});
