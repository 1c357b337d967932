// What a PKCS11 facade has loaded, and its life: the backend, whether C_Initialize ran, the
// call log wired to the facade, loading, unloading and the state check every call makes. The
// facade holds one in a #private field, so an application reaches neither it nor the backend.
import type { NativeChip } from "./addon.js";
import { type CallLog, type CallLogOptions, callLogSettings, startCallLog } from "./call-log.js";
import * as C from "./constants.js";
import { Pkcs11Error, notLoadedError } from "./errors.js";
import { chipForTarget } from "./target.js";
import { freezeClass } from "../primordials.js";

export class LoadedModule {
  #backend: NativeChip | null = null;
  #initialized = false;
  #callLog: CallLog | null = null;

  /** `facade` and `prototype`: what the call log wraps (that one instance's methods). */
  constructor(private readonly facade: object, private readonly prototype: object) {}

  /** Takes a backend given directly (a device's or a test's); HSMSIM_PKCS11_LOG applies to it too. */
  adopt(backend: NativeChip, options?: CallLogOptions): void {
    const logging = callLogSettings(options);
    this.#backend = backend;
    if (logging !== null) this.#callLog = startCallLog(this.facade, this.prototype, "backend:", logging);
  }

  /** Loads `target` in place of what was loaded (which is unloaded); not initialized yet. */
  load(target: string, options?: CallLogOptions): void {
    const logging = callLogSettings(options);
    const backend = chipForTarget(target);
    if (this.#backend !== null) unload(this.#backend);
    this.#backend = backend;
    this.#initialized = false;
    this.#callLog?.stop();
    this.#callLog = logging === null ? null : startCallLog(this.facade, this.prototype, target, logging);
  }

  /** Unloads: this application's sessions end if it was initialized; false when nothing was loaded. */
  close(): boolean {
    const backend = this.#backend;
    if (backend === null) return false;
    const wasInitialized = this.#initialized;
    this.#callLog?.stop();
    this.#callLog = null;
    this.#backend = null;
    this.#initialized = false;
    try {
      if (wasInitialized) closeSessions(backend);
    } finally {
      unload(backend);
    }
    return true;
  }

  /** Throws as every call does before load() or after close(). */
  requireLoaded(method: string): void {
    if (this.#backend === null) throw notLoadedError(method);
  }

  initialize(): void {
    this.requireLoaded("C_Initialize");
    if (this.#initialized) throw new Pkcs11Error(C.CKR_CRYPTOKI_ALREADY_INITIALIZED, "C_Initialize");
    this.#initialized = true;
  }

  finalize(): void {
    closeSessions(this.use("C_Finalize"));
    this.#initialized = false;
  }

  /** The backend, once C_Initialize has run; `method` names the call in the error. */
  use(method: string): NativeChip {
    if (this.#backend === null) throw notLoadedError(method);
    if (!this.#initialized) throw new Pkcs11Error(C.CKR_CRYPTOKI_NOT_INITIALIZED, method);
    return this.#backend;
  }
}

/** Releases what a backend holds beyond its sessions (a remote backend's worker thread), if it holds anything. */
function unload(backend: NativeChip): void {
  (backend as { unload?: () => void }).unload?.();
}

/** Closes every session this application holds, on every slot. */
function closeSessions(backend: NativeChip): void {
  for (const slot of backend.getSlotList()) backend.closeAllSessions(slot);
}

freezeClass(LoadedModule);
