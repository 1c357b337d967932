// Small stand-ins for the parts of KMS the custom key store module uses but does not own: the
// store's custom-key-store rows (in memory) and the fleet's sealing (AES-256-GCM under a key
// made here). Enough to test custom-key-stores.ts alone.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

import { KmsError } from "../../src/kms/errors.js";
import type { Fleet } from "../../src/kms/fleet.js";
import type { KmsStore } from "../../src/kms/store.js";
import type { CustomKeyStoreRecord, TrailNotes } from "../../src/kms/types.js";

export function fakeStore(): KmsStore & { rows: Map<string, CustomKeyStoreRecord>; history: { id: string; state: string; code: string | null }[] } {
  const rows = new Map<string, CustomKeyStoreRecord>();
  const history: { id: string; state: string; code: string | null }[] = [];
  const copy = (r: CustomKeyStoreRecord) => ({ ...r, sealedPassword: Buffer.from(r.sealedPassword) });
  return {
    rows, history,
    getCustomKeyStore: (id: string) => (rows.has(id) ? copy(rows.get(id)!) : null),
    listCustomKeyStores: (accountId: string) => [...rows.values()].filter((r) => r.accountId === accountId).map(copy),
    allCustomKeyStores: () => [...rows.values()].map(copy),
    putCustomKeyStore: (r: CustomKeyStoreRecord) => {
      const previous = rows.get(r.customKeyStoreId);
      if (!previous || previous.connectionState !== r.connectionState || previous.connectionErrorCode !== r.connectionErrorCode) {
        history.push({ id: r.customKeyStoreId, state: r.connectionState, code: r.connectionErrorCode });
      }
      rows.set(r.customKeyStoreId, copy(r));
    },
    deleteCustomKeyStore: (id: string) => void rows.delete(id),
  } as unknown as KmsStore & { rows: typeof rows; history: typeof history };
}

export function fakeFleet(): Fleet & { sealed: string[] } {
  const key = randomBytes(32);
  const sealed: string[] = [];
  return {
    sealed,
    seal(data: Buffer, purpose: string): Buffer {
      sealed.push(purpose);
      const iv = randomBytes(12);
      const c = createCipheriv("aes-256-gcm", key, iv).setAAD(Buffer.from(purpose));
      const body = Buffer.concat([c.update(data), c.final()]);
      return Buffer.concat([iv, body, c.getAuthTag()]);
    },
    unseal(blob: Buffer, purpose: string): Buffer {
      try {
        const d = createDecipheriv("aes-256-gcm", key, blob.subarray(0, 12)).setAAD(Buffer.from(purpose));
        d.setAuthTag(blob.subarray(blob.length - 16));
        return Buffer.concat([d.update(blob.subarray(12, blob.length - 16)), d.final()]);
      } catch {
        throw new KmsError("KMSInternalException", "not sealed by this fleet for this purpose");
      }
    },
  } as unknown as Fleet & { sealed: string[] };
}

export function notes(): TrailNotes {
  return { resources: [], additionalEventData: {} };
}

/** Counter-based ids, deterministic. */
export function counterBytes(): (n: number) => Buffer {
  let i = 0;
  return (n) => {
    const b = Buffer.alloc(n);
    b.writeUInt32BE(++i, n - 4);
    return b;
  };
}
