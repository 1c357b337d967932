// One simulated CloudHSM HSM: the chip plus accounts (PRECO, CO, CU, AU), login and
// lockout, key ownership and sharing, quotas, the hash-chained audit log and durable state
// in a data folder. The PKCS#11 face is in pkcs11-backend.ts; the boot steps that need no
// private state (options, settings fixed at creation, the masking key) are in hsm-boot.ts.
import { randomBytes } from "node:crypto";

import { type NativeChip, createChip } from "../pkcs11/addon.js";
import { CKF_RW_SESSION, CKF_SERIAL_SESSION } from "../pkcs11/constants.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import { PKCS11 } from "../pkcs11/pkcs11.js";
import { type AuditEntry, type AuditVerdict, verifyChain } from "./audit.js";
import { HsmError } from "./errors.js";
import { DEFAULT_PASSWORD_COST, type PasswordHash, hashPassword, verifyPassword } from "./passwords.js";
import { HsmPkcs11Backend } from "./pkcs11-backend.js";
import { internalsOf, registerInternals } from "./internals.js";
import { BufferCopy, BufferEquals, BufferFromString, MapDelete, MapGet, MapSet, ObjectFreeze, StringSlice, StringToLowerCase, WeakMapDelete, WeakMapGet, WeakMapHas, WeakMapSet, freezeClass } from "../primordials.js";
import { checkOrigin, makePrincipal } from "./journal.js";
import { type HsmSnapshot, type MaskingKeySource, takeSnapshot, writeSnapshot } from "./snapshot.js";
import { MAC_PURPOSE } from "./seal.js";
import { DeviceState } from "./state.js";
import {
  DEFAULT_MAX_LOGIN_FAILURES, type HsmOptions, bindMaskingKey, checkLockoutLimit, checkPasswordCost, lockoutLimit, passwordCostOf, wallClockUs,
} from "./hsm-boot.js";
import { Store, type UserRow } from "./store.js";
import { HSM_TYPES, type HsmType, PRECO_DEFAULT_PASSWORD, PRECO_USERNAME, type Role, checkPassword, checkUsername } from "./types.js";

/** A logged-in user of the management API; every management call names one. */
export interface Actor {
  readonly username: string;
  readonly role: Role;
}

export interface UserInfo {
  username: string;
  role: Role;
  locked: boolean;
  failedLogins: number;
}

export interface KeyDescription {
  keyId: number;
  /** The crypto user that owns the key; null for a key no CU owns (made before ownership was enforced). */
  owner: string | null;
  sharedWith: string[];
}

/** What an Actor was logged in with: a change to any of it (delete, new password, new role) ends the Actor. */
interface Credential {
  readonly name: string;
  readonly principal: number;
  readonly role: Role;
  readonly hash: Buffer;
}

const SLOT = 0;
const AU_USERNAME = "app_user";
const DECOY_SALT = Buffer.alloc(16);
const DECOY_HASH = Buffer.alloc(32);
const MAX_UNKNOWN_NAMES_TRACKED = 10_000;

export class Hsm {
  readonly id: string;
  readonly type: HsmType;
  readonly reboot: number;
  readonly maxLoginFailures: number;
  // ES private fields: internals are reachable only through internalsOf (internals.ts).
  readonly #chip: NativeChip;
  readonly #store: Store;
  #passwordCost: number;
  readonly #clockUs: () => number;
  readonly #random: (length: number) => Buffer;
  /** Each live Actor → the credential it was taken with; a call checks it against the account's current row. */
  readonly #actors = new WeakMap<Actor, Credential>();
  /** Token keys, users and their journal. */
  readonly #state: DeviceState;
  #closed = false;

  private constructor(store: Store, options: HsmOptions, boot: "create" | "open") {
    this.#store = store;
    this.id = store.meta("hsm_id");
    this.type = store.meta("type") as HsmType;
    const limits = HSM_TYPES[this.type];
    if (!limits) throw new HsmError("DATA_FOLDER_INVALID", `${store.dir}: unknown HSM type ${this.type}`);
    checkLockoutLimit(options.maxLoginFailures);
    checkPasswordCost(options.passwordCost);
    this.#passwordCost = options.passwordCost ?? DEFAULT_PASSWORD_COST;
    this.#random = options.randomBytes ?? randomBytes;
    this.#clockUs = options.clockUs ?? wallClockUs;
    this.#chip = createChip({ seed: options.seed, maxKeys: limits.maxKeys, maxAsymmetricKeys: limits.maxAsymmetricKeys,
      pinHashIterations: 1, slotCount: 1, deviceProfile: true });
    // The chip's own SO PIN is never used: the device's accounts replace PKCS#11's.
    this.#chip.initToken(SLOT, this.#random(16), Buffer.from(`hsmsim ${this.id.slice(4, 12)}`));
    bindMaskingKey(this.#chip, SLOT, store.dir, boot);
    // From here on every transaction is sealed with the chip's MAC; an existing folder must match its seal.
    store.attachChip((purpose, data) => this.#chip.deviceMac(SLOT, purpose, data), boot === "create" ? "new" : "existing");
    const hsm = this;
    registerInternals(this, {
      chip: this.#chip,
      store,
      get state() {
        return hsm.#state;
      },
      audit: (operation, actor, session, keys, result, detail) => this.#audit(operation, actor, session, keys, result, detail),
      principalOf: (username) => this.#principalOf(username),
      get keyIds() {
        return hsm.#state.keyIds;
      },
      openChipSession: () => this.#chip.openSession(SLOT, CKF_SERIAL_SESSION | CKF_RW_SESSION),
      revokeSessions: (principal) => this.#revokeSessions(principal),
      isCurrent: (actor) => this.#current(actor) !== undefined,
      snapshot: () => takeSnapshot(this.#store),
    });
    this.#state = new DeviceState(internalsOf(this));
    if (boot === "open") this.#state.loadKeys();
    this.reboot = Number(store.meta("reboots")) + (boot === "open" ? 1 : 0);
    let maxLoginFailures = DEFAULT_MAX_LOGIN_FAILURES;
    store.transaction(() => {
      maxLoginFailures = lockoutLimit(store, options.maxLoginFailures);
      this.#passwordCost = passwordCostOf(store, options.passwordCost);
      store.setMeta("reboots", String(this.reboot));
      this.#audit(boot === "create" ? "CREATE_HSM" : "START", null, null, [], "OK", `type ${this.type}`);
    });
    this.maxLoginFailures = maxLoginFailures;
    // Frozen: whoever holds the Hsm cannot shadow login (or any method) on it for the PKCS#11 applications and the cluster node that call it.
    ObjectFreeze(this);
  }

  /** A new HSM in `dir` (an empty or new folder): only PRECO exists until activation. */
  static create(dir: string, options: HsmOptions = {}): Hsm {
    const type = options.type ?? "hsm2m.medium";
    if (!HSM_TYPES[type]) throw new HsmError("INVALID_ARGUMENT", `type must be one of ${Object.keys(HSM_TYPES).join(", ")}`);
    const origin = checkOrigin(options.origin ?? 0);
    checkPasswordCost(options.passwordCost);
    const random = options.randomBytes ?? randomBytes;
    const store = Store.create(dir, { hsmId: `hsm-${random(8).toString("hex")}`, type, origin });
    try {
      const preco = hashPassword(PRECO_DEFAULT_PASSWORD, options.passwordCost ?? DEFAULT_PASSWORD_COST, random(16));
      store.transaction(() => {
        // Version 0: PRECO is local until activation replaces it with the first CO.
        store.insertUser({ name: PRECO_USERNAME, role: "PRECO", principal: makePrincipal(origin, 0), failures: 0, version: 0, ...preco });
      });
      return new Hsm(store, options, "create");
    } catch (e) {
      store.close();
      throw e;
    }
  }

  /** Restarts the HSM kept in `dir`: users, counters, keys (through masked records) and the audit log. */
  static open(dir: string, options: HsmOptions = {}): Hsm {
    const store = Store.open(dir);
    try {
      return new Hsm(store, options, "open");
    } catch (e) {
      store.close();
      throw e;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#store.close();
  }

  get activated(): boolean {
    return this.#store.meta("activated") === "1";
  }

  /** A pkcs11js-compatible PKCS11 over this HSM: C_Login(session, CKU_USER, "name:password"). */
  pkcs11(): PKCS11 {
    this.#requireOpen();
    return new PKCS11(new HsmPkcs11Backend(this).asChip());
  }

  /** The durable key id of a token key's PKCS#11 handle (ids survive restarts; handles do not). */
  keyIdOf(handle: Buffer): number {
    this.#requireOpen();
    const id = handle instanceof Buffer && handle.length === 8 ? this.#state.keyIds.get(handle.readUInt32LE(0)) : undefined;
    if (id === undefined) throw new HsmError("KEY_NOT_FOUND", "that handle is not a token key of this HSM");
    return id;
  }

  // ---- Audit ----
  /** Appends an audit entry; call inside the change's transaction. */
  #audit(operation: string, actor: string | null, session: number | null, keys: number[], result: string, detail = ""): AuditEntry {
    return this.#store.appendAudit({ timeUs: this.#clockUs(), reboot: this.reboot, operation, actor, session, keys, result, detail });
  }

  auditLog(fromSeq = 1): AuditEntry[] {
    return [...this.#store.auditEntries(fromSeq)];
  }

  verifyAudit(): AuditVerdict {
    return verifyChain(this.#store.auditEntries(), (purpose, data) => this.#chip.deviceMac(SLOT, purpose, data), this.#store.sealedHead());
  }

  // ---- Login ----
  /**
   * Checks a user's password, counting failures: the maxLoginFailures-th consecutive failure
   * locks the account on this HSM until a CO sets a new password. Every attempt is audited.
   */
  login(username: string, password: string, session: number | null = null): Actor {
    // Usernames fold case, as in CloudHSM: "Alice" is alice.
    const name = typeof username === "string" ? StringToLowerCase(StringSlice(username, 0, 64)) : "(not a string)";
    const user = typeof username === "string" ? this.#store.user(name) : undefined;
    const fail = (code: "LOGIN_FAILED" | "ACCOUNT_LOCKED", failures?: number): never => {
      this.#store.transaction(() => {
        if (user && failures !== undefined) this.#store.setFailures(user.name, failures);
        this.#audit("LOGIN", name, session, [], code, user && failures !== undefined ? `failures ${failures}` : "");
      });
      throw new HsmError(code, code === "ACCOUNT_LOCKED" ? `account ${name} is locked` : "wrong username or password");
    };
    const known = user !== undefined && user.role !== "AU";
    // Exactly one slow hash in every branch (unknown name, locked account, wrong or right
    // password), so the time taken tells nothing about which accounts exist or are locked.
    const matches = verifyPassword(typeof password === "string" ? password : "", known ? user : this.#decoyHash()) && typeof password === "string";
    if (!known) {
      // An unknown name locks like an account would, so ACCOUNT_LOCKED does not tell that one
      // exists: its failures are counted in the store (sealed, surviving restarts), keyed by the
      // chip's MAC of the name, in the transaction of the failure's audit entry.
      const nameMac = this.#chip.deviceMac(SLOT, MAC_PURPOSE.unknownName, BufferFromString(name)).toString("hex");
      let locked = false;
      this.#store.transaction(() => {
        const before = this.#store.unknownLoginFailures(nameMac);
        locked = before >= this.maxLoginFailures;
        if (!locked) this.#store.setUnknownLoginFailures(nameMac, before + 1, MAX_UNKNOWN_NAMES_TRACKED, this.maxLoginFailures);
        this.#audit("LOGIN", name, session, [], locked ? "ACCOUNT_LOCKED" : "LOGIN_FAILED");
      });
      throw locked ? new HsmError("ACCOUNT_LOCKED", `account ${name} is locked`) : new HsmError("LOGIN_FAILED", "wrong username or password");
    }
    if (user.failures >= this.maxLoginFailures) return fail("ACCOUNT_LOCKED");
    if (!matches) return fail("LOGIN_FAILED", user.failures + 1);
    this.#store.transaction(() => {
      if (user.failures !== 0) this.#store.setFailures(user.name, 0);
      this.#audit("LOGIN", user.name, session, [], "OK", user.role);
    });
    const actor: Actor = ObjectFreeze({ username: user.name, role: user.role });
    WeakMapSet(this.#actors, actor, ObjectFreeze({ name: user.name, principal: user.principal, role: user.role, hash: BufferCopy(user.hash) }));
    return actor;
  }

  /** A stored hash no password matches, with this HSM's cost: unknown names take as long as known ones. */
  #decoyHash(): PasswordHash {
    return { salt: DECOY_SALT, hash: DECOY_HASH, cost: this.#passwordCost };
  }

  /** Ends a login; an Actor already ended by a revocation logs out quietly. */
  logout(actor: Actor): void {
    if (!WeakMapHas(this.#actors, actor)) throw new HsmError("NOT_LOGGED_IN", "that login is not valid on this HSM (logged out, or another HSM's)");
    WeakMapDelete(this.#actors, actor);
  }

  /** The principal number the chip knows a user by. */
  #principalOf(username: string): number {
    const user = this.#store.user(username.toLowerCase());
    if (!user) throw new HsmError("USER_NOT_FOUND", `no user ${username}`);
    return user.principal;
  }

  // ---- Management ----
  /** PRECO changes its password: the HSM is activated and PRECO becomes its first CO. */
  changePassword(actor: Actor, username: string, newPassword: string): void {
    this.#check(actor);
    checkPassword(newPassword);
    username = checkUsername(username);
    const target = this.#store.user(username);
    if (actor.role === "PRECO") {
      // Activation happens once: the check above already ended every PRECO Actor when the
      // account became a CO; this refuses a PRECO row that somehow outlived activation.
      if (this.activated) this.#refuse(actor, "CHANGE_PASSWORD", "ALREADY_ACTIVATED", "the HSM is activated: PRECO no longer exists");
      if (username !== actor.username) this.#refuse(actor, "CHANGE_PASSWORD", "ACCESS_DENIED", "PRECO may only change its own password");
      const hash = hashPassword(newPassword, this.#passwordCost, this.#random(16));
      this.#store.transaction(() => {
        this.#state.writeUser({ name: username, role: "CO", principal: target!.principal, ...hash }, 0);
        this.#addUser(AU_USERNAME, "AU", this.#random(24).toString("base64"));
        this.#state.writeActivation();
        this.#audit("ACTIVATE", actor.username, null, [], "OK", `${username} is now CO`);
      });
      WeakMapDelete(this.#actors, actor); // PRECO is gone; log in again as the CO
      return;
    }
    this.#requireActivated(actor, "CHANGE_PASSWORD");
    if (!target || target.role === "AU") this.#refuse(actor, "CHANGE_PASSWORD", "USER_NOT_FOUND", `no user ${username}`);
    if (actor.role === "CU" && username !== actor.username) this.#refuse(actor, "CHANGE_PASSWORD", "ACCESS_DENIED", "a CU changes only its own password");
    if (actor.role !== "CU" && actor.role !== "CO") this.#refuse(actor, "CHANGE_PASSWORD", "ACCESS_DENIED", `${actor.role} may not change passwords`);
    const hash = hashPassword(newPassword, this.#passwordCost, this.#random(16));
    this.#store.transaction(() => {
      // A new password clears the failure count: a CO's reset unlocks.
      this.#state.writeUser({ name: target!.name, role: target!.role, principal: target!.principal, ...hash }, 0);
      this.#audit("CHANGE_PASSWORD", actor.username, null, [], "OK", username);
    });
  }

  createUser(actor: Actor, username: string, role: "CO" | "CU", password: string): void {
    this.#requireRole(actor, "CREATE_USER", "CO");
    username = checkUsername(username);
    checkPassword(password);
    if (role !== "CO" && role !== "CU") throw new HsmError("INVALID_ARGUMENT", "role must be CO or CU");
    if (this.#store.user(username)) this.#refuse(actor, "CREATE_USER", "USER_EXISTS", `user ${username} exists`);
    // AU is internal and does not count; PRECO no longer exists after activation.
    if (this.#store.userCount() - 1 >= HSM_TYPES[this.type].maxUsers) {
      this.#refuse(actor, "CREATE_USER", "QUOTA_EXCEEDED", `${this.type} holds at most ${HSM_TYPES[this.type].maxUsers} users`);
    }
    this.#store.transaction(() => {
      this.#addUser(username, role, password);
      this.#audit("CREATE_USER", actor.username, null, [], "OK", `${username} ${role}`);
    });
  }

  deleteUser(actor: Actor, username: string): void {
    this.#requireRole(actor, "DELETE_USER", "CO");
    username = checkUsername(username);
    const target = this.#store.user(username);
    if (!target || target.role === "AU") this.#refuse(actor, "DELETE_USER", "USER_NOT_FOUND", `no user ${username}`);
    if (username === actor.username) this.#refuse(actor, "DELETE_USER", "ACCESS_DENIED", "a CO cannot delete itself");
    if (this.#store.keyCountOwnedBy(target!.principal) > 0) {
      this.#refuse(actor, "DELETE_USER", "ACCESS_DENIED", `${username} owns keys: delete them first`);
    }
    this.#store.transaction(() => {
      this.#state.writeUserDelete(username);
      this.#audit("DELETE_USER", actor.username, null, [], "OK", username);
    });
  }

  listUsers(actor: Actor): UserInfo[] {
    this.#requireActivated(actor, "LIST_USERS");
    return this.#store.users().filter((u) => u.role !== "AU").map((u) => ({
      username: u.name, role: u.role, locked: u.failures >= this.maxLoginFailures, failedLogins: u.failures,
    }));
  }

  shareKey(actor: Actor, keyId: number, username: string): void {
    this.#changeSharing(actor, keyId, username, true);
  }

  unshareKey(actor: Actor, keyId: number, username: string): void {
    this.#changeSharing(actor, keyId, username, false);
  }

  describeKey(actor: Actor, keyId: number): KeyDescription {
    const me = this.#requireActivated(actor, "DESCRIBE_KEY").principal;
    const handle = this.#state.handleOf(keyId);
    const { owner, sharedWith } = this.#chip.ownership(SLOT, handle);
    if (actor.role === "CU" && owner !== me && !sharedWith.includes(me)) throw new HsmError("KEY_NOT_FOUND", `no key ${keyId}`);
    // Only crypto users own or share keys: a principal that is not a CU (nobody, a CO, a
    // deleted user) is never reported as one.
    const cryptoUsers = new Map(this.#store.users().filter((u) => u.role === "CU").map((u) => [u.principal, u.name]));
    return {
      keyId,
      owner: cryptoUsers.get(owner) ?? null,
      sharedWith: sharedWith.flatMap((p) => cryptoUsers.get(p) ?? []),
    };
  }

  /** Only a CO may set CKA_TRUSTED (keys marked trusted may wrap CKA_WRAP_WITH_TRUSTED keys). */
  setKeyTrusted(actor: Actor, keyId: number, trusted: boolean): void {
    this.#requireRole(actor, "SET_TRUSTED", "CO");
    const handle = this.#state.handleOf(keyId);
    this.#store.transaction(() => {
      this.#chip.setTrusted(SLOT, handle, trusted);
      this.#state.writeKey(keyId, handle);
      this.#audit("SET_TRUSTED", actor.username, null, [keyId], "OK", String(trusted));
    });
  }

  // ---- internals ----
  #changeSharing(actor: Actor, keyId: number, username: string, share: boolean): void {
    const operation = share ? "SHARE_KEY" : "UNSHARE_KEY";
    const me = this.#requireRole(actor, operation, "CU").principal;
    username = checkUsername(username);
    const target = this.#store.user(username);
    if (!target || target.role !== "CU") this.#refuse(actor, operation, "USER_NOT_FOUND", `no crypto user ${username}`);
    const handle = this.#state.handleOf(keyId);
    this.#store.transaction(() => {
      try {
        this.#chip.shareObject(SLOT, handle, me, target!.principal, share);
      } catch (e) {
        if (e instanceof Pkcs11Error) {
          throw new HsmError(e.message === "CKR_ACTION_PROHIBITED" ? "NOT_OWNER" : "KEY_NOT_FOUND",
            e.message === "CKR_ACTION_PROHIBITED" ? `only the owner may ${share ? "share" : "unshare"} key ${keyId}` : `no key ${keyId}`);
        }
        throw e;
      }
      this.#state.writeKey(keyId, handle);
      this.#audit(operation, actor.username, null, [keyId], "OK", username);
    });
  }

  #addUser(name: string, role: Role, password: string): void {
    this.#state.writeUser({ name, role, principal: this.#state.newPrincipal(), ...hashPassword(password, this.#passwordCost, this.#random(16)) }, 0);
  }

  /** The account row behind a live Actor whose credential still stands, else undefined. */
  #current(actor: Actor): UserRow | undefined {
    const credential = WeakMapGet(this.#actors, actor);
    if (!credential) return undefined;
    const row = this.#store.user(credential.name);
    if (!row || row.principal !== credential.principal || row.role !== credential.role || !BufferEquals(row.hash, credential.hash)) return undefined;
    return row;
  }

  /**
   * Every management call starts here: the Actor must be a login of this HSM whose account
   * still exists with the same credential. A delete, a password change (own or a CO's reset)
   * or activation (PRECO → CO), made here or replicated from another HSM, ends it on the next call.
   */
  #requireOpen(): void {
    if (this.#closed) throw new HsmError("CLOSED", "the HSM was closed");
  }

  #check(actor: Actor): UserRow {
    const row = this.#current(actor);
    if (row) return row;
    if (WeakMapDelete(this.#actors, actor)) {
      throw new HsmError("NOT_LOGGED_IN", `the login of ${actor.username} has ended: the account was deleted, or its password or role changed`);
    }
    throw new HsmError("NOT_LOGGED_IN", "that login is not valid on this HSM (logged out, or another HSM's)");
  }

  #requireActivated(actor: Actor, operation: string): UserRow {
    const row = this.#check(actor);
    if (!this.activated || actor.role === "PRECO") this.#refuse(actor, operation, "NOT_ACTIVATED", "activate the HSM first: PRECO changes its password");
    return row;
  }

  #requireRole(actor: Actor, operation: string, role: Role): UserRow {
    const row = this.#requireActivated(actor, operation);
    if (actor.role !== role) this.#refuse(actor, operation, "ACCESS_DENIED", `${operation} needs a ${role}, not a ${actor.role}`);
    return row;
  }

  /**
   * Ends the PKCS#11 logins of a principal whose account was deleted or whose credential
   * changed: the chip logs out every application logged in as it and drops its session objects.
   */
  #revokeSessions(principal: number): void {
    // revokePrincipal is the device chip's (engineer B2); guarded so a chip without it still runs.
    const chip = this.#chip as NativeChip & { revokePrincipal?: (principal: number) => void };
    // Principal 0 is the chip's "nobody" (the first CO of origin 0 keeps PRECO's): no PKCS#11 login holds it.
    if (principal !== 0 && typeof chip.revokePrincipal === "function") chip.revokePrincipal(principal);
  }

  /** Audits a refused management operation, then throws. */
  #refuse(actor: Actor, operation: string, code: HsmError["code"], message: string): never {
    this.#store.transaction(() => this.#audit(operation, actor.username, null, [], code, message));
    throw new HsmError(code, message);
  }
}

// No application patches a method every Hsm shares (Hsm.prototype.login would see every password).
freezeClass(Hsm);

/**
 * A new HSM in `dir` holding a copy of another HSM's state (see snapshot.ts), then started.
 * Internal (cluster clone and backup restore): not exported from the package.
 */
export function restoreHsm(dir: string, snapshot: HsmSnapshot, maskingKey: MaskingKeySource, options: HsmOptions = {}): Hsm {
  const random = options.randomBytes ?? randomBytes;
  writeSnapshot(dir, snapshot, maskingKey, `hsm-${random(8).toString("hex")}`, options.origin ?? 0, (options.clockUs ?? wallClockUs)());
  return Hsm.open(dir, options);
}

export type { HsmOptions, UserRow };
