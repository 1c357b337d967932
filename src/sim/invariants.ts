// Invariant checkers for a simulated run, kept apart from the code they check: they read the
// workload's history of what clients were told, the HSMs' data folders and journals, and
// nothing else of the cluster's logic.
import { freezeClass } from "../primordials.js";
import type { AuditEntry } from "../hsm/audit.js";
import { type CallContext, type LivenessRecord, classify, describeError } from "./liveness.js";
import type { Hsm } from "../hsm/hsm.js";
import type { WritePosition } from "../cluster/protocol.js";
import { verifyFolder } from "../hsm/verify-folder.js";
import { internalsOf } from "../hsm/internals.js";

export interface Violation {
  invariant: "acknowledged-change-lost" | "deleted-key-used" | "unauthorized-use" | "locked-account-logged-in" | "audit-chain-broken"
    | "no-convergence" | "key-id-reused" | "unexpected-error" | "unavailable" | "session-object-invisible" | "session-object-leaked"
    | "revoked-user-acted" | "peer-authentication";
  detail: string;
}

/** What the workload saw, in the order it saw it. */
export class History {
  private order = 0;
  /** Writes acknowledged to a client, as the answers named them. */
  readonly acknowledged: (WritePosition & { what: string })[] = [];
  /** key id → its owner. */
  readonly createdKeys = new Map<number, string>();
  /** (key, user) → when the user was first granted the key (its creation, or a share's attempt). */
  private readonly grants = new Map<string, number>();
  /** (key, user) → the latest start or end of a share attempt: one in flight may land after an unshare. */
  private readonly grantActivity = new Map<string, number>();
  /** (key, client) → when that client learned the key was deleted, or unshared from its user. */
  private readonly revocations = new Map<string, { at: number; kind: "delete" | "unshare"; attemptedAt: number }>();
  readonly violations: Violation[] = [];
  readonly counts = { attempted: 0, acknowledged: 0, failed: 0, unknown: 0, uses: 0, refusedUses: 0, logins: 0, lockedRefusals: 0,
    idempotentCalls: 0, cleanCalls: 0, allowedFailures: 0, sessionObjectFinds: 0, foreignFinds: 0 };
  /** Every idempotent call's outcome, for the availability checker. */
  readonly liveness: LivenessRecord[] = [];
  /** Keys whose delete was attempted, and "key/user" pairs whose unshare was: a later refusal of them is allowed. */
  readonly removalAttempted = new Set<string>();

  /** Records an idempotent call: success, an allowed failure, or (checkLiveness reports it) one the retry table does not allow. */
  idempotent(what: string, client: string, startUs: number, endUs: number, clean: boolean, error: unknown, context: CallContext = {}): void {
    this.counts.idempotentCalls++;
    if (clean) this.counts.cleanCalls++;
    if (error === undefined) {
      this.liveness.push({ what, client, startUs, endUs, clean, violation: null });
      return;
    }
    const verdict = classify(error, clean, context);
    if (verdict.violation === null) this.counts.allowedFailures++;
    this.liveness.push({ what, client, startUs, endUs, clean, error: describeError(error), ...verdict });
  }

  tick(): number {
    return ++this.order;
  }

  acknowledge(position: WritePosition | null, what: string): void {
    if (position) this.acknowledged.push({ ...position, what });
  }

  keyCreated(keyId: number, owner: string): void {
    if (this.createdKeys.has(keyId)) this.violations.push({ invariant: "key-id-reused", detail: `key id ${keyId} was handed out twice` });
    this.createdKeys.set(keyId, owner);
    this.grant(keyId, owner);
  }

  /** `user` may use the key from now on (its owner, or a share is being attempted). */
  grant(keyId: number, user: string): void {
    const at = this.tick();
    if (!this.grants.has(`${keyId}/${user}`)) this.grants.set(`${keyId}/${user}`, at);
    this.grantActivity.set(`${keyId}/${user}`, at);
  }

  /** A share attempt ended (whatever its outcome): until now it could still land. */
  grantSettled(keyId: number, user: string): void {
    this.grantActivity.set(`${keyId}/${user}`, this.tick());
  }

  /**
   * `client` has seen an acknowledged delete of the key (final), or its unshare from the
   * client's user, whose attempt began at `attemptedAt`: a share attempt active since then
   * may have landed after it and won (last writer wins).
   */
  revoke(keyId: number, client: string, kind: "delete" | "unshare", attemptedAt: number): void {
    this.revocations.set(`${keyId}/${client}`, { at: this.tick(), kind, attemptedAt });
  }

  /**
   * Checks a crypto use that succeeded; `startedAt` is the order when the use began. A grant
   * counts if it came before the use ended (a share may land while a use is in flight); a
   * revocation counts if the client knew of it before the use began — a delete always, an
   * unshare unless a share attempt was in flight then or came later (last writer wins).
   */
  used(keyId: number, user: string, client: string, startedAt: number, how: string): void {
    this.counts.uses++;
    const endedAt = this.tick();
    const granted = this.grants.get(`${keyId}/${user}`);
    const revoked = this.revocations.get(`${keyId}/${client}`);
    if (granted === undefined || granted > endedAt) {
      if (this.createdKeys.has(keyId)) this.violations.push({ invariant: "unauthorized-use", detail: `${user} used key ${keyId} (${how}) without owning it or having it shared` });
      return;
    }
    const regranted = (this.grantActivity.get(`${keyId}/${user}`) ?? 0) > (revoked?.attemptedAt ?? 0);
    if (revoked !== undefined && revoked.at < startedAt && (revoked.kind === "delete" || !regranted)) {
      this.violations.push({ invariant: "deleted-key-used", detail: `${user} (${client}) used key ${keyId} (${how}) after its client saw it deleted or unshared` });
    }
  }
}

/** Availability: every idempotent call succeeded or failed only as the retry table allows. */
export function checkLiveness(history: History): Violation[] {
  return history.liveness.filter((r) => r.violation !== null).map((r) => ({
    invariant: "unavailable" as const,
    detail: `${r.client}: ${r.what} at ${r.startUs} µs${r.clean ? " (clean window)" : ""} failed: ${r.violation}`,
  }));
}

/** Every data folder's audit chain verifies, and its logins respect lockouts. */
export function checkAuditChains(folders: { hsmId: string; dir: string }[], maxLoginFailures = 5): Violation[] {
  const out: Violation[] = [];
  for (const { hsmId, dir } of folders) {
    const verdict = verifyFolder(dir);
    if (!verdict.ok) {
      const where = verdict.audit.problem ? `entry ${verdict.audit.problem.seq}: ${verdict.audit.problem.reason}` : verdict.folderProblem;
      out.push({ invariant: "audit-chain-broken", detail: `${hsmId}: ${where}` });
    }
    out.push(...checkLockouts(hsmId, verdict.entries, maxLoginFailures));
    out.push(...checkRevocations(hsmId, verdict.entries));
  }
  return out;
}

/**
 * From one HSM's audit log: once an account's failed logins reach the limit it is locked on
 * that HSM, and no login succeeds until a password change, a delete or a re-creation of the
 * account (local, or replicated with "failures reset").
 */
function checkLockouts(hsmId: string, entries: Iterable<AuditEntry>, maxFailures: number): Violation[] {
  const out: Violation[] = [];
  const locked = new Set<string>();
  for (const e of entries) {
    const failures = /^failures (\d+)$/.exec(e.detail);
    if (e.operation === "LOGIN" && e.actor) {
      if (e.result === "LOGIN_FAILED" && failures && Number(failures[1]) >= maxFailures) locked.add(e.actor);
      if (e.result === "OK" && locked.has(e.actor)) {
        out.push({ invariant: "locked-account-logged-in", detail: `${hsmId}: ${e.actor} logged in at audit entry ${e.seq} while locked` });
      }
    } else if (["CHANGE_PASSWORD", "DELETE_USER", "CREATE_USER"].includes(e.operation) && e.result === "OK") {
      locked.delete(e.detail.split(" ")[0]);
    } else if (e.operation === "SYNC" && e.result === "OK") {
      const user = /^(user|user-delete) user:(\S+)/.exec(e.detail);
      if (user && (user[1] === "user-delete" || e.detail.endsWith("(failures reset)"))) locked.delete(user[2]);
    }
  }
  return out;
}

const KEY_CREATIONS = new Set(["GENERATE_KEY", "GENERATE_KEY_PAIR", "CREATE_KEY", "COPY_KEY", "UNWRAP_KEY", "DERIVE_KEY"]);

/**
 * From one HSM's audit log: once this HSM applied a user's delete (its own DELETE_USER, or a
 * replicated user-delete) or a password reset done here (CHANGE_PASSWORD), no key creation by
 * that user succeeds here — until a new account of that name, or (after a reset) a fresh login.
 * The simulated clients keep sessions open across both, so a login revived with cached
 * credentials, or not ended at all, shows up here.
 */
export function checkRevocations(hsmId: string, entries: Iterable<AuditEntry>): Violation[] {
  const out: Violation[] = [];
  const revoked = new Map<string, string>(); // user → why
  for (const e of entries) {
    if (e.result === "OK" && e.operation === "DELETE_USER") revoked.set(e.detail.split(" ")[0], `deleted (entry ${e.seq})`);
    else if (e.result === "OK" && e.operation === "CHANGE_PASSWORD" && e.detail.split(" ")[0] !== e.actor) {
      revoked.set(e.detail.split(" ")[0], `password reset (entry ${e.seq})`);
    } else if (e.result === "OK" && e.operation === "SYNC") {
      const change = /^(user|user-delete) user:(\S+)/.exec(e.detail);
      if (change?.[1] === "user-delete") revoked.set(change[2], `deleted (replicated, entry ${e.seq})`);
      else if (change && revoked.get(change[2])?.startsWith("deleted")) revoked.delete(change[2]); // created anew
    } else if (e.result === "OK" && e.operation === "CREATE_USER") {
      revoked.delete(e.detail.split(" ")[0]);
    } else if (e.result === "OK" && e.operation === "LOGIN" && e.actor && revoked.get(e.actor)?.startsWith("password reset")) {
      revoked.delete(e.actor); // logged in afresh, with the new password
    } else if (e.result === "OK" && e.actor && KEY_CREATIONS.has(e.operation) && revoked.has(e.actor)) {
      out.push({ invariant: "revoked-user-acted", detail: `${hsmId}: ${e.actor} made a key (${e.operation}, entry ${e.seq}) after it was ${revoked.get(e.actor)}` });
    }
  }
  return out;
}

/** Users, keys and tombstones with their versions: equal digests mean equal replicated state. */
export function replicaDigest(hsm: Hsm): string {
  const s = internalsOf(hsm).store;
  return JSON.stringify([
    hsm.activated,
    s.users().map((u) => [u.name, u.version, u.role]),
    s.keys().map((k) => [k.id, k.version]),
    s.tombstones().map((t) => [t.kind, t.name, t.version]),
  ]);
}

/**
 * Every acknowledged write reached every live HSM — its journal head for the write's origin is
 * at or past the write — and the record it wrote is at that version or a later one there (a
 * later write superseded it; it was not lost). Heads, not journal entries: old entries are
 * pruned once every member holds them.
 */
export function checkAcknowledged(history: History, live: Hsm[]): Violation[] {
  const out: Violation[] = [];
  for (const { origin, seq, version, subject, what } of history.acknowledged) {
    for (const hsm of live) {
      if (internalsOf(hsm).state.head(origin) < seq) {
        out.push({ invariant: "acknowledged-change-lost", detail: `${hsm.id} lacks acknowledged change ${origin}/${seq} (${what})` });
        continue;
      }
      const current = recordVersion(hsm, subject);
      if (current < version) {
        out.push({ invariant: "acknowledged-change-lost", detail: `${hsm.id}: ${subject} is at version ${current}, below acknowledged ${version} (${what})` });
      }
    }
  }
  return out;
}

function recordVersion(hsm: Hsm, subject: string): number {
  const s = internalsOf(hsm).store;
  if (subject === "activation") return hsm.activated ? Number.MAX_SAFE_INTEGER : -1;
  const [kind, name] = [subject.slice(0, subject.indexOf(":")), subject.slice(subject.indexOf(":") + 1)];
  // A key's delete outranks every write to it (state.ts).
  if (kind === "key") return s.tombstone("key", name) ? Number.MAX_SAFE_INTEGER : s.key(Number(name))?.version ?? -1;
  return s.user(name)?.version ?? s.tombstone("user", name)?.version ?? -1;
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(History);
