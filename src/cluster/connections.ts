// The clients' connections to one HSM: each is a PKCS#11 application of its own on the
// device, with the client's logical sessions mapped to this HSM's sessions (opened and logged
// in on first use), and handles translated between the wire (cluster-wide key ids, session
// objects of this connection) and the chip.
import { freezeClass } from "../primordials.js";
import type { Hsm } from "../hsm/hsm.js";
import { HsmPkcs11Backend } from "../hsm/pkcs11-backend.js";
import type { NativeChip } from "../pkcs11/addon.js";
import {
  CKA_CLASS, CKA_EC_PARAMS, CKA_MODULUS, CKR_ARGUMENTS_BAD, CKR_FUNCTION_NOT_SUPPORTED, CKR_SESSION_HANDLE_INVALID, CKR_USER_NOT_LOGGED_IN, CKS_RO_USER_FUNCTIONS,
  CKS_RW_USER_FUNCTIONS, CKU_USER,
} from "../pkcs11/constants.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import {
  CREATING_CALLS, HANDLE_RESULTS, KEY_USING_CALLS, OBJECT_ARGS, OPERATION_FAMILY, OUTPUT_ARGS, SESSION_CALLS, SESSION_OBJECT_BASE, SLOT_CALLS,
} from "./calls.js";
import { OperationLedger } from "./operations.js";
import { regressions } from "./regressions.js";
import { ownMechanism } from "./service-profile.js";
import { type Failure, MAX_CALL_BUFFER_BYTES, type RequestOp, type SessionContext } from "./protocol.js";
import { internalsOf } from "../hsm/internals.js";
import { BufferToString, MapGet, MapSet } from "../primordials.js";

/** The largest output buffer a request may ask the HSM to fill (what one wire frame carries). */
const MAX_OUTPUT_BYTES = MAX_CALL_BUFFER_BYTES;

interface Connection {
  chip: NativeChip;
  /** The client's logical session → this HSM's session for it, with its operations' ledger. */
  sessions: Map<number, { physical: number; operations: OperationLedger }>;
  /** The login this application holds here ("name:password"), or null. */
  login: string | null;
  /** Credentials this HSM refused or revoked: only an explicit C_Login takes them again. */
  revoked: string | null;
  /** Session objects this connection created here: the only ones its wire handles may name. */
  sessionObjects: Set<number>;
}

/** A refusal that is neither an HSM's nor a PKCS#11 error (busy, stale, unknown connection). */
export class NodeFailure extends Error {
  constructor(readonly failure: Failure) {
    super(failure.message);
  }
}

/** Checks that a token key may be used now; `visible` tells whether the session may see it at all. */
export type KeyUseCheck = (method: string, keyId: unknown, visible: () => boolean) => void;

/** CloudHSM serves at most 900 client connections per cluster; an HSM here holds no more. */
const MAX_CONNECTIONS = 900;
/** One network address holds a handful (a client process, or the clients behind one NAT gateway). */
const MAX_CONNECTIONS_PER_ADDRESS = 64;

/** The sender address a connection name was scoped to (requests.ts scopeToSender). */
const senderOf = (conn: string) => conn.slice(0, Math.max(0, conn.indexOf("|")));

/** The Inits that name a key (its size prices the operation's later calls on a profiled HSM). */
const KEY_INITS = new Set(["signInit", "verifyInit", "encryptInit", "decryptInit"]);
/** The curves the chip supports, by their DER OID (CKA_EC_PARAMS), and their sizes. */
const CURVE_BITS = new Map([["06082a8648ce3d030107", 256], ["06052b81040022", 384]]);

export class Connections {
  private readonly table = new Map<string, Connection>();
  private readonly perAddress = new Map<string, number>();

  constructor(private readonly hsm: Hsm, private readonly checkKeyUse: KeyUseCheck) {}

  /** Closes a client's sessions here and forgets it. */
  close(conn: string): void {
    const connection = MapGet(this.table, conn);
    if (!connection) return;
    for (const session of connection.sessions.values()) connection.chip.closeSession(session.physical);
    this.table.delete(conn);
    const sender = senderOf(conn);
    MapSet(this.perAddress, sender, (MapGet(this.perAddress, sender) ?? 1) - 1);
  }

  /** Closes every connection of one sender (its socket closed). */
  closeSender(sender: string): void {
    for (const conn of [...this.table.keys()]) if (senderOf(conn) === sender) this.close(conn);
    this.perAddress.delete(sender);
  }

  /** The mechanism and key size of the operation a call continues (its Init's), if this HSM holds that operation open. */
  continuedOperation(conn: string, op: Extract<RequestOp, { kind: "call" }>): { mechanism: number | undefined; keyBits: number | undefined } | undefined {
    const family = OPERATION_FAMILY[op.method];
    if (family === undefined || op.session === undefined) return undefined;
    const sessions = MapGet(this.table, conn)?.sessions;
    const session = sessions === undefined ? undefined : MapGet(sessions, op.session.id);
    return session?.operations.openOperation(family);
  }

  /**
   * The size of the key a wrap names (its wrapping key, argument 1), read through the call's session
   * on this HSM or, before that session is opened here (at its first call), any other session of the
   * same application (its keys are visible to all of them). Only an application's very first call on
   * an HSM finds none (undefined: priced at the class's size), at most once per connection.
   */
  wrappingKeyBits(conn: string, op: Extract<RequestOp, { kind: "call" }>): number | undefined {
    if (op.method !== "wrapKey" || op.session === undefined) return undefined;
    const connection = MapGet(this.table, conn);
    if (connection === undefined) return undefined;
    const session = MapGet(connection.sessions, op.session.id) ?? connection.sessions.values().next().value;
    return session === undefined ? undefined : this.keyBits(connection, session.physical, op.args[1]);
  }

  /** An RSA key's modulus size or an EC key's curve size, in bits (undefined for any other key, or one this session cannot read). */
  private keyBits(connection: Connection, physical: number, wire: unknown): number | undefined {
    try {
      const { values } = connection.chip.getAttributeValue(physical, this.toLocal(connection, wire), [CKA_MODULUS, CKA_EC_PARAMS]);
      const [modulus, ecParams] = values;
      if (modulus !== null && modulus !== undefined && modulus.length > 0) return modulus.length * 8;
      if (ecParams !== null && ecParams !== undefined) return MapGet(CURVE_BITS, BufferToString(ecParams, "hex"));
      return undefined;
    } catch {
      return undefined;
    }
  }

  /** Runs a client's chip call on this HSM, in the client's own application. */
  call(conn: string, op: Extract<RequestOp, { kind: "call" }>): unknown {
    const { method, args } = op;
    if (!SLOT_CALLS.has(method) && !SESSION_CALLS.has(method)) throw new Pkcs11Error(CKR_FUNCTION_NOT_SUPPORTED, method);
    let connection = MapGet(this.table, conn);
    if (op.session?.objectsHere && (connection?.sessionObjects.size ?? 0) === 0) {
      // The client holds session objects here, but this HSM holds none for it: it restarted and they died.
      throw new NodeFailure({ kind: "no-connection", message: `HSM ${this.hsm.id} holds no session objects of this application (it restarted)` });
    }
    if (!connection) {
      // Each connection is a native application with sessions of its own: one client must not take them all.
      const sender = senderOf(conn), held = MapGet(this.perAddress, sender) ?? 0;
      if (held >= MAX_CONNECTIONS_PER_ADDRESS || this.table.size >= MAX_CONNECTIONS) {
        throw new NodeFailure({ kind: "busy", message: `HSM ${this.hsm.id} holds ${held} connections from ${sender} and ${this.table.size} in all: no more` });
      }
      MapSet(this.perAddress, sender, held + 1);
      connection = { chip: new HsmPkcs11Backend(this.hsm).asChip(), sessions: new Map(), login: null, revoked: null, sessionObjects: new Set() };
      MapSet(this.table, conn, connection);
    }
    const local = [...args];
    if (SESSION_CALLS.has(method)) {
      if (!op.session) throw new Pkcs11Error(CKR_SESSION_HANDLE_INVALID, method);
      if (method === "closeSession") return this.closeLogical(connection, op.session.id);
      const session = this.physicalSession(connection, op.session, method);
      local[0] = session.physical;
      try {
        const family = OPERATION_FAMILY[method];
        if (family !== undefined && !regressions.wedgingOperations) {
          const run = () => this.run(connection!, method, args, local);
          const keyBits = KEY_INITS.has(method) ? () => this.keyBits(connection!, session.physical, args[1]) : undefined;
          return session.operations.call(connection.chip, session.physical, family, method, op.session.operation, run, ownMechanism(op), keyBits);
        }
        return this.run(connection, method, args, local);
      } catch (e) {
        throw this.revocationOf(connection, session.physical, method, e);
      }
    }
    return this.run(connection, method, args, local);
  }

  /**
   * A call refused because the device revoked the application's login (its user was deleted or
   * its password changed) says so: CKR_USER_NOT_LOGGED_IN, and the login is never taken again
   * silently here. Checked on failures only, so a successful call costs nothing.
   */
  private revocationOf(connection: Connection, physical: number, method: string, error: unknown): unknown {
    if (connection.login === null || method === "login" || method === "logout" || loggedIn(connection.chip, physical)) return error;
    connection.revoked = connection.login;
    connection.login = null;
    const code = error instanceof Pkcs11Error ? error.message : String(error);
    return new Pkcs11Error(CKR_USER_NOT_LOGGED_IN, method, `the login was revoked on HSM ${this.hsm.id} (its user was deleted or its password changed): ${code}`);
  }

  /** Runs the call on the chip: wire handles in, output buffers sized, handles back out as wire handles. */
  private run(connection: Connection, method: string, args: unknown[], sessionArgs: unknown[]): unknown {
    const local = [...sessionArgs]; // run may run twice (an Init after an abort): map from the wire afresh
    for (const i of OBJECT_ARGS[method] ?? []) {
      const wire = local[i];
      local[i] = this.toLocal(connection, wire);
      if (KEY_USING_CALLS.has(method)) {
        const [chip, session, handle] = [connection.chip, local[0] as number, local[i] as number];
        this.checkKeyUse(method, wire, () => visible(chip, session, handle));
      }
    }
    const output = OUTPUT_ARGS[method];
    if (output !== undefined) {
      const length = local[output];
      if (typeof length !== "number" || !Number.isInteger(length) || length < 0 || length > MAX_OUTPUT_BYTES) throw new Pkcs11Error(CKR_ARGUMENTS_BAD, method);
      local[output] = Buffer.alloc(local[output] as number);
    }
    const chip = connection.chip as unknown as Record<string, (...a: unknown[]) => unknown>;
    const result = chip[method](...local);
    if (method === "login") connection.login = BufferToString(args[2] as Buffer, "utf8");
    if (method === "logout") connection.login = null;
    const shape = HANDLE_RESULTS[method];
    const created = CREATING_CALLS.has(method);
    let mapped = shape === "one" ? this.toWire(connection, result as number, created)
      : shape === "pair" || shape === "list" ? (result as number[]).map((h) => this.toWire(connection, h, created)) : result;
    // A search shows this application's own session objects only, whatever the chip lets the session see.
    if (method === "findObjects" && !regressions.strayFinds) mapped = (mapped as number[]).filter((w) => w < SESSION_OBJECT_BASE || connection.sessionObjects.has(w - SESSION_OBJECT_BASE));
    return output === undefined ? mapped : { result: mapped, output: (local[output] as Buffer).subarray(0, result as number) };
  }

  /** This HSM's session for the client's logical session, opened (and logged in) on first use. */
  private physicalSession(connection: Connection, context: SessionContext, method: string): { physical: number; operations: OperationLedger } {
    const chip = connection.chip;
    let session = MapGet(connection.sessions, context.id);
    if (session === undefined) {
      if (context.continuation) {
        throw new NodeFailure({ kind: "no-connection", message: `HSM ${this.hsm.id} does not hold this session's operation (it restarted)` });
      }
      session = { physical: chip.openSession(0, context.flags), operations: new OperationLedger() };
      MapSet(connection.sessions, context.id, session);
    }
    const physical = session.physical;
    if (method === "login" || method === "logout") {
      // An explicit login checks the password afresh: drop a login made on the client's behalf first.
      if (method === "login") {
        if (connection.login !== null) quietLogout(chip, physical);
        connection.login = null;
        connection.revoked = null;
      }
      return session;
    }
    if (context.login !== connection.login) {
      if (connection.login !== null) {
        quietLogout(chip, physical);
        connection.login = null;
      }
      if (context.login !== null) {
        if (context.login === connection.revoked) {
          throw new Pkcs11Error(CKR_USER_NOT_LOGGED_IN, method, `the login was revoked on HSM ${this.hsm.id}: the user was deleted or its password changed; log in again`);
        }
        try {
          chip.login(physical, CKU_USER, Buffer.from(context.login));
        } catch (e) {
          // Tried once: the same credentials are not tried again here (each try would count toward a lockout).
          connection.revoked = context.login;
          const code = e instanceof Pkcs11Error ? e.message : String(e);
          throw new Pkcs11Error(CKR_USER_NOT_LOGGED_IN, method, `logging in again on HSM ${this.hsm.id} failed: ${code}`);
        }
        connection.login = context.login;
      }
    }
    return session;
  }

  private closeLogical(connection: Connection, id: number): null {
    const session = MapGet(connection.sessions, id);
    connection.sessions.delete(id);
    if (session !== undefined) connection.chip.closeSession(session.physical);
    // Closing an application's last session logs it out, as on the chip.
    if (connection.sessions.size === 0) connection.login = null;
    return null;
  }

  private toLocal(connection: Connection, wire: unknown): number {
    if (typeof wire !== "number") return 0;
    // A session object of another connection, or of this HSM before it restarted, is not reachable.
    if (wire >= SESSION_OBJECT_BASE) return connection.sessionObjects.has(wire - SESSION_OBJECT_BASE) ? wire - SESSION_OBJECT_BASE : 0;
    // An unknown key id becomes handle 0, which the chip rejects with the call's own error code.
    return internalsOf(this.hsm).state.hasKey(wire) ? internalsOf(this.hsm).state.handleOf(wire) : 0;
  }

  private toWire(connection: Connection, handle: number, created: boolean): number {
    const keyId = internalsOf(this.hsm).state.keyIds.get(handle);
    if (keyId !== undefined) return keyId;
    if (created) connection.sessionObjects.add(handle);
    return SESSION_OBJECT_BASE + handle;
  }
}

function loggedIn(chip: NativeChip, session: number): boolean {
  const { state } = chip.getSessionInfo(session);
  return state === CKS_RO_USER_FUNCTIONS || state === CKS_RW_USER_FUNCTIONS;
}

function quietLogout(chip: NativeChip, session: number): void {
  try {
    chip.logout(session);
  } catch {
    // logged out already (revoked): the goal holds
  }
}

function visible(chip: NativeChip, session: number, handle: number): boolean {
  try {
    chip.getAttributeValue(session, handle, [CKA_CLASS]);
    return true;
  } catch {
    return false;
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(NodeFailure);
freezeClass(Connections);
