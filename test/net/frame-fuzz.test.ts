// A small seeded run of the frame fuzzer (npm run fuzz:wire runs 100,000): hostile frames at a
// live HSM over TLS, which closes each connection a bad frame came on, answers or drops the
// frames the wire accepts, and keeps serving a legitimate client correct answers.
import { describe, expect, it } from "vitest";

import { fuzzFrames } from "../fuzz/frame-fuzzer.js";

describe("frame fuzzer", () => {
  it("3,000 hostile frames: every bad frame closes its connection, the HSM stays up and correct", async () => {
    const report = await fuzzFrames(3_000, 9);
    expect(report.findings).toEqual([]);
    expect(report.frames).toBeGreaterThanOrEqual(3_000);
    expect(report.fatalSent).toBeGreaterThan(5);
    expect(report.closedByHsm + report.leftToHandshakeTimeout).toBe(report.fatalSent);
    expect(report.notClosed).toBe(0);
    expect(report.answered + report.peerDropped).toBeGreaterThan(1_000);
    expect(report.legitChecks).toBeGreaterThanOrEqual(20);
    expect(report.legitFailures).toEqual([]);
    expect(report.hsm.running).toBe(true);
    const transport = report.hsm.transport as { badFrames: Record<string, number>; handlerErrors: number };
    expect(Object.keys(transport.badFrames).length).toBeGreaterThanOrEqual(4);
    expect(transport.handlerErrors).toBe(0);
    expect((report.hsm.node as { internalErrors: number }).internalErrors).toBe(0);
  }, 300_000);
});
