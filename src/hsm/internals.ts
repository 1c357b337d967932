// The Hsm's internals (its chip, store, replicated state, the audit append, principals) are
// kept out of reach of whoever holds an Hsm or an Actor: they live in this module-level
// WeakMap, not on the object, so no property walk finds them. Only the device, cluster,
// simulator and CLI code import this module; the package's exports do not (package.json
// `exports` blocks deep imports), so an application cannot.
import type { NativeChip } from "../pkcs11/addon.js";
import type { AuditEntry } from "./audit.js";
import { HsmError } from "./errors.js";
import type { Hsm } from "./hsm.js";
import type { DeviceState } from "./state.js";
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
}

const table = new WeakMap<Hsm, HsmInternals>();

/** Called once, by the Hsm's constructor. */
export function registerInternals(hsm: Hsm, internals: HsmInternals): void {
  if (table.has(hsm)) throw new HsmError("INVALID_ARGUMENT", "that HSM's internals are registered already");
  table.set(hsm, Object.freeze(internals));
}

export function internalsOf(hsm: Hsm): HsmInternals {
  const internals = table.get(hsm);
  if (!internals) throw new HsmError("INVALID_ARGUMENT", "not an HSM");
  return internals;
}
