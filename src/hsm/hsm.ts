// One simulated CloudHSM HSM: the chip plus accounts (PRECO, CO, CU, AU), login and
// lockout, key ownership and sharing, quotas, the hash-chained audit log and durable state
// in a data folder. The PKCS#11 face is in pkcs11-backend.ts.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";

import { type NativeChip, createChip } from "../pkcs11/addon.js";
import { CKF_RW_SESSION, CKF_SERIAL_SESSION } from "../pkcs11/constants.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import { PKCS11 } from "../pkcs11/pkcs11.js";
import { type AuditEntry, type AuditVerdict, verifyChain } from "./audit.js";
import { HsmError } from "./errors.js";
import { DEFAULT_PASSWORD_COST, hashPassword, verifyPassword } from "./passwords.js";
import { HsmPkcs11Backend } from "./pkcs11-backend.js";
import { internalsOf, registerInternals } from "./internals.js";
import { checkOrigin, makePrincipal } from "./journal.js";
import { type HsmSnapshot, takeSnapshot, writeSnapshot } from "./snapshot.js";
import { DeviceState } from "./state.js";
import { MASKING_KEY_FILE, Store, type UserRow } from "./store.js";
import { HSM_TYPES, type HsmType, PRECO_DEFAULT_PASSWORD, PRECO_USERNAME, type Role, checkPassword, checkUsername } from "./types.js";

export interface HsmOptions {
  type?: HsmType;
  /** Consecutive failed logins that lock an account on this HSM (default 5). */
  maxLoginFailures?: number;
  /** scrypt cost (log2 N) of new password hashes (default 15; tests use less). */
  passwordCost?: number;
  /** Microseconds since the epoch; injected by the simulator. */
  clockUs?: () => number;
  /** Deterministic chip (see the chip's seed option). */
  seed?: Buffer;
  /** Where the device's own random bytes come from (ids, salts); seeded in the simulator. */
  randomBytes?: (length: number) => Buffer;
  /** The HSM's ordinal in its cluster (0–4095, default 0): it prefixes the key ids and principals it creates. */
  origin?: number;
}

/** A logged-in user of the management API; every management call names one. */
export interface Actor {
  readonly username: string;
  readonly role: Role;
  readonly hsm: Hsm;
}

export interface UserInfo {
  username: string;
  role: Role;
  locked: boolean;
  failedLogins: number;
}

export interface KeyDescription {
  keyId: number;
  owner: string;
  sharedWith: string[];
}

const SLOT = 0;
const wallClockUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const AU_USERNAME = "app_user";

export class Hsm {
  readonly id: string;
  readonly type: HsmType;
  readonly reboot: number;
  readonly maxLoginFailures: number;
  // ES private fields: internals are reachable only through internalsOf (internals.ts).
  readonly #chip: NativeChip;
  readonly #store: Store;
  readonly #passwordCost: number;
  readonly #clockUs: () => number;
  readonly #random: (length: number) => Buffer;
  readonly #actors = new WeakSet<Actor>();
  /** Token keys, users and their journal. */
  readonly #state: DeviceState;
  #closed = false;

  private constructor(store: Store, options: HsmOptions, boot: "create" | "open") {
    this.#store = store;
    this.id = store.meta("hsm_id");
    this.type = store.meta("type") as HsmType;
    const limits = HSM_TYPES[this.type];
    if (!limits) throw new HsmError("DATA_FOLDER_INVALID", `${store.dir}: unknown HSM type ${this.type}`);
    this.maxLoginFailures = options.maxLoginFailures ?? 5;
    this.#passwordCost = options.passwordCost ?? DEFAULT_PASSWORD_COST;
    this.#random = options.randomBytes ?? randomBytes;
    this.#clockUs = options.clockUs ?? wallClockUs;
    this.#chip = createChip({ seed: options.seed, maxKeys: limits.maxKeys, maxAsymmetricKeys: limits.maxAsymmetricKeys,
      pinHashIterations: 1, slotCount: 1 });
    // The chip's own SO PIN is never used: the device's accounts replace PKCS#11's.
    this.#chip.initToken(SLOT, this.#random(16), Buffer.from(`hsmsim ${this.id.slice(4, 12)}`));
    const maskingKey = join(store.dir, MASKING_KEY_FILE);
    if (boot === "create") {
      try {
        this.#chip.saveMaskingKey(SLOT, maskingKey);
      } catch {
        throw new HsmError("DATA_FOLDER_INVALID", `${store.dir}: cannot write ${MASKING_KEY_FILE} (one exists already, or the folder is not writable)`);
      }
    } else {
      if (!existsSync(maskingKey)) throw new HsmError("DATA_FOLDER_INVALID", `${store.dir}: ${MASKING_KEY_FILE} is missing`);
      try {
        this.#chip.loadMaskingKey(SLOT, maskingKey);
      } catch {
        throw new HsmError("DATA_FOLDER_INVALID", `${store.dir}: ${MASKING_KEY_FILE} is unreadable, the wrong size or readable by others`);
      }
    }
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
    });
    this.#state = new DeviceState(internalsOf(this));
    if (boot === "open") this.#state.loadKeys();
    this.reboot = Number(store.meta("reboots")) + (boot === "open" ? 1 : 0);
    store.transaction(() => {
      store.setMeta("reboots", String(this.reboot));
      this.#audit(boot === "create" ? "CREATE_HSM" : "START", null, null, [], "OK", `type ${this.type}`);
    });
  }

  /** A new HSM in `dir` (an empty or new folder): only PRECO exists until activation. */
  static create(dir: string, options: HsmOptions = {}): Hsm {
    const type = options.type ?? "hsm2m.medium";
    if (!HSM_TYPES[type]) throw new HsmError("INVALID_ARGUMENT", `type must be one of ${Object.keys(HSM_TYPES).join(", ")}`);
    const origin = checkOrigin(options.origin ?? 0);
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

  /** A new HSM in `dir` holding a copy of another HSM's state (see snapshot.ts), then started. */
  static restore(dir: string, snapshot: HsmSnapshot, options: HsmOptions = {}): Hsm {
    const random = options.randomBytes ?? randomBytes;
    writeSnapshot(dir, snapshot, `hsm-${random(8).toString("hex")}`, options.origin ?? 0, (options.clockUs ?? wallClockUs)());
    return Hsm.open(dir, options);
  }

  /** This HSM's replicable state, for a backup or a clone. */
  snapshot(): HsmSnapshot {
    return takeSnapshot(this.#store);
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
    return new PKCS11(new HsmPkcs11Backend(this).asChip());
  }

  /** The durable key id of a token key's PKCS#11 handle (ids survive restarts; handles do not). */
  keyIdOf(handle: Buffer): number {
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
    return verifyChain(this.#store.auditEntries());
  }

  // ---- Login ----
  /**
   * Checks a user's password, counting failures: the maxLoginFailures-th consecutive failure
   * locks the account on this HSM until a CO sets a new password. Every attempt is audited.
   */
  login(username: string, password: string, session: number | null = null): Actor {
    const user = typeof username === "string" ? this.#store.user(username) : undefined;
    const fail = (code: "LOGIN_FAILED" | "ACCOUNT_LOCKED", failures?: number): never => {
      this.#store.transaction(() => {
        if (user && failures !== undefined) this.#store.setFailures(user.name, failures);
        this.#audit("LOGIN", String(username).slice(0, 64), session, [], code, failures !== undefined ? `failures ${failures}` : "");
      });
      throw new HsmError(code, code === "ACCOUNT_LOCKED" ? `account ${username} is locked` : "wrong username or password");
    };
    if (!user || user.role === "AU") {
      // As slow as a real check, so the time taken does not tell which usernames exist.
      verifyPassword(typeof password === "string" ? password : "", this.#decoyHash());
      return fail("LOGIN_FAILED");
    }
    if (user.failures >= this.maxLoginFailures) return fail("ACCOUNT_LOCKED");
    if (typeof password !== "string" || !verifyPassword(password, user)) return fail("LOGIN_FAILED", user.failures + 1);
    this.#store.transaction(() => {
      if (user.failures !== 0) this.#store.setFailures(user.name, 0);
      this.#audit("LOGIN", user.name, session, [], "OK", user.role);
    });
    const actor: Actor = Object.freeze({ username: user.name, role: user.role, hsm: this });
    this.#actors.add(actor);
    return actor;
  }

  #decoy?: ReturnType<typeof hashPassword>;
  #decoyHash() {
    return (this.#decoy ??= hashPassword("decoy password", this.#passwordCost, Buffer.alloc(16)));
  }

  logout(actor: Actor): void {
    this.#check(actor);
    this.#actors.delete(actor);
  }

  /** The principal number the chip knows a user by. */
  #principalOf(username: string): number {
    const user = this.#store.user(username);
    if (!user) throw new HsmError("USER_NOT_FOUND", `no user ${username}`);
    return user.principal;
  }

  // ---- Management ----
  /** PRECO changes its password: the HSM is activated and PRECO becomes its first CO. */
  changePassword(actor: Actor, username: string, newPassword: string): void {
    this.#check(actor);
    checkPassword(newPassword);
    const target = this.#store.user(checkUsername(username));
    if (actor.role === "PRECO") {
      if (username !== actor.username) this.#refuse(actor, "CHANGE_PASSWORD", "ACCESS_DENIED", "PRECO may only change its own password");
      const hash = hashPassword(newPassword, this.#passwordCost, this.#random(16));
      this.#store.transaction(() => {
        this.#state.writeUser({ name: username, role: "CO", principal: target!.principal, ...hash }, 0);
        this.#addUser(AU_USERNAME, "AU", this.#random(24).toString("base64"));
        this.#state.writeActivation();
        this.#audit("ACTIVATE", actor.username, null, [], "OK", `${username} is now CO`);
      });
      this.#actors.delete(actor); // PRECO is gone; log in again as the CO
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
    checkUsername(username);
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
    const target = this.#store.user(checkUsername(username));
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
    this.#requireActivated(actor, "DESCRIBE_KEY");
    const handle = this.#state.handleOf(keyId);
    const { owner, sharedWith } = this.#chip.ownership(SLOT, handle);
    const me = this.#principalOf(actor.username);
    if (actor.role === "CU" && owner !== me && !sharedWith.includes(me)) throw new HsmError("KEY_NOT_FOUND", `no key ${keyId}`);
    const names = new Map(this.#store.users().map((u) => [u.principal, u.name]));
    return { keyId, owner: names.get(owner) ?? String(owner), sharedWith: sharedWith.map((p) => names.get(p) ?? String(p)) };
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
    this.#requireRole(actor, operation, "CU");
    const target = this.#store.user(checkUsername(username));
    if (!target || target.role !== "CU") this.#refuse(actor, operation, "USER_NOT_FOUND", `no crypto user ${username}`);
    const handle = this.#state.handleOf(keyId);
    this.#store.transaction(() => {
      try {
        this.#chip.shareObject(SLOT, handle, this.#principalOf(actor.username), target!.principal, share);
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

  #check(actor: Actor): void {
    if (!this.#actors.has(actor)) throw new HsmError("NOT_LOGGED_IN", "that login is not valid on this HSM (logged out, or another HSM's)");
  }

  #requireActivated(actor: Actor, operation: string): void {
    this.#check(actor);
    if (!this.activated || actor.role === "PRECO") this.#refuse(actor, operation, "NOT_ACTIVATED", "activate the HSM first: PRECO changes its password");
  }

  #requireRole(actor: Actor, operation: string, role: Role): void {
    this.#requireActivated(actor, operation);
    if (actor.role !== role) this.#refuse(actor, operation, "ACCESS_DENIED", `${operation} needs a ${role}, not a ${actor.role}`);
  }

  /** Audits a refused management operation, then throws. */
  #refuse(actor: Actor, operation: string, code: HsmError["code"], message: string): never {
    this.#store.transaction(() => this.#audit(operation, actor.username, null, [], code, message));
    throw new HsmError(code, message);
  }
}

export type { UserRow };
