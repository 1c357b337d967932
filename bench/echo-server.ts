// A frame echo server in its own process (as an HSM is), for the cost split: it reads
// length-prefixed frames (u32 big-endian length, then the bytes) and answers each with a frame
// of `answerBytes`, over plain TCP or TLS 1.3 on loopback. Prints its port on stdout, and
// exits when its stdin closes (so it never outlives the benchmark).
// Run by cost-split.ts: tsx bench/echo-server.ts tcp|tls ANSWER_BYTES (cert and key PEM in env)
import * as net from "node:net";
import * as tls from "node:tls";

const [mode, answerArg] = process.argv.slice(2);
const answerBytes = Number(answerArg);
const answer = Buffer.alloc(4 + answerBytes, 7);
answer.writeUInt32BE(answerBytes, 0);

function serve(socket: net.Socket): void {
  socket.setNoDelay(true);
  let pending: Buffer = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let answers = 0;
    while (pending.length >= 4) {
      const length = pending.readUInt32BE(0);
      if (pending.length < 4 + length) break;
      pending = pending.subarray(4 + length);
      answers++;
    }
    if (answers === 1) socket.write(answer);
    else if (answers > 1) socket.write(Buffer.concat(Array.from({ length: answers }, () => answer)));
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
