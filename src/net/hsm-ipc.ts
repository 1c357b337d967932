// What the supervisor and one HSM process say to each other over the IPC channel (node's
// "advanced" serialization, so Buffers stay Buffers). Commands carry an id; the child answers
// each with a reply of that id. Both sides check every message's shape before using it.
import type { Member } from "../cluster/node.js";
import type { ServiceProfile } from "../cluster/service-profile.js";
import type { HsmSnapshot } from "../hsm/snapshot.js";

/** The command line of an HSM process: one JSON argument. */
export interface HsmProcessConfig {
  /** The HSM's data folder (absolute). */
  dir: string;
  clusterId: string;
  /** "ip:port" it listens on and is known by. */
  address: string;
  availabilityZone: string;
  certFile: string;
  keyFile: string;
  /** The cluster CA (the trust anchor): peers' certificates must chain to it. */
  caFile: string;
  /** Client trust anchor for mutual TLS, when enforced. */
  clientCaFile?: string;
  logFile: string;
  /** How fast it serves (cluster.json's profile, dilation included); absent: as fast as the chip. */
  profile?: ServiceProfile;
}

export type SupervisorCommand =
  | { t: "members"; id: number; members: Member[]; epoch: number; keyAvailabilityMin: number; initialized: boolean; maxOrigin: number }
  | { t: "status"; id: number }
  /** Clone this HSM into a new data folder (add HSM): the masking key goes chip to chip. */
  | { t: "clone"; id: number; dir: string; origin: number }
  /** A backup: the snapshot, its masking key sealed to the vault lineage's transport key. */
  | { t: "backup"; id: number; transportKey: Buffer }
  | { t: "stop"; id: number };

export interface HsmStatus {
  hsmId: string;
  running: boolean;
  activated: boolean;
  keyCount: number;
  userCount: number;
  served: number;
  /** Requests answered busy (its queue full) since the process started. */
  busy: number;
}

export type ChildMessage =
  | { t: "ready"; hsmId: string; origin: number; activated: boolean }
  | { t: "activated" }
  | { t: "reply"; id: number; ok: true; value: unknown }
  | { t: "reply"; id: number; ok: false; code: string; message: string }
  | { t: "fatal"; reason: string };

export type CloneResult = { hsmId: string };
export type BackupResult = HsmSnapshot & { sealedMaskingKey: Buffer };

const COMMANDS = new Set(["members", "status", "clone", "backup", "stop"]);

/** The child's check of a supervisor command (the channel is the supervisor's alone, but a bug must not crash the HSM). */
export function isSupervisorCommand(value: unknown): value is SupervisorCommand {
  const m = value as Record<string, unknown>;
  if (typeof m !== "object" || m === null || typeof m.t !== "string" || !COMMANDS.has(m.t) || !Number.isSafeInteger(m.id)) return false;
  switch (m.t) {
    case "members":
      return Array.isArray(m.members) && m.members.every(isMember) && Number.isSafeInteger(m.epoch) && Number.isSafeInteger(m.keyAvailabilityMin)
        && typeof m.initialized === "boolean" && Number.isSafeInteger(m.maxOrigin);
    case "clone":
      return typeof m.dir === "string" && m.dir.length > 0 && Number.isSafeInteger(m.origin) && (m.origin as number) >= 1;
    case "backup":
      return Buffer.isBuffer(m.transportKey);
    default:
      return true;
  }
}

function isMember(value: unknown): value is Member {
  const m = value as Record<string, unknown>;
  return typeof m === "object" && m !== null && typeof m.hsmId === "string" && typeof m.address === "string"
    && typeof m.availabilityZone === "string" && Number.isSafeInteger(m.origin);
}

/** The supervisor's check of a child's message. */
export function isChildMessage(value: unknown): value is ChildMessage {
  const m = value as Record<string, unknown>;
  if (typeof m !== "object" || m === null) return false;
  switch (m.t) {
    case "ready": return typeof m.hsmId === "string" && Number.isSafeInteger(m.origin) && typeof m.activated === "boolean";
    case "activated": return true;
    case "fatal": return typeof m.reason === "string";
    case "reply": return Number.isSafeInteger(m.id) && typeof m.ok === "boolean" && (m.ok || (typeof m.code === "string" && typeof m.message === "string"));
    default: return false;
  }
}
