// A frame echo server in its own process (as an HSM is), for the cost split: it reads
// length-prefixed frames (u32 big-endian length, then the bytes, the first 4 of which say how
// long the answer is) and answers each with a frame of that length, over plain TCP or TLS 1.3
// on loopback. Prints its port on stdout, and exits when its stdin closes (so it never
// outlives the benchmark). Run by cost-split.ts: tsx bench/echo-server.ts tcp|tls (PEMs in env)
import * as net from "node:net";
import * as tls from "node:tls";

const [mode] = process.argv.slice(2);
const answers = new Map<number, Buffer>();
function answer(bytes: number): Buffer {
  let a = answers.get(bytes);
  if (!a) {
    a = Buffer.alloc(4 + bytes, 7);
    a.writeUInt32BE(bytes, 0);
    answers.set(bytes, a);
  }
  return a;
}

function serve(socket: net.Socket): void {
  socket.setNoDelay(true);
  let pending: Buffer = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    const out: Buffer[] = [];
    while (pending.length >= 8) {
      const length = pending.readUInt32BE(0);
      if (pending.length < 4 + length) break;
      out.push(answer(pending.readUInt32BE(4)));
      pending = pending.subarray(4 + length);
    }
    if (out.length === 1) socket.write(out[0]);
    else if (out.length > 1) socket.write(Buffer.concat(out));
  });
  socket.on("error", () => socket.destroy());
}

const server = mode === "tls"
  ? tls.createServer({ cert: process.env.ECHO_CERT, key: process.env.ECHO_KEY, minVersion: "TLSv1.3" }, serve)
  : net.createServer(serve);
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${(server.address() as net.AddressInfo).port}\n`);
});
process.stdin.on("end", () => process.exit(0));
process.stdin.on("close", () => process.exit(0));
process.stdin.resume();
