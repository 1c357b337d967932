// A KMS endpoint for the tests, driven through the real @aws-sdk/client-kms: three accounts (the
// key owner, a SaaS provider and a stranger), an injectable clock, a temporary data folder.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { KMSClient } from "@aws-sdk/client-kms";
import { afterEach } from "vitest";

import type { ClusterDirectory } from "../../src/kms/cluster-directory.js";
import { type KmsEndpoint, startKms } from "../../src/kms/endpoint.js";
import type { KmsCredential } from "../../src/kms/types.js";

export const OWNER = { accountId: "111122223333", arn: "arn:aws:iam::111122223333:user/alice", accessKeyId: "AKIAOWNERALICE000001", secretAccessKey: "owner-alice-secret-0000000000000000000001" };
export const OWNER_ADMIN = { accountId: "111122223333", arn: "arn:aws:iam::111122223333:user/admin", accessKeyId: "AKIAOWNERADMIN000001", secretAccessKey: "owner-admin-secret-0000000000000000000001" };
export const SAAS = { accountId: "444455556666", arn: "arn:aws:iam::444455556666:user/saas", accessKeyId: "AKIASAASPROVIDER0001", secretAccessKey: "saas-provider-secret-00000000000000000001" };
export const STRANGER = { accountId: "777788889999", arn: "arn:aws:iam::777788889999:user/mallory", accessKeyId: "AKIASTRANGERMALLORY1", secretAccessKey: "stranger-secret-000000000000000000000001" };
export const CREDENTIALS: KmsCredential[] = [OWNER, OWNER_ADMIN, SAAS, STRANGER];

export interface KmsFixture {
  endpoint: KmsEndpoint;
  dataDir: string;
  /** Moves the endpoint's clock (ms). */
  advance(ms: number): void;
  nowMs(): number;
  /** An SDK client signing as `who`, its clock matched to the endpoint's. */
  client(who: KmsCredential, options?: { maxAttempts?: number }): KMSClient;
  /** Stops the endpoint and starts it again on the same data folder. */
  restart(): Promise<void>;
}

const fixtures: { close(): Promise<void> }[] = [];
afterEach(async () => {
  while (fixtures.length) await fixtures.pop()!.close();
});

export interface KmsFixtureOptions {
  clusters?: ClusterDirectory;
  /** false: a memory-only endpoint. */
  durable?: boolean;
  limits?: { accountCryptoPerSecond?: number; customKeyStorePerSecond?: number };
  /** The endpoint's clock stands still unless advance() moves it (rate limits without real time). */
  frozenClock?: boolean;
}

export async function startKmsFixture(options: KmsFixtureOptions = {}): Promise<KmsFixture> {
  const dataDir = mkdtempSync(join(tmpdir(), "hsmsim-kms-"));
  let offsetMs = 0;
  const frozenAtMs = Date.now();
  const nowMs = options.frozenClock ? () => frozenAtMs + offsetMs : () => Date.now() + offsetMs;
  const start = () => startKms({ dataDir: options.durable === false ? null : join(dataDir, "kms"), credentials: CREDENTIALS, nowMs, clusters: options.clusters, limits: options.limits });
  let endpoint = await start();
  const clients: KMSClient[] = [];
  const fixture: KmsFixture = {
    get endpoint() {
      return endpoint;
    },
    dataDir,
    advance: (ms) => {
      offsetMs += ms;
    },
    nowMs,
    client: (who, clientOptions = {}) => {
      const client = new KMSClient({
        endpoint: endpoint.url, region: "us-east-1", credentials: { accessKeyId: who.accessKeyId, secretAccessKey: who.secretAccessKey },
        maxAttempts: clientOptions.maxAttempts ?? 1, systemClockOffset: offsetMs,
      });
      clients.push(client);
      return client;
    },
    restart: async () => {
      await endpoint.close();
      endpoint = await start();
    },
  };
  fixtures.push({
    close: async () => {
      for (const c of clients) c.destroy();
      await endpoint.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
  return fixture;
}

/** The exception an SDK call raised (its class name is AWS's exception name), or a failure if it succeeded. */
export async function failure(call: Promise<unknown>): Promise<{ name: string; message: string; status?: number }> {
  try {
    await call;
  } catch (e) {
    const error = e as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
    return { name: error.name, message: error.message, status: error.$metadata?.httpStatusCode };
  }
  throw new Error("the call succeeded; a failure was expected");
}

/** A key policy: the owner account's own statement (kms:* for its principals), then `statements`. */
export function policyAllowing(statements: object[]): string {
  return JSON.stringify({ Version: "2012-10-17", Statement: [
    { Sid: "owner", Effect: "Allow", Principal: { AWS: `arn:aws:iam::${OWNER.accountId}:root` }, Action: "kms:*", Resource: "*" }, ...statements,
  ] });
}

/** "ok", or the AWS exception's name a call ended with. */
export const outcome = (call: Promise<unknown>): Promise<string> => call.then(() => "ok", (e: Error) => e.name);
