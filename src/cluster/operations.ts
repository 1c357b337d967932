// One logical session's operations on one HSM, made safe against lost, repeated and late
// messages. The client numbers each operation it starts in a session (n) and each call within
// it (step; the Init is step 0). Here:
// - an Init of a newer operation aborts an older one still open on the chip (its Init or last
//   step's answer was lost, and the client moved on), so the session never wedges on
//   CKR_OPERATION_ACTIVE;
// - a repeated Init of the open operation answers OK again, a repeated step answers what the
//   step answered the first time (a lost answer is re-sent, not re-run: a multi-part operation
//   survives it);
// - an Init or step of an older operation, arriving late, touches nothing.
import { freezeClass } from "../primordials.js";
import type { NativeChip } from "../pkcs11/addon.js";
import { CKR_BUFFER_TOO_SMALL, CKR_OPERATION_ACTIVE, CKR_OPERATION_NOT_INITIALIZED } from "../pkcs11/constants.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import { OPERATION_END, OPERATION_INIT } from "./calls.js";

interface OperationRecord {
  n: number;
  step: number;
  /** Whether the chip holds the operation open (as far as this ledger knows). */
  open: boolean;
  /** The answer of the last step, for a repeat of it. */
  answer?: { value: unknown } | { error: unknown };
  /** The mechanism the Init named (an HSM's profile prices the operation's later calls by it). */
  mechanism: number | undefined;
  /** The size of the Init's key in bits, RSA modulus or EC curve (a profile prices RSA-4096 and P-384 dearer). */
  keyBits?: number;
}

const EMPTY = Buffer.alloc(0);

export class OperationLedger {
  private readonly families = new Map<string, OperationRecord>();

  /** The mechanism and key size the Init of the open operation of `family` named, if one is open (an HSM's profile prices its later calls by them). */
  openOperation(family: string): { mechanism: number | undefined; keyBits: number | undefined } | undefined {
    const record = this.families.get(family);
    return record?.open ? { mechanism: record.mechanism, keyBits: record.keyBits } : undefined;
  }

  /** Runs `method` of `family` under the ledger's rules; `run` performs it on the chip. */
  call(chip: NativeChip, session: number, family: string, method: string, position: { n: number; step: number } | undefined,
    run: () => unknown, mechanism?: number, keyBits?: () => number | undefined): unknown {
    const record = this.families.get(family);
    if (OPERATION_INIT.has(method)) {
      if (position === undefined) return run();
      if (record && (position.n < record.n || (position.n === record.n && record.step > 0))) throw superseded(method);
      if (record && position.n === record.n && record.open) return null; // a repeat of the Init: it stands
      if (record?.open) abort(chip, session, family);
      const next: OperationRecord = { n: position.n, step: 0, open: false, mechanism };
      this.families.set(family, next);
      let value: unknown;
      try {
        value = run();
      } catch (e) {
        if (!(e instanceof Pkcs11Error && e.code === CKR_OPERATION_ACTIVE)) throw e;
        // Open on the chip though not in the ledger (an answer lost before the ledger knew): abort, start again.
        abort(chip, session, family);
        value = run();
      }
      next.open = true;
      next.keyBits = keyBits?.();
      return value;
    }
    // A call continuing an operation: only the open one's next step runs; its last step is answered again.
    if (position === undefined || !record || position.n !== record.n) throw new Pkcs11Error(CKR_OPERATION_NOT_INITIALIZED, method);
    if (position.step === record.step && record.answer !== undefined) {
      if ("error" in record.answer) throw record.answer.error;
      return record.answer.value;
    }
    if (position.step !== record.step + 1 || !record.open) throw new Pkcs11Error(CKR_OPERATION_NOT_INITIALIZED, method);
    record.step = position.step;
    const ends = (OPERATION_END[`${family}Init`] ?? []).includes(method);
    try {
      const value = run();
      record.answer = { value };
      record.open = !ends;
      return value;
    } catch (e) {
      record.answer = { error: e };
      // The chip keeps an operation open only after a too-small output buffer (the length query).
      record.open = e instanceof Pkcs11Error && e.code === CKR_BUFFER_TOO_SMALL;
      throw e;
    }
  }
}

function superseded(method: string): Pkcs11Error {
  return new Pkcs11Error(CKR_OPERATION_NOT_INITIALIZED, method, "a newer operation of this session has started");
}

/**
 * Ends whatever operation of `family` the chip holds open on `session`. PKCS#11 has no cancel
 * call here, so it uses the chip's rule that an error ends an operation: an Update marks it
 * multi-part (or ends it, for a single-part mechanism), and a single-part call on a multi-part
 * operation then ends it with CKR_OPERATION_ACTIVE.
 */
function abort(chip: NativeChip, session: number, family: string): void {
  const out = Buffer.alloc(16);
  const attempt = (fn: () => unknown) => {
    try {
      fn();
    } catch {
      // the error is what ends the operation
    }
  };
  switch (family) {
    case "encrypt": attempt(() => chip.encryptUpdate(session, EMPTY, out)); attempt(() => chip.encrypt(session, EMPTY, out)); break;
    case "decrypt": attempt(() => chip.decryptUpdate(session, EMPTY, out)); attempt(() => chip.decrypt(session, EMPTY, out)); break;
    case "sign": attempt(() => chip.signUpdate(session, EMPTY)); attempt(() => chip.sign(session, EMPTY, out)); break;
    case "verify": attempt(() => chip.verifyUpdate(session, EMPTY)); attempt(() => chip.verify(session, EMPTY, EMPTY)); break;
    case "digest": attempt(() => chip.digestUpdate(session, EMPTY)); attempt(() => chip.digest(session, EMPTY, out)); break;
    case "findObjects": attempt(() => chip.findObjectsFinal(session)); break;
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(OperationLedger);
