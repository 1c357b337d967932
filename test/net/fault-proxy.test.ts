// The fault proxy against a loopback echo server: each fault does what it says, heal restores,
// buffers stay bounded, nothing is left open. Timing checks are lower bounds only (a fault can
// only make things slower), never upper bounds.
import * as net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { NetError } from "../../src/net/net-error.js";
import { FaultProxy } from "../../src/net/fault-proxy.js";

const HOST = "127.0.0.1";
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Echo {
  address: string;
  received: () => number;
  connections: () => Promise<number>;
  server: net.Server;
}

async function echoServer(): Promise<Echo> {
  let received = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    socket.on("data", (data) => {
      received += data.length;
      socket.write(data);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  const port = (server.address() as net.AddressInfo).port;
  return { address: `${HOST}:${port}`, received: () => received, connections: () => new Promise((r) => server.getConnections((_e, n) => r(n))), server };
}

async function proxyTo(echo: Echo, faults = {}): Promise<FaultProxy> {
  const proxy = await FaultProxy.start({ listen: `${HOST}:0`, target: echo.address, faults });
  cleanups.push(() => proxy.close());
  return proxy;
}

interface Client {
  socket: net.Socket;
  /** Resolves once `n` bytes have come back in total; the bytes. */
  read(n: number): Promise<Buffer>;
  error: () => NodeJS.ErrnoException | undefined;
  closed: Promise<void>;
}

function connect(address: string): Promise<Client> {
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port: Number(port) });
    const chunks: Buffer[] = [];
    let length = 0;
    // Concatenated only when read: a big transfer stays linear.
    const buffered = () => {
      if (chunks.length > 1) chunks.splice(0, chunks.length, Buffer.concat(chunks));
      return chunks[0] ?? Buffer.alloc(0);
    };
    let error: NodeJS.ErrnoException | undefined;
    let wake = () => undefined as void;
    const closed = new Promise<void>((r) => socket.on("close", () => (r(), wake())));
    socket.on("data", (d: Buffer) => {
      chunks.push(d);
      length += d.length;
      wake();
    });
    socket.on("error", (e) => {
      error = e;
      reject(e);
      wake();
    });
    socket.on("connect", () => {
      cleanups.push(async () => void socket.destroy());
      resolve({
        socket,
        error: () => error,
        closed,
        read: (n) =>
          new Promise((res, rej) => {
            const timer = setTimeout(() => rej(new Error(`only ${length} of ${n} bytes came back within 30 s`)), 30_000);
            wake = () => {
              if (length >= n) {
                clearTimeout(timer);
                res(buffered().subarray(0, n));
              } else if (socket.destroyed) {
                clearTimeout(timer);
                rej(error ?? new Error(`closed after ${length} of ${n} bytes`));
              }
            };
            wake();
          }),
      });
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function roundTripMs(client: Client, already: number): Promise<number> {
  const start = performance.now();
  client.socket.write("ping");
  await client.read(already + 4);
  return performance.now() - start;
}

describe("fault proxy", () => {
  it("passes bytes through both ways and counts them", async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo);
    const client = await connect(proxy.address);
    const payload = Buffer.alloc(300_000, 7);
    client.socket.write(payload);
    expect((await client.read(payload.length)).equals(payload)).toBe(true);
    expect(proxy.stats).toMatchObject({ accepted: 1, open: 1, bytesToTarget: 300_000, bytesFromTarget: 300_000 });
  });

  it("adds latency per direction; jitter never reorders bytes", async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo, { toTarget: { latencyMs: 150 } });
    const client = await connect(proxy.address);
    expect(await roundTripMs(client, 0)).toBeGreaterThanOrEqual(149);
    await proxy.latency(100, 0, "fromTarget");
    expect(await roundTripMs(client, 4)).toBeGreaterThanOrEqual(249);
    await proxy.set({ toTarget: { latencyMs: 0, jitterMs: 40 }, fromTarget: { latencyMs: 0, jitterMs: 40 } });
    const chunks = Array.from({ length: 200 }, (_, i) => Buffer.from(`<${i}>`));
    for (const chunk of chunks) client.socket.write(chunk);
    const expected = Buffer.concat(chunks);
    expect((await client.read(8 + expected.length)).subarray(8).toString()).toBe(expected.toString());
  });

  it("a black hole accepts connections and forwards nothing; heal delivers what waited, intact", async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo);
    const before = await connect(proxy.address);
    await proxy.blackhole();
    before.socket.write("held");
    const fresh = await connect(proxy.address); // accepted...
    fresh.socket.write("also held");
    await sleep(300);
    expect(echo.received()).toBe(0); // ...but nothing reached the target
    expect(await echo.connections()).toBe(1); // the fresh connection never reached it either
    await proxy.heal();
    expect((await before.read(4)).toString()).toBe("held");
    expect((await fresh.read(9)).toString()).toBe("also held");
    expect(await echo.connections()).toBe(2);
  });

  it("refused connections get ECONNREFUSED; open ones stay; heal listens again on the same address", async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo);
    const open = await connect(proxy.address);
    const address = proxy.address;
    await proxy.refuse();
    await expect(connect(address)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    expect((await (open.socket.write("still"), open.read(5))).toString()).toBe("still");
    await proxy.heal();
    expect(proxy.address).toBe(address);
    const again = await connect(address);
    again.socket.write("back");
    expect((await again.read(4)).toString()).toBe("back");
  });

  it("resets every open connection now", async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo);
    const clients = await Promise.all([connect(proxy.address), connect(proxy.address), connect(proxy.address)]);
    for (const c of clients) c.socket.on("error", () => undefined);
    await Promise.all(clients.map(async (c) => (c.socket.write("x"), c.read(1))));
    expect(proxy.resetAll()).toBe(3);
    await Promise.all(clients.map((c) => c.closed));
    expect(clients.map((c) => c.error()?.code)).toEqual(["ECONNRESET", "ECONNRESET", "ECONNRESET"]);
    expect(proxy.stats).toMatchObject({ open: 0, resets: 3 });
    for (let i = 0; i < 100 && (await echo.connections()) > 0; i++) await sleep(20);
    expect(await echo.connections()).toBe(0);
  });

  it("resets each new connection with the given probability (1: all, 0: none)", async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo, { resetRate: 1, resetWindowMs: 50 });
    const doomed = await Promise.all(Array.from({ length: 5 }, () => connect(proxy.address)));
    for (const c of doomed) c.socket.on("error", () => undefined);
    await Promise.all(doomed.map((c) => c.closed));
    expect(doomed.every((c) => c.error()?.code === "ECONNRESET")).toBe(true);
    expect(proxy.stats.resets).toBe(5);
    await proxy.resetRate(0);
    const safe = await connect(proxy.address);
    await sleep(100);
    safe.socket.write("ok");
    expect((await safe.read(2)).toString()).toBe("ok");
  });

  it("a slow link trickles at its bandwidth", async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo, { toTarget: { bandwidthBytesPerS: 50_000 } });
    const client = await connect(proxy.address);
    const start = performance.now();
    client.socket.write(Buffer.alloc(20_000, 1));
    await client.read(20_000);
    // 20 kB at 50 kB/s in 2.5 kB slices: at least 7 slices after the first, 50 ms apart.
    expect(performance.now() - start).toBeGreaterThanOrEqual(340);
    await proxy.heal();
    expect(proxy.faults.toTarget.bandwidthBytesPerS).toBe(0);
    client.socket.write(Buffer.alloc(1_000_000, 2));
    expect((await client.read(1_020_000)).length).toBe(1_020_000);
  });

  it("holds a bounded amount while black-holed (backpressure, not memory)", async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo);
    const client = await connect(proxy.address);
    await proxy.blackhole();
    // More than the proxy's bound plus what the kernel's loopback socket buffers can take.
    const big = Buffer.alloc(24 << 20, 3);
    client.socket.write(big);
    await sleep(500);
    expect(proxy.stats.bytesToTarget).toBe(0);
    expect(proxy.stats.queuedBytes).toBeLessThanOrEqual((1 << 20) + (1 << 16));
    expect(client.socket.writableLength).toBeGreaterThan(0); // the rest waits in the sender, as behind a full TCP window
    await proxy.heal();
    expect((await client.read(big.length)).equals(big)).toBe(true);
  });

  it("a dead target resets the client's connection", async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo);
    await new Promise((r) => echo.server.close(r));
    const client = await connect(proxy.address);
    client.socket.on("error", () => undefined);
    await client.closed;
    expect(client.error()?.code).toBe("ECONNRESET");
  });

  it("close() stops listening and closes every connection on both sides", async () => {
    const echo = await echoServer();
    const proxy = await proxyTo(echo, { toTarget: { latencyMs: 1000 } });
    const clients = await Promise.all([connect(proxy.address), connect(proxy.address)]);
    for (const c of clients) c.socket.write("pending"); // a delayed chunk's timer is pending too
    await sleep(100);
    const address = proxy.address;
    await proxy.close();
    await Promise.all(clients.map((c) => c.closed));
    for (let i = 0; i < 100 && (await echo.connections()) > 0; i++) await sleep(20);
    expect(await echo.connections()).toBe(0);
    expect(proxy.stats.open).toBe(0);
    await expect(connect(address)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    expect(echo.received()).toBe(0);
  });

  it("refuses bad settings with clear errors", async () => {
    const echo = await echoServer();
    await expect(FaultProxy.start({ listen: "nowhere", target: echo.address })).rejects.toMatchObject({ code: "INVALID_ADDRESS" });
    await expect(FaultProxy.start({ listen: `${HOST}:0`, target: "x" })).rejects.toBeInstanceOf(NetError);
    const proxy = await proxyTo(echo);
    await expect(proxy.set({ toTarget: { latencyMs: -1 } })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(proxy.set({ resetRate: 2 })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(proxy.set({ lossRate: 1 } as never)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(proxy.latency(Number.NaN)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(FaultProxy.start({ listen: proxy.address, target: echo.address })).rejects.toMatchObject({ code: "CONNECTION_FAILED" });
    expect(proxy.faults.toTarget.latencyMs).toBe(0);
  });
});
