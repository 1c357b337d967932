// The supervisor's backups: periodic, sealed into the folder's backups/ (one file each), expired
// past the retention (file deleted, the newest always kept), and every file opens again under the
// folder's lineage — a changed byte or another lineage's file does not.
import { readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";

import { ClusterFolder } from "../../src/net/cluster-folder.js";
import { createCluster } from "../../src/net/new-cluster.js";
import { Supervisor } from "../../src/net/supervisor.js";
import { openVault } from "../../src/net/vault-files.js";
import { placement } from "./helpers.js";

const where = placement();
const folder = new ClusterFolder(where.dir);
let supervisor: Supervisor | undefined;

const backupFiles = () => readdirSync(folder.backupsDir).filter((f) => f.startsWith("backup-")).sort();

describe("supervisor backups", () => {
  afterAll(async () => {
    await supervisor?.shutdown();
    rmSync(join(where.dir, ".."), { recursive: true, force: true });
  }, 60_000);

  it("periodic backups land as files, expire past the retention, and reopen under the lineage only", async () => {
    await createCluster(folder, { hsmCount: 1, baseAddress: where.baseAddress, port: where.port, mtls: false, passwordCost: 4 });
    supervisor = new Supervisor(folder, pino({ level: "silent" }), { backupIntervalMs: 300, backupRetentionMs: 900 });
    await supervisor.start();
    const deadline = Date.now() + 60_000;
    let view = await supervisor.status();
    while (!view.events.some((e) => / expired$/.test(e.event))) {
      if (Date.now() > deadline) throw new Error(`no backup expired; events: ${JSON.stringify(view.events.slice(-5))}`);
      await new Promise((r) => setTimeout(r, 100));
      view = await supervisor.status();
    }
    await supervisor.shutdown();
    view = await supervisor.status();
    // On disk exactly what the vault keeps: an expired backup's file is gone.
    expect(backupFiles()).toEqual(view.backups.map((b) => `${b.backupId}.json`).sort());
    const expired = view.events.flatMap((e) => /^backup (backup-[0-9a-f]+) expired$/.exec(e.event)?.[1] ?? []);
    for (const id of expired) expect(backupFiles()).not.toContain(`${id}.json`);
    expect(view.backups.length).toBeGreaterThan(0);
    expect(view.backups.every((b) => b.trigger === "periodic")).toBe(true);
    for (const name of backupFiles()) expect(readFileSync(join(folder.backupsDir, name)).length).toBeGreaterThan(0);

    // Reopened from the files: every backup opens under the lineage.
    const { lineageId } = folder.read();
    const reopened = openVault(folder, lineageId);
    expect(reopened.skipped).toEqual([]);
    expect(reopened.vault.list().map((b) => b.backupId).sort()).toEqual(view.backups.map((b) => b.backupId).sort());
    // One changed byte in a backup's sealed data: that file is skipped, the others still open.
    const victim = join(folder.backupsDir, backupFiles()[0]);
    const stored = JSON.parse(readFileSync(victim, "utf8")) as { sealed: string };
    const sealed = Buffer.from(stored.sealed, "base64");
    sealed[20] ^= 1;
    writeFileSync(victim, JSON.stringify({ ...stored, sealed: sealed.toString("base64") }));
    expect(openVault(folder, lineageId).skipped).toEqual([backupFiles()[0]]);
    // Another lineage's id: the vault refuses the folder's secret.
    expect(() => openVault(folder, "lineage-000000000000")).toThrow(expect.objectContaining({ code: "FOLDER_INVALID" }));
  }, 120_000);
});
