// The backup vault of a real-time cluster, in the cluster folder's backups/: the lineage
// secret (0600; it stands for what AWS's backup service keeps) and one file per sealed backup.
// The vault itself is src/cluster/backup.ts's BackupVault, so both control planes seal alike.
import { randomBytes } from "node:crypto";
import { readFileSync, readdirSync, unlinkSync } from "node:fs";
import { join } from "node:path";

import { type Backup, BackupVault } from "../cluster/backup.js";
import { type ClusterFolder, writeAtomically } from "./cluster-folder.js";
import { ProcessError } from "./process-errors.js";

const BACKUP_FILE = /^backup-[0-9a-f]{16}\.json$/;

/** A new lineage for a new cluster: its secret written to the folder (0600). */
export function createLineage(folder: ClusterFolder): string {
  const lineageId = `lineage-${randomBytes(6).toString("hex")}`;
  writeAtomically(folder.lineageSecret, `${JSON.stringify({ lineageId, secret: randomBytes(32).toString("hex") })}\n`, 0o600);
  return lineageId;
}

/** The vault with the folder's lineage and every backup file that opens under it; `skipped` names the others. */
export function openVault(folder: ClusterFolder, lineageId: string): { vault: BackupVault; skipped: string[] } {
  let stored: { lineageId?: unknown; secret?: unknown };
  try {
    stored = JSON.parse(readFileSync(folder.lineageSecret, "utf8")) as typeof stored;
  } catch (e) {
    throw new ProcessError("FOLDER_INVALID", `${folder.lineageSecret}: cannot read the lineage secret (${String(e)})`);
  }
  if (stored.lineageId !== lineageId || typeof stored.secret !== "string" || !/^[0-9a-f]{64}$/.test(stored.secret)) {
    throw new ProcessError("FOLDER_INVALID", `${folder.lineageSecret} does not hold lineage ${lineageId}'s secret`);
  }
  const vault = new BackupVault((n) => randomBytes(n));
  vault.adoptLineage(lineageId, Buffer.from(stored.secret, "hex"));
  const skipped: string[] = [];
  for (const name of readdirSync(folder.backupsDir)) {
    if (!BACKUP_FILE.test(name)) continue;
    try {
      const raw = JSON.parse(readFileSync(join(folder.backupsDir, name), "utf8")) as Omit<Backup, "sealed"> & { sealed: string };
      if (`${raw.backupId}.json` !== name || typeof raw.sealed !== "string" || !Number.isFinite(raw.createdUs)) throw new Error("bad fields");
      vault.admit({ ...raw, sealed: Buffer.from(raw.sealed, "base64") });
    } catch {
      skipped.push(name);
    }
  }
  return { vault, skipped };
}

export function saveBackup(folder: ClusterFolder, backup: Backup): void {
  writeAtomically(join(folder.backupsDir, `${backup.backupId}.json`), `${JSON.stringify({ ...backup, sealed: backup.sealed.toString("base64") })}\n`, 0o600);
}

export function deleteBackup(folder: ClusterFolder, backupId: string): void {
  try {
    unlinkSync(join(folder.backupsDir, `${backupId}.json`));
  } catch {
    // gone already
  }
}
