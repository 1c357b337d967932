// A custom key store's connection to its cluster: DISCONNECTED → CONNECTING → CONNECTED | FAILED,
// DISCONNECTING, with the error codes the real cluster causes (kmsuser's login, the HSMs that
// answer), kmsuser's password rotation on each connect (the next password recorded before the
// change and the result after it, so neither a stop nor a disconnection between the two loses it),
// the live links, and each store's rate limit. custom-key-stores.ts decides what the API may ask.
import { freezeClass } from "../primordials.js";
import { CksLink } from "./cks-link.js";
import { loginFailureCode } from "./cks-errors.js";
import { type KmsuserPasswords, openPasswords, sealPasswords } from "./cks-password.js";
import type { ClusterDirectory, ClusterView } from "./cluster-directory.js";
import { KmsError } from "./errors.js";
import type { Fleet } from "./fleet.js";
import type { KmsStore } from "./store.js";
import { RateLimiter } from "./throttle.js";
import type { ConnectionErrorCode, ConnectionState, CustomKeyStoreRecord } from "./types.js";

export const KMSUSER = "kmsuser";

interface Live {
  link: CksLink | null;
  /** The connection attempt in progress (CONNECTING), or the disconnection (DISCONNECTING). */
  pending: Promise<void> | null;
  /** A disconnection asked while connecting: the attempt ends by closing what it opened. */
  cancelled: boolean;
  limiter: RateLimiter;
}

function activeHsmCount(view: ClusterView): number {
  return view.hsms.filter((h) => h.state === "ACTIVE").length;
}

export interface StoreConnectionsOptions {
  store: KmsStore;
  fleet: Fleet;
  directory: ClusterDirectory;
  nowMs: () => number;
  requestsPerSecond: number;
}

export class StoreConnections {
  readonly #store: KmsStore;
  readonly #fleet: Fleet;
  readonly #directory: ClusterDirectory;
  readonly #nowMs: () => number;
  readonly #requestsPerSecond: number;
  readonly #live = new Map<string, Live>();

  constructor(options: StoreConnectionsOptions) {
    this.#store = options.store;
    this.#fleet = options.fleet;
    this.#directory = options.directory;
    this.#nowMs = options.nowMs;
    this.#requestsPerSecond = options.requestsPerSecond;
  }

  /** Disconnects (the store is CONNECTED, CONNECTING or FAILED): a connection under way ends by closing what it opened. */
  async disconnect(customKeyStoreId: string): Promise<void> {
    const live = this.#liveOf(customKeyStoreId);
    const connecting = live.pending;
    live.cancelled = true;
    this.#setState(customKeyStoreId, "DISCONNECTING", null);
    const work = (async () => {
      await connecting?.catch(() => undefined);
      live.link?.close();
      live.link = null;
      live.cancelled = false;
      this.#setState(customKeyStoreId, "DISCONNECTED", null);
    })();
    live.pending = work.finally(() => {
      if (live.pending === tracked) live.pending = null;
    });
    const tracked = live.pending;
    await tracked;
  }

  /** Resolves when the store is not CONNECTING or DISCONNECTING. */
  async settled(customKeyStoreId: string): Promise<void> {
    for (;;) {
      const pending = this.#live.get(customKeyStoreId)?.pending;
      if (!pending) return;
      await pending.catch(() => undefined);
    }
  }

  /** The link of a CONNECTED store, or null (no rate taken: deletion at a key's date is KMS's own work). */
  link(customKeyStoreId: string): CksLink | null {
    const record = this.#store.getCustomKeyStore(customKeyStoreId);
    const link = this.#live.get(customKeyStoreId)?.link ?? null;
    return record !== null && record.connectionState === "CONNECTED" ? link : null;
  }

  /** A deleted store's connection state goes with it. */
  forget(customKeyStoreId: string): void {
    this.#live.delete(customKeyStoreId);
  }

  /** At start: reconnects the stores that were CONNECTED when KMS stopped. */
  resume(): void {
    for (const record of this.#store.allCustomKeyStores()) {
      if (record.connectionState === "CONNECTED" || record.connectionState === "CONNECTING") this.start(record);
      else if (record.connectionState === "DISCONNECTING") this.#setState(record.customKeyStoreId, "DISCONNECTED", null);
    }
  }

  /** Closes every connection; the stores' recorded states stay (resume() reconnects the CONNECTED ones). */
  async close(): Promise<void> {
    for (const [id] of this.#live) await this.settled(id);
    for (const live of this.#live.values()) {
      live.link?.close();
      live.link = null;
    }
    this.#live.clear();
  }

  /** The store's record and link when CONNECTED (else `notConnected`), after taking a token of its rate (ThrottlingException before any cluster work). */
  connected(customKeyStoreId: string, notConnected: "CustomKeyStoreInvalidStateException" | "KMSInvalidStateException"): { record: CustomKeyStoreRecord; link: CksLink } {
    const record = this.#store.getCustomKeyStore(customKeyStoreId);
    if (record === null) throw new KmsError("CustomKeyStoreNotFoundException", `Custom key store ${customKeyStoreId} does not exist`);
    const live = this.#liveOf(customKeyStoreId);
    if (!live.limiter.tryTake()) throw new KmsError("ThrottlingException", `Rate exceeded: custom key store ${customKeyStoreId} serves at most ${this.#requestsPerSecond} requests a second`);
    if (record.connectionState !== "CONNECTED" || live.link === null) {
      throw new KmsError(notConnected, notConnected === "KMSInvalidStateException"
        ? `The KMS key is Unavailable: its custom key store ${customKeyStoreId} is ${record.connectionState}, not CONNECTED`
        : `Custom key store ${customKeyStoreId} is ${record.connectionState}; this operation needs it CONNECTED`);
    }
    return { record, link: live.link };
  }

  /** Stores the sealed passwords in the store's record as it is now, its connection state untouched (a disconnection may have moved it). */
  #recordPasswords(customKeyStoreId: string, passwords: KmsuserPasswords): void {
    const record = this.#store.getCustomKeyStore(customKeyStoreId);
    if (record === null) return; // deleted meanwhile
    this.#store.putCustomKeyStore({ ...record, sealedPassword: sealPasswords(this.#fleet, customKeyStoreId, passwords) });
  }

  #liveOf(customKeyStoreId: string): Live {
    let live = this.#live.get(customKeyStoreId);
    if (!live) {
      live = { link: null, pending: null, cancelled: false, limiter: new RateLimiter(this.#requestsPerSecond, this.#nowMs) };
      this.#live.set(customKeyStoreId, live);
    }
    return live;
  }

  #setState(customKeyStoreId: string, state: ConnectionState, code: ConnectionErrorCode | null): void {
    const record = this.#store.getCustomKeyStore(customKeyStoreId);
    if (record === null) return; // deleted meanwhile
    this.#store.putCustomKeyStore({ ...record, connectionState: state, connectionErrorCode: code });
  }

  /** Starts connecting `record`'s store: CONNECTING at once, the work on a later turn (settled() waits for it). */
  start(record: CustomKeyStoreRecord): void {
    const id = record.customKeyStoreId;
    const live = this.#liveOf(id);
    live.cancelled = false;
    this.#setState(id, "CONNECTING", null);
    // Starts on a later turn: ConnectCustomKeyStore answers CONNECTING before any cluster work.
    const attempt = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#connectNow(id, live));
    const tracked: Promise<void> = attempt.catch(() => {
      if (!live.cancelled) this.#setState(id, "FAILED", "INTERNAL_ERROR");
    }).finally(() => {
      if (live.pending === tracked) live.pending = null;
    });
    live.pending = tracked;
  }

  async #connectNow(id: string, live: Live): Promise<void> {
    const record = this.#store.getCustomKeyStore(id);
    if (record === null || live.cancelled) return;
    const fail = (code: ConnectionErrorCode) => {
      if (!live.cancelled) this.#setState(id, "FAILED", code);
    };
    const view = this.#directory.describe(record.cloudHsmClusterId);
    // Another account's cluster is not found: no login of this store's ever reaches it (nor counts toward kmsuser's lockout).
    if (view === null || view.accountId !== record.accountId) return fail("CLUSTER_NOT_FOUND");
    if (activeHsmCount(view) === 0) return fail("INSUFFICIENT_CLOUDHSM_HSMS");
    let link: CksLink;
    try {
      const opened = await this.#directory.open(record.cloudHsmClusterId);
      if (!(opened instanceof CksLink)) {
        opened.close();
        return fail("INTERNAL_ERROR");
      }
      link = opened;
    } catch {
      return fail("NETWORK_ERRORS");
    }
    let handedOver = false;
    try {
      if (live.cancelled) return;
      const known = openPasswords(this.#fleet, record);
      let current: string;
      try {
        current = this.#logInKmsuser(link, known);
      } catch (e) {
        return fail(loginFailureCode(e));
      }
      // A rotation left unfinished (stopped between its record and its change, or the reverse) is settled now.
      if (known.next !== undefined) this.#recordPasswords(id, { current });
      if (live.cancelled) return;

      // As AWS KMS does on connecting: kmsuser's password is rotated to one only KMS knows (from the HSMs' generator).
      let rotated: string;
      try {
        rotated = (await link.random(24)).toString("base64url");
      } catch (e) {
        return fail(loginFailureCode(e));
      }
      if (live.cancelled) return; // disconnected meanwhile: the password stays as it is
      // Recorded before the change: if the process stops between the change and its record, the
      // next connection finds kmsuser's password among the two.
      this.#recordPasswords(id, { current, next: rotated });
      try {
        link.changeOwnPassword(KMSUSER, current, rotated);
        current = rotated;
      } catch (e) {
        // The change may have happened with its answer lost: whichever password logs in is kmsuser's.
        const logsIn = this.#whicheverLogsIn(link, [rotated, current]);
        if (logsIn === null) return fail(loginFailureCode(e)); // both stay recorded for the next connection to try
        current = logsIn;
      }
      // Recorded whatever happened meanwhile (a disconnection included): it is kmsuser's password now.
      this.#recordPasswords(id, { current });
      if (live.cancelled) return;
      live.link = link;
      handedOver = true;
      this.#setState(id, "CONNECTED", null);
    } finally {
      if (!handedOver) link.close();
    }
  }

  /**
   * Logs kmsuser in with the current password; when the cluster refuses it and a rotation's next
   * password is recorded, that one once (the change landed in the cluster but its record did not).
   * Returns the password that logged in; throws the refusal otherwise.
   */
  #logInKmsuser(link: CksLink, known: KmsuserPasswords): string {
    try {
      link.login(KMSUSER, known.current);
      return known.current;
    } catch (e) {
      if (known.next === undefined || loginFailureCode(e) !== "INVALID_CREDENTIALS") throw e;
    }
    link.login(KMSUSER, known.next);
    return known.next;
  }

  #whicheverLogsIn(link: CksLink, passwords: string[]): string | null {
    for (const candidate of passwords) {
      try {
        link.relogin(KMSUSER, candidate);
        return candidate;
      } catch {
        // not this one
      }
    }
    return null;
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(StoreConnections);
