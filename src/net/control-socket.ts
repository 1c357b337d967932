// The supervisor's control socket: a unix socket in the cluster folder (0600, in a 0700
// folder: only its owner reaches it), JSON lines. Every request is checked before use — size,
// JSON, exactly the known fields, the operation, an HSM id's form — and a bad one gets a
// BAD_REQUEST answer, never a crash. The client side (`controlRequest`) is what the CLI uses.
import { chmodSync, unlinkSync } from "node:fs";
import { type Server, type Socket, connect, createServer } from "node:net";

import { HSM_ID } from "./cluster-folder.js";
import { ProcessError } from "./process-errors.js";

export type ControlRequest =
  | { op: "status" }
  | { op: "down" }
  | { op: "backup" }
  | { op: "add"; zone?: string }
  | { op: "kill" | "restart" | "remove" | "replace"; hsmId: string };

export type ControlAnswer = { ok: true; value: unknown } | { ok: false; code: string; message: string };

/** A request line may be at most this long; a longer one closes the connection. */
export const MAX_REQUEST_BYTES = 4096;
/** Requests read but not yet answered, and answer bytes the client has not read, beyond which its socket is not read. */
const MAX_PENDING = 32;
const MAX_UNREAD_ANSWER_BYTES = 1024 * 1024;
const WITH_HSM = new Set(["kill", "restart", "remove", "replace"]);
const OPS = new Set(["status", "down", "backup", "add", ...WITH_HSM]);

/** The request in `line`, or a ProcessError BAD_REQUEST saying what is wrong. */
export function parseControlRequest(line: string): ControlRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ProcessError("BAD_REQUEST", "a request is one JSON object per line");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new ProcessError("BAD_REQUEST", "a request is a JSON object");
  const fields = Object.keys(value);
  const r = value as Record<string, unknown>;
  if (typeof r.op !== "string" || !OPS.has(r.op)) throw new ProcessError("BAD_REQUEST", `op must be one of ${[...OPS].join(", ")}`);
  const allowed = WITH_HSM.has(r.op) ? ["op", "hsmId"] : r.op === "add" ? ["op", "zone"] : ["op"];
  const extra = fields.filter((f) => !allowed.includes(f));
  if (extra.length > 0) throw new ProcessError("BAD_REQUEST", `unknown field(s) for ${r.op}: ${extra.join(", ")}`);
  if (WITH_HSM.has(r.op) && (typeof r.hsmId !== "string" || !HSM_ID.test(r.hsmId))) throw new ProcessError("BAD_REQUEST", "hsmId must be hsm- and 16 hex digits");
  if (r.op === "add" && r.zone !== undefined && (typeof r.zone !== "string" || r.zone.length === 0 || r.zone.length > 64)) throw new ProcessError("BAD_REQUEST", "zone must be a name of 1 to 64 characters");
  return value as ControlRequest;
}

export type ControlHandler = (request: ControlRequest) => Promise<unknown>;

/** The longest unix socket path (sun_path less its NUL): Node binds a longer one silently truncated, elsewhere. */
export const MAX_SOCKET_PATH_BYTES = process.platform === "linux" ? 107 : 103;

/** Refuses a control socket path too long to bind as given (a cluster folder path that is too long). */
export function checkSocketPath(path: string): void {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new ProcessError("INVALID_ARGUMENT", `the control socket ${path} is ${bytes} bytes long; a unix socket path is at most ${MAX_SOCKET_PATH_BYTES}: use a shorter --data path`);
  }
}

/** Listens on `path` (a stale socket file from a crashed supervisor is replaced: the caller holds the folder's lock). */
export function serveControl(path: string, handle: ControlHandler, onError: (what: string) => void): Promise<Server> {
  try {
    checkSocketPath(path);
  } catch (e) {
    return Promise.reject(e);
  }
  try {
    unlinkSync(path);
  } catch {
    // none
  }
  const server = createServer((socket) => serveConnection(socket, handle, onError));
  server.maxConnections = 16;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      try {
        chmodSync(path, 0o600);
      } catch (e) {
        server.close();
        return reject(e);
      }
      server.off("error", reject);
      server.on("error", (e) => onError(`control socket: ${e.message}`));
      resolve(server);
    });
  });
}

function serveConnection(socket: Socket, handle: ControlHandler, onError: (what: string) => void): void {
  let buffered = "";
  let busy = Promise.resolve();
  socket.setEncoding("utf8");
  socket.setTimeout(120_000, () => socket.destroy());
  socket.on("error", () => {});
  // Backpressure: a client that pipelines requests faster than it reads the answers stops being
  // read (the kernel then blocks its writes) instead of having every answer buffered here.
  let pending = 0;
  const throttle = () => {
    if (socket.destroyed) return;
    if (pending > MAX_PENDING || socket.writableLength > MAX_UNREAD_ANSWER_BYTES) socket.pause();
    else socket.resume();
  };
  socket.on("drain", throttle);
  // The next request is handled only once the client has read enough of the answers before it.
  const roomToAnswer = () => new Promise<void>((resolve) => {
    if (socket.destroyed || socket.writableLength <= MAX_UNREAD_ANSWER_BYTES) return resolve();
    const done = () => {
      socket.off("drain", done);
      socket.off("close", done);
      resolve();
    };
    socket.on("drain", done);
    socket.on("close", done);
  });
  const answer = (a: ControlAnswer) => {
    pending--;
    if (!socket.destroyed) socket.write(`${JSON.stringify(a)}\n`);
    throttle();
  };
  let closing = false;
  socket.on("data", (chunk: string) => {
    if (closing) return;
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      pending++;
      if (line.length > MAX_REQUEST_BYTES) {
        busy = busy.then(() => answer({ ok: false, code: "BAD_REQUEST", message: `a request line is at most ${MAX_REQUEST_BYTES} bytes` }));
        continue;
      }
      // Requests on one connection are answered in order.
      busy = busy.then(roomToAnswer).then(async () => {
        try {
          const request = parseControlRequest(line);
          answer({ ok: true, value: (await handle(request)) ?? null });
        } catch (e) {
          const code = typeof (e as { code?: unknown }).code === "string" ? (e as { code: string }).code : "FAILED";
          if (code === "BAD_REQUEST") onError(`bad control request refused: ${(e as Error).message}`);
          answer({ ok: false, code, message: e instanceof Error ? e.message : String(e) });
        }
      });
    }
    if (buffered.length > MAX_REQUEST_BYTES) {
      // A line that does not end within the limit: answer what came before, then close this connection only.
      closing = true;
      buffered = "";
      onError("control request too long: connection closed");
      pending++;
      busy = busy.then(() => {
        answer({ ok: false, code: "BAD_REQUEST", message: `a request line is at most ${MAX_REQUEST_BYTES} bytes` });
        socket.end();
        // A peer that keeps its side open does not keep the connection.
        setTimeout(() => socket.destroy(), 2_000).unref();
      });
    }
    throttle();
  });
}

/** Sends one request to the supervisor on `path` and returns its answer's value (or throws its error). */
export function controlRequest(path: string, request: ControlRequest, timeoutMs = 120_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let buffered = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ProcessError("TIMEOUT", `the supervisor did not answer '${request.op}' within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding("utf8");
    socket.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(e.code === "ENOENT" || e.code === "ECONNREFUSED" ? new ProcessError("NOT_RUNNING", "no supervisor runs on this cluster folder (run hsmsim up)") : e);
    });
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      const newline = buffered.indexOf("\n");
      if (newline < 0) return;
      clearTimeout(timer);
      socket.end();
      let a: ControlAnswer;
      try {
        a = JSON.parse(buffered.slice(0, newline)) as ControlAnswer;
      } catch {
        return reject(new ProcessError("BAD_REQUEST", "the supervisor's answer is not JSON"));
      }
      if (a.ok) resolve(a.value);
      else reject(new ProcessError((a.code as ProcessError["code"]) ?? "CHILD_FAILED", a.message));
    });
    socket.on("close", () => {
      clearTimeout(timer);
      reject(new ProcessError("NOT_RUNNING", "the supervisor closed the connection without answering"));
    });
    socket.write(`${JSON.stringify(request)}\n`);
  });
}
