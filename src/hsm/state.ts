// The HSM's replicable state: token keys (chip objects and their masked records) and user
// accounts, each write recorded in the change journal with a Lamport version, and the
// application of other HSMs' journal entries (last writer wins, tombstones for deletes).
// Call the writing methods inside a store transaction: the row, the journal entry and the
// audit entry commit together or not at all.
import { freezeClass } from "../primordials.js";
import type { NativeChip } from "../pkcs11/addon.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import type { AuditEntry } from "./audit.js";
import { HsmError } from "./errors.js";
import {
  type Change, type JournalEntry, changeSubject, decodeChange, encodeChange, keyIdOrigin, keyIdSeq, makeKeyId, makePrincipal, makeVersion,
  principalOrigin, principalSeq, versionCounter,
} from "./journal.js";
import type { KeyRow, Store, Tombstone, UserRow } from "./store.js";

const SLOT = 0;

/**
 * What a masked key record is bound to: the chip authenticates it with the record, so a
 * record opens only as the key, version and owner it was written for (an older copy, a
 * deleted key's or another key's record does not).
 */
export function recordBinding(keyId: number, version: number, owner: number): Buffer {
  return Buffer.from(JSON.stringify(["hsmsim key record", keyId, version, owner]));
}

export interface StateHost {
  readonly chip: NativeChip;
  readonly store: Store;
  audit(operation: string, actor: string | null, session: number | null, keys: number[], result: string, detail?: string): AuditEntry;
  /** Ends the PKCS#11 logins of a principal whose account was deleted or whose credential changed. */
  revokeSessions(principal: number): void;
}

/** Whether a user write replaces the credential an existing login was taken with. */
function credentialChanged(before: UserRow, after: { principal: number; role: string; hash: Buffer }): boolean {
  return before.principal !== after.principal || before.role !== after.role || !before.hash.equals(after.hash);
}

export type ApplyOutcome = "applied" | "superseded" | "duplicate" | "gap";

/**
 * Another member's replicable state, as a snapshot transfer carries it (src/cluster/): its
 * users (no lockout counters: those stay per HSM), token keys as masked records (the masking
 * key never travels), tombstones, activation, Lamport counter and journal heads — the state
 * that holds every change of each origin up to its head.
 */
export interface PeerState {
  /** The sending HSM's id, for the audit. */
  source: string;
  activated: boolean;
  lamport: number;
  heads: [number, number][];
  users: Omit<UserRow, "failures">[];
  keys: KeyRow[];
  tombstones: Tombstone[];
}

export interface MergeOutcome {
  /** Records the snapshot changed here (newer than what this HSM held). */
  applied: number;
  /** Records this HSM already held at that version or a newer one. */
  unchanged: number;
  /** Origins whose head the snapshot raised. */
  raised: number;
}

export class DeviceState {
  readonly origin: number;
  private lamport: number;
  /** The highest journal sequence held from each origin (entries are applied in order). */
  private heads: Map<number, number>;
  /** chip handle → key id, and back, for every token key. */
  readonly keyIds = new Map<number, number>();
  private readonly handles = new Map<number, number>();
  private readonly creations = new Map<number, number>();

  constructor(private readonly host: StateHost) {
    const { store } = host;
    this.origin = Number(store.meta("origin"));
    this.lamport = Number(store.meta("lamport"));
    this.heads = store.journalHeads();
    store.onRollback(() => {
      this.lamport = Number(store.meta("lamport"));
      this.heads = store.journalHeads();
    });
  }

  /** Imports every stored key into the chip (at start). */
  loadKeys(): void {
    for (const row of this.host.store.keys()) {
      let handle: number;
      try {
        handle = this.host.chip.importMasked(SLOT, row.record, recordBinding(row.id, row.version, row.owner));
      } catch {
        throw new HsmError("DATA_FOLDER_INVALID", `${this.host.store.dir}: the record of key ${row.id} does not open as version ${row.version} `
          + "owned by principal " + `${row.owner} (another HSM's, another key's, an older copy, or edited)`);
      }
      this.track(handle, row.id);
    }
  }

  handleOf(keyId: number): number {
    const handle = this.handles.get(keyId);
    if (handle === undefined) throw new HsmError("KEY_NOT_FOUND", `no key ${keyId}`);
    return handle;
  }

  /**
   * Where a key was created: the journal sequence of its first entry from the HSM that minted
   * its id, or undefined while this HSM holds the key only through a later change.
   */
  creationSeq(keyId: number): number | undefined {
    let seq = this.creations.get(keyId);
    if (seq === undefined) {
      seq = this.host.store.key(keyId)?.createdSeq || undefined;
      if (seq !== undefined) this.creations.set(keyId, seq);
    }
    return seq;
  }

  hasKey(keyId: number): boolean {
    return this.handles.has(keyId);
  }

  /** Journal heads: what this HSM holds of each origin's changes. */
  vector(): Map<number, number> {
    return new Map(this.heads);
  }

  head(origin: number): number {
    return this.heads.get(origin) ?? 0;
  }

  /** The Lamport counter, for clients that carry what they have seen between HSMs. */
  get clock(): number {
    return this.lamport;
  }

  /** Moves the Lamport clock past `version`, so this HSM's next write orders after it. */
  observe(version: number): void {
    const counter = versionCounter(version);
    if (counter > this.lamport) {
      this.lamport = counter;
      this.host.store.setMeta("lamport", String(counter));
    }
  }

  // ---- local writes (inside a transaction) ----
  newKeyId(): number {
    const seq = Number(this.host.store.meta("next_key_seq"));
    this.host.store.setMeta("next_key_seq", String(seq + 1));
    return makeKeyId(this.origin, seq);
  }

  newPrincipal(): number {
    const seq = Number(this.host.store.meta("next_principal"));
    this.host.store.setMeta("next_principal", String(seq + 1));
    return makePrincipal(this.origin, seq);
  }

  /** Records the chip object `handle` as token key `keyId` (new or changed). */
  writeKey(keyId: number, handle: number): void {
    const version = this.tick(), owner = this.host.chip.ownership(SLOT, handle).owner;
    const change: Change = { kind: "key", id: keyId, version, record: this.host.chip.exportMasked(SLOT, handle, 1, recordBinding(keyId, version, owner)), owner };
    // A new key's creation is the entry appended below.
    const createdSeq = this.host.store.key(keyId)?.createdSeq ?? this.head(this.origin) + 1;
    this.host.store.putKey({ id: keyId, record: change.record, owner: change.owner, version: change.version, createdSeq });
    this.track(handle, keyId);
    this.append(change);
  }

  /** Records that token key `keyId` was deleted (its chip object is already gone). */
  writeKeyDelete(keyId: number): void {
    const version = this.tick();
    this.host.store.deleteKey(keyId, version);
    this.untrack(keyId);
    this.append({ kind: "key-delete", id: keyId, version });
  }

  writeUser(row: Omit<UserRow, "version" | "failures">, failures: number): void {
    this.revokeIfChanged(row.name, row);
    const version = this.tick();
    this.host.store.insertUser({ ...row, failures, version });
    this.host.store.clearTombstone("user", row.name);
    this.append({ kind: "user", name: row.name, version, role: row.role, principal: row.principal, salt: row.salt, hash: row.hash, cost: row.cost });
  }

  writeUserDelete(name: string): void {
    this.revokeIfChanged(name, undefined);
    const version = this.tick();
    this.host.store.deleteUser(name, version);
    this.append({ kind: "user-delete", name, version });
  }

  writeActivation(): void {
    const version = this.tick();
    this.host.store.setMeta("activated", "1");
    this.append({ kind: "activate", version });
  }

  /**
   * Drops journal entries every member holds (`floors`: origin → the lowest head among the
   * members). Heads, records, versions and tombstones stay: only the replay log shrinks.
   */
  prune(floors: Map<number, number>): number {
    let dropped = 0;
    this.host.store.transaction(() => {
      for (const [origin, floor] of floors) if (floor > 0) dropped += this.host.store.pruneJournal(origin, floor);
    });
    return dropped;
  }

  /** This HSM's journal entries after `afterSeq` of `origin`, oldest first. */
  entriesAfter(origin: number, afterSeq: number, limit = 256): JournalEntry[] {
    return this.host.store.journalRange(origin, afterSeq, limit).map((r) => ({ origin, seq: r.seq, change: decodeChange(r.change) }));
  }

  // ---- replication ----
  /**
   * Applies another HSM's journal entry, in its origin's order: "gap" when an earlier entry
   * of that origin is missing, "duplicate" when it is already held; otherwise the entry joins
   * the journal, and its change takes effect unless a newer write or a tombstone supersedes it.
   */
  apply(entry: JournalEntry): ApplyOutcome {
    const held = this.head(entry.origin);
    if (entry.seq <= held) return "duplicate";
    if (entry.seq !== held + 1) return "gap";
    const { change } = entry;
    let outcome: ApplyOutcome = "superseded";
    const failuresBefore = change.kind === "user" ? this.host.store.user(change.name)?.failures : undefined;
    this.host.store.transaction(() => {
      this.observe(change.version);
      if (this.applyChange(change, change.kind === "key" && entry.origin === keyIdOrigin(change.id) ? entry.seq : 0)) outcome = "applied";
      this.host.store.appendJournal(entry.origin, entry.seq, encodeChange(change));
      this.heads.set(entry.origin, entry.seq);
      // The lockout checker reads "failures reset" to know a replicated change unlocked the account here.
      const reset = change.kind === "user" && outcome === "applied" && (failuresBefore ?? 0) > 0 && (this.host.store.user(change.name)?.failures ?? 0) === 0;
      this.host.audit("SYNC", null, null, "id" in change ? [change.id] : [], outcome === "applied" ? "OK" : "SUPERSEDED",
        `${change.kind} ${changeSubject(change)} from origin ${entry.origin} seq ${entry.seq}${reset ? " (failures reset)" : ""}`);
    });
    return outcome;
  }

  /**
   * Merges a peer's state into this one, in one transaction (all of it, or none): every
   * record applies as its change would (last writer wins, tombstones, revocation, per-HSM
   * lockout counters), so what this HSM wrote or applied that the peer has not seen stays,
   * and the heads become the higher of both per origin. An origin's journal entries at or
   * below a raised head are dropped (the snapshot holds their effect; peers that need them
   * get a snapshot too). If the peer holds more of this HSM's own origin than this HSM does
   * (its folder was restored from an older copy), the key and principal counters move past
   * what the peer saw, so no id is minted twice.
   */
  merge(peer: PeerState): MergeOutcome {
    const { store } = this.host;
    const outcome: MergeOutcome = { applied: 0, unchanged: 0, raised: 0 };
    const changes: { change: Change; createdSeq: number }[] = [
      ...peer.keys.map((k) => ({ change: { kind: "key", id: k.id, version: k.version, record: k.record, owner: k.owner } as Change, createdSeq: k.createdSeq })),
      ...peer.users.map((u) => ({ change: { kind: "user", name: u.name, version: u.version, role: u.role, principal: u.principal, salt: u.salt, hash: u.hash, cost: u.cost } as Change, createdSeq: 0 })),
      ...peer.tombstones.map((t) => ({ change: (t.kind === "key" ? { kind: "key-delete", id: Number(t.name), version: t.version } : { kind: "user-delete", name: t.name, version: t.version }) as Change, createdSeq: 0 })),
    ];
    // Every record that would apply must open first: a refused snapshot leaves the chip as it found it, not only the store.
    for (const { change } of changes) {
      if (change.kind !== "key" || store.tombstone("key", String(change.id)) || change.version <= (store.key(change.id)?.version ?? -1)) continue;
      let handle: number;
      try {
        handle = this.host.chip.importMasked(SLOT, change.record, recordBinding(change.id, change.version, change.owner));
      } catch (e) {
        throw new HsmError("DATA_FOLDER_INVALID", `key ${change.id} of ${peer.source}'s snapshot does not open as version ${change.version} with this HSM's masking key (${e instanceof Pkcs11Error ? e.message : e})`);
      }
      this.dropObject(handle);
    }
    store.transaction(() => {
      this.observe(makeVersion(peer.lamport, 0));
      for (const { change, createdSeq } of changes) {
        this.observe(change.version);
        const failuresBefore = change.kind === "user" ? store.user(change.name)?.failures : undefined;
        if (!this.applyChange(change, createdSeq)) {
          outcome.unchanged++;
          continue;
        }
        outcome.applied++;
        const reset = change.kind === "user" && (failuresBefore ?? 0) > 0 && (store.user(change.name)?.failures ?? 0) === 0;
        this.host.audit("SYNC", null, null, "id" in change ? [change.id] : [], "OK",
          `${change.kind} ${changeSubject(change)} from a snapshot of ${peer.source}${reset ? " (failures reset)" : ""}`);
      }
      if (peer.activated && store.meta("activated") !== "1") {
        store.setMeta("activated", "1");
        outcome.applied++;
      }
      for (const [origin, seq] of peer.heads) {
        if (seq <= this.head(origin)) continue;
        store.pruneJournal(origin, seq);
        store.raiseHead(origin, seq);
        this.heads.set(origin, seq);
        outcome.raised++;
      }
      // Never mint an id of this origin that the cluster has seen already.
      const own = (n: number) => (n === this.origin ? 1 : 0);
      let nextKey = Number(store.meta("next_key_seq")), nextPrincipal = Number(store.meta("next_principal"));
      for (const { change } of changes) {
        if ((change.kind === "key" || change.kind === "key-delete") && own(keyIdOrigin(change.id))) nextKey = Math.max(nextKey, keyIdSeq(change.id) + 1);
        if (change.kind === "key" && own(principalOrigin(change.owner))) nextPrincipal = Math.max(nextPrincipal, principalSeq(change.owner) + 1);
        if (change.kind === "user" && own(principalOrigin(change.principal))) nextPrincipal = Math.max(nextPrincipal, principalSeq(change.principal) + 1);
      }
      store.setMeta("next_key_seq", String(nextKey));
      store.setMeta("next_principal", String(nextPrincipal));
      this.host.audit("SNAPSHOT", null, null, [], "OK", `from ${peer.source}: ${outcome.applied} records changed, ${outcome.unchanged} held already, `
        + `${outcome.raised} journal heads raised`);
    });
    return outcome;
  }

  /** Applies one change (last writer wins, tombstones final for keys); `createdSeq`: a new key's creation position, if known (0: unknown). */
  private applyChange(change: Change, createdSeq: number): boolean {
    const { store, chip } = this.host;
    switch (change.kind) {
      case "key":
      case "key-delete": {
        // A key's delete is final: ids are never reused, so a tombstone outranks every write to
        // the key, earlier or concurrent (a share racing a delete must not bring it back).
        const tombstone = store.tombstone("key", String(change.id));
        if (tombstone) {
          // Two deletes of one key (from two HSMs at once): the tombstones converge on the higher version.
          if (change.kind !== "key-delete" || change.version <= tombstone.version) return false;
          store.putTombstone({ ...tombstone, version: change.version });
          return true;
        }
        const current = store.key(change.id)?.version ?? -1;
        if (change.kind === "key" && change.version <= current) return false;
        const old = this.handles.get(change.id);
        if (change.kind === "key") {
          let handle: number;
          try {
            handle = chip.importMasked(SLOT, change.record, recordBinding(change.id, change.version, change.owner));
          } catch (e) {
            // A record this HSM cannot open is another cluster's, or not the change's (id, version, owner): refuse it loudly, never skip it.
            throw new HsmError("DATA_FOLDER_INVALID", `key ${change.id} does not open as version ${change.version} with this HSM's masking key (${e instanceof Pkcs11Error ? e.message : e})`);
          }
          if (old !== undefined) this.dropObject(old);
          store.putKey({ id: change.id, record: change.record, owner: change.owner, version: change.version, createdSeq: store.key(change.id)?.createdSeq ?? createdSeq });
          this.track(handle, change.id);
        } else {
          if (old !== undefined) this.dropObject(old);
          store.deleteKey(change.id, change.version);
          this.untrack(change.id);
        }
        return true;
      }
      case "user":
      case "user-delete": {
        const existing = store.user(change.name);
        const current = existing?.version ?? store.tombstone("user", change.name)?.version ?? -1;
        if (change.version <= current) return false;
        // Revocation reaches this HSM with the replicated delete or password change.
        this.revokeIfChanged(change.name, change.kind === "user" ? change : undefined);
        if (change.kind === "user-delete") {
          store.deleteUser(change.name, change.version);
          return true;
        }
        // Lockout counters stay per HSM; a new password (a reset) clears this HSM's count.
        const samePassword = existing !== undefined && existing.hash.equals(change.hash);
        const failures = samePassword ? existing.failures : 0;
        store.insertUser({ name: change.name, role: change.role, principal: change.principal, salt: change.salt, hash: change.hash,
          cost: change.cost, failures, version: change.version });
        store.clearTombstone("user", change.name);
        return true;
      }
      case "activate":
        if (store.meta("activated") === "1") return false;
        store.setMeta("activated", "1");
        return true;
    }
  }

  /**
   * Revocation on the next call, everywhere: before a user row is deleted (`after` undefined)
   * or replaced with another credential, every PKCS#11 login taken with the old one ends.
   * (Actors end on their next call: the Hsm checks each against the current row.)
   */
  private revokeIfChanged(name: string, after: { principal: number; role: string; hash: Buffer } | undefined): void {
    const before = this.host.store.user(name);
    if (before && (!after || credentialChanged(before, after))) this.host.revokeSessions(before.principal);
  }

  private tick(): number {
    this.lamport++;
    this.host.store.setMeta("lamport", String(this.lamport));
    return makeVersion(this.lamport, this.origin);
  }

  private append(change: Change): void {
    const seq = this.head(this.origin) + 1;
    this.host.store.appendJournal(this.origin, seq, encodeChange(change));
    this.heads.set(this.origin, seq);
  }

  private track(handle: number, keyId: number): void {
    this.keyIds.set(handle, keyId);
    this.handles.set(keyId, handle);
  }

  /** Drops the mapping of a handle whose key was never stored (its transaction rolled back). */
  forgetHandle(handle: number): void {
    const keyId = this.keyIds.get(handle);
    if (keyId !== undefined && this.host.store.key(keyId) === undefined) this.untrack(keyId);
  }

  private untrack(keyId: number): void {
    const handle = this.handles.get(keyId);
    if (handle !== undefined) this.keyIds.delete(handle);
    this.handles.delete(keyId);
  }

  private dropObject(handle: number): void {
    try {
      this.host.chip.removeObject(SLOT, handle);
    } catch {
      // already gone (destroyed through PKCS#11 just before)
    }
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(DeviceState);
