// The KMS benchmark: Encrypt, Decrypt and GenerateDataKey requests per second through the real
// AWS SDK, against an AWS_KMS key and against a custom-key-store key on a 3-HSM cluster
// (`hsmsim up --hsms 3 --kms`: the endpoint and each HSM in its own process), one request at a
// time and with N in flight; beside moto (`moto_server`, a Python emulator of AWS services) when
// it is installed; and where one request's time goes: the SDK and HTTP, SigV4 verification, the
// chip (KMS's fleet) or the cluster (two round trips to an HSM), and the rest of the endpoint.
// Run: npm run bench:kms [-- --time MS] [--in-flight N] [--no-moto]
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

import {
  ConnectCustomKeyStoreCommand, CreateCustomKeyStoreCommand, CreateKeyCommand, DecryptCommand, DescribeCustomKeyStoresCommand, EncryptCommand,
  GenerateDataKeyCommand, KMSClient,
} from "@aws-sdk/client-kms";

import * as P from "../src/index.js";
import { readCredentials } from "../src/kms/credentials-file.js";
import { folderClusterDirectory } from "../src/kms/cluster-directory.js";
import { type KmsEndpoint, startKms } from "../src/kms/endpoint.js";
import type { KmsCredential } from "../src/kms/types.js";
import { type Split, profileSplit, sequential, tempDir } from "./kms-split.js";
import { type Measured, errorText, measure } from "./measure.js";
import { numberOption } from "./peers.js";
import { CO, CU, type BenchCluster, startCluster } from "./remote-cluster.js";

const timeMs = numberOption("--time", 2000);
const inFlight = numberOption("--in-flight", 16);
const withMoto = !process.argv.includes("--no-moto");
const PLAINTEXT = Buffer.alloc(256, 7);
const REGION = "us-east-1";
const KMSUSER_PASSWORD = "kmsuser-bench-1";

type Op = "Encrypt" | "Decrypt" | "GenerateDataKey";
const OPS: Op[] = ["Encrypt", "Decrypt", "GenerateDataKey"];

interface Target { name: string; client: KMSClient; keyId: string; blob: Uint8Array; serverPids: number[] }

function client(endpoint: string, credential: { accessKeyId: string; secretAccessKey: string }): KMSClient {
  return new KMSClient({ endpoint, region: REGION, credentials: { accessKeyId: credential.accessKeyId, secretAccessKey: credential.secretAccessKey }, maxAttempts: 1 });
}

function operation(target: Target, op: Op): () => Promise<unknown> {
  const c = target.client;
  switch (op) {
    case "Encrypt": return () => c.send(new EncryptCommand({ KeyId: target.keyId, Plaintext: PLAINTEXT }));
    case "Decrypt": return () => c.send(new DecryptCommand({ CiphertextBlob: target.blob }));
    case "GenerateDataKey": return () => c.send(new GenerateDataKeyCommand({ KeyId: target.keyId, KeySpec: "AES_256" }));
  }
}

async function keyTarget(name: string, kmsClient: KMSClient, keyId: string, serverPids: number[]): Promise<Target> {
  const blob = (await kmsClient.send(new EncryptCommand({ KeyId: keyId, Plaintext: PLAINTEXT }))).CiphertextBlob!;
  return { name, client: kmsClient, keyId, blob, serverPids };
}

/** kmsuser in the cluster, a CloudHSM key store over it, connected, and a key in it. */
async function customKeyStoreKey(cluster: BenchCluster, kms: KMSClient, settled?: (id: string) => Promise<void>): Promise<string> {
  const connection = P.connect({ address: cluster.addresses[0], trustAnchor: cluster.trustAnchorPem });
  try {
    connection.console(CO.username, CO.password).createUser("kmsuser", "CU", KMSUSER_PASSWORD);
  } finally {
    connection.close();
  }
  const clusterId = (JSON.parse(readFileSync(join(cluster.dir, "cluster.json"), "utf8")) as { clusterId: string }).clusterId;
  const { CustomKeyStoreId } = await kms.send(new CreateCustomKeyStoreCommand({
    CustomKeyStoreName: "bench", CloudHsmClusterId: clusterId, TrustAnchorCertificate: cluster.trustAnchorPem, KeyStorePassword: KMSUSER_PASSWORD,
  }));
  await kms.send(new ConnectCustomKeyStoreCommand({ CustomKeyStoreId }));
  await settled?.(CustomKeyStoreId!);
  for (let i = 0; i < 300; i++) {
    const store = (await kms.send(new DescribeCustomKeyStoresCommand({ CustomKeyStoreId }))).CustomKeyStores![0];
    if (store.ConnectionState === "CONNECTED") break;
    if (store.ConnectionState === "FAILED") throw new Error(`the custom key store failed to connect: ${store.ConnectionErrorCode}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return (await kms.send(new CreateKeyCommand({ Origin: "AWS_CLOUDHSM", CustomKeyStoreId }))).KeyMetadata!.KeyId!;
}

/** moto_server on a free loopback port, when installed. */
async function startMoto(): Promise<{ url: string; process: ChildProcess } | string> {
  if (spawnSync("sh", ["-c", "command -v moto_server"]).status !== 0) return "moto_server is not installed (pip install 'moto[server]')";
  const port = 30_000 + Math.floor(Math.random() * 20_000);
  const child = spawn("moto_server", ["-H", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`${url}/moto-api/`);
      return { url, process: child };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  child.kill();
  return "moto_server did not start";
}

const rows: { target: string; op: Op; mode: string; m: Measured | string }[] = [];

async function run(target: Target): Promise<void> {
  // Warm both processes up first (JIT, connection pools): the first measurement must not pay for it.
  for (const op of OPS) {
    const call = operation(target, op);
    for (let i = 0; i < 200; i++) await call();
  }
  for (const op of OPS) {
    // measure()'s sequential mode times synchronous calls: an SDK call is a promise, so one in flight is one at a time.
    for (const n of [1, inFlight]) {
      const mode = n === 1 ? "1 at a time" : `${n} in flight`;
      let m: Measured | string;
      try {
        m = await measure(`${target.name} ${op} ${mode}`, operation(target, op), { timeMs, inFlight: n, serverPids: target.serverPids });
        process.stderr.write(`  ${target.name} / ${op} / ${mode}: ${Math.round(m.opsPerSecond)} req/s, p50 ${(m.p50Us / 1000).toFixed(2)} ms\n`);
      } catch (e) {
        m = `failed: ${errorText(e)}`;
        process.stderr.write(`  ${target.name} / ${op} / ${mode}: ${m}\n`);
      }
      rows.push({ target: target.name, op, mode, m });
    }
  }
}

/** Where one Encrypt's time goes: an endpoint in this process over a cluster of its own, profiled. */
async function splits(): Promise<{ awsKms: Split; cks: Split; awsKmsUs: number; cksUs: number }> {
  const cluster = await startCluster(3);
  const temp = tempDir();
  let kms: KmsEndpoint | null = null;
  try {
    const credential: KmsCredential = { accessKeyId: "AKIABENCHSPLIT000001", secretAccessKey: "bench-split-secret-00000000000000000001", accountId: "111122223333", arn: "arn:aws:iam::111122223333:user/bench" };
    kms = await startKms({ dataDir: join(temp.dir, "kms"), credentials: [credential], clusters: folderClusterDirectory([cluster.dir]) });
    const c = client(kms.url, credential);
    const awsKey = (await c.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const cksKey = await customKeyStoreKey(cluster, c, (id) => kms!.settled(id));
    const encrypt = (keyId: string) => () => c.send(new EncryptCommand({ KeyId: keyId, Plaintext: PLAINTEXT }));
    await sequential(300, encrypt(awsKey));
    await sequential(300, encrypt(cksKey));
    let awsKmsUs = 0, cksUs = 0;
    const awsKms = await profileSplit(async () => void (awsKmsUs = await sequential(timeMs, encrypt(awsKey))));
    const cks = await profileSplit(async () => void (cksUs = await sequential(timeMs, encrypt(cksKey))));
    c.destroy();
    return { awsKms, cks, awsKmsUs, cksUs };
  } finally {
    await kms?.close();
    temp.remove();
    await cluster.down();
  }
}

function ops(m: Measured | string | undefined): string {
  return typeof m === "object" ? String(Math.round(m.opsPerSecond)) : m === undefined ? "-" : m;
}

async function main(): Promise<void> {
  process.stderr.write(`hsmsim KMS benchmark: ${timeMs} ms per measurement, ${inFlight} in flight\n`);
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const cluster = await startCluster(3, ["--kms", "--kms-port", String(port)]);
  let moto: { url: string; process: ChildProcess } | string = "not run (--no-moto)";
  try {
    if (!cluster.kms) throw new Error("the cluster came up without its KMS endpoint");
    const credentials = readCredentials(join(cluster.dir, "kms", "credentials.json"));
    const owner = credentials.find((c) => c.arn.endsWith(":user/alice")) ?? credentials[0];
    const kms = client(cluster.kms.url, owner);
    const serverPids = [cluster.kms.pid ?? 0, ...(await cluster.status()).map((h) => h.pid ?? 0)].filter((pid) => pid > 0);
    const awsKmsKey = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    await run(await keyTarget("hsmsim AWS_KMS key", kms, awsKmsKey, serverPids));
    await run(await keyTarget("hsmsim custom key store (3 HSMs)", kms, await customKeyStoreKey(cluster, kms), serverPids));
    if (withMoto) moto = await startMoto();
    if (typeof moto === "object") {
      const motoClient = client(moto.url, { accessKeyId: "testing", secretAccessKey: "testing" });
      const motoKey = (await motoClient.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
      await run(await keyTarget("moto_server", motoClient, motoKey, moto.process.pid ? [moto.process.pid] : []));
    }
    report(typeof moto === "string" ? moto : null);
  } finally {
    if (typeof moto === "object") moto.process.kill();
    await cluster.down();
  }
  reportSplit(await splits());
}

function report(motoMissing: string | null): void {
  const out = process.stdout;
  out.write(`\nKMS requests per second through @aws-sdk/client-kms (256-byte plaintext; GenerateDataKey AES_256), ${new Date().toISOString().slice(0, 10)}\n`);
  out.write(`| operation | mode | hsmsim AWS_KMS key | hsmsim custom key store (3 HSMs) | moto_server | hsmsim AWS_KMS ÷ moto |\n|---|---|---|---|---|---|\n`);
  for (const op of OPS) {
    for (const mode of ["1 at a time", `${inFlight} in flight`]) {
      const cell = (target: string) => rows.find((r) => r.target === target && r.op === op && r.mode === mode)?.m;
      const a = cell("hsmsim AWS_KMS key"), c = cell("hsmsim custom key store (3 HSMs)"), m = cell("moto_server");
      const ratio = typeof a === "object" && typeof m === "object" ? `${(a.opsPerSecond / m.opsPerSecond).toFixed(1)}×` : "-";
      out.write(`| ${op} | ${mode} | ${ops(a)} | ${ops(c)} | ${motoMissing ?? ops(m)} | ${ratio} |\n`);
    }
  }
}

function reportSplit(split: { awsKms: Split; cks: Split; awsKmsUs: number; cksUs: number }): void {
  const out = process.stdout;
  out.write(`\nWhere one Encrypt's time goes: the endpoint and the SDK client in one process, one request at a time, V8's sampling profiler\n`);
  out.write(`(mean ${split.awsKmsUs.toFixed(0)} µs with an AWS_KMS key, ${split.cksUs.toFixed(0)} µs with a custom key store key on 3 HSMs)\n`);
  out.write(`| part | AWS_KMS key | custom key store key |\n|---|---|---|\n`);
  const parts = [...new Set([...split.awsKms, ...split.cks].map((p) => p.part))];
  const share = (s: Split, part: string) => `${(100 * (s.find((p) => p.part === part)?.share ?? 0)).toFixed(1)}%`;
  for (const part of parts) out.write(`| ${part} | ${share(split.awsKms, part)} | ${share(split.cks, part)} |\n`);
}

await main();
