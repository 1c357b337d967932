// CloudHSM key stores: KMS keys whose material is a non-extractable AES-256 token key owned by
// kmsuser in the customer's cluster, used through the cluster's client. The store's connection
// (states DISCONNECTED → CONNECTING → CONNECTED | FAILED, DISCONNECTING) and its error codes
// come from the real cluster: kmsuser's login (a wrong password counts toward its lockout), the
// HSMs that answer and their zones. Each store is limited to 1,800 requests a second. [helper: cks]
import type { ClusterDirectory } from "./cluster-directory.js";
import type { Fleet } from "./fleet.js";
import type { KmsStore } from "./store.js";
import type { ConnectionState, TrailNotes } from "./types.js";

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

export class CustomKeyStores {
  constructor(options: CustomKeyStoresOptions) {
    void options;
    throw new Error("not built yet");
  }

  /** CreateCustomKeyStore (CloudHSM type): checks the cluster (found, ACTIVE, 2 HSMs in 2 zones, trust anchor, not in use) and the name; returns the id. */
  create(accountId: string, input: Record<string, unknown>): { CustomKeyStoreId: string } { void accountId, input; throw new Error("not built yet"); }
  /** DescribeCustomKeyStores, AWS's output shape. */
  describe(accountId: string, input: Record<string, unknown>): Record<string, unknown> { void accountId, input; throw new Error("not built yet"); }
  /** ConnectCustomKeyStore: CONNECTING at once; the connection proceeds in the background (settled() waits for it). */
  connect(accountId: string, customKeyStoreId: string): void { void accountId, customKeyStoreId; throw new Error("not built yet"); }
  disconnect(accountId: string, customKeyStoreId: string): Promise<void> { void accountId, customKeyStoreId; throw new Error("not built yet"); }
  update(accountId: string, input: Record<string, unknown>): void { void accountId, input; throw new Error("not built yet"); }
  /** DeleteCustomKeyStore: `keyCount` is how many KMS keys the store still has (CustomKeyStoreHasCMKsException when > 0). */
  delete(accountId: string, customKeyStoreId: string, keyCount: number): void { void accountId, customKeyStoreId, keyCount; throw new Error("not built yet"); }
  /** Resolves when the store is not CONNECTING or DISCONNECTING. */
  settled(customKeyStoreId: string): Promise<void> { void customKeyStoreId; throw new Error("not built yet"); }
  connectionState(customKeyStoreId: string): ConnectionState { void customKeyStoreId; throw new Error("not built yet"); }
  /** The store's account (NotFound-style checks by the caller), or null. */
  accountOf(customKeyStoreId: string): string | null { void customKeyStoreId; throw new Error("not built yet"); }

  /**
   * CreateKey's backing key: AES-256, token, non-extractable, owned by kmsuser, labelled `keyArn`.
   * CustomKeyStoreInvalidStateException when not CONNECTED; CloudHsmClusterInvalidConfigurationException
   * with fewer than 2 active HSMs in 2 zones. Returns the backing key's cluster-wide id (decimal).
   */
  createBackingKey(customKeyStoreId: string, keyArn: string, notes: TrailNotes): Promise<string> { void customKeyStoreId, keyArn, notes; throw new Error("not built yet"); }
  /** AES-256-GCM in the HSMs (IV from the HSM); ThrottlingException past the store's rate; KMSInvalidStateException when the cluster cannot serve it. */
  encrypt(customKeyStoreId: string, backingKeyId: string, plaintext: Buffer, aad: Buffer, notes: TrailNotes): Promise<{ iv: Buffer; ciphertext: Buffer }> { void customKeyStoreId, backingKeyId, plaintext, aad, notes; throw new Error("not built yet"); }
  /** InvalidCiphertextException when the tag does not verify. */
  decrypt(customKeyStoreId: string, backingKeyId: string, iv: Buffer, ciphertext: Buffer, aad: Buffer, notes: TrailNotes): Promise<Buffer> { void customKeyStoreId, backingKeyId, iv, ciphertext, aad, notes; throw new Error("not built yet"); }
  /** GenerateRandom with CustomKeyStoreId: from the cluster's HSMs. */
  random(customKeyStoreId: string, length: number): Promise<Buffer> { void customKeyStoreId, length; throw new Error("not built yet"); }
  /** At the end of a key's waiting period: deletes the backing key if the store is connected (else it stays, orphaned, as AWS's does); true when deleted. */
  destroyBackingKey(customKeyStoreId: string, backingKeyId: string): Promise<boolean> { void customKeyStoreId, backingKeyId; throw new Error("not built yet"); }
  /** At start: reconnects the stores that were CONNECTED when KMS stopped. */
  resume(): void { throw new Error("not built yet"); }
  close(): Promise<void> { throw new Error("not built yet"); }
}
