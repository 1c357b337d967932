// `hsmsim proxy`: strict arguments, control lines on stdin, and the real command in its own process.
import { spawn } from "node:child_process";
import * as net from "node:net";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { runProxy, runProxyCommand } from "../../src/cli/proxy.js";

const ROOT = join(__dirname, "..", "..");
const HOST = "127.0.0.1";
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function sink() {
  let text = "";
  return { stream: { write: (t: string) => (text += t) }, text: () => text };
}

async function echoServer(): Promise<{ address: string; received: () => number }> {
  let received = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("error", () => undefined);
    s.on("data", (d) => ((received += d.length), s.write(d)));
  });
  await new Promise<void>((r) => server.listen(0, HOST, r));
  cleanups.push(() => new Promise((r) => (sockets.forEach((s) => s.destroy()), server.close(r))));
  return { address: `${HOST}:${(server.address() as net.AddressInfo).port}`, received: () => received };
}

async function waitFor<T>(what: string, probe: () => T | undefined | null): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const value = probe();
    if (value !== undefined && value !== null && value !== false) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function echoOnce(address: string, text: string): Promise<string> {
  const [host, port] = address.split(":");
  const socket = net.connect({ host, port: Number(port) });
  cleanups.push(() => socket.destroy());
  let got = "";
  socket.setEncoding("utf8");
  socket.on("data", (d) => (got += d));
  socket.write(text);
  await waitFor(`the echo of '${text}'`, () => got.length >= text.length || undefined);
  socket.destroy();
  return got;
}

describe("hsmsim proxy", () => {
  it("refuses bad command lines with the usage (exit 2)", async () => {
    const echo = await echoServer();
    const cases: [string[], RegExp][] = [
      [["--listen", `${HOST}:0`], /--to IP:PORT is required/],
      [["--to", echo.address], /--listen IP:PORT is required/],
      [["--listen", "localhost", "--to", echo.address], /--listen takes an address/],
      [["--listen", `${HOST}:0`, "--to", echo.address, "--reset-rate", "2"], /--reset-rate takes a number from 0 to 1/],
      [["--listen", `${HOST}:0`, "--to", echo.address, "--jitter-ms", "5"], /--jitter-ms only applies with --latency-ms/],
      [["--listen", `${HOST}:0`, "--to", echo.address, "--latency", "5"], /--latency/],
      [["--listen", `${HOST}:0`, "--to", echo.address, "--bandwidth", "-3"], /bandwidth/],
    ];
    for (const [args, message] of cases) {
      const out = sink(), err = sink();
      expect(await runProxyCommand(args, { stdout: out.stream, stderr: err.stream, env: {} })).toBe(2);
      expect(err.text()).toMatch(message);
      expect(err.text()).toContain("usage: hsmsim proxy");
      expect(out.text()).toBe("");
    }
  });

  it("starts with the faults given and changes them from control lines", async () => {
    const echo = await echoServer();
    const stdin = new PassThrough();
    const out = sink(), err = sink();
    let stop: () => void = () => undefined;
    const running = runProxy({ listen: `${HOST}:0`, to: echo.address, blackhole: true }, { stdout: out.stream, stderr: err.stream, env: {} }, { stdin, stop: new Promise<void>((r) => (stop = r)) });
    cleanups.push(() => (stop(), running));
    const address = (await waitFor("the proxy's address", () => /^proxy (\S+) ->/m.exec(out.text())))[1];
    const [host, port] = address.split(":");
    const socket = net.connect({ host, port: Number(port) });
    cleanups.push(() => socket.destroy());
    socket.write("held");
    await new Promise((r) => setTimeout(r, 300));
    expect(echo.received()).toBe(0);
    stdin.write("heal\n");
    await waitFor("the held bytes", () => echo.received() === 4 || undefined);
    stdin.write("latency 20 5 toTarget\nstats\nnonsense\n");
    await waitFor("the stats line", () => /"accepted":1/.test(out.text()) || undefined);
    expect(out.text()).toContain('"toTarget":{"latencyMs":20,"jitterMs":5');
    await waitFor("the error for an unknown control", () => /unknown control 'nonsense'/.test(err.text()) || undefined);
    expect(await echoOnce(address, "still works")).toBe("still works");
    stdin.write("quit\n");
    expect(await running).toBe(0);
    expect(out.text()).toContain("proxy stopped");
  });

  it("runs as `hsmsim proxy` in its own process and stops on SIGTERM", async () => {
    const echo = await echoServer();
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "src/cli/main.ts"), "proxy", "--listen", `${HOST}:0`, "--to", echo.address, "--latency-ms", "10"], { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
    cleanups.push(() => child.kill("SIGKILL"));
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const address = (await waitFor("the proxy's address", () => /^proxy (\S+) ->/m.exec(out)))[1];
    expect(await echoOnce(address, "through a process")).toBe("through a process");
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(out).toContain("proxy stopped");
  });
});
