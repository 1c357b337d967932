// The control socket refuses every malformed request with BAD_REQUEST (never reaching the
// handler), answers in order, closes only a connection whose line never ends, and is 0600.
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { type Server, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { type ControlRequest, controlRequest, parseControlRequest, serveControl } from "../../src/net/control-socket.js";

const HOSTILE = [
  "not json", "[]", "null", "42", '"status"', '{"op":"format-disk"}', '{"op":"kill","hsmId":"../../../etc/passwd"}', '{"op":"status","extra":1}',
  '{"op":"kill"}', '{"op":"kill","hsmId":["hsm-0123456789abcdef"]}', '{"op":"add","zone":123}', '{"op":"add","zone":""}',
  '{"op":"remove","hsmId":"hsm-0123456789abcdef","__proto__":{"polluted":1}}', '{"op":{"toString":"status"}}', '{"OP":"status"}',
];
const TOO_LONG = `{"op":"status","pad":"${"x".repeat(10_000)}"}`;

describe("control socket", () => {
  let dir: string, path: string, server: Server;
  const handled: ControlRequest[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "hsmsim-control-"));
    path = join(dir, "control.sock");
    server = await serveControl(path, async (r) => {
      handled.push(r);
      return { echo: r.op };
    }, () => {});
  });
  afterAll(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("is owner-only", () => {
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it("parses the requests it knows, exactly", () => {
    expect(parseControlRequest('{"op":"status"}')).toEqual({ op: "status" });
    expect(parseControlRequest('{"op":"kill","hsmId":"hsm-0123456789abcdef"}')).toEqual({ op: "kill", hsmId: "hsm-0123456789abcdef" });
    expect(parseControlRequest('{"op":"add","zone":"az-b"}')).toEqual({ op: "add", zone: "az-b" });
    for (const line of [...HOSTILE, TOO_LONG]) expect(() => parseControlRequest(line), line.slice(0, 60)).toThrow(expect.objectContaining({ code: "BAD_REQUEST" }));
  });

  it("answers every hostile line BAD_REQUEST, in order, sent in small pieces, and the handler never sees one", async () => {
    const before = handled.length;
    const payload = `${[...HOSTILE, '{"op":"status"}'].join("\n")}\n`;
    const answers = await new Promise<{ ok: boolean; code?: string; value?: unknown }[]>((resolve, reject) => {
      const socket = connect(path);
      let got = "";
      const timer = setTimeout(() => reject(new Error(`answers missing: ${got}`)), 20_000);
      socket.setEncoding("utf8");
      socket.on("error", reject);
      socket.on("data", (d: string) => {
        got += d;
        const lines = got.split("\n").filter(Boolean);
        if (lines.length === HOSTILE.length + 1) {
          clearTimeout(timer);
          socket.end();
          resolve(lines.map((l) => JSON.parse(l)));
        }
      });
      // Pieces split lines across chunks.
      let at = 0;
      const next = () => {
        if (at >= payload.length) return;
        socket.write(payload.slice(at, at + 777));
        at += 777;
        setImmediate(next);
      };
      next();
    });
    for (const a of answers.slice(0, -1)) expect(a).toMatchObject({ ok: false, code: "BAD_REQUEST" });
    expect(answers.at(-1)).toEqual({ ok: true, value: { echo: "status" } });
    expect(handled.slice(before)).toEqual([{ op: "status" }]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("a line longer than the limit closes that connection only, after an answer", async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(path);
      let got = "";
      const timer = setTimeout(() => reject(new Error(`the connection stayed open; got: ${got}`)), 20_000);
      socket.setEncoding("utf8");
      socket.on("data", (d: string) => (got += d));
      socket.on("error", () => {});
      socket.on("close", () => {
        clearTimeout(timer);
        resolve(got);
      });
      socket.write(`${TOO_LONG}\n${"x".repeat(100_000)}`);
    });
    expect(JSON.parse(answer.split("\n")[0])).toMatchObject({ ok: false, code: "BAD_REQUEST" });
    expect(await controlRequest(path, { op: "status" }, 10_000)).toEqual({ echo: "status" });
  });

  it("a client of a folder without a supervisor gets NOT_RUNNING", async () => {
    await expect(controlRequest(join(dir, "none.sock"), { op: "status" }, 5_000)).rejects.toMatchObject({ code: "NOT_RUNNING" });
  });
});
