// The cluster folder (`--data DIR`, default ./.hsmsim): everything a real-time cluster keeps
// between runs. cluster.json (ids, states, HSMs) is written atomically (temp file, fsync,
// rename, fsync of the folder), so a crash at any moment leaves the old or the new file.
//   cluster.json              the cluster: id, lineage, state, HSMs (id, origin, address, zone, state, folder)
//   pki/                      customerCA.crt (the trust anchor) and its key (0600), hsm-<origin>.crt/.key, optional clientCA.crt
//   hsms/<origin>/            each HSM's data folder (src/hsm)
//   backups/                  sealed backups, and lineage.secret (0600): the vault, standing for AWS's backup service
//   logs/                     supervisor.log, hsm-<id>.log (pino, JSON lines)
//   supervisor.lock, control.sock (0600)
import { closeSync, constants, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";

import type { ClusterState, HsmState } from "../cluster/cluster.js";
import { type ServiceProfile, checkServiceProfile } from "../cluster/service-profile.js";
import { ProcessError } from "./process-errors.js";

export const CLUSTER_FILE_VERSION = 1;
export const DEFAULT_DATA_DIR = ".hsmsim";
export const DEFAULT_PORT = 2223;
export const DEFAULT_BASE_ADDRESS = "127.0.0.2";

export interface HsmEntry {
  hsmId: string;
  origin: number;
  /** "ip:port": where it listens, and the address clients and peers know it by. */
  address: string;
  availabilityZone: string;
  state: HsmState;
  /** Its data folder, relative to the cluster folder. */
  folder: string;
}

export interface ClusterFile {
  version: number;
  clusterId: string;
  lineageId: string;
  state: ClusterState;
  hsmType: string;
  zones: string[];
  /** The next HSM's ordinal (never reused: key ids and principals carry it). */
  nextOrigin: number;
  baseAddress: string;
  port: number;
  /** Mutual TLS enforced: applications need a certificate from pki/clientCA.crt. */
  mtls: boolean;
  /** scrypt cost of password hashes, fixed at creation (tests use less than the default 15). */
  passwordCost?: number;
  /**
   * How fast every HSM serves (its performance profile, time dilation included), as plain data:
   * kept here so a restart, a supervisor's restart of a killed HSM and hsm add/replace serve at
   * the same rate. Absent (a folder made before profiles): as fast as the chip.
   */
  profile?: ServiceProfile;
  hsms: HsmEntry[];
}

/** The cluster's speed as status shows it (the whole profile is in cluster.json). */
export interface ProfileView {
  type: string;
  timeDilation: number;
  engines: number;
  queueCapacity: number;
}

export function profileView(profile: ServiceProfile | undefined): ProfileView | undefined {
  return profile && { type: profile.type, timeDilation: profile.timeDilation, engines: profile.engines, queueCapacity: profile.queueCapacity };
}

/** The paths of one cluster folder. */
export class ClusterFolder {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = resolve(dir);
  }
  get clusterFile(): string { return join(this.dir, "cluster.json"); }
  get pkiDir(): string { return join(this.dir, "pki"); }
  get trustAnchor(): string { return join(this.pkiDir, "customerCA.crt"); }
  get caKey(): string { return join(this.pkiDir, "customerCA.key"); }
  get clientCaCert(): string { return join(this.pkiDir, "clientCA.crt"); }
  get clientCaKey(): string { return join(this.pkiDir, "clientCA.key"); }
  hsmCert(origin: number): string { return join(this.pkiDir, `hsm-${origin}.crt`); }
  hsmKey(origin: number): string { return join(this.pkiDir, `hsm-${origin}.key`); }
  get hsmsDir(): string { return join(this.dir, "hsms"); }
  hsmFolder(origin: number): string { return `hsms/${origin}`; }
  get backupsDir(): string { return join(this.dir, "backups"); }
  get lineageSecret(): string { return join(this.backupsDir, "lineage.secret"); }
  get logsDir(): string { return join(this.dir, "logs"); }
  get socket(): string { return join(this.dir, "control.sock"); }
  abs(relative: string): string { return join(this.dir, relative); }

  exists(): boolean {
    return existsSync(this.clusterFile);
  }

  /** Creates the folder tree, owner-only; refuses a tree another user owns or may write into (see checkOwnership). */
  makeTree(): void {
    for (const d of [this.dir, this.pkiDir, this.hsmsDir, this.backupsDir, this.logsDir]) mkdirSync(d, { recursive: true, mode: 0o700 });
    this.checkOwnership();
  }

  /**
   * The folder and its subfolders are this user's and nobody else may write into them: otherwise
   * another local user could plant symlinks, swap certificates or read what the files hold.
   * The folder itself may be reached through a symlink; its subfolders may not.
   */
  checkOwnership(): void {
    const uid = process.getuid?.();
    const check = (path: string, stat: { isDirectory(): boolean; uid: number | bigint; mode: number | bigint }) => {
      if (!stat.isDirectory()) throw new ProcessError("FOLDER_INVALID", `${path} is not a directory`);
      if (uid !== undefined && Number(stat.uid) !== uid) throw new ProcessError("FOLDER_INVALID", `${path} belongs to user ${stat.uid}, not to this user (${uid})`);
      if ((Number(stat.mode) & 0o022) !== 0) throw new ProcessError("FOLDER_INVALID", `${path} is writable by others (mode ${(Number(stat.mode) & 0o777).toString(8)}): chmod go-w it`);
    };
    check(this.dir, statSync(this.dir));
    for (const d of [this.pkiDir, this.hsmsDir, this.backupsDir, this.logsDir]) {
      const stat = lstatSync(d, { throwIfNoEntry: false });
      if (stat !== undefined) check(d, stat);
    }
  }

  read(): ClusterFile {
    let text: string;
    try {
      text = readFileSync(this.clusterFile, "utf8");
    } catch (e) {
      throw new ProcessError("FOLDER_INVALID", `${this.clusterFile}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no cluster here (run hsmsim up)" : String(e)}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ProcessError("FOLDER_INVALID", `${this.clusterFile} is not JSON (damaged?)`);
    }
    return checkClusterFile(parsed, this.clusterFile);
  }

  write(file: ClusterFile): void {
    writeAtomically(this.clusterFile, `${JSON.stringify(file, null, 2)}\n`, 0o600);
  }
}

/** Writes `path` so that a crash leaves either the old or the new content, never a mix; never through a symlink planted at `path` or its temp name. */
export function writeAtomically(path: string, data: string | Buffer, mode: number): void {
  const temp = `${path}.${process.pid}.tmp`;
  try {
    unlinkSync(temp); // a stale temp (or something planted there): removed, never opened
  } catch {
    // none
  }
  const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  const dirFd = openSync(join(path, ".."), "r");
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

const CLUSTER_STATES = new Set(["CREATE_IN_PROGRESS", "UNINITIALIZED", "INITIALIZED", "ACTIVE", "UPDATE_IN_PROGRESS", "DEGRADED", "DELETED"]);
const HSM_STATES = new Set(["CREATE_IN_PROGRESS", "ACTIVE", "DEGRADED", "DELETED"]);
export const HSM_ID = /^hsm-[0-9a-f]{16}$/;
const ADDRESS = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d{1,5})$/;

/** "ip:port" with a dotted IPv4 and a port 1–65535. */
export function isAddress(value: unknown): value is string {
  if (typeof value !== "string") return false;
  const m = ADDRESS.exec(value);
  return m !== null && m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) >= 1 && Number(m[5]) <= 65535;
}

export function isIpv4(value: unknown): value is string {
  return isAddress(`${String(value)}:1`);
}

/** The address of the n-th HSM (n from 0): base + n in the last octets, same port. */
export function nthAddress(baseAddress: string, port: number, n: number): string {
  const asInt = baseAddress.split(".").reduce((acc, o) => acc * 256 + Number(o), 0) + n;
  if (asInt > 0xffffffff) throw new ProcessError("INVALID_ARGUMENT", "no more addresses after the base address");
  return `${[24, 16, 8, 0].map((s) => Math.floor(asInt / 2 ** s) % 256).join(".")}:${port}`;
}

function fail(path: string, what: string): never {
  throw new ProcessError("FOLDER_INVALID", `${path}: ${what} (damaged or edited by hand?)`);
}

function checkClusterFile(value: unknown, path: string): ClusterFile {
  const f = value as Partial<ClusterFile>;
  if (typeof f !== "object" || f === null) fail(path, "not an object");
  if (f.version !== CLUSTER_FILE_VERSION) fail(path, `version ${String(f.version)}, expected ${CLUSTER_FILE_VERSION}`);
  if (typeof f.clusterId !== "string" || !/^cluster-[0-9a-f]{12}$/.test(f.clusterId)) fail(path, "bad clusterId");
  if (typeof f.lineageId !== "string" || !/^lineage-[0-9a-f]{12}$/.test(f.lineageId)) fail(path, "bad lineageId");
  if (typeof f.state !== "string" || !CLUSTER_STATES.has(f.state)) fail(path, "bad state");
  if (typeof f.hsmType !== "string") fail(path, "bad hsmType");
  if (!Array.isArray(f.zones) || f.zones.length === 0 || !f.zones.every((z) => typeof z === "string" && z.length > 0)) fail(path, "bad zones");
  if (!Number.isInteger(f.nextOrigin) || f.nextOrigin! < 1) fail(path, "bad nextOrigin");
  if (!isIpv4(f.baseAddress)) fail(path, "bad baseAddress");
  if (!Number.isInteger(f.port) || f.port! < 1 || f.port! > 65535) fail(path, "bad port");
  if (typeof f.mtls !== "boolean") fail(path, "bad mtls");
  if (f.passwordCost !== undefined && !(Number.isInteger(f.passwordCost) && f.passwordCost >= 1 && f.passwordCost <= 20)) fail(path, "bad passwordCost");
  if (f.profile !== undefined) {
    try {
      f.profile = checkServiceProfile(f.profile);
    } catch (e) {
      fail(path, `bad profile (${(e as Error).message})`);
    }
  }
  if (!Array.isArray(f.hsms)) fail(path, "bad hsms");
  const seen = new Set<string>();
  for (const h of f.hsms) {
    if (typeof h !== "object" || h === null) fail(path, "bad HSM entry");
    if (typeof h.hsmId !== "string" || !HSM_ID.test(h.hsmId) || seen.has(h.hsmId)) fail(path, `bad hsmId ${String(h.hsmId)}`);
    seen.add(h.hsmId);
    if (!Number.isInteger(h.origin) || h.origin < 1 || h.origin >= f.nextOrigin!) fail(path, `bad origin of ${h.hsmId}`);
    if (!isAddress(h.address)) fail(path, `bad address of ${h.hsmId}`);
    if (typeof h.availabilityZone !== "string" || !f.zones.includes(h.availabilityZone)) fail(path, `bad zone of ${h.hsmId}`);
    if (typeof h.state !== "string" || !HSM_STATES.has(h.state)) fail(path, `bad state of ${h.hsmId}`);
    if (h.folder !== `hsms/${h.origin}`) fail(path, `bad folder of ${h.hsmId}`);
  }
  // Two live HSMs on one address: the second could never bind it and would restart forever.
  const live = f.hsms.filter((h) => h.state !== "DELETED").map((h) => h.address);
  if (new Set(live).size !== live.length) fail(path, "two HSMs share an address");
  const origins = f.hsms.map((h) => h.origin);
  if (new Set(origins).size !== origins.length) fail(path, "two HSMs share an origin (and so a data folder)");
  return f as ClusterFile;
}
