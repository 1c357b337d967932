// CloudHSM key stores: KMS keys whose material is a non-extractable AES-256 token key owned by
// kmsuser in the customer's cluster, used through the cluster's client. The store's connection
// (states DISCONNECTED → CONNECTING → CONNECTED | FAILED, DISCONNECTING) and its error codes
// come from the real cluster (cks-connections.ts). This file is what the API may ask of a store:
// its records (create, describe, update, delete: a cluster belongs to one account, to any other it
// is not found), and the key operations through a connected store, each limited to 1,800 requests
// a second.
import { timingSafeEqual } from "node:crypto";

import { freezeClass } from "../primordials.js";
import { StoreConnections } from "./cks-connections.js";
import type { CksLink } from "./cks-link.js";
import { ClusterLinkClosedError, connectionGoneError, keyOperationError } from "./cks-errors.js";
import { openPasswords, sealPasswords } from "./cks-password.js";
import type { ClusterDirectory, ClusterView } from "./cluster-directory.js";
import { KmsError } from "./errors.js";
import type { Fleet } from "./fleet.js";
import type { KmsStore } from "./store.js";
import type { ConnectionState, CustomKeyStoreRecord, TrailNotes } from "./types.js";

export { KMSUSER } from "./cks-connections.js";

export interface CustomKeyStoresOptions {
  store: KmsStore;
  fleet: Fleet;
  directory: ClusterDirectory;
  nowMs: () => number;
  /** New store ids (cks- + 17 hex digits). */
  randomBytes: (n: number) => Buffer;
  /** Requests per second per store (default 1,800). */
  requestsPerSecond?: number;
}

export const DEFAULT_STORE_REQUESTS_PER_SECOND = 1_800;
const MAX_STORES_LISTED = 1_000;
/** Cluster states in which the cluster exists and serves (DEGRADED and UPDATE_IN_PROGRESS are about its HSMs). */
const SERVING_CLUSTER_STATES = new Set(["ACTIVE", "DEGRADED", "UPDATE_IN_PROGRESS"]);

function invalid(member: string, constraint: string): KmsError {
  return new KmsError("ValidationException", `1 validation error detected: Value at '${member}' failed to satisfy constraint: ${constraint}`);
}

/** A string member: undefined when absent and optional; ValidationException naming the member otherwise. Never echoes the value (it may be a password). */
function stringMember(input: Record<string, unknown>, name: string, min: number, max: number, required: boolean): string | undefined {
  const value = input[name];
  if (value === undefined || value === null) {
    if (required) throw invalid(name, "Member must not be null");
    return undefined;
  }
  if (typeof value !== "string") throw new KmsError("SerializationException", `${name} must be a string`);
  if (value.length < min) throw invalid(name, `Member must have length greater than or equal to ${min}`);
  if (value.length > max) throw invalid(name, `Member must have length less than or equal to ${max}`);
  return value;
}

function inputObject(input: unknown): Record<string, unknown> {
  if (input === null || typeof input !== "object" || Array.isArray(input)) throw new KmsError("SerializationException", "the request body must be a JSON object");
  return input as Record<string, unknown>;
}

/** The DER of a PEM's first certificate (so line breaks and surrounding text do not matter), or null when there is none. */
function certificateDer(pem: string): Buffer | null {
  const match = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(pem);
  if (match === null) return null;
  const der = Buffer.from(match[1].replace(/\s+/g, ""), "base64");
  return der.length > 0 ? der : null;
}

function sameCertificate(a: string, b: string): boolean {
  const da = certificateDer(a), db = certificateDer(b);
  return da !== null && db !== null && da.length === db.length && timingSafeEqual(da, db);
}

/** Active HSMs in at least two zones: what AWS asks of a cluster for CreateCustomKeyStore and CreateKey. */
function hasTwoZones(view: ClusterView): boolean {
  return new Set(view.hsms.filter((h) => h.state === "ACTIVE").map((h) => h.availabilityZone)).size >= 2;
}

const INVALID_CONFIGURATION = "The associated AWS CloudHSM cluster does not meet the configuration requirements for an AWS CloudHSM key store: it must contain at least two active HSMs, each in a different Availability Zone";

export class CustomKeyStores {
  readonly #store: KmsStore;
  readonly #fleet: Fleet;
  readonly #directory: ClusterDirectory;
  readonly #nowMs: () => number;
  readonly #randomBytes: (n: number) => Buffer;
  readonly #connections: StoreConnections;

  constructor(options: CustomKeyStoresOptions) {
    this.#store = options.store;
    this.#fleet = options.fleet;
    this.#directory = options.directory;
    this.#nowMs = options.nowMs;
    this.#randomBytes = options.randomBytes;
    const rate = options.requestsPerSecond ?? DEFAULT_STORE_REQUESTS_PER_SECOND;
    if (!(Number.isFinite(rate) && rate > 0)) throw new RangeError("requestsPerSecond must be a positive number");
    this.#connections = new StoreConnections({ store: this.#store, fleet: this.#fleet, directory: this.#directory, nowMs: this.#nowMs, requestsPerSecond: rate });
  }

  /** CreateCustomKeyStore (CloudHSM type): checks the cluster (found, ACTIVE, 2 HSMs in 2 zones, trust anchor, not in use) and the name; returns the id. */
  create(accountId: string, input: Record<string, unknown>): { CustomKeyStoreId: string } {
    const body = inputObject(input);
    const name = stringMember(body, "CustomKeyStoreName", 1, 256, true)!;
    const type = body.CustomKeyStoreType ?? "AWS_CLOUDHSM";
    if (type === "EXTERNAL_KEY_STORE") throw new KmsError("UnsupportedOperationException", "External key stores (CustomKeyStoreType EXTERNAL_KEY_STORE) are not offered here; use AWS_CLOUDHSM");
    if (type !== "AWS_CLOUDHSM") throw invalid("customKeyStoreType", "Member must satisfy enum value set: [AWS_CLOUDHSM, EXTERNAL_KEY_STORE]");
    const clusterId = stringMember(body, "CloudHsmClusterId", 19, 24, true)!;
    const trustAnchor = stringMember(body, "TrustAnchorCertificate", 1, 5000, true)!;
    const password = stringMember(body, "KeyStorePassword", 7, 32, true)!;

    const sameName = this.#store.listCustomKeyStores(accountId).find((s) => s.name === name);
    if (sameName) {
      // AWS treats an identical request for a disconnected store as a retry and answers its id.
      if (sameName.connectionState === "DISCONNECTED" && sameName.cloudHsmClusterId === clusterId && sameCertificate(sameName.trustAnchorPem, trustAnchor)
        && this.#passwordIs(sameName, password)) return { CustomKeyStoreId: sameName.customKeyStoreId };
      throw new KmsError("CustomKeyStoreNameInUseException", `The custom key store name ${JSON.stringify(name)} is already in use in this account and Region`);
    }
    const view = this.#clusterOf(accountId, clusterId);
    if (!SERVING_CLUSTER_STATES.has(view.state)) throw new KmsError("CloudHsmClusterNotActiveException", `AWS CloudHSM cluster ${clusterId} is not active (its state is ${view.state}): initialize and activate it first`);
    // The trust anchor before the in-use check: who cannot show it learns nothing of the cluster's other stores.
    if (!sameCertificate(view.trustAnchorPem, trustAnchor)) {
      throw new KmsError("IncorrectTrustAnchorException", `The TrustAnchorCertificate is not the trust anchor certificate of AWS CloudHSM cluster ${clusterId} (its customerCA.crt)`);
    }
    this.#requireClusterFree(view, null);
    if (!hasTwoZones(view)) throw new KmsError("CloudHsmClusterInvalidConfigurationException", INVALID_CONFIGURATION);

    const customKeyStoreId = `cks-${this.#randomBytes(9).toString("hex").slice(0, 17)}`;
    this.#store.putCustomKeyStore({
      customKeyStoreId, accountId, name, cloudHsmClusterId: clusterId, trustAnchorPem: trustAnchor,
      sealedPassword: sealPasswords(this.#fleet, customKeyStoreId, { current: password }),
      connectionState: "DISCONNECTED", connectionErrorCode: null, creationDateMs: this.#nowMs(),
    });
    return { CustomKeyStoreId: customKeyStoreId };
  }

  /** DescribeCustomKeyStores, AWS's output shape. */
  describe(accountId: string, input: Record<string, unknown>): Record<string, unknown> {
    const body = inputObject(input ?? {});
    const id = stringMember(body, "CustomKeyStoreId", 1, 64, false);
    const name = stringMember(body, "CustomKeyStoreName", 1, 256, false);
    const marker = stringMember(body, "Marker", 1, 1024, false);
    let limit = 100;
    if (body.Limit !== undefined && body.Limit !== null) {
      if (typeof body.Limit !== "number" || !Number.isInteger(body.Limit)) throw new KmsError("SerializationException", "Limit must be an integer");
      if (body.Limit < 1 || body.Limit > MAX_STORES_LISTED) throw invalid("limit", `Member must have value between 1 and ${MAX_STORES_LISTED}`);
      limit = body.Limit;
    }
    let stores = this.#store.listCustomKeyStores(accountId);
    if (id !== undefined) stores = stores.filter((s) => s.customKeyStoreId === id);
    if (name !== undefined) stores = stores.filter((s) => s.name === name);
    if ((id !== undefined || name !== undefined) && stores.length === 0) {
      throw new KmsError("CustomKeyStoreNotFoundException", `Custom key store ${id ?? name} does not exist in this account and Region`);
    }
    let start = 0;
    if (marker !== undefined) {
      start = stores.findIndex((s) => s.customKeyStoreId === marker);
      if (start < 0) throw new KmsError("InvalidMarkerException", "The Marker is not one this operation returned");
    }
    const page = stores.slice(start, start + limit);
    const next = stores[start + limit];
    return { CustomKeyStores: page.map((s) => this.#entry(s)), Truncated: next !== undefined, ...(next !== undefined ? { NextMarker: next.customKeyStoreId } : {}) };
  }

  /** ConnectCustomKeyStore: CONNECTING at once; the connection proceeds in the background (settled() waits for it). */
  connect(accountId: string, customKeyStoreId: string): void {
    const record = this.#owned(accountId, customKeyStoreId);
    const state = record.connectionState;
    if (state === "CONNECTED" || state === "CONNECTING") return; // already there, or on its way
    if (state === "FAILED") throw new KmsError("CustomKeyStoreInvalidStateException", `Custom key store ${customKeyStoreId} is FAILED (${record.connectionErrorCode ?? "no code"}): disconnect it, fix the cause, then connect it`);
    if (state === "DISCONNECTING") throw new KmsError("CustomKeyStoreInvalidStateException", `Custom key store ${customKeyStoreId} is DISCONNECTING; connect it once it is DISCONNECTED`);
    const view = this.#clusterOf(accountId, record.cloudHsmClusterId);
    if (!SERVING_CLUSTER_STATES.has(view.state)) throw new KmsError("CloudHsmClusterNotActiveException", `AWS CloudHSM cluster ${record.cloudHsmClusterId} is not active (its state is ${view.state})`);
    this.#connections.start(record);
  }

  async disconnect(accountId: string, customKeyStoreId: string): Promise<void> {
    const record = this.#owned(accountId, customKeyStoreId);
    if (record.connectionState === "DISCONNECTED" || record.connectionState === "DISCONNECTING") {
      throw new KmsError("CustomKeyStoreInvalidStateException", `Custom key store ${customKeyStoreId} is ${record.connectionState} already`);
    }
    await this.#connections.disconnect(customKeyStoreId);
  }

  update(accountId: string, input: Record<string, unknown>): void {
    const body = inputObject(input);
    const id = stringMember(body, "CustomKeyStoreId", 1, 64, true)!;
    const newName = stringMember(body, "NewCustomKeyStoreName", 1, 256, false);
    const password = stringMember(body, "KeyStorePassword", 7, 32, false);
    const clusterId = stringMember(body, "CloudHsmClusterId", 19, 24, false);
    for (const member of ["XksProxyUriEndpoint", "XksProxyUriPath", "XksProxyVpcEndpointServiceName", "XksProxyAuthenticationCredential", "XksProxyConnectivity"]) {
      if (body[member] !== undefined) throw new KmsError("UnsupportedOperationException", `${member} applies to external key stores, which are not offered here`);
    }
    const record = this.#owned(accountId, id);
    // The name may change in any state; the password and the cluster only while disconnected.
    if ((password !== undefined || clusterId !== undefined) && record.connectionState !== "DISCONNECTED") {
      throw new KmsError("CustomKeyStoreInvalidStateException", `Custom key store ${id} is ${record.connectionState}: disconnect it to change its KeyStorePassword or CloudHsmClusterId`);
    }
    const next: CustomKeyStoreRecord = { ...record };
    if (newName !== undefined && newName !== record.name) {
      if (this.#store.listCustomKeyStores(accountId).some((s) => s.name === newName)) {
        throw new KmsError("CustomKeyStoreNameInUseException", `The custom key store name ${JSON.stringify(newName)} is already in use in this account and Region`);
      }
      next.name = newName;
    }
    if (clusterId !== undefined && clusterId !== record.cloudHsmClusterId) {
      const view = this.#clusterOf(accountId, clusterId);
      const current = this.#directory.describe(record.cloudHsmClusterId);
      const related = current !== null && current.lineageId !== undefined && current.lineageId === view.lineageId;
      if (!related) {
        throw new KmsError("CloudHsmClusterNotRelatedException", `AWS CloudHSM cluster ${clusterId} is not related to ${record.cloudHsmClusterId}: it must share its backup history (be restored from its backups, or the reverse)`);
      }
      this.#requireClusterFree(view, id);
      if (!SERVING_CLUSTER_STATES.has(view.state)) throw new KmsError("CloudHsmClusterNotActiveException", `AWS CloudHSM cluster ${clusterId} is not active (its state is ${view.state})`);
      if (!hasTwoZones(view)) throw new KmsError("CloudHsmClusterInvalidConfigurationException", INVALID_CONFIGURATION);
      next.cloudHsmClusterId = clusterId;
    }
    if (password !== undefined) next.sealedPassword = sealPasswords(this.#fleet, id, { current: password });
    this.#store.putCustomKeyStore(next);
  }

  /** DeleteCustomKeyStore: `keyCount` is how many KMS keys the store still has (CustomKeyStoreHasCMKsException when > 0). */
  delete(accountId: string, customKeyStoreId: string, keyCount: number): void {
    const record = this.#owned(accountId, customKeyStoreId);
    if (record.connectionState !== "DISCONNECTED") {
      throw new KmsError("CustomKeyStoreInvalidStateException", `Custom key store ${customKeyStoreId} is ${record.connectionState}: disconnect it before deleting it`);
    }
    if (keyCount > 0) throw new KmsError("CustomKeyStoreHasCMKsException", `Custom key store ${customKeyStoreId} still has ${keyCount} KMS key(s): schedule their deletion and wait until they are deleted`);
    this.#store.deleteCustomKeyStore(customKeyStoreId);
    this.#connections.forget(customKeyStoreId);
  }

  /** Resolves when the store is not CONNECTING or DISCONNECTING. */
  settled(customKeyStoreId: string): Promise<void> {
    return this.#connections.settled(customKeyStoreId);
  }

  connectionState(customKeyStoreId: string): ConnectionState {
    const record = this.#store.getCustomKeyStore(customKeyStoreId);
    if (record === null) throw new KmsError("CustomKeyStoreNotFoundException", `Custom key store ${customKeyStoreId} does not exist`);
    return record.connectionState;
  }

  /** The store's account (NotFound-style checks by the caller), or null. */
  accountOf(customKeyStoreId: string): string | null {
    return this.#store.getCustomKeyStore(customKeyStoreId)?.accountId ?? null;
  }

  /**
   * CreateKey's backing key: AES-256, token, non-extractable, owned by kmsuser, labelled `keyArn`.
   * CustomKeyStoreInvalidStateException when not CONNECTED; CloudHsmClusterInvalidConfigurationException
   * with fewer than 2 active HSMs in 2 zones. Returns the backing key's cluster-wide id (decimal).
   */
  async createBackingKey(customKeyStoreId: string, keyArn: string, notes: TrailNotes): Promise<string> {
    const { record, link } = this.#connections.connected(customKeyStoreId, "CustomKeyStoreInvalidStateException");
    const view = this.#directory.describe(record.cloudHsmClusterId);
    if (view === null || !hasTwoZones(view)) throw new KmsError("CloudHsmClusterInvalidConfigurationException", INVALID_CONFIGURATION);
    let keyId: number;
    try {
      keyId = await link.generateAesKey(keyArn);
    } catch (e) {
      throw operationError(e, link, customKeyStoreId, "generate", "CustomKeyStoreInvalidStateException");
    }
    this.#note(notes, record, String(keyId));
    return String(keyId);
  }

  /** AES-256-GCM in the HSMs (IV from the HSM); ThrottlingException past the store's rate; KMSInvalidStateException when the cluster cannot serve it. */
  async encrypt(customKeyStoreId: string, backingKeyId: string, plaintext: Buffer, aad: Buffer, notes: TrailNotes): Promise<{ iv: Buffer; ciphertext: Buffer }> {
    const { record, link } = this.#connections.connected(customKeyStoreId, "KMSInvalidStateException");
    const keyId = backingKeyNumber(backingKeyId);
    this.#note(notes, record, backingKeyId);
    try {
      return await link.encrypt(keyId, plaintext, aad);
    } catch (e) {
      throw operationError(e, link, customKeyStoreId, "encrypt", "KMSInvalidStateException");
    }
  }

  /** InvalidCiphertextException when the tag does not verify. */
  async decrypt(customKeyStoreId: string, backingKeyId: string, iv: Buffer, ciphertext: Buffer, aad: Buffer, notes: TrailNotes): Promise<Buffer> {
    const { record, link } = this.#connections.connected(customKeyStoreId, "KMSInvalidStateException");
    const keyId = backingKeyNumber(backingKeyId);
    if (!Buffer.isBuffer(iv) || iv.length !== 12 || !Buffer.isBuffer(ciphertext) || ciphertext.length < 16) {
      throw new KmsError("InvalidCiphertextException", "The ciphertext is not one this key store made");
    }
    this.#note(notes, record, backingKeyId);
    try {
      return await link.decrypt(keyId, iv, ciphertext, aad);
    } catch (e) {
      throw operationError(e, link, customKeyStoreId, "decrypt", "KMSInvalidStateException");
    }
  }

  /** GenerateRandom with CustomKeyStoreId: from the cluster's HSMs. */
  async random(customKeyStoreId: string, length: number): Promise<Buffer> {
    const { link } = this.#connections.connected(customKeyStoreId, "CustomKeyStoreInvalidStateException");
    if (!Number.isInteger(length) || length < 1 || length > 1024) throw invalid("numberOfBytes", "Member must have value between 1 and 1024");
    try {
      return await link.random(length);
    } catch (e) {
      throw operationError(e, link, customKeyStoreId, "random", "CustomKeyStoreInvalidStateException");
    }
  }

  /** At the end of a key's waiting period: deletes the backing key if the store is connected (else it stays, orphaned, as AWS's does); true when deleted. */
  async destroyBackingKey(customKeyStoreId: string, backingKeyId: string): Promise<boolean> {
    const link = this.#connections.link(customKeyStoreId);
    if (link === null) return false;
    try {
      await link.destroy(backingKeyNumber(backingKeyId));
      return true;
    } catch {
      return false; // gone already, or the cluster did not answer: orphaned, as AWS leaves it
    }
  }

  /** At start: reconnects the stores that were CONNECTED when KMS stopped. */
  resume(): void {
    this.#connections.resume();
  }

  /** Closes every connection; the stores' recorded states stay (resume() reconnects the CONNECTED ones). */
  close(): Promise<void> {
    return this.#connections.close();
  }

  // ---- internals ----

  #entry(s: CustomKeyStoreRecord): Record<string, unknown> {
    return {
      CustomKeyStoreId: s.customKeyStoreId, CustomKeyStoreName: s.name, CloudHsmClusterId: s.cloudHsmClusterId, TrustAnchorCertificate: s.trustAnchorPem,
      ConnectionState: s.connectionState, ...(s.connectionState === "FAILED" && s.connectionErrorCode ? { ConnectionErrorCode: s.connectionErrorCode } : {}),
      CreationDate: new Date(s.creationDateMs), CustomKeyStoreType: "AWS_CLOUDHSM",
    };
  }

  #owned(accountId: string, customKeyStoreId: unknown): CustomKeyStoreRecord {
    if (typeof customKeyStoreId !== "string" || customKeyStoreId.length < 1 || customKeyStoreId.length > 64) throw invalid("customKeyStoreId", "Member must have length between 1 and 64");
    const record = this.#store.getCustomKeyStore(customKeyStoreId);
    // Another account's store is answered exactly as a missing one.
    if (record === null || record.accountId !== accountId) throw new KmsError("CustomKeyStoreNotFoundException", `Custom key store ${customKeyStoreId} does not exist in this account and Region`);
    return record;
  }

  #passwordIs(record: CustomKeyStoreRecord, password: string): boolean {
    const stored = Buffer.from(openPasswords(this.#fleet, record).current, "utf8");
    const given = Buffer.from(password, "utf8");
    const same = stored.length === given.length && timingSafeEqual(stored, given);
    stored.fill(0);
    return same;
  }

  /**
   * The cluster `clusterId` as `accountId` may use it. A cluster belongs to one account (AWS: it
   * must be in the caller's account); another account's cluster is answered exactly as a missing one.
   */
  #clusterOf(accountId: string, clusterId: string): ClusterView {
    const view = this.#directory.describe(clusterId);
    if (view === null || view.accountId !== accountId) throw new KmsError("CloudHsmClusterNotFoundException", `AWS CloudHSM cluster ${clusterId} was not found`);
    return view;
  }

  /** No other store may use this cluster or one of its lineage (AWS: a cluster sharing its backup history). */
  #requireClusterFree(view: ClusterView, exceptStoreId: string | null): void {
    for (const other of this.#store.allCustomKeyStores()) {
      if (other.customKeyStoreId === exceptStoreId) continue;
      const sameCluster = other.cloudHsmClusterId === view.clusterId;
      const otherView = sameCluster ? null : this.#directory.describe(other.cloudHsmClusterId);
      if (sameCluster || (otherView?.lineageId !== undefined && otherView.lineageId === view.lineageId)) {
        throw new KmsError("CloudHsmClusterInUseException", `AWS CloudHSM cluster ${view.clusterId} (or one sharing its backup history) is already associated with a custom key store`);
      }
    }
  }

  #note(notes: TrailNotes, record: CustomKeyStoreRecord, backingKeyId: string): void {
    Object.assign(notes.additionalEventData, {
      customKeyStoreId: record.customKeyStoreId, clusterId: record.cloudHsmClusterId, backingKeyId, hsmKeyIds: [Number(backingKeyId)],
    });
  }
}

/** A key operation's failure: a state error when the store's link was closed under it (disconnected while in flight), else the cluster's answer mapped. */
function operationError(error: unknown, link: CksLink, customKeyStoreId: string, operation: "encrypt" | "decrypt" | "generate" | "random",
  notConnected: "KMSInvalidStateException" | "CustomKeyStoreInvalidStateException"): KmsError {
  if (link.closed || error instanceof ClusterLinkClosedError) return connectionGoneError(customKeyStoreId, notConnected);
  return keyOperationError(error, operation);
}

function backingKeyNumber(backingKeyId: string): number {
  const n = Number(backingKeyId);
  if (typeof backingKeyId !== "string" || !/^[0-9]{1,16}$/.test(backingKeyId) || !Number.isSafeInteger(n)) {
    throw new KmsError("KMSInternalException", "the KMS key's record names no backing key");
  }
  return n;
}

freezeClass(CustomKeyStores);
