// One client connection to a CloudHSM cluster as a custom key store uses it: kmsuser's login
// and password rotation, AES-256 token keys, AES-GCM and random bytes in the HSMs. The same
// adapter serves the simulator's ClusterConnection (calls block while the virtual clock runs)
// and the real-time RemoteConnection (Inits and crypto through the PKCS11 facade's …Async forms, so the
// HTTP server keeps serving while the HSMs work). Errors leave as they came (Pkcs11Error,
// ClientError, HsmError): custom-key-stores.ts maps them to KMS's.
import type { ManagementConsole } from "../client/api.js";
import type { MemberHealth } from "../client/client.js";
import { freezeClass } from "../primordials.js";
import * as C from "../pkcs11/constants.js";
import { handleToNumber, numberToHandle } from "../pkcs11/handles.js";
import type { PKCS11 } from "../pkcs11/pkcs11.js";
import { ClusterLinkClosedError } from "./cks-errors.js";
import type { ClusterLink } from "./cluster-directory.js";

const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;
/** IVs fetched from the HSM's generator in one call (12 bytes each): one round trip per this many encryptions. */
const IVS_PER_FETCH = 64;
/** Sessions kept open for reuse; more run concurrently, closed when they finish. */
const MAX_IDLE_SESSIONS = 32;

/** What the adapter needs of a connection: both the simulator's and the remote one have it. */
export interface LinkConnection {
  pkcs11(): PKCS11;
  console(username: string, password: string): ManagementConsole;
  health(): { members: MemberHealth[]; warnings: string[] };
  close(): void;
}

export class CksLink implements ClusterLink {
  readonly #connection: LinkConnection;
  /** Simulator: every call blocks (it drives the virtual clock); nothing answers a callback while nobody runs the clock. */
  readonly #blocking: boolean;
  #pkcs11: PKCS11 | null = null;
  /** The session the login lives on: the client's login is the application's while any session is open. */
  #anchor: Buffer | null = null;
  readonly #idle: Buffer[] = [];
  #ivs: Buffer = Buffer.alloc(0);
  #closed = false;

  constructor(connection: LinkConnection, options: { blocking: boolean }) {
    this.#connection = connection;
    this.#blocking = options.blocking;
  }

  /** Logs `username` in as a crypto user (CloudHSM's "name:password"): Pkcs11Error CKR_PIN_INCORRECT / CKR_PIN_LOCKED / … on refusal. */
  login(username: string, password: string): void {
    const p = this.#p();
    if (this.#anchor === null) this.#anchor = p.C_OpenSession(Buffer.alloc(8), C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION);
    p.C_Login(this.#anchor, C.CKU_USER, `${username}:${password}`);
  }

  /**
   * The logged-in user's own password, changed in the cluster (replicated to every HSM), then the
   * login taken again with it: the change revoked every login taken with the old one.
   */
  changeOwnPassword(username: string, oldPassword: string, newPassword: string): void {
    this.#connection.console(username, oldPassword).changePassword(username, newPassword);
    this.relogin(username, newPassword);
  }

  /** Logs out (quietly if not logged in) and in again with `password`. */
  relogin(username: string, password: string): void {
    const p = this.#p();
    if (this.#anchor !== null) {
      try {
        p.C_Logout(this.#anchor);
      } catch {
        // not logged in: nothing to end
      }
    }
    this.login(username, password);
  }

  /** A token AES-256 key, non-extractable and sensitive, for encrypt/decrypt only: its cluster-wide id. */
  async generateAesKey(label: string): Promise<number> {
    return this.#withSession(async (p, session) => {
      const template = [
        { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }, { type: C.CKA_KEY_TYPE, value: C.CKK_AES }, { type: C.CKA_VALUE_LEN, value: 32 },
        { type: C.CKA_LABEL, value: label }, { type: C.CKA_TOKEN, value: true }, { type: C.CKA_EXTRACTABLE, value: false },
        { type: C.CKA_SENSITIVE, value: true }, { type: C.CKA_ENCRYPT, value: true }, { type: C.CKA_DECRYPT, value: true },
        { type: C.CKA_WRAP, value: false }, { type: C.CKA_UNWRAP, value: false },
      ];
      const mechanism = { mechanism: C.CKM_AES_KEY_GEN };
      const handle = this.#blocking ? p.C_GenerateKey(session, mechanism, template) : await p.C_GenerateKeyAsync(session, mechanism, template);
      return handleToNumber(handle, "key");
    });
  }

  /** AES-256-GCM under token key `keyId` with a fresh 12-byte IV from the HSMs; the ciphertext ends with the 16-byte tag. */
  async encrypt(keyId: number, plaintext: Buffer, aad: Buffer): Promise<{ iv: Buffer; ciphertext: Buffer }> {
    const iv = await this.#nextIv();
    const ciphertext = await this.#withSession(async (p, session) => {
      if (this.#blocking) p.C_EncryptInit(session, gcm(iv, aad), numberToHandle(keyId));
      else await p.C_EncryptInitAsync(session, gcm(iv, aad), numberToHandle(keyId));
      const out = Buffer.alloc(plaintext.length + GCM_TAG_BYTES);
      return this.#blocking ? p.C_Encrypt(session, plaintext, out) : await p.C_EncryptAsync(session, plaintext, out);
    });
    return { iv, ciphertext };
  }

  /** Pkcs11Error CKR_ENCRYPTED_DATA_INVALID when the tag does not verify. */
  async decrypt(keyId: number, iv: Buffer, ciphertext: Buffer, aad: Buffer): Promise<Buffer> {
    return this.#withSession(async (p, session) => {
      if (this.#blocking) p.C_DecryptInit(session, gcm(iv, aad), numberToHandle(keyId));
      else await p.C_DecryptInitAsync(session, gcm(iv, aad), numberToHandle(keyId));
      const out = Buffer.alloc(Math.max(ciphertext.length, 1));
      return this.#blocking ? p.C_Decrypt(session, ciphertext, out) : await p.C_DecryptAsync(session, ciphertext, out);
    });
  }

  /** Random bytes from the HSMs' generator. */
  async random(length: number): Promise<Buffer> {
    return this.#withSession(async (p, session) => p.C_GenerateRandom(session, Buffer.alloc(length)));
  }

  async destroy(keyId: number): Promise<void> {
    await this.#withSession(async (p, session) => p.C_DestroyObject(session, numberToHandle(keyId)));
  }

  health(): { members: MemberHealth[]; warnings: string[] } {
    return this.#connection.health();
  }

  /** True once closed: a failure of an operation in flight then means its store was disconnected under it. */
  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#idle.length = 0;
    this.#anchor = null;
    this.#connection.close(); // the HSMs drop its sessions and its login
  }

  #p(): PKCS11 {
    if (this.#closed) throw new ClusterLinkClosedError();
    return (this.#pkcs11 ??= this.#connection.pkcs11());
  }

  /** IVs come from the HSMs' generator, fetched IVS_PER_FETCH at a time (each unique with overwhelming odds; none is secret). */
  async #nextIv(): Promise<Buffer> {
    if (this.#ivs.length < GCM_IV_BYTES) this.#ivs = await this.random(GCM_IV_BYTES * IVS_PER_FETCH);
    const iv = Buffer.from(this.#ivs.subarray(0, GCM_IV_BYTES));
    this.#ivs = this.#ivs.subarray(GCM_IV_BYTES);
    return iv;
  }

  /** Runs `work` on a session of its own (reused afterwards unless it failed: an operation may be left open on it). */
  async #withSession<T>(work: (p: PKCS11, session: Buffer) => Promise<T>): Promise<T> {
    const p = this.#p();
    const session = this.#idle.pop() ?? p.C_OpenSession(Buffer.alloc(8), C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION);
    let ok = false;
    try {
      const result = await work(p, session);
      ok = true;
      return result;
    } finally {
      if (ok && !this.#closed && this.#idle.length < MAX_IDLE_SESSIONS) this.#idle.push(session);
      else if (!this.#closed) {
        try {
          p.C_CloseSession(session);
        } catch {
          // gone with its HSM: nothing to close
        }
      }
    }
  }
}

function gcm(iv: Buffer, aad: Buffer) {
  return { mechanism: C.CKM_AES_GCM, parameter: { type: C.CK_PARAMS_AES_GCM, iv, aad, tagBits: 128 } };
}

freezeClass(CksLink);
