// The real-time part of `hsmsim demo` (src/cli/live-demo.ts): a cluster from the real `hsmsim up`,
// an application in a second process encrypting in a loop, kill -9 of the HSM it bootstrapped
// from; the application carries on without an error, and afterwards no process of the part runs
// and its temporary folder is gone — also when the cluster does not come up.
import { existsSync } from "node:fs";
import { type Server, createServer } from "node:net";

import { describe, expect, it } from "vitest";

import { type Output } from "../src/cli/format.js";
import { runLiveClusterDemo } from "../src/cli/live-demo.js";
import { alive } from "./processes/helpers.js";

function capture(): { out: Output; text: () => string } {
  let text = "";
  return {
    out: {
      step: (title) => void (text += `\n# ${title}\n`),
      line: (line) => void (text += `${line}\n`),
      table: (headers, rows) => void (text += `${[headers, ...rows].map((r) => r.join(" ")).join("\n")}\n`),
    },
    text: () => text,
  };
}

const randomBase = () => `127.${100 + Math.floor(Math.random() * 150)}.${1 + Math.floor(Math.random() * 250)}.2`;
const randomPort = () => 20_000 + Math.floor(Math.random() * 40_000);

describe("hsmsim demo, the real-time part", () => {
  it("the application carries on through kill -9 of an HSM with no error; every process stops and the folder goes", async () => {
    const { out, text } = capture();
    const report = await runLiveClusterDemo(out);
    expect(report.failure, text()).toBeUndefined();
    expect(report.ok).toBe(true);
    const r = report.result!;
    expect(r.before).toBeGreaterThanOrEqual(100);
    expect(r.after).toBeGreaterThan(0);
    expect(r.errorCount).toBe(0);
    expect(r.errors).toEqual([]);
    expect(text()).toMatch(/app: \d+ encrypt\+decrypt round trips before the kill, [1-9]\d* in the 1\.5 s after it, 0 errors/);
    expect(text()).toMatch(/the supervisor restarted hsm-[0-9a-f]+ from its data folder/);
    // supervisor, 3 HSMs, the restarted HSM, the application: none left
    expect(report.pids.length).toBeGreaterThanOrEqual(6);
    expect(report.leftovers).toEqual([]);
    expect(report.pids.filter(alive)).toEqual([]);
    expect(existsSync(report.root)).toBe(false);
    expect(text()).toContain(`${report.root} removed`);
  }, 240_000);

  it("a cluster that does not come up in time fails the part with the reason, and still leaves nothing behind", async () => {
    // The first HSM's address is taken: that HSM cannot listen, so `up` waits in vain.
    const base = randomBase(), port = randomPort();
    // The other HSMs dial the squatter as their peer: its connections are ended with it, or close() would wait on them.
    const dialled = new Set<import("node:net").Socket>();
    const squatter: Server = createServer((socket) => {
      dialled.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => dialled.delete(socket));
    });
    await new Promise<void>((resolve, reject) => squatter.once("error", reject).listen(port, base, resolve));
    try {
      const { out, text } = capture();
      const report = await runLiveClusterDemo(out, { timeoutMs: 4_000, baseAddress: base, port });
      expect(report.ok).toBe(false);
      expect(report.failure).toContain("did not come up within 4000 ms");
      expect(text()).toContain("FAILED: ");
      expect(report.result).toBeUndefined();
      expect(report.leftovers).toEqual([]);
      expect(report.pids.filter(alive)).toEqual([]);
      expect(existsSync(report.root)).toBe(false);
    } finally {
      for (const socket of dialled) socket.destroy();
      await new Promise((r) => squatter.close(r));
    }
  }, 240_000);
});
