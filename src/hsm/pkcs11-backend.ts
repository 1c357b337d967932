// The HSM's PKCS#11 face, CloudHSM's profile: C_Login(session, CKU_USER, "name:password")
// logs a crypto user in; a CU's sessions see only keys it owns or that are shared with it
// (the chip enforces ownership); C_InitToken and C_InitPIN are not part of the profile.
// Token keys are persisted as masked records, with an audit entry, before a call returns.
//
// Isolation: each backend is one native application of the chip (chip.openApplication()), whose
// calls reach only its own sessions. What a `PKCS11` holds is a frozen object of that
// application's PKCS#11 calls and of closures for the profile's overrides: neither the chip,
// the Hsm, its store nor any device capability (loginPrincipal, sharing, masked records, the
// masking key) is reachable from it at run time.
import { freezeClass } from "../primordials.js";
import {
  APPLICATION_CALLS, type ApplicationCallName, type NativeApplication, type NativeChip,
} from "../pkcs11/addon.js";
import {
  CKA_TOKEN, CKR_DEVICE_ERROR, CKR_DEVICE_REMOVED, CKR_FUNCTION_NOT_SUPPORTED, CKR_PIN_INCORRECT, CKR_PIN_LEN_RANGE, CKR_PIN_LOCKED,
  CKR_USER_ALREADY_LOGGED_IN, CKR_USER_ANOTHER_ALREADY_LOGGED_IN, CKR_USER_NOT_LOGGED_IN, CKR_USER_PIN_NOT_INITIALIZED,
  CKR_USER_TYPE_INVALID, CKS_RO_USER_FUNCTIONS, CKS_RW_USER_FUNCTIONS, CKU_USER,
} from "../pkcs11/constants.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import { HsmError } from "./errors.js";
import type { Actor, Hsm } from "./hsm.js";
import { type HsmInternals, internalsOf } from "./internals.js";
import { BufferToString, ObjectFreeze, StringIndexOf, StringSlice } from "../primordials.js";

type Fn = (...args: unknown[]) => unknown;
type Callback = (error: Error | null, value?: unknown) => void;

/** The chip calls that create keys, with how to find the new handles in their result. */
const CREATING: Partial<Record<ApplicationCallName, { operation: string; handles: (result: unknown) => number[] }>> = {
  createObject: { operation: "CREATE_KEY", handles: (r) => [r as number] },
  copyObject: { operation: "COPY_KEY", handles: (r) => [r as number] },
  generateKey: { operation: "GENERATE_KEY", handles: (r) => [r as number] },
  generateKeyPair: { operation: "GENERATE_KEY_PAIR", handles: (r) => r as number[] },
  unwrapKey: { operation: "UNWRAP_KEY", handles: (r) => [r as number] },
  deriveKey: { operation: "DERIVE_KEY", handles: (r) => [r as number] },
};

/** The overrides that reach the device, with the C_ function each serves. */
const DEVICE_CALLS: Record<string, string> = {
  login: "C_Login", setPin: "C_SetPIN", destroyObject: "C_DestroyObject", setAttributeValue: "C_SetAttributeValue",
  createObject: "C_CreateObject", copyObject: "C_CopyObject", generateKey: "C_GenerateKey", generateKeyPair: "C_GenerateKeyPair",
  unwrapKey: "C_UnwrapKey", deriveKey: "C_DeriveKey",
};

/** A closed HSM answers as a removed device (CKR_DEVICE_REMOVED), as a token pulled out would. */
function deviceCall(fn: Fn, method: string): Fn {
  return (...args: unknown[]) => {
    try {
      return fn(...args);
    } catch (e) {
      if (e instanceof HsmError && e.code === "CLOSED") throw new Pkcs11Error(CKR_DEVICE_REMOVED, method, e.message);
      throw e;
    }
  };
}

/** CloudHSM's password lengths (see types.ts). */
const MIN_PASSWORD = 8, MAX_PASSWORD = 32;

export class HsmPkcs11Backend {
  readonly #hsm: Hsm;
  readonly #internals: HsmInternals;
  /** This application's calls on the chip: its own sessions only. */
  readonly #app: NativeApplication;
  #user: Actor | null = null;
  readonly #sessions = new Set<number>();

  constructor(hsm: Hsm) {
    this.#hsm = hsm;
    this.#internals = internalsOf(hsm);
    this.#app = this.#internals.chip.openApplication();
  }

  /** The PKCS#11 calls of this application, with the profile's overrides: a frozen object holding nothing else. */
  asChip(): NativeChip {
    const app = this.#app as unknown as Record<ApplicationCallName, Fn>;
    const backend: Record<string, Fn> = {};
    for (const name of APPLICATION_CALLS) backend[name] = app[name];
    backend.initToken = () => this.#unsupported("C_InitToken");
    backend.initPin = () => this.#unsupported("C_InitPIN");
    backend.login = (session, userType, pin) => this.#login(session as number, userType as number, pin as Buffer);
    backend.logout = (session) => {
      app.logout(session);
      this.#user = null;
    };
    backend.openSession = (slot, flags) => {
      const session = app.openSession(slot, flags) as number;
      this.#sessions.add(session);
      return session;
    };
    backend.closeSession = (session) => {
      app.closeSession(session);
      this.#sessions.delete(session as number);
      this.#forgetLoginIfNoSessions();
    };
    backend.closeAllSessions = (slot) => {
      app.closeAllSessions(slot);
      this.#sessions.clear();
      this.#forgetLoginIfNoSessions();
    };
    backend.setPin = (session, oldPin, newPin) => this.#setPin(session as number, oldPin as Buffer, newPin as Buffer);
    for (const [name, spec] of Object.entries(CREATING)) backend[name] = this.#creating(app[name as ApplicationCallName], spec);
    backend.destroyObject = (session, object) => this.#destroy(session as number, object as number);
    backend.setAttributeValue = (session, object, template) => this.#setAttributes(session as number, object as number, template as Buffer);
    // The overrides reach the device, which may be closed: a pkcs11js caller gets a Pkcs11Error, never an HsmError.
    for (const [name, method] of Object.entries(DEVICE_CALLS)) backend[name] = deviceCall(backend[name], method);
    return ObjectFreeze(backend) as unknown as NativeChip;
  }

  #unsupported(method: string): never {
    throw new Pkcs11Error(CKR_FUNCTION_NOT_SUPPORTED, method);
  }

  #forgetLoginIfNoSessions(): void {
    // Closing the application's last session logs it out (the chip did): forget the user too.
    if (this.#sessions.size === 0) this.#user = null;
  }

  #login(session: number, userType: number, pin: Buffer): void {
    // Through the application: another application's handle fails here, with the chip's code.
    this.#app.getSessionInfo(session);
    if (userType !== CKU_USER) throw new Pkcs11Error(CKR_USER_TYPE_INVALID, "C_Login");
    // A login revoked since (the user deleted or its password changed) no longer counts.
    if (this.#user && !this.#internals.isCurrent(this.#user)) this.#user = null;
    if (this.#user) throw new Pkcs11Error(CKR_USER_ALREADY_LOGGED_IN, "C_Login");
    if (!this.#hsm.activated) throw new Pkcs11Error(CKR_USER_PIN_NOT_INITIALIZED, "C_Login");
    if (!Buffer.isBuffer(pin)) throw new TypeError("pin must be a Buffer");
    // Captured built-ins: a replaced Buffer/String method does not see "name:password" go by.
    const text = BufferToString(pin, "utf8");
    const colon = StringIndexOf(text, ":");
    const [name, password] = colon < 0 ? [text, ""] : [StringSlice(text, 0, colon), StringSlice(text, colon + 1)];
    let actor: Actor;
    try {
      actor = this.#hsm.login(name, password, session);
    } catch (e) {
      if (e instanceof HsmError) throw new Pkcs11Error(e.code === "ACCOUNT_LOCKED" ? CKR_PIN_LOCKED : CKR_PIN_INCORRECT, "C_Login");
      throw e;
    }
    if (actor.role !== "CU") {
      this.#hsm.logout(actor);
      throw new Pkcs11Error(CKR_USER_TYPE_INVALID, "C_Login"); // COs manage users; only CUs use keys
    }
    try {
      // The device's own call: the session was just checked to be this application's.
      this.#internals.chip.loginPrincipal(session, this.#internals.principalOf(actor.username));
    } catch (e) {
      this.#hsm.logout(actor);
      if (e instanceof Pkcs11Error && e.message === "CKR_USER_ALREADY_LOGGED_IN") throw new Pkcs11Error(CKR_USER_ANOTHER_ALREADY_LOGGED_IN, "C_Login");
      throw e;
    }
    this.#user = actor;
  }

  #setPin(session: number, oldPin: Buffer, newPin: Buffer): void {
    this.#app.getSessionInfo(session);
    if (!this.#user || !this.#internals.isCurrent(this.#user)) throw new Pkcs11Error(CKR_USER_NOT_LOGGED_IN, "C_SetPIN");
    if (!Buffer.isBuffer(oldPin) || !Buffer.isBuffer(newPin)) throw new TypeError("PINs must be Buffers");
    const next = BufferToString(newPin, "utf8");
    // A new password of the wrong length is refused before the old one is checked (and counted).
    if (next.length < MIN_PASSWORD || next.length > MAX_PASSWORD) throw new Pkcs11Error(CKR_PIN_LEN_RANGE, "C_SetPIN");
    const username = this.#user.username;
    try {
      this.#hsm.login(username, BufferToString(oldPin, "utf8"), session);
      this.#hsm.changePassword(this.#user, username, next);
    } catch (e) {
      if (e instanceof HsmError) {
        if (e.code === "INVALID_PASSWORD") throw new Pkcs11Error(CKR_PIN_LEN_RANGE, "C_SetPIN");
        throw new Pkcs11Error(e.code === "ACCOUNT_LOCKED" ? CKR_PIN_LOCKED : CKR_PIN_INCORRECT, "C_SetPIN");
      }
      throw e;
    }
    // The new password revoked every login taken with the old one, this application's too;
    // the application that set it proved both, so it stays logged in, now with the new one.
    this.#user = this.#hsm.login(username, next, session);
    if (!this.#loggedIn(session)) this.#internals.chip.loginPrincipal(session, this.#internals.principalOf(username));
  }

  #loggedIn(session: number): boolean {
    const { state } = this.#app.getSessionInfo(session);
    return state === CKS_RW_USER_FUNCTIONS || state === CKS_RO_USER_FUNCTIONS;
  }

  #actorName(): string | null {
    return this.#user?.username ?? null;
  }

  /** Wraps a key-creating chip call: persist and audit new token keys before answering. */
  #creating(raw: Fn, spec: { operation: string; handles: (result: unknown) => number[] }): Fn {
    return (...args: unknown[]) => {
      const session = args[0] as number;
      const cb = typeof args[args.length - 1] === "function" ? (args.pop() as Callback) : undefined;
      if (cb) {
        return raw(...args, (error: Error | null, result?: unknown) => {
          if (error) {
            this.#auditFailure(spec.operation, session, error);
            return cb(error);
          }
          try {
            this.#persistNew(session, spec.handles(result), spec.operation);
          } catch (e) {
            return cb(e as Error);
          }
          cb(null, result);
        });
      }
      let result: unknown;
      try {
        result = raw(...args);
      } catch (e) {
        this.#auditFailure(spec.operation, session, e);
        throw e;
      }
      this.#persistNew(session, spec.handles(result), spec.operation);
      return result;
    };
  }

  #auditFailure(operation: string, session: number, error: unknown): void {
    if (!(error instanceof Pkcs11Error)) return;
    this.#internals.store.transaction(() => this.#internals.audit(operation, this.#actorName(), session, [], error.message));
  }

  #isTokenObject(session: number, handle: number): boolean {
    const { values } = this.#app.getAttributeValue(session, handle, [CKA_TOKEN]);
    return values[0]?.[0] === 1;
  }

  #persistNew(session: number, handles: number[], operation: string): void {
    try {
      this.#internals.store.transaction(() => {
        const ids: number[] = [];
        let loggedIn: boolean | undefined; // asked once, and only when a token object needs it
        for (const handle of handles) {
          if (!this.#isTokenObject(session, handle)) continue;
          // An async creation that finishes after its user was revoked (deleted, or a new
          // password) must not leave a token key behind, owned by a login that no longer exists.
          if (!(loggedIn ??= this.#loggedIn(session))) throw new Pkcs11Error(CKR_USER_NOT_LOGGED_IN, operation);
          const id = this.#internals.state.newKeyId();
          this.#internals.state.writeKey(id, handle);
          ids.push(id);
        }
        this.#internals.audit(operation, this.#actorName(), session, ids, "OK", ids.length ? "" : "session key");
      });
    } catch (e) {
      // Not durable, so not acknowledged: the key must not exist either.
      for (const handle of handles) {
        this.#internals.state.forgetHandle(handle);
        try {
          this.#app.destroyObject(session, handle);
        } catch {
          try {
            this.#internals.chip.removeObject(0, handle); // a session no longer logged in may not destroy it: the device does
          } catch {
            // already gone
          }
        }
      }
      const closed = e instanceof HsmError && e.code === "CLOSED";
      const refusal = e instanceof Pkcs11Error ? e : new Pkcs11Error(closed ? CKR_DEVICE_REMOVED : CKR_DEVICE_ERROR, operation);
      // Every key creation is audited, refused ones included: the creating transaction rolled
      // back with its entry, so the refusal gets its own (sync and async forms alike).
      try {
        this.#auditFailure(operation, session, refusal);
      } catch {
        // the store itself failed (closed, disk): there is nowhere to record it
      }
      throw refusal;
    }
  }

  #destroy(session: number, handle: number): void {
    const keyId = this.#internals.keyIds.get(handle);
    try {
      this.#internals.store.transaction(() => {
        this.#app.destroyObject(session, handle); // throws (and rolls back) when refused
        if (keyId !== undefined) this.#internals.state.writeKeyDelete(keyId);
        this.#internals.audit("DELETE_KEY", this.#actorName(), session, keyId === undefined ? [] : [keyId], "OK");
      });
    } catch (e) {
      this.#auditFailure("DELETE_KEY", session, e);
      throw e;
    }
  }

  #setAttributes(session: number, handle: number, template: Buffer): void {
    this.#app.setAttributeValue(session, handle, template);
    const keyId = this.#internals.keyIds.get(handle);
    if (keyId === undefined) return;
    this.#internals.store.transaction(() => {
      this.#internals.state.writeKey(keyId, handle);
      this.#internals.audit("SET_KEY_ATTRIBUTES", this.#actorName(), session, [keyId], "OK");
    });
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(HsmPkcs11Backend);
