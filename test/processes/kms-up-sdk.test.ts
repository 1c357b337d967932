// `hsmsim up --kms` end to end with the real endpoint (needs every KMS module: it runs once they
// have all landed): credentials written at the first start, the AWS SDK over the printed
// environment, a custom key store over the cluster it runs beside, the endpoint killed and
// restarted with its state, down; then `hsmsim audit --kms` verifies the trail and shows, for
// the CreateKey in the store, the kmsuser entries it caused in the HSMs' audit logs.
import { readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  ConnectCustomKeyStoreCommand, CreateCustomKeyStoreCommand, CreateKeyCommand, DescribeCustomKeyStoresCommand, DescribeKeyCommand, KMSClient,
} from "@aws-sdk/client-kms";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import * as P from "../../src/index.js";
import { cli, members, placement, status, until } from "./helpers.js";

const where = placement();
const kmsPort = 20_000 + Math.floor(Math.random() * 40_000);
let client: KMSClient;
let keyId: string;
let createInStoreRequestId: string;

type KmsStatus = { state: string; pid: number; answering: boolean };

beforeAll(async () => {
  delete process.env.HSMSIM_KMS_STAND_IN;
  const up = await cli("up", "--kms", "--kms-port", String(kmsPort), "--data", where.dir, "--hsms", "2", "--base-address", where.baseAddress,
    "--port", String(where.port), "--password-cost", "4", "--restart-delay-ms", "200");
  if (up.code !== 0) throw new Error(`up failed: ${up.stderr}${up.stdout}`);
  const env = Object.fromEntries([...up.stdout.matchAll(/export (AWS_[A-Z_]+)=(\S+)/g)].map((m) => [m[1], m[2]]));
  const path = join(where.dir, "kms", "credentials.json");
  expect(statSync(path).mode & 0o777).toBe(0o600);
  const { credentials } = JSON.parse(readFileSync(path, "utf8")) as { credentials: { accessKeyId: string; secretAccessKey: string }[] };
  const mine = credentials.find((c) => c.accessKeyId === env.AWS_ACCESS_KEY_ID)!;
  client = new KMSClient({ endpoint: env.AWS_ENDPOINT_URL_KMS, region: env.AWS_REGION, credentials: { accessKeyId: mine.accessKeyId, secretAccessKey: mine.secretAccessKey } });
  const s = await status(where.dir);
  const connection = P.connect({ address: members(s)[0].address, trustAnchor: s.connect.trustAnchor });
  try {
    connection.console("admin", "password").changePassword("admin", "admin-password-1");
    connection.console("admin", "admin-password-1").createUser("kmsuser", "CU", "kmsuser-pass-1");
  } finally {
    connection.close();
  }
  await until(where.dir, (x) => x.state === "ACTIVE", "the cluster ACTIVE");
}, 120_000);
afterAll(async () => {
  client?.destroy();
  await cli("down", "--data", where.dir);
  rmSync(join(where.dir, ".."), { recursive: true, force: true });
}, 60_000);

describe("up --kms with the AWS SDK", () => {
  it("serves a custom key store over the cluster it runs beside", async () => {
    const s = await status(where.dir);
    const store = await client.send(new CreateCustomKeyStoreCommand({
      CustomKeyStoreName: "beside", CloudHsmClusterId: s.clusterId, KeyStorePassword: "kmsuser-pass-1",
      TrustAnchorCertificate: readFileSync(s.connect.trustAnchor, "utf8"),
    }));
    await client.send(new ConnectCustomKeyStoreCommand({ CustomKeyStoreId: store.CustomKeyStoreId }));
    for (let i = 0; ; i++) {
      const d = await client.send(new DescribeCustomKeyStoresCommand({ CustomKeyStoreId: store.CustomKeyStoreId }));
      const state = d.CustomKeyStores![0]!.ConnectionState;
      if (state === "CONNECTED") break;
      if (state === "FAILED" || i > 300) throw new Error(`the store did not connect: ${JSON.stringify(d.CustomKeyStores)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const created = await client.send(new CreateKeyCommand({ Origin: "AWS_CLOUDHSM", CustomKeyStoreId: store.CustomKeyStoreId }));
    keyId = created.KeyMetadata!.KeyId!;
    createInStoreRequestId = created.$metadata.requestId!;
    expect(created.KeyMetadata!.KeyState).toBe("Enabled");
  }, 90_000);

  it("keeps its state when its process is killed and restarted", async () => {
    const before = ((await status(where.dir)) as unknown as { kms: KmsStatus }).kms;
    process.kill(before.pid, "SIGKILL");
    await until(where.dir, (x) => {
      const k = (x as unknown as { kms: KmsStatus }).kms;
      return k.state === "running" && k.pid !== before.pid && k.answering;
    }, "the KMS process back", 60_000);
    const d = await client.send(new DescribeKeyCommand({ KeyId: keyId }));
    expect(d.KeyMetadata!.Origin).toBe("AWS_CLOUDHSM");
  }, 90_000);

  it("leaves a trail that audit --kms verifies, with the HSM entries of the CreateKey", async () => {
    expect((await cli("down", "--data", where.dir)).code).toBe(0);
    const all = await cli("audit", "--kms", where.dir, "--json");
    expect(all.code, all.stdout).toBe(0);
    const parsed = JSON.parse(all.stdout) as { verified: { ok: boolean; unsignedTail: number }; records: { eventName: string; errorCode?: string }[] };
    expect(parsed.verified).toMatchObject({ ok: true });
    expect(parsed.records.map((r) => r.eventName)).toEqual(expect.arrayContaining(["CreateCustomKeyStore", "ConnectCustomKeyStore", "CreateKey", "DescribeKey"]));
    expect(parsed.records.filter((r) => r.errorCode !== undefined)).toEqual([]); // status and up probe without making KMS calls
    const one = await cli("audit", "--kms", where.dir, "--request", createInStoreRequestId, "--json");
    expect(one.code).toBe(0);
    const { hsm } = JSON.parse(one.stdout) as { hsm: { hsmId: string; verified: { ok: boolean }; entries: { actor: string; keys: number[] }[] }[] };
    expect(hsm).toHaveLength(2);
    const entries = hsm.flatMap((h) => h.entries);
    expect(entries.length).toBeGreaterThan(0);
    expect(entries.every((e) => e.actor === "kmsuser")).toBe(true);
    expect(entries.some((e) => e.keys.length > 0)).toBe(true);
    const text = await cli("audit", "--kms", where.dir, "--request", createInStoreRequestId);
    expect(text.stdout).toContain(`KMS request ${createInStoreRequestId}`);
    expect(text.stdout).toMatch(/"backingKeyId"/);
    expect(text.stdout).toMatch(/HSM audit entries by kmsuser it caused/);
    expect(text.stdout).toMatch(/\(its audit chain verifies\)/);
    if (process.env.SHOW_AUDIT) process.stdout.write(`${all.stdout.slice(0, 0)}${text.stdout}\n${(await cli("audit", "--kms", where.dir)).stdout}`);
  }, 90_000);
});
