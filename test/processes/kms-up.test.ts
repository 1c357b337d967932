// `hsmsim up --kms`: the KMS endpoint runs as a process of the cluster, supervised (restarted when
// killed), stopped by down, refused clearly when its port is taken. startKms is the lead's and
// is not built on this branch yet: the KMS process runs its stand-in (HSMSIM_KMS_STAND_IN=1, a
// loopback server answering KMSInternalException) so what is tested here is the process plumbing.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { alive, cli, placement, status, until } from "./helpers.js";

const where = placement();
const kmsPort = 20_000 + Math.floor(Math.random() * 40_000);
const SECRET = "x".repeat(40);
type KmsStatus = { url: string; state: string; pid: number | null; restarts: number; answering: boolean; lastError: string | null };
const kmsOf = async () => (await status(where.dir)) as unknown as { kms?: KmsStatus };

beforeAll(() => {
  process.env.HSMSIM_KMS_STAND_IN = "1";
  // The lead's defaultCredentials is not built on this branch: the credentials file is there already (the later-start path).
  mkdirSync(join(where.dir, "kms"), { recursive: true, mode: 0o700 });
  writeFileSync(join(where.dir, "kms", "credentials.json"), JSON.stringify({ credentials: [
    { accessKeyId: "AKIAOWNER00000000001", secretAccessKey: SECRET, accountId: "111122223333", arn: "arn:aws:iam::111122223333:user/owner" },
    { accessKeyId: "AKIASAAS000000000001", secretAccessKey: "y".repeat(40), accountId: "444455556666", arn: "arn:aws:iam::444455556666:user/saas" },
  ] }), { mode: 0o600 });
});
afterAll(async () => {
  await cli("down", "--data", where.dir);
  delete process.env.HSMSIM_KMS_STAND_IN;
  rmSync(join(where.dir, ".."), { recursive: true, force: true });
}, 60_000);

describe("hsmsim up --kms", () => {
  it("starts the endpoint beside the HSMs and prints the AWS environment, the secret only to a terminal", async () => {
    const up = await cli("up", "--kms", "--kms-port", String(kmsPort), "--data", where.dir, "--hsms", "2", "--base-address", where.baseAddress,
      "--port", String(where.port), "--password-cost", "4", "--restart-delay-ms", "200");
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain(`export AWS_ENDPOINT_URL_KMS=http://127.0.0.1:${kmsPort}`);
    expect(up.stdout).toContain("export AWS_ACCESS_KEY_ID=AKIAOWNER00000000001");
    expect(up.stdout).toContain("export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1");
    expect(up.stdout).not.toContain(SECRET); // captured output is no terminal
    expect(up.stdout).toMatch(/AWS_SECRET_ACCESS_KEY=\(in .*credentials\.json: shown only on a terminal\)/);
    const { kms } = await kmsOf();
    expect(kms).toMatchObject({ url: `http://127.0.0.1:${kmsPort}`, state: "running", answering: true, restarts: 0 });
    const text = await cli("status", "--data", where.dir);
    expect(text.stdout).toMatch(new RegExp(`kms http://127.0.0.1:${kmsPort} running \\(pid \\d+\\), answering`));
  }, 120_000);

  it("is restarted when its process is killed", async () => {
    const before = (await kmsOf()).kms!;
    process.kill(before.pid!, "SIGKILL");
    const after = await until(where.dir, (s) => {
      const k = (s as unknown as { kms: KmsStatus }).kms;
      return k.state === "running" && k.pid !== before.pid && k.answering;
    }, "the KMS process restarted", 60_000);
    expect((after as unknown as { kms: KmsStatus }).kms.restarts).toBe(1);
    expect(after.events.some((e) => /KMS process exited \(SIGKILL\)/.test(e.event))).toBe(true);
  }, 90_000);

  it("refuses a taken port before creating anything", async () => {
    const other = placement();
    const taken = await cli("up", "--kms", "--kms-port", String(kmsPort), "--data", other.dir, "--hsms", "2", "--base-address", other.baseAddress, "--port", String(other.port));
    expect(taken.code).toBe(2);
    expect(taken.stderr).toMatch(new RegExp(`port ${kmsPort} on 127.0.0.1 is in use .*--kms-port`));
    const squatter = createServer();
    const port = 20_000 + Math.floor(Math.random() * 40_000);
    await new Promise<void>((resolve) => squatter.listen(port, "127.0.0.1", resolve));
    try {
      const r = await cli("up", "--kms", "--kms-port", String(port), "--data", other.dir);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/is in use/);
    } finally {
      squatter.close();
      rmSync(join(other.dir, ".."), { recursive: true, force: true });
    }
    expect((await cli("up", "--kms-port", "4600", "--data", other.dir)).code).toBe(2); // --kms-port needs --kms
  });

  it("is stopped by down", async () => {
    const pid = (await kmsOf()).kms!.pid!;
    expect((await cli("down", "--data", where.dir)).code).toBe(0);
    expect(alive(pid)).toBe(false);
    const s = await cli("status", "--data", where.dir);
    expect(s.stdout).toMatch(/^kms down \(its state is in .*kms; hsmsim up --kms starts it\)$/m);
  }, 90_000);

  it("is not added to a cluster running without it: down first", async () => {
    const plain = await cli("up", "--data", where.dir);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).not.toContain("AWS_ENDPOINT_URL_KMS");
    const added = await cli("up", "--kms", "--kms-port", String(kmsPort), "--data", where.dir);
    expect(added.code).toBe(2);
    expect(added.stderr).toMatch(/running without the KMS endpoint: hsmsim down, then up --kms/);
    expect((await cli("down", "--data", where.dir)).code).toBe(0);
  }, 90_000);
});
