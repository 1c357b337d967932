// The change journal: every change to an HSM's users and token keys, as a self-contained
// record another HSM can apply. A cluster replicates journals (src/cluster/); a standalone
// HSM keeps one too, which costs one row per change.
//
// Versions are Lamport timestamps packed in one number: counter × 4096 + origin ordinal.
// A record (a key, a user) keeps the version of its last write; a write applies only when its
// version is higher (last writer wins), and a delete leaves a tombstone. A user's tombstone
// carries its version (the name may be created again later); a key's is final whatever the
// versions, because key ids are never reused: no write, older or concurrent, brings it back.
import { HsmError } from "./errors.js";
import type { Role } from "./types.js";

export const MAX_ORIGIN = 4095;
const ORIGIN_SPAN = 4096;
/** Key ids: origin × 2^32 + the origin's key sequence, unique across the cluster's lifetime. */
const KEY_SPAN = 2 ** 32;
/** Principals: origin × 2^20 + the origin's user sequence. */
const PRINCIPAL_SPAN = 2 ** 20;

export type Change =
  | { kind: "key"; id: number; version: number; record: Buffer; owner: number }
  | { kind: "key-delete"; id: number; version: number }
  | { kind: "user"; name: string; version: number; role: Role; principal: number; salt: Buffer; hash: Buffer; cost: number }
  | { kind: "user-delete"; name: string; version: number }
  | { kind: "activate"; version: number };

export interface JournalEntry {
  origin: number;
  seq: number;
  change: Change;
}

export function checkOrigin(origin: unknown): number {
  if (typeof origin !== "number" || !Number.isInteger(origin) || origin < 0 || origin > MAX_ORIGIN) {
    throw new HsmError("INVALID_ARGUMENT", `origin must be an integer from 0 to ${MAX_ORIGIN}`);
  }
  return origin;
}

export function makeVersion(counter: number, origin: number): number {
  return counter * ORIGIN_SPAN + origin;
}
export function versionCounter(version: number): number {
  return Math.floor(version / ORIGIN_SPAN);
}
export function versionOrigin(version: number): number {
  return version % ORIGIN_SPAN;
}
export function makeKeyId(origin: number, seq: number): number {
  return origin * KEY_SPAN + seq;
}
export function keyIdOrigin(id: number): number {
  return Math.floor(id / KEY_SPAN);
}
export function makePrincipal(origin: number, seq: number): number {
  return origin * PRINCIPAL_SPAN + seq;
}
/** The origin's own sequence in a key id or a principal (what newKeyId and newPrincipal counted). */
export function keyIdSeq(id: number): number {
  return id % KEY_SPAN;
}
export function principalOrigin(principal: number): number {
  return Math.floor(principal / PRINCIPAL_SPAN);
}
export function principalSeq(principal: number): number {
  return principal % PRINCIPAL_SPAN;
}

const BYTES = new Set(["record", "salt", "hash"]);

export function encodeChange(change: Change): string {
  return JSON.stringify(change, (name, value) => (BYTES.has(name) && value && typeof value === "object" ? Buffer.from(value).toString("base64") : value));
}

export function decodeChange(text: string): Change {
  return JSON.parse(text, (name, value) => (BYTES.has(name) && typeof value === "string" ? Buffer.from(value, "base64") : value)) as Change;
}

/** What a change is about, for last-writer-wins: "key:<id>" or "user:<name>" (activation is its own record). */
export function changeSubject(change: Change): string {
  switch (change.kind) {
    case "key":
    case "key-delete":
      return `key:${change.id}`;
    case "user":
    case "user-delete":
      return `user:${change.name}`;
    case "activate":
      return "activation";
  }
}
