// The HSM's PKCS#11 face, CloudHSM's profile: C_Login(session, CKU_USER, "name:password")
// logs a crypto user in; a CU's sessions see only keys it owns or that are shared with it
// (the chip enforces ownership); C_InitToken and C_InitPIN are not part of the profile.
// Token keys are persisted as masked records, with an audit entry, before a call returns.
import type { NativeChip } from "../pkcs11/addon.js";
import {
  CKA_TOKEN, CKR_DEVICE_ERROR, CKR_FUNCTION_NOT_SUPPORTED, CKR_PIN_INCORRECT, CKR_PIN_LOCKED, CKR_USER_ALREADY_LOGGED_IN,
  CKR_USER_ANOTHER_ALREADY_LOGGED_IN, CKR_USER_NOT_LOGGED_IN, CKR_USER_PIN_NOT_INITIALIZED, CKR_USER_TYPE_INVALID, CKU_USER,
} from "../pkcs11/constants.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import { HsmError } from "./errors.js";
import type { Actor, Hsm } from "./hsm.js";
import { type HsmInternals, internalsOf } from "./internals.js";

type Fn = (...args: unknown[]) => unknown;
type Callback = (error: Error | null, value?: unknown) => void;

/** The chip calls that create keys, with how to find the new handles in their result. */
const CREATING: Record<string, { operation: string; handles: (result: unknown) => number[] }> = {
  createObject: { operation: "CREATE_KEY", handles: (r) => [r as number] },
  copyObject: { operation: "COPY_KEY", handles: (r) => [r as number] },
  generateKey: { operation: "GENERATE_KEY", handles: (r) => [r as number] },
  generateKeyPair: { operation: "GENERATE_KEY_PAIR", handles: (r) => r as number[] },
  unwrapKey: { operation: "UNWRAP_KEY", handles: (r) => [r as number] },
  deriveKey: { operation: "DERIVE_KEY", handles: (r) => [r as number] },
};

export class HsmPkcs11Backend {
  private user: Actor | null = null;
  /** Each PKCS11 on the HSM is an application of its own, with its own login. */
  private readonly application: number;
  private readonly sessions = new Set<number>();

  readonly #internals: HsmInternals;

  constructor(private readonly hsm: Hsm) {
    this.#internals = internalsOf(hsm);
    this.application = this.#internals.chip.newApplication();
  }

  /** The chip's calls, with the profile's overrides. */
  asChip(): NativeChip {
    const chip = this.#internals.chip as unknown as Record<string, Fn>;
    const backend: Record<string, Fn> = {};
    for (const name of Object.getOwnPropertyNames(chip)) {
      if (typeof chip[name] === "function") backend[name] = chip[name];
    }
    backend.initToken = () => this.unsupported("C_InitToken");
    backend.initPin = () => this.unsupported("C_InitPIN");
    backend.login = (session, userType, pin) => this.login(session as number, userType as number, pin as Buffer);
    backend.logout = (session) => {
      chip.logout(session);
      this.user = null;
    };
    backend.openSession = (slot, flags) => {
      const session = chip.openSession(slot, flags, this.application) as number;
      this.sessions.add(session);
      return session;
    };
    backend.closeSession = (session) => {
      chip.closeSession(session);
      this.sessions.delete(session as number);
      this.forgetLoginIfNoSessions();
    };
    backend.closeAllSessions = (slot) => {
      chip.closeAllSessions(slot, this.application);
      this.sessions.clear();
      this.forgetLoginIfNoSessions();
    };
    backend.setPin = (session, oldPin, newPin) => this.setPin(session as number, oldPin as Buffer, newPin as Buffer);
    for (const [name, spec] of Object.entries(CREATING)) backend[name] = this.creating(chip[name], spec);
    backend.destroyObject = (session, object) => this.destroy(chip, session as number, object as number);
    backend.setAttributeValue = (session, object, template) => this.setAttributes(chip, session as number, object as number, template as Buffer);
    return backend as unknown as NativeChip;
  }

  private unsupported(method: string): never {
    throw new Pkcs11Error(CKR_FUNCTION_NOT_SUPPORTED, method);
  }

  private forgetLoginIfNoSessions(): void {
    // Closing the application's last session logs it out (the chip did): forget the user too.
    if (this.sessions.size === 0) this.user = null;
  }

  private login(session: number, userType: number, pin: Buffer): void {
    this.#internals.chip.getSessionInfo(session); // a bad handle fails first, with the chip's code
    if (userType !== CKU_USER) throw new Pkcs11Error(CKR_USER_TYPE_INVALID, "C_Login");
    if (this.user) throw new Pkcs11Error(CKR_USER_ALREADY_LOGGED_IN, "C_Login");
    if (!this.hsm.activated) throw new Pkcs11Error(CKR_USER_PIN_NOT_INITIALIZED, "C_Login");
    const text = pin.toString("utf8");
    const colon = text.indexOf(":");
    const [name, password] = colon < 0 ? [text, ""] : [text.slice(0, colon), text.slice(colon + 1)];
    let actor: Actor;
    try {
      actor = this.hsm.login(name, password, session);
    } catch (e) {
      if (e instanceof HsmError) throw new Pkcs11Error(e.code === "ACCOUNT_LOCKED" ? CKR_PIN_LOCKED : CKR_PIN_INCORRECT, "C_Login");
      throw e;
    }
    if (actor.role !== "CU") {
      this.hsm.logout(actor);
      throw new Pkcs11Error(CKR_USER_TYPE_INVALID, "C_Login"); // COs manage users; only CUs use keys
    }
    try {
      this.#internals.chip.loginPrincipal(session, this.#internals.principalOf(actor.username));
    } catch (e) {
      this.hsm.logout(actor);
      if (e instanceof Pkcs11Error && e.message === "CKR_USER_ALREADY_LOGGED_IN") throw new Pkcs11Error(CKR_USER_ANOTHER_ALREADY_LOGGED_IN, "C_Login");
      throw e;
    }
    this.user = actor;
  }

  private setPin(session: number, oldPin: Buffer, newPin: Buffer): void {
    this.#internals.chip.getSessionInfo(session);
    if (!this.user) throw new Pkcs11Error(CKR_USER_NOT_LOGGED_IN, "C_SetPIN");
    try {
      this.hsm.login(this.user.username, oldPin.toString("utf8"), session);
      this.hsm.changePassword(this.user, this.user.username, newPin.toString("utf8"));
    } catch (e) {
      if (e instanceof HsmError) throw new Pkcs11Error(e.code === "ACCOUNT_LOCKED" ? CKR_PIN_LOCKED : CKR_PIN_INCORRECT, "C_SetPIN");
      throw e;
    }
  }

  private actorName(): string | null {
    return this.user?.username ?? null;
  }

  /** Wraps a key-creating chip call: persist and audit new token keys before answering. */
  private creating(raw: Fn, spec: { operation: string; handles: (result: unknown) => number[] }): Fn {
    return (...args: unknown[]) => {
      const session = args[0] as number;
      const cb = typeof args[args.length - 1] === "function" ? (args.pop() as Callback) : undefined;
      if (cb) {
        return raw(...args, (error: Error | null, result?: unknown) => {
          if (error) {
            this.auditFailure(spec.operation, session, error);
            return cb(error);
          }
          try {
            this.persistNew(session, spec.handles(result), spec.operation);
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
        this.auditFailure(spec.operation, session, e);
        throw e;
      }
      this.persistNew(session, spec.handles(result), spec.operation);
      return result;
    };
  }

  private auditFailure(operation: string, session: number, error: unknown): void {
    if (!(error instanceof Pkcs11Error)) return;
    this.#internals.store.transaction(() => this.#internals.audit(operation, this.actorName(), session, [], error.message));
  }

  private isTokenObject(session: number, handle: number): boolean {
    const { values } = this.#internals.chip.getAttributeValue(session, handle, [CKA_TOKEN]);
    return values[0]?.[0] === 1;
  }

  private persistNew(session: number, handles: number[], operation: string): void {
    const chip = this.#internals.chip;
    try {
      this.#internals.store.transaction(() => {
        const ids: number[] = [];
        for (const handle of handles) {
          if (!this.isTokenObject(session, handle)) continue;
          const id = this.#internals.state.newKeyId();
          this.#internals.state.writeKey(id, handle);
          ids.push(id);
        }
        this.#internals.audit(operation, this.actorName(), session, ids, "OK", ids.length ? "" : "session key");
      });
    } catch (e) {
      // Not durable, so not acknowledged: the key must not exist either.
      for (const handle of handles) {
        this.#internals.state.forgetHandle(handle);
        try {
          chip.destroyObject(session, handle);
        } catch {
          // already gone
        }
      }
      if (e instanceof Pkcs11Error) throw e;
      throw new Pkcs11Error(CKR_DEVICE_ERROR, operation);
    }
  }

  private destroy(chip: Record<string, Fn>, session: number, handle: number): void {
    const keyId = this.#internals.keyIds.get(handle);
    try {
      this.#internals.store.transaction(() => {
        chip.destroyObject(session, handle); // throws (and rolls back) when refused
        if (keyId !== undefined) this.#internals.state.writeKeyDelete(keyId);
        this.#internals.audit("DELETE_KEY", this.actorName(), session, keyId === undefined ? [] : [keyId], "OK");
      });
    } catch (e) {
      this.auditFailure("DELETE_KEY", session, e);
      throw e;
    }
  }

  private setAttributes(chip: Record<string, Fn>, session: number, handle: number, template: Buffer): void {
    chip.setAttributeValue(session, handle, template);
    const keyId = this.#internals.keyIds.get(handle);
    if (keyId === undefined) return;
    this.#internals.store.transaction(() => {
      this.#internals.state.writeKey(keyId, handle);
      this.#internals.audit("SET_KEY_ATTRIBUTES", this.actorName(), session, [keyId], "OK");
    });
  }
}
