// The KMS endpoint's wire under attack: tampered, stale, replayed and half-signed requests; a
// peer that lies about its body's hash or carries a session token; hostile HTTP (garbage bytes,
// slowloris, oversized or endless bodies, too many connections). Every one gets AWS's error
// shape or a closed socket, the handler never runs for it, and the server keeps serving.
import { connect, type Socket } from "node:net";
import { createHash } from "node:crypto";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { ListKeysCommand } from "@aws-sdk/client-kms";
import { afterEach, describe, expect, it } from "vitest";
import { CredentialSet } from "../../src/kms/identity.js";
import { startKmsServer } from "../../src/kms/server.js";
import { verifyRequest } from "../../src/kms/sigv4.js";
import { ALICE, REGION, SAAS, type Stub, send, signed, startStub } from "../kms/wire-fixture.js";

let stub: Stub | undefined;
afterEach(async () => {
  await stub?.close();
  stub = undefined;
});

const ENCRYPT = JSON.stringify({ KeyId: "alias/app", Plaintext: Buffer.from("attack at dawn").toString("base64") });

/** Sends raw bytes over a fresh socket; resolves with everything the server wrote before closing. */
function rawExchange(port: number, host: string, bytes: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host, () => socket.write(bytes));
    const chunks: Buffer[] = [];
    socket.on("data", (c) => chunks.push(c));
    socket.on("error", reject);
    socket.on("close", () => resolve(Buffer.concat(chunks).toString("latin1")));
  });
}

function closed(socket: Socket): Promise<void> {
  // Flowing, so the server's FIN is read and the socket can close.
  socket.resume();
  return new Promise((resolve) => (socket.destroyed ? resolve() : socket.once("close", () => resolve())));
}

describe("SigV4 attacks", () => {
  it("accepts a request signed by hand (the baseline the tampering cases change)", async () => {
    stub = await startStub();
    const response = await send(stub.server, await signed(stub.server, "Encrypt", ENCRYPT));
    expect(response.status).toBe(200);
    expect(Buffer.from(response.json.CiphertextBlob as string, "base64").reverse().toString()).toBe("attack at dawn");
  });

  it("refuses a body altered after signing", async () => {
    stub = await startStub();
    // Signed as the SDK does (x-amz-content-sha256 among the signed headers) and without it.
    for (const applyChecksum of [true, false]) {
      const request = await signed(stub.server, "Encrypt", ENCRYPT, { applyChecksum });
      expect(request.headers["authorization"].includes("x-amz-content-sha256")).toBe(applyChecksum);
      request.body = ENCRYPT.replace("alias/app", "alias/pwn");
      const response = await send(stub.server, request);
      expect(response.status).toBe(400);
      expect(response.json.__type).toBe("InvalidSignatureException");
      expect(response.json.message).toMatch(applyChecksum ? /x-amz-content-sha256/ : /^The request signature we calculated does not match/);
    }
    expect(stub.calls).toEqual([]);
  });

  it("refuses a signed header altered after signing (the operation swapped)", async () => {
    stub = await startStub();
    const request = await signed(stub.server, "GenerateRandom", JSON.stringify({ NumberOfBytes: 16 }));
    request.headers["x-amz-target"] = "TrentService.ListKeys";
    const response = await send(stub.server, request);
    expect(response.json.__type).toBe("InvalidSignatureException");
    expect(stub.calls).toEqual([]);
  });

  it("refuses a replay 6 minutes later and a request signed 6 minutes ahead; 5 minutes is within the window", async () => {
    stub = await startStub();
    const signedAtMs = Date.UTC(2026, 0, 2, 3, 4, 5);
    const request = await signed(stub.server, "ListKeys", "{}", { atMs: signedAtMs });
    stub.clock.nowMs = signedAtMs + 5 * 60_000;
    expect((await send(stub.server, request)).status).toBe(200);
    stub.clock.nowMs = signedAtMs + 6 * 60_000;
    const late = await send(stub.server, request);
    expect(late.json.__type).toBe("InvalidSignatureException");
    expect(late.json.message).toBe("Signature expired: 20260102T030405Z is now earlier than 20260102T030505Z (20260102T031005Z - 5 min.)");
    stub.clock.nowMs = signedAtMs - 6 * 60_000;
    const early = await send(stub.server, request);
    expect(early.json.__type).toBe("InvalidSignatureException");
    expect(early.json.message).toMatch(/^Signature not yet current: 20260102T030405Z is still later than/);
    expect(stub.calls).toHaveLength(1);
  });

  it("refuses an unsigned X-Amz-Target (a captured body could be run as another operation)", async () => {
    stub = await startStub();
    const signer = new SignatureV4({ credentials: ALICE, region: REGION, service: "kms", sha256: Hash.bind(null, "sha256") });
    const request = await signer.sign(
      new HttpRequest({
        method: "POST", hostname: stub.server.host, path: "/", body: "{}",
        headers: { host: `${stub.server.host}:${stub.server.port}`, "content-type": "application/x-amz-json-1.1", "x-amz-target": "TrentService.ListKeys" },
      }),
      { unsignableHeaders: new Set(["x-amz-target"]) },
    );
    expect(request.headers["authorization"]).not.toMatch(/x-amz-target/);
    const response = await send(stub.server, { headers: request.headers as Record<string, string>, body: "{}" });
    expect(response.json.__type).toBe("IncompleteSignatureException");
    expect(response.json.message).toMatch(/x-amz-target/);
  });

  it("checks a signed x-amz-content-sha256 against the body (the signer alone would trust it)", async () => {
    stub = await startStub();
    const honest = JSON.stringify({ NumberOfBytes: 16 });
    const request = await signed(stub.server, "GenerateRandom", honest, { extraHeaders: { "x-amz-content-sha256": createHash("sha256").update(honest).digest("hex") } });
    expect(request.headers["authorization"]).toMatch(/x-amz-content-sha256/);
    expect((await send(stub.server, request)).status).toBe(200);
    // Same signed headers, another body: the signature still matches the claimed hash.
    const response = await send(stub.server, { ...request, body: JSON.stringify({ NumberOfBytes: 1024 }) });
    expect(response.json.__type).toBe("InvalidSignatureException");
    expect(response.json.message).toMatch(/x-amz-content-sha256/);
    expect(stub.calls).toHaveLength(1);
    // UNSIGNED-PAYLOAD is not accepted either.
    const unsigned = await signed(stub.server, "GenerateRandom", honest, { extraHeaders: { "x-amz-content-sha256": "UNSIGNED-PAYLOAD" } });
    expect((await send(stub.server, unsigned)).json.__type).toBe("InvalidSignatureException");
  });

  it("refuses session tokens (no STS here), signed or slipped in unsigned", async () => {
    stub = await startStub();
    const signer = new SignatureV4({ credentials: { ...ALICE, sessionToken: "FQoGZXIvYXdzEB4aDExample" }, region: REGION, service: "kms", sha256: Hash.bind(null, "sha256") });
    const withToken = await signer.sign(
      new HttpRequest({ method: "POST", hostname: stub.server.host, path: "/", body: "{}", headers: { host: `${stub.server.host}:${stub.server.port}`, "content-type": "application/x-amz-json-1.1", "x-amz-target": "TrentService.ListKeys" } }),
    );
    const response = await send(stub.server, { headers: withToken.headers as Record<string, string>, body: "{}" });
    expect(response.json.__type).toBe("UnrecognizedClientException");
    const slipped = await signed(stub.server, "ListKeys", "{}");
    slipped.headers["x-amz-security-token"] = "anything";
    expect((await send(stub.server, slipped)).json.__type).toBe("IncompleteSignatureException");
    expect(stub.calls).toEqual([]);
  });

  it("refuses a signature made with another principal's secret under this key id", async () => {
    stub = await startStub();
    const forged = await signed(stub.server, "ListKeys", "{}", { credential: { ...SAAS, accessKeyId: ALICE.accessKeyId } });
    expect((await send(stub.server, forged)).json.__type).toBe("InvalidSignatureException");
    const unknown = await signed(stub.server, "ListKeys", "{}", { credential: { ...ALICE, accessKeyId: "AKIAGHOST00000000000" } });
    expect((await send(stub.server, unknown)).json.__type).toBe("UnrecognizedClientException");
  });

  it("answers missing and malformed Authorization headers in AWS's shape", async () => {
    stub = await startStub();
    const base = await signed(stub.server, "ListKeys", "{}");
    const { authorization, ...unsigned } = base.headers;
    const missing = await send(stub.server, { headers: unsigned, body: "{}" });
    expect(missing.status).toBe(403);
    expect(missing.json).toEqual({ __type: "MissingAuthenticationTokenException", message: "Missing Authentication Token" });
    const credential = /Credential=([^,]+)/.exec(authorization)![1];
    const signature = /Signature=(\w+)/.exec(authorization)![1];
    const variants: [string, string][] = [
      ["AWS4-HMAC-SHA512 Credential=x", "IncompleteSignatureException"],
      ["garbage", "IncompleteSignatureException"],
      [`AWS4-HMAC-SHA256 Credential=${credential}, Signature=${signature}`, "IncompleteSignatureException"],
      [`AWS4-HMAC-SHA256 Credential=${ALICE.accessKeyId}/x, SignedHeaders=host, Signature=${signature}`, "IncompleteSignatureException"],
      [`AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=host;x-amz-date;x-amz-target, Signature=zz`, "InvalidSignatureException"],
      [`AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=Host;X-Amz-Date, Signature=${signature}`, "IncompleteSignatureException"],
      [`AWS4-HMAC-SHA256 Credential=${credential.replace("/kms/", "/s3/")}, SignedHeaders=host;x-amz-date;x-amz-target, Signature=${signature}`, "InvalidSignatureException"],
      [`AWS4-HMAC-SHA256 Credential=${credential.replace("aws4_request", "aws5_request")}, SignedHeaders=host;x-amz-date;x-amz-target, Signature=${signature}`, "InvalidSignatureException"],
      [`AWS4-HMAC-SHA256 Credential=${credential.replace(/\/\d{8}\//, "/19990101/")}, SignedHeaders=host;x-amz-date;x-amz-target, Signature=${signature}`, "InvalidSignatureException"],
      // Names that exist on Object.prototype are not headers the request carries.
      [`AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=constructor;host;x-amz-date;x-amz-target, Signature=${signature}`, "InvalidSignatureException"],
      [`AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=__proto__;host;x-amz-date;x-amz-target, Signature=${signature}`, "InvalidSignatureException"],
      // Listed twice, unsorted: not what the signer computes.
      [`AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=x-amz-target;host;x-amz-date, Signature=${signature}`, "InvalidSignatureException"],
    ];
    for (const [value, exception] of variants) {
      const response = await send(stub.server, { headers: { ...unsigned, authorization: value }, body: "{}" });
      expect(response.json.__type, value).toBe(exception);
    }
    const badDate = await send(stub.server, { headers: { ...base.headers, "x-amz-date": "20260231T000000Z" }, body: "{}" });
    expect(badDate.json.__type).toBe("IncompleteSignatureException");
    expect(stub.calls).toEqual([]);
  });

  it("verifyRequest maps odd header objects to errors, never a TypeError", async () => {
    const credentials = new CredentialSet([ALICE]);
    const headers = Object.assign(Object.create({ authorization: "inherited" }), { host: "127.0.0.1" });
    await expect(verifyRequest({ method: "POST", path: "/", headers, body: Buffer.alloc(0) }, credentials, REGION, Date.now())).rejects.toMatchObject({
      code: "MissingAuthenticationTokenException",
    });
  });
});

describe("hostile HTTP", () => {
  it("signed but malformed JSON, wrong types, non-objects: SerializationException; an empty body is {}", async () => {
    stub = await startStub();
    for (const body of ["{", "{\"KeyId\": }", "\u0000\u0001", "[1,2]", "\"text\"", "null"]) {
      const response = await send(stub.server, await signed(stub.server, "ListKeys", body));
      expect(response.status, body).toBe(400);
      expect(response.json.__type, body).toBe("SerializationException");
    }
    const wrongType = await send(stub.server, await signed(stub.server, "ListKeys", JSON.stringify({ Limit: "10" })));
    expect(wrongType.json.__type).toBe("SerializationException");
    expect(wrongType.json.message).toContain("'limit'");
    expect((await send(stub.server, await signed(stub.server, "ListKeys", ""))).status).toBe(200);
    expect(stub.calls.map((c) => c.input)).toEqual([{}]);
  });

  it("refuses an oversized body with 413 without reading it, declared or chunked", async () => {
    stub = await startStub(undefined, { maxBodyBytes: 1024 });
    const big = JSON.stringify({ KeyId: "k", Plaintext: "A".repeat(2000) });
    const declared = await send(stub.server, await signed(stub.server, "Encrypt", big));
    expect(declared.status).toBe(413);
    expect(declared.json.__type).toBe("RequestEntityTooLargeException");
    expect(declared.headers["connection"]).toBe("close");
    // Chunked, no length declared: reading stops at the cap.
    const request = await signed(stub.server, "Encrypt", big);
    const { host, port } = stub.server;
    const headerText = Object.entries(request.headers).filter(([n]) => n.toLowerCase() !== "content-length").map(([n, v]) => `${n}: ${v}\r\n`).join("");
    const chunk = Buffer.from(big);
    const answer = await rawExchange(port, host, Buffer.concat([
      Buffer.from(`POST / HTTP/1.1\r\n${headerText}transfer-encoding: chunked\r\n\r\n${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n0\r\n\r\n"),
    ]));
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toContain('"__type":"RequestEntityTooLargeException"');
    expect(stub.calls).toEqual([]);
  });

  it("answers a missing or unknown target, other methods and paths, and a wrong content type in AWS's shape", async () => {
    stub = await startStub();
    const base = await signed(stub.server, "ListKeys", "{}");
    const { "x-amz-target": _target, ...noTarget } = base.headers;
    const cases: [Parameters<typeof send>[1], number, string][] = [
      [{ headers: noTarget, body: "{}" }, 400, "UnknownOperationException"],
      [{ headers: { ...base.headers, "x-amz-target": "TrentService.DeleteEverything" }, body: "{}" }, 400, "UnknownOperationException"],
      [{ headers: { ...base.headers, "x-amz-target": "TrentService.constructor" }, body: "{}" }, 400, "UnknownOperationException"],
      [{ headers: { ...base.headers, "x-amz-target": "DynamoDB_20120810.ListTables" }, body: "{}" }, 400, "UnknownOperationException"],
      [{ method: "GET", headers: {}, body: "" }, 400, "UnknownOperationException"],
      [{ method: "PUT", headers: base.headers, body: "{}" }, 400, "UnknownOperationException"],
      [{ path: "/../etc/passwd", headers: base.headers, body: "{}" }, 400, "UnknownOperationException"],
      [{ path: "/?Action=ListKeys", headers: base.headers, body: "{}" }, 400, "UnknownOperationException"],
      [{ headers: { ...base.headers, "content-type": "text/plain" }, body: "{}" }, 400, "SerializationException"],
    ];
    for (const [request, status, exception] of cases) {
      const response = await send(stub.server, request);
      expect(response.status, JSON.stringify(request.headers)).toBe(status);
      expect(response.json.__type).toBe(exception);
      expect(response.headers["x-amzn-requestid"]).toMatch(/^[0-9a-f-]{36}$/);
      expect(response.headers["content-type"]).toBe("application/x-amz-json-1.1");
      expect(response.headers["date"]).toBe(new Date(stub.clock.nowMs).toUTCString());
    }
    expect(stub.calls).toEqual([]);
    expect(stub.finished).toHaveLength(cases.length);
  });

  it("answers garbage bytes with a 400 and closes; the server keeps serving", async () => {
    stub = await startStub();
    const { host, port } = stub.server;
    for (const garbage of ["\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "HELLO THERE\r\n\r\n", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", "POST / HTTP/1.1\r\n" + "X: y\r\n".repeat(5000) + "\r\n"]) {
      const answer = await rawExchange(port, host, Buffer.from(garbage, "latin1"));
      expect(answer === "" || /^HTTP\/1\.1 4\d\d /.test(answer), JSON.stringify(answer.slice(0, 80))).toBe(true);
    }
    expect((await send(stub.server, await signed(stub.server, "ListKeys", "{}"))).status).toBe(200);
  });

  it("closes a slowloris connection that never finishes its headers", async () => {
    stub = await startStub(undefined, { headersTimeoutMs: 200, requestTimeoutMs: 400 });
    const socket = connect(stub.server.port, stub.server.host);
    socket.on("error", () => {});
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
    let received = "";
    socket.on("data", (c) => (received += c.toString("latin1")));
    // Bounded by the test's timeout, not a threshold: the server must close it on its own.
    await closed(socket);
    expect(received === "" || /^HTTP\/1\.1 408 /.test(received)).toBe(true);
    // A body that never arrives is cut off too.
    const request = await signed(stub.server, "ListKeys", "{}");
    const slowBody = connect(stub.server.port, stub.server.host);
    slowBody.on("error", () => {});
    await new Promise<void>((resolve) => slowBody.once("connect", () => resolve()));
    slowBody.write(`POST / HTTP/1.1\r\n${Object.entries(request.headers).map(([n, v]) => `${n}: ${v}\r\n`).join("")}content-length: 100\r\n\r\n{`);
    await closed(slowBody);
    expect(stub.calls).toEqual([]);
    // The request that reached the server still gets its one record (its close may land after ours).
    while (stub.finished.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(stub.finished).toHaveLength(1);
    expect(stub.finished[0]).toMatchObject({ operation: "ListKeys", caller: null, input: null });
    expect(stub.finished[0].error?.code).toBe("SerializationException");
    expect((await send(stub.server, await signed(stub.server, "ListKeys", "{}"))).status).toBe(200);
  });

  it("bounds concurrent connections; refused ones are closed, and serving resumes", async () => {
    stub = await startStub(undefined, { maxConnections: 2 });
    const open = (): Promise<Socket> =>
      new Promise((resolve) => {
        const socket = connect(stub!.server.port, stub!.server.host, () => resolve(socket));
        socket.on("error", () => {});
      });
    const held = [await open(), await open()];
    const third = await open();
    await closed(third);
    for (const socket of held) socket.destroy();
    await Promise.all(held.map(closed));
    // The server counts a connection gone once its close event ran; retry until then.
    let status = 0;
    while (status !== 200) status = (await send(stub.server, await signed(stub.server, "ListKeys", "{}")).catch(() => ({ status: 0 }))).status;
    expect(status).toBe(200);
  });

  it("close() ends idle keep-alive connections (an SDK client holding one does not keep it open)", async () => {
    stub = await startStub(undefined, { keepAliveTimeoutMs: 600_000 });
    const client = stub.client();
    await client.send(new ListKeysCommand({}));
    await client.send(new ListKeysCommand({}));
    await stub.server.close();
    await expect(send(stub.server, await signed(stub.server, "ListKeys", "{}"))).rejects.toThrow();
    stub = undefined;
    client.destroy();
  });

  it("a client that leaves while its operation runs: the record holds the operation's own outcome, once", async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    stub = await startStub(async () => {
      started();
      await released;
      return { KeyId: "k" };
    });
    const request = await signed(stub.server, "ListKeys", "{}");
    const socket = connect(stub.server.port, stub.server.host, () => {
      socket.write(`POST / HTTP/1.1\r\n${Object.entries(request.headers).map(([n, v]) => `${n}: ${v}\r\n`).join("")}content-length: 2\r\n\r\n{}`);
    });
    socket.on("error", () => {});
    await running;
    socket.destroy();
    await closed(socket);
    // Let the server see the close before the operation ends (the case being tested; if it has
    // not yet, the test passes trivially rather than failing).
    await new Promise((resolve) => setTimeout(resolve, 100));
    release();
    while (stub.finished.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(stub.finished).toHaveLength(1);
    expect(stub.finished[0]).toMatchObject({ operation: "ListKeys", error: null, caller: { arn: ALICE.arn } });
  });

  it("a throwing onFinished neither changes the answer nor crashes the server", async () => {
    stub = await startStub(undefined, {
      onFinished: () => {
        throw new Error("trail is broken");
      },
    });
    expect((await send(stub.server, await signed(stub.server, "ListKeys", "{}"))).status).toBe(200);
    expect((await send(stub.server, await signed(stub.server, "ListKeys", "{"))).json.__type).toBe("SerializationException");
  });

  it("survives injected services that throw (a broken clock or request id source drops the connection only)", async () => {
    let broken = false;
    stub = await startStub(undefined, {
      newRequestId: () => {
        if (broken) throw new Error("no ids today");
        return "00000000-0000-4000-8000-000000000000";
      },
    });
    broken = true;
    await expect(send(stub.server, await signed(stub.server, "ListKeys", "{}"))).rejects.toThrow();
    broken = false;
    expect((await send(stub.server, await signed(stub.server, "ListKeys", "{}"))).status).toBe(200);
  });

  it("listens on loopback only", async () => {
    const options = { region: REGION, credentials: new CredentialSet([ALICE]), nowMs: Date.now, newRequestId: () => "r", handle: async () => ({}) };
    for (const host of ["0.0.0.0", "::", "192.168.1.10", "localhost", "127.0.0.256", "example.com"]) {
      await expect(startKmsServer({ ...options, host }), host).rejects.toThrow(/loopback only/);
    }
    const server = await startKmsServer({ ...options, host: "127.0.0.2" });
    expect(server.url).toBe(`http://127.0.0.2:${server.port}`);
    await server.close();
  });
});
