// The Hsm's internals (its chip, store, replicated state, the audit append, principals) are
// kept out of reach of whoever holds an Hsm or an Actor: they live in this module-level
// WeakMap, not on the object, so no property walk finds them. Only the device, cluster,
// simulator and CLI code import this module; the package's exports do not (package.json
// `exports` blocks deep imports), so an application cannot.
import type { NativeChip } from "../pkcs11/addon.js";
import type { AuditEntry } from "./audit.js";
import { HsmError } from "./errors.js";
import type { Actor, Hsm } from "./hsm.js";
import type { HsmSnapshot } from "./snapshot.js";
import type { DeviceState } from "./state.js";
import { ObjectFreeze, WeakMapGet, WeakMapHas, WeakMapSet } from "../primordials.js";
import type { Store } from "./store.js";

export interface HsmInternals {
  readonly chip: NativeChip;
  readonly store: Store;
  /** Token keys, users and their journal. */
  readonly state: DeviceState;
  /** Appends an audit entry; call inside the change's transaction. */
  audit(operation: string, actor: string | null, session: number | null, keys: number[], result: string, detail?: string): AuditEntry;
  /** The principal number the chip knows a user by. */
  principalOf(username: string): number;
  /** Chip handle → key id of every token key. */
  readonly keyIds: ReadonlyMap<number, number>;
  /** A read-write session on the chip for device-internal work. */
  openChipSession(): number;
  /** Logs every PKCS#11 application logged in as `principal` out (its account was deleted or its credential changed). */
  revokeSessions(principal: number): void;
  /** Whether an Actor is a live login of this HSM whose account still has the credential it logged in with. */
  isCurrent(actor: Actor): boolean;
  /** This HSM's replicable state without the masking key (see snapshot.ts for how the key travels). */
  snapshot(): HsmSnapshot;
}

const table = new WeakMap<Hsm, HsmInternals>();

/** Called once, by the Hsm's constructor. */
export function registerInternals(hsm: Hsm, internals: HsmInternals): void {
  // Captured built-ins (primordials.ts): a replaced WeakMap.prototype.get/set or Object.freeze never sees the internals.
  if (WeakMapHas(table, hsm)) throw new HsmError("INVALID_ARGUMENT", "that HSM's internals are registered already");
  WeakMapSet(table, hsm, ObjectFreeze(internals));
}

export function internalsOf(hsm: Hsm): HsmInternals {
  const internals = WeakMapGet(table, hsm);
  if (!internals) throw new HsmError("INVALID_ARGUMENT", "not an HSM");
  return internals;
}
