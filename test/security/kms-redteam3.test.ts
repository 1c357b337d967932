// Red team 3 of the KMS endpoint (issue 11): the fixes of rounds 1 and 2 (the anchor in the fleet's
// token, the KMS port held by the supervisor, the written-ahead kmsuser password, DryRun, quotas,
// data-folder files). Each test is an attack that succeeds today: it fails until fixed.
import {
  ConnectCustomKeyStoreCommand, CreateAliasCommand, CreateCustomKeyStoreCommand, CreateKeyCommand, DescribeCustomKeyStoresCommand,
  DisconnectCustomKeyStoreCommand, EncryptCommand, ListAliasesCommand, ReEncryptCommand, UpdateAliasCommand,
} from "@aws-sdk/client-kms";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";

// Which file each descriptor is, and the order of writes, fsyncs and renames (pass-through).
const fsTrace = vi.hoisted(() => ({ log: [] as string[], paths: new Map<number, string>() }));
vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const wrapped = {
    openSync: (...a: Parameters<typeof fs.openSync>) => {
      const fd = fs.openSync(...a);
      fsTrace.paths.set(fd, String(a[0]));
      return fd;
    },
    writeSync: (...a: unknown[]) => {
      const n = (fs.writeSync as (...x: unknown[]) => number)(...a);
      fsTrace.log.push(`write ${fsTrace.paths.get(a[0] as number)}`);
      return n;
    },
    fsyncSync: (fd: number) => {
      fs.fsyncSync(fd);
      fsTrace.log.push(`fsync ${fsTrace.paths.get(fd)}`);
    },
    renameSync: (from: string, to: string) => {
      fs.renameSync(from, to);
      fsTrace.log.push(`rename ${to}`);
    },
  };
  return { ...fs, ...wrapped, default: { ...fs, ...wrapped } };
});

import { type ClusterDirectory, simClusterDirectory, simTrustAnchorPem } from "../../src/kms/cluster-directory.js";
import { TRAIL_DIGESTS_FILE, TRAIL_FILE } from "../../src/kms/trail.js";
import { KmsProcess } from "../../src/net/supervisor-kms.js";
import { CO, activeWorld } from "../cluster/fixture.js";
import { OWNER, failure, startKmsFixture } from "../kms/kms-fixture.js";

const outcome = (p: Promise<unknown>) => p.then(() => "started", (e: Error) => `${e.name}: ${e.message}`);

describe("red team 3: the anchor in the fleet's token", () => {
  it("a cut trail refused once is accepted at the next start: the refused start moved the anchor back", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    const key = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    for (let i = 0; i < 5; i++) await owner.send(new CreateAliasCommand({ AliasName: `alias/kred3-${i}`, TargetKeyId: key }));
    await kms.endpoint.close(); // close signs a digest of every record: the anchor holds the trail's length
    const dir = join(kms.dataDir, "kms");
    const lines = readFileSync(join(dir, TRAIL_FILE), "utf8").split("\n").filter(Boolean);
    expect(lines.length).toBeGreaterThanOrEqual(6);
    // The editor cuts the trail after the CreateKey record (the alias records go) and the digests with it.
    writeFileSync(join(dir, TRAIL_FILE), `${lines[0]}\n`);
    writeFileSync(join(dir, TRAIL_DIGESTS_FILE), "");
    const first = await outcome(kms.restart());
    // The operator (or the supervisor) starts KMS again.
    const second = await outcome(kms.restart());
    expect({ first: first.startsWith("KmsStoreError") || first.includes("records were removed"), second })
      .toEqual({ first: true, second: expect.stringContaining("records were removed") });
  });
});

describe("red team 3: DryRun", () => {
  it("a ReEncrypt with DryRun changes nothing: it takes none of the account's request quota (nor decrypts the source)", async () => {
    const kms = await startKmsFixture({ durable: false, frozenClock: true, limits: { accountCryptoPerSecond: 2 } });
    const owner = kms.client(OWNER);
    const a = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const b = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const blob = (await owner.send(new EncryptCommand({ KeyId: a, Plaintext: Buffer.from("x") }))).CiphertextBlob!; // 1 of 2 this second
    const dry = await failure(owner.send(new ReEncryptCommand({ CiphertextBlob: blob, DestinationKeyId: b, DryRun: true })));
    expect(dry.name).toBe("DryRunOperationException");
    // The clock has not moved: the second request of this second is still the caller's to make.
    const next = await owner.send(new EncryptCommand({ KeyId: a, Plaintext: Buffer.from("y") })).then(() => "ok", (e: Error) => e.name);
    expect(next).toBe("ok");
  });
});

describe("red team 3: the anchor against a legitimate restart", () => {
  it("the anchor (fsynced in the fleet's token) never gets ahead of the trail on disk: an OS crash must not make the next start 'records were removed'", async () => {
    const kms = await startKmsFixture();
    const owner = kms.client(OWNER);
    fsTrace.log.length = 0;
    await owner.send(new CreateKeyCommand({}));
    await kms.endpoint.close(); // the last records are written, a digest signed, the anchor moved to the trail's length
    const log = fsTrace.log;
    let lastTrailWrite = -1;
    log.forEach((l, i) => {
      if (l.endsWith(`/${TRAIL_FILE}`) && l.startsWith("write")) lastTrailWrite = i;
    });
    expect(lastTrailWrite).toBeGreaterThanOrEqual(0);
    // The anchor goes to disk as the fleet's token file: temp file, fsync, rename.
    const anchorOnDisk = log.findIndex((l, i) => i > lastTrailWrite && l.startsWith("rename") && l.endsWith(".token"));
    expect(anchorOnDisk).toBeGreaterThan(lastTrailWrite);
    // Before the anchor says "the trail has N records", those N records must be on disk too (else a power
    // loss leaves a shorter trail than the anchor, and KMS refuses to start: STORE_TAMPERED).
    const trailSynced = log.slice(lastTrailWrite, anchorOnDisk).some((l) => l.startsWith("fsync") && l.endsWith(`/${TRAIL_FILE}`));
    expect({ trailFsyncedBeforeAnchor: trailSynced, order: log }).toEqual({ trailFsyncedBeforeAnchor: true, order: log });
  });
});

describe("red team 3: store changes no request records", () => {
  it("kms.db rolled back past a custom key store's connection (its kmsuser password rotation) is not refused at start", async () => {
    const world = activeWorld({ seed: "kred3-rollback" });
    world.connect("co").console(CO.username, CO.password).createUser("kmsuser", "CU", "kmsuser-pass-1");
    const sim = simClusterDirectory(world);
    // The cluster answers slowly (a busy network): the connection settles after the next digest.
    let release = () => {};
    const gate = new Promise<void>((r) => { release = r; });
    const clusters: ClusterDirectory = { describe: (id) => sim.describe(id), open: async (id) => { await gate; return sim.open(id); } };
    const kms = await startKmsFixture({ clusters });
    const owner = kms.client(OWNER);
    const id = (await owner.send(new CreateCustomKeyStoreCommand({
      CustomKeyStoreName: "store", CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world), KeyStorePassword: "kmsuser-pass-1",
    }))).CustomKeyStoreId!;
    await owner.send(new ConnectCustomKeyStoreCommand({ CustomKeyStoreId: id }));
    await new Promise((r) => setTimeout(r, 1_300)); // a digest (every second) covers the Connect record: the anchor moves
    const dir = join(kms.dataDir, "kms");
    const copy = (name: string) => (existsSync(join(dir, name)) ? readFileSync(join(dir, name)) : null);
    const saved = { db: copy("kms.db"), wal: copy("kms.db-wal") };
    release();
    await kms.endpoint.settled(id); // CONNECTED: kmsuser's password rotated to one only KMS knows (store writes, no record)
    await kms.endpoint.close();
    // The editor puts back the copy: the store's password is the one the cluster no longer has.
    writeFileSync(join(dir, "kms.db"), saved.db!);
    rmSync(join(dir, "kms.db-shm"), { force: true });
    if (saved.wal) writeFileSync(join(dir, "kms.db-wal"), saved.wal);
    else rmSync(join(dir, "kms.db-wal"), { force: true });
    const started = await outcome(kms.restart());
    if (started === "started") {
      const o2 = kms.client(OWNER);
      await o2.send(new DisconnectCustomKeyStoreCommand({ CustomKeyStoreId: id })).catch(() => {});
      await o2.send(new ConnectCustomKeyStoreCommand({ CustomKeyStoreId: id })).catch(() => {});
      await kms.endpoint.settled(id);
      const state = (await o2.send(new DescribeCustomKeyStoresCommand({ CustomKeyStoreId: id }))).CustomKeyStores![0];
      expect({ started, afterRollback: [state.ConnectionState, state.ConnectionErrorCode] }).toEqual({ started: "refused", afterRollback: "n/a" });
    }
    expect(started).toContain("older copy was put back");
  });
});

describe("red team 3: the supervised KMS process", () => {
  it("a stop asked while the KMS process starts stops it (not ignored, then SIGKILL 10 s later)", async () => {
    // The process plumbing only: the KMS process's stand-in (as test/processes/kms-up.test.ts).
    process.env.HSMSIM_KMS_STAND_IN = "1";
    const dir = mkdtempSync(join(tmpdir(), "kred3-sup-"));
    const events: string[] = [];
    const kms = new KmsProcess({
      clusterDir: dir, host: "127.0.0.1", port: 20_000 + Math.floor(Math.random() * 40_000), logFile: join(dir, "kms.log"), restartDelayMs: 100,
      event: (text) => events.push(text),
    });
    try {
      kms.start();
      while (kms.view().pid === null) await new Promise((r) => setTimeout(r, 5));
      // hsmsim down while the KMS process is still loading: its {t:"stop"} arrives before it listens for it.
      await kms.stop();
      expect(events.filter((e) => /exited/.test(e))).toEqual([expect.not.stringContaining("SIGKILL")]);
    } finally {
      delete process.env.HSMSIM_KMS_STAND_IN;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe("red team 3: LimitExceededException quotas", () => {
  it("UpdateAlias of an alias to the key it already names is not refused as one alias too many", async () => {
    const kms = await startKmsFixture({ durable: false });
    const owner = kms.client(OWNER);
    const key = (await owner.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    for (let i = 0; i < 50; i++) await owner.send(new CreateAliasCommand({ AliasName: `alias/full-${i}`, TargetKeyId: key }));
    expect((await owner.send(new ListAliasesCommand({ KeyId: key, Limit: 100 }))).Aliases).toHaveLength(50);
    // The alias stays where it is: the key's alias count does not change.
    const same = await owner.send(new UpdateAliasCommand({ AliasName: "alias/full-0", TargetKeyId: key })).then(() => "ok", (e: Error) => e.name);
    expect(same).toBe("ok");
  });
});
