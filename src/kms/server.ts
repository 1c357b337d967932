// The HTTP endpoint: KMS's JSON 1.1 protocol on loopback. POST / with X-Amz-Target
// TrentService.<Operation> and Content-Type application/x-amz-json-1.1; SigV4 checked before
// the body is parsed; errors as {"__type", "message"} with AWS's statuses and the
// x-amzn-RequestId header; a Date header from the injected clock (the SDK corrects its skew
// from it). Timeouts and a connection cap keep a slow or greedy peer from holding the server.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { type AddressInfo, Server as NetServer, type Socket } from "node:net";
import { asKmsError, KmsError } from "./errors.js";
import { type CredentialSet, userNameOf } from "./identity.js";
import { encodeOutput, isOperation, validateInput } from "./shapes.js";
import { verifyRequest } from "./sigv4.js";
import type { Caller, RequestContext } from "./types.js";

/** What the server knows of one finished request (the trail turns it into a record). */
export interface FinishedRequest {
  operation: string;
  /** The validated input (null when the request failed before validation). */
  input: Record<string, unknown> | null;
  /** The caller (null when authentication failed). */
  caller: Caller | null;
  context: RequestContext | null;
  requestId: string;
  error: KmsError | null;
  startMs: number;
  endMs: number;
}

export interface KmsServerOptions {
  /** Loopback only: 127.x.x.x or ::1 (default 127.0.0.1). */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  region: string;
  credentials: CredentialSet;
  /** Milliseconds since the Unix epoch (SigV4 skew, Date header, record times). */
  nowMs: () => number;
  /** A new request id (UUID). */
  newRequestId: () => string;
  /** Largest request body accepted (default 1 MiB); larger: 413 RequestEntityTooLargeException. */
  maxBodyBytes?: number;
  /** Runs one validated operation; throws KmsError. */
  handle: (operation: string, input: Record<string, unknown>, context: RequestContext) => Promise<Record<string, unknown>>;
  /** Called once per request after the answer is written (success or not). */
  onFinished?: (request: FinishedRequest) => void;
  /** How long a client may take to send its headers (default 10 s; slowloris). */
  headersTimeoutMs?: number;
  /** How long a client may take to send a whole request (default 30 s). */
  requestTimeoutMs?: number;
  /** How long an idle keep-alive connection stays open (default 5 s). */
  keepAliveTimeoutMs?: number;
  /** Open connections at most (default 256); more are refused at once. */
  maxConnections?: number;
  /**
   * A listening socket to serve instead of binding host:port: a net.Server handed over by the
   * process that holds the port (hsmsim up --kms: the supervisor keeps it bound across restarts of
   * the KMS process), or an inherited descriptor. It must be on loopback. Sockets emitted as
   * "connection" on a net.Server given here (its holder's, handed over one by one) are served too.
   */
  listenOn?: NetServer | { fd: number };
}

export interface KmsServer {
  /** http://HOST:PORT */
  url: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

const TARGET_PREFIX = "TrentService.";
const CONTENT_TYPES = new Set(["application/x-amz-json-1.1", "application/x-amz-json-1.0"]);
const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** Whether `host` is a loopback address this server may listen on. */
export function isLoopbackHost(host: string): boolean {
  return /^127(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(host) || host === "::1";
}

/** An HTTP date (RFC 7231 IMF-fixdate) for `ms`. */
const httpDate = (ms: number) => new Date(ms).toUTCString();

export async function startKmsServer(options: KmsServerOptions): Promise<KmsServer> {
  const host = options.host ?? "127.0.0.1";
  if (!isLoopbackHost(host)) throw new Error(`the KMS endpoint listens on loopback only (127.x.x.x or ::1), not ${host}`);
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1) throw new Error("maxBodyBytes must be a positive integer");
  const { region, credentials, nowMs, newRequestId, handle, onFinished } = options;

  const server = createServer(
    {
      headersTimeout: options.headersTimeoutMs ?? 10_000,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 5_000,
      // How often Node looks for requests past their timeouts: at most the shorter timeout.
      connectionsCheckingInterval: Math.max(10, Math.min(options.headersTimeoutMs ?? 10_000, 1_000)),
      maxHeaderSize: 16 * 1024,
    },
    // serve answers every failure itself; this catch is for an injected nowMs or newRequestId
    // that throws: the connection is dropped rather than the process.
    (req, res) => void serve(req, res).catch(() => res.destroy()),
  );
  server.maxConnections = options.maxConnections ?? 256;
  server.maxHeadersCount = 100;
  server.maxRequestsPerSocket = 0;
  // A malformed request line or header, or one too slow to arrive: answer in AWS's shape and
  // close, never throw.
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable || socket.writableEnded) return void socket.destroy();
    const [status, reason, message] =
      error.code === "ERR_HTTP_REQUEST_TIMEOUT" ? [408, "Request Timeout", "The request did not arrive in time"]
      : error.code === "HPE_HEADER_OVERFLOW" ? [431, "Request Header Fields Too Large", "The request's headers are too large"]
      : [400, "Bad Request", "The request could not be read as HTTP"];
    const body = JSON.stringify({ __type: "SerializationException", message });
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const startMs = nowMs();
    const requestId = newRequestId();
    let operation = "";
    let input: Record<string, unknown> | null = null;
    let caller: Caller | null = null;
    let context: RequestContext | null = null;
    let finished = false;

    const finish = (error: KmsError | null) => {
      if (finished) return;
      finished = true;
      try {
        onFinished?.({ operation, input, caller, context, requestId, error, startMs, endMs: nowMs() });
      } catch {
        // The trail's failure is not the caller's: the answer is already written.
      }
    };
    const answer = (status: number, payload: Buffer, closeAfter: boolean) => {
      if (res.headersSent || res.destroyed) return;
      res.writeHead(status, {
        "x-amzn-RequestId": requestId,
        Date: httpDate(nowMs()),
        "Content-Type": "application/x-amz-json-1.1",
        "Content-Length": payload.length,
        ...(closeAfter ? { Connection: "close" } : {}),
      });
      res.end(payload);
    };
    const fail = (error: unknown, closeAfter = false) => {
      const kmsError = asKmsError(error);
      answer(kmsError.httpStatus, Buffer.from(JSON.stringify({ __type: kmsError.code, message: kmsError.message })), closeAfter);
      finish(kmsError);
    };
    // A peer that goes away mid-request still ends its record, once. Once the handler runs, its
    // own outcome is the record (an operation that happened must not be recorded as failed).
    let handling = false;
    res.on("close", () => {
      if (!handling) finish(new KmsError("SerializationException", "the client closed the connection before the answer"));
    });

    try {
      if (req.method !== "POST" || req.url !== "/") {
        throw new KmsError("UnknownOperationException", "The KMS endpoint answers POST / only");
      }
      const target = req.headers["x-amz-target"];
      if (typeof target !== "string" || !target.startsWith(TARGET_PREFIX) || !isOperation(target.slice(TARGET_PREFIX.length))) {
        throw new KmsError("UnknownOperationException", target === undefined ? "Missing X-Amz-Target header" : "The X-Amz-Target header names no operation of TrentService");
      }
      operation = target.slice(TARGET_PREFIX.length);
      const contentType = (req.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
      if (!CONTENT_TYPES.has(contentType)) {
        throw new KmsError("SerializationException", "Content-Type must be application/x-amz-json-1.1");
      }
      const declaredLength = req.headers["content-length"];
      if (declaredLength !== undefined && Number(declaredLength) > maxBodyBytes) {
        // Do not read what will be refused: answer and close.
        return fail(new KmsError("RequestEntityTooLargeException", `The request body is larger than ${maxBodyBytes} bytes`), true);
      }
      const body = await readBody(req, maxBodyBytes);
      if (body === null) {
        return fail(new KmsError("RequestEntityTooLargeException", `The request body is larger than ${maxBodyBytes} bytes`), true);
      }

      const credential = await verifyRequest({ method: req.method, path: req.url, headers: joinedHeaders(req), body }, credentials, region, startMs);
      caller = {
        accountId: credential.accountId,
        arn: credential.arn,
        accessKeyId: credential.accessKeyId,
        userName: userNameOf(credential.arn),
        sourceIp: req.socket.remoteAddress ?? "",
        userAgent: typeof req.headers["user-agent"] === "string" ? req.headers["user-agent"].slice(0, 1024) : "",
      };

      let parsed: unknown;
      try {
        // An empty body is an empty input (AWS reads it so).
        parsed = body.length === 0 ? {} : JSON.parse(body.toString("utf8"));
      } catch {
        throw new KmsError("SerializationException", "The request body is not valid JSON");
      }
      input = validateInput(operation, parsed);
      context = { caller, requestId, region, notes: { resources: [], additionalEventData: {} } };
      handling = true;
      const output = await handle(operation, input, context);
      answer(200, Buffer.from(JSON.stringify(encodeOutput(output ?? {}))), false);
      finish(null);
    } catch (error) {
      fail(error);
    }
  }

  const { listenOn } = options;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const listening = () => {
      server.off("error", reject);
      resolve();
    };
    if (listenOn !== undefined) server.listen(listenOn, listening);
    else server.listen(options.port ?? 0, host, listening);
  });
  const address = server.address() as AddressInfo;
  if (listenOn !== undefined && !isLoopbackHost(address.address)) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw new Error(`the KMS endpoint listens on loopback only (127.x.x.x or ::1): the socket handed over is on ${address.address}`);
  }
  const handedOver = (socket: Socket) => void server.emit("connection", socket);
  if (listenOn instanceof NetServer) listenOn.on("connection", handedOver);
  const boundHost = listenOn !== undefined ? address.address : host;
  const port = address.port;
  const urlHost = boundHost.includes(":") ? `[${boundHost}]` : boundHost;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${urlHost}:${port}`,
    host: boundHost,
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        if (listenOn instanceof NetServer) listenOn.off("connection", handedOver);
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}

/** The request's headers, lower-case, repeated ones joined with "," (as SigV4 canonicalizes them). */
function joinedHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const [name, values] of Object.entries(req.headersDistinct)) {
    if (values !== undefined) out[name] = values.join(",");
  }
  return out;
}

/** The whole body, or null as soon as it passes `maxBytes` (reading stops; the connection will close). */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        req.off("data", onData);
        req.pause();
        resolve(null);
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
    req.once("error", () => reject(new KmsError("SerializationException", "The request body could not be read")));
    req.once("aborted", () => reject(new KmsError("SerializationException", "The request body was cut short")));
  });
}
