// The typed high-level API over a cluster: connect once, then log in as a crypto user for
// keys and crypto, or as a crypto officer for users and sharing. Underneath is the same
// PKCS11 facade (pkcs11()) an application can use directly.
import { freezeClass } from "../primordials.js";
import type { ManageMethod, RequestOp } from "../cluster/protocol.js";
import { HsmError, type HsmErrorCode } from "../hsm/errors.js";
import type { KeyDescription, UserInfo } from "../hsm/hsm.js";
import * as C from "../pkcs11/constants.js";
import { numberToHandle, handleToNumber } from "../pkcs11/handles.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import { PKCS11 } from "../pkcs11/pkcs11.js";
import { type ClientOptions, ClusterClient, type MemberHealth, RemoteError } from "./client.js";
import { ClusterChip } from "./cluster-chip.js";
import { type Driver, waitFor } from "./driver.js";
import { ClientError } from "./errors.js";

const P256 = Buffer.from("06082a8648ce3d030107", "hex");
const P384 = Buffer.from("06052b81040022", "hex");
const GCM_IV_BYTES = 12;

export interface KeyRef {
  /** The PKCS#11 handle (for token keys, the cluster-wide key id as a handle). */
  handle: Buffer;
  /** Cluster-wide key id: the same on every HSM, and what management calls take. */
  id: number;
  label: string;
}

export interface KeyPairRef {
  publicKey: KeyRef;
  privateKey: KeyRef;
}

/** What each HSM says its users are, and whether they agree (as CloudHSM CLI's user list reports). */
export interface UserListReport {
  users: UserInfo[];
  consistent: boolean;
  /** Per HSM that answered: its user names. */
  byHsm: { address: string; usernames: string[] }[];
  unreachable: string[];
}

const READ_ONLY: ReadonlySet<ManageMethod> = new Set(["listUsers", "describeKey"]);

/** What a management console needs of its connection (the simulator's ClusterConnection, or a remote one). */
export interface ManagementChannel {
  manage(username: string, password: string, method: ManageMethod, args: unknown[], pinned?: string, anyState?: boolean): unknown;
  health(): { members: MemberHealth[]; warnings: string[] };
}

type Done = (error: Error | null, value?: unknown) => void;

/**
 * The asynchronous core of one management call: sends it under the retry rule of its method
 * and answers `done` with the value or the typed error (HsmError, Pkcs11Error, ClientError).
 */
export function startManage(client: ClusterClient, request: { username: string; password: string; method: ManageMethod; args: unknown[] },
  pinned: string | undefined, anyState: boolean, done: Done): void {
  const op: RequestOp = { kind: "manage", method: request.method, username: request.username, password: request.password, args: request.args };
  client.send(op, { pinned, rule: READ_ONLY.has(request.method) ? "repeat" : "fail", anyState }, (e, v) => done(e && remoteToTyped(e), v));
}

/** A crypto user logged in (CloudHSM's "name:password") on a new session of `p`; the session is closed if the login fails. */
export function loginCryptoUser(p: PKCS11, username: string, password: string): CryptoUserSession {
  const session = p.C_OpenSession(Buffer.alloc(8), C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION);
  try {
    p.C_Login(session, C.CKU_USER, `${username}:${password}`);
  } catch (e) {
    p.C_CloseSession(session);
    throw e;
  }
  return new CryptoUserSession(p, session);
}

export class ClusterConnection {
  private readonly chip: ClusterChip;
  private facade: PKCS11 | null = null;

  private constructor(readonly client: ClusterClient, private readonly driver: Driver) {
    this.chip = new ClusterChip(client, driver);
  }

  /** Bootstraps from `options.bootstrap`; the driver runs the simulation while calls wait. */
  static connect(options: ClientOptions & { driver: Driver }): ClusterConnection {
    const connection = new ClusterConnection(new ClusterClient(options), options.driver);
    try {
      connection.wait<void>((done) => connection.client.connect((e) => done(e)));
    } catch (e) {
      connection.close(); // no heartbeat or address left behind
      throw e;
    }
    return connection;
  }

  /** A pkcs11js-compatible PKCS11 over the whole cluster (C_Login with "name:password"). */
  pkcs11(): PKCS11 {
    if (!this.facade) {
      this.facade = new PKCS11(this.chip.asChip());
      this.facade.C_Initialize();
    }
    return this.facade;
  }

  /** Logs a crypto user in on a new session. */
  login(username: string, password: string): CryptoUserSession {
    return loginCryptoUser(this.pkcs11(), username, password);
  }

  /**
   * A management console as `username` (CloudHSM CLI's role): PRECO activates, a CO manages
   * users, a CU shares its keys. Every call authenticates on the HSM that serves it.
   */
  console(username: string, password: string): ManagementConsole {
    return new ManagementConsole(this, username, password);
  }

  health(): { members: MemberHealth[]; warnings: string[] } {
    return this.client.health();
  }

  close(): void {
    this.client.close();
  }

  /** @internal one management call */
  manage(username: string, password: string, method: ManageMethod, args: unknown[], pinned?: string, anyState = false): unknown {
    return this.wait((done) => startManage(this.client, { username, password, method, args }, pinned, anyState, done));
  }

  /** @internal */
  wait<T>(start: (done: (error: Error | null, value?: unknown) => void) => void): T {
    try {
      return waitFor<T>(this.driver, start, () => new ClientError("NO_REACHABLE_HSM", "the simulation ran out of events"));
    } catch (e) {
      throw e instanceof Error ? remoteToTyped(e) : e;
    }
  }
}

function remoteToTyped(error: Error): Error {
  if (!(error instanceof RemoteError)) return error;
  const f = error.failure;
  return f.kind === "hsm" ? new HsmError(f.code as HsmErrorCode, f.message) : new Pkcs11Error(f.code, "manage", f.message);
}

export class ManagementConsole {
  constructor(private readonly connection: ManagementChannel, private readonly username: string, private password: string) {}

  /** PRECO's first password change activates the cluster; any user's changes its password. */
  changePassword(username: string, newPassword: string): void {
    this.call("changePassword", username, newPassword);
    if (username === this.username) this.password = newPassword;
  }
  createUser(username: string, role: "CO" | "CU", password: string): void {
    this.call("createUser", username, role, password);
  }
  deleteUser(username: string): void {
    this.call("deleteUser", username);
  }
  shareKey(keyId: number, username: string): void {
    this.call("shareKey", keyId, username);
  }
  unshareKey(keyId: number, username: string): void {
    this.call("unshareKey", keyId, username);
  }
  describeKey(keyId: number): KeyDescription {
    return this.call("describeKey", keyId) as KeyDescription;
  }

  /**
   * Asks every HSM for its own user list (as it stands there, not waiting for this client's
   * writes) and compares them: consistent only when every HSM answered with the same users.
   */
  listUsers(): UserListReport {
    const byHsm: UserListReport["byHsm"] = [];
    const unreachable: string[] = [];
    let users: UserInfo[] = [];
    for (const member of this.connection.health().members) {
      try {
        const list = this.connection.manage(this.username, this.password, "listUsers", [], member.address, true) as UserInfo[];
        byHsm.push({ address: member.address, usernames: list.map((u) => u.username).sort() });
        if (users.length === 0) users = list;
      } catch (e) {
        if (e instanceof ClientError) unreachable.push(member.address);
        else throw e;
      }
    }
    const first = JSON.stringify(byHsm[0]?.usernames ?? []);
    return { users, consistent: unreachable.length === 0 && byHsm.every((h) => JSON.stringify(h.usernames) === first), byHsm, unreachable };
  }

  private call(method: ManageMethod, ...args: unknown[]): unknown {
    return this.connection.manage(this.username, this.password, method, args);
  }
}

export class CryptoUserSession {
  constructor(readonly pkcs11: PKCS11, readonly session: Buffer) {}

  generateAesKey(options: { label: string; bits?: 128 | 192 | 256; token?: boolean; extractable?: boolean }): KeyRef {
    const handle = this.pkcs11.C_GenerateKey(this.session, { mechanism: C.CKM_AES_KEY_GEN }, [
      { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }, { type: C.CKA_KEY_TYPE, value: C.CKK_AES },
      { type: C.CKA_VALUE_LEN, value: (options.bits ?? 256) / 8 }, { type: C.CKA_LABEL, value: options.label },
      { type: C.CKA_TOKEN, value: options.token ?? true }, { type: C.CKA_EXTRACTABLE, value: options.extractable ?? false },
      { type: C.CKA_ENCRYPT, value: true }, { type: C.CKA_DECRYPT, value: true },
    ]);
    return ref(handle, options.label);
  }

  generateEcKeyPair(options: { label: string; curve?: "P-256" | "P-384"; token?: boolean }): KeyPairRef {
    const token = options.token ?? true;
    const pair = this.pkcs11.C_GenerateKeyPair(this.session, { mechanism: C.CKM_EC_KEY_PAIR_GEN },
      [{ type: C.CKA_EC_PARAMS, value: options.curve === "P-384" ? P384 : P256 }, { type: C.CKA_VERIFY, value: true },
        { type: C.CKA_LABEL, value: options.label }, { type: C.CKA_TOKEN, value: token }],
      [{ type: C.CKA_SIGN, value: true }, { type: C.CKA_LABEL, value: options.label }, { type: C.CKA_TOKEN, value: token }]);
    return { publicKey: ref(pair.publicKey, options.label), privateKey: ref(pair.privateKey, options.label) };
  }

  /** AES-GCM with a fresh 12-byte IV from the HSM: returns iv ‖ ciphertext ‖ tag. */
  encrypt(key: KeyRef, plaintext: Buffer, aad?: Buffer): Buffer {
    const iv = this.pkcs11.C_GenerateRandom(this.session, Buffer.alloc(GCM_IV_BYTES));
    this.pkcs11.C_EncryptInit(this.session, gcm(iv, aad), key.handle);
    const out = this.pkcs11.C_Encrypt(this.session, plaintext, Buffer.alloc(plaintext.length + 16));
    return Buffer.concat([iv, out]);
  }

  decrypt(key: KeyRef, sealed: Buffer, aad?: Buffer): Buffer {
    if (!Buffer.isBuffer(sealed) || sealed.length < GCM_IV_BYTES + 16) throw new ClientError("INVALID_ARGUMENT", "sealed must be iv ‖ ciphertext ‖ tag");
    this.pkcs11.C_DecryptInit(this.session, gcm(sealed.subarray(0, GCM_IV_BYTES), aad), key.handle);
    return this.pkcs11.C_Decrypt(this.session, sealed.subarray(GCM_IV_BYTES), Buffer.alloc(sealed.length));
  }

  /** ECDSA with SHA-256, signature r ‖ s. */
  sign(key: KeyRef, data: Buffer): Buffer {
    this.pkcs11.C_SignInit(this.session, { mechanism: C.CKM_ECDSA_SHA256 }, key.handle);
    return this.pkcs11.C_Sign(this.session, data, Buffer.alloc(132));
  }

  verify(key: KeyRef, data: Buffer, signature: Buffer): boolean {
    this.pkcs11.C_VerifyInit(this.session, { mechanism: C.CKM_ECDSA_SHA256 }, key.handle);
    return this.pkcs11.C_Verify(this.session, data, signature);
  }

  findKeys(label: string): KeyRef[] {
    this.pkcs11.C_FindObjectsInit(this.session, [{ type: C.CKA_LABEL, value: label }]);
    let found: Buffer[];
    try {
      found = this.pkcs11.C_FindObjects(this.session, 1000);
    } catch (e) {
      // The search's own failure is the one to report, not the Final's on an operation it ended.
      try {
        this.pkcs11.C_FindObjectsFinal(this.session);
      } catch {
        // ended already
      }
      throw e;
    }
    this.pkcs11.C_FindObjectsFinal(this.session);
    return found.map((h) => ref(h, label));
  }

  deleteKey(key: KeyRef): void {
    this.pkcs11.C_DestroyObject(this.session, key.handle);
  }

  random(length: number): Buffer {
    return this.pkcs11.C_GenerateRandom(this.session, Buffer.alloc(length));
  }

  close(): void {
    this.pkcs11.C_CloseSession(this.session);
  }
}

function gcm(iv: Buffer, aad?: Buffer) {
  return { mechanism: C.CKM_AES_GCM, parameter: { type: C.CK_PARAMS_AES_GCM, iv, aad, tagBits: 128 } };
}

function ref(handle: Buffer, label: string): KeyRef {
  return { handle, id: handleToNumber(handle, "handle"), label };
}

/** The handle of a token key, from its cluster-wide id. */
export function keyHandle(keyId: number): Buffer {
  return numberToHandle(keyId);
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(ClusterConnection);
freezeClass(ManagementConsole);
freezeClass(CryptoUserSession);
