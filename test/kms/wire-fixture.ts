// A KMS HTTP server over a stub handler (no fleet, no store): what the wire tests share. The
// clock is a variable the test moves; requests can be signed by hand (SignatureV4) and then
// tampered with, and sent raw over node:http.
import { randomUUID } from "node:crypto";
import { request as httpRequest } from "node:http";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { KMSClient } from "@aws-sdk/client-kms";
import { CredentialSet } from "../../src/kms/identity.js";
import { type FinishedRequest, type KmsServer, type KmsServerOptions, startKmsServer } from "../../src/kms/server.js";
import type { KmsCredential, RequestContext } from "../../src/kms/types.js";

export const REGION = "us-east-1";
export const ALICE: KmsCredential = {
  accessKeyId: "AKIAALICE0000000TEST",
  secretAccessKey: "alice/secret/key/0000000000000000000000",
  accountId: "111122223333",
  arn: "arn:aws:iam::111122223333:user/alice",
};
export const SAAS: KmsCredential = {
  accessKeyId: "AKIASAAS00000000TEST",
  secretAccessKey: "saas+secret+key+0000000000000000000000000",
  accountId: "444455556666",
  arn: "arn:aws:iam::444455556666:root",
};

export interface Call {
  operation: string;
  input: Record<string, unknown>;
  context: RequestContext;
}

export interface Stub {
  server: KmsServer;
  /** The server's clock (ms since the epoch); tests move it. */
  clock: { nowMs: number };
  calls: Call[];
  finished: FinishedRequest[];
  client(credential?: KmsCredential, extra?: Record<string, unknown>): KMSClient;
  close(): Promise<void>;
}

type Handle = KmsServerOptions["handle"];

/** An echo: Encrypt answers the plaintext reversed as its ciphertext, GenerateRandom that many 0x2a bytes. */
export const echo: Handle = async (operation, input) => {
  if (operation === "Encrypt") {
    return { CiphertextBlob: Buffer.from(input.Plaintext as Buffer).reverse(), KeyId: `arn:aws:kms:${REGION}:111122223333:key/${input.KeyId}`, EncryptionAlgorithm: "SYMMETRIC_DEFAULT" };
  }
  if (operation === "GenerateRandom") return { Plaintext: Buffer.alloc(input.NumberOfBytes as number, 0x2a) };
  return {};
};

export async function startStub(handle: Handle = echo, options: Partial<KmsServerOptions> = {}): Promise<Stub> {
  const clock = { nowMs: Date.now() };
  const calls: Call[] = [];
  const finished: FinishedRequest[] = [];
  const server = await startKmsServer({
    region: REGION,
    credentials: new CredentialSet([ALICE, SAAS]),
    nowMs: () => clock.nowMs,
    newRequestId: randomUUID,
    handle: async (operation, input, context) => {
      calls.push({ operation, input, context });
      return handle(operation, input, context);
    },
    onFinished: (request) => finished.push(request),
    ...options,
  });
  const clients: KMSClient[] = [];
  return {
    server,
    clock,
    calls,
    finished,
    client(credential = ALICE, extra = {}) {
      const client = new KMSClient({
        endpoint: server.url,
        region: REGION,
        credentials: { accessKeyId: credential.accessKeyId, secretAccessKey: credential.secretAccessKey },
        maxAttempts: 1,
        ...extra,
      });
      clients.push(client);
      return client;
    },
    async close() {
      for (const client of clients) client.destroy();
      await server.close();
    },
  };
}

export interface RawRequest {
  method?: string;
  path?: string;
  headers: Record<string, string>;
  body: Buffer | string;
}

/** A request signed as the SDK signs it (for tests to tamper with afterwards). */
export async function signed(
  server: KmsServer,
  operation: string,
  body: string | Buffer,
  { credential = ALICE, region = REGION, atMs = Date.now(), extraHeaders = {}, applyChecksum = true }: { credential?: KmsCredential; region?: string; atMs?: number; extraHeaders?: Record<string, string>; applyChecksum?: boolean } = {},
): Promise<RawRequest> {
  const signer = new SignatureV4({ credentials: { accessKeyId: credential.accessKeyId, secretAccessKey: credential.secretAccessKey }, region, service: "kms", sha256: Hash.bind(null, "sha256"), applyChecksum });
  const request = new HttpRequest({
    method: "POST",
    protocol: "http:",
    hostname: server.host,
    port: server.port,
    path: "/",
    headers: {
      host: `${server.host}:${server.port}`,
      "content-type": "application/x-amz-json-1.1",
      "x-amz-target": `TrentService.${operation}`,
      ...extraHeaders,
    },
    body,
  });
  const out = await signer.sign(request, { signingDate: new Date(atMs) });
  return { method: "POST", path: "/", headers: out.headers as Record<string, string>, body };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: { __type?: string; message?: string; [k: string]: unknown };
  text: string;
}

/** Sends `request` over a fresh connection and reads the whole answer. */
export function send(server: KmsServer, request: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: server.host, port: server.port, method: request.method ?? "POST", path: request.path ?? "/", headers: request.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json = {};
          try {
            json = JSON.parse(text);
          } catch {
            /* left empty: the test asserts on text */
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json, text });
        });
      },
    );
    req.on("error", reject);
    req.end(request.body);
  });
}
