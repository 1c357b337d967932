// A custom key store over a real-time cluster (TLS on loopback, HSMs in a worker thread), found
// through a cluster folder as `hsmsim up` writes it: connect as kmsuser, keys and AES-GCM in the
// HSMs through the remote client's non-blocking calls, then the HSMs killed.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";

import { connect } from "../../src/client/remote/connect.js";
import { folderClusterDirectory } from "../../src/kms/cluster-directory.js";
import { CustomKeyStores } from "../../src/kms/custom-key-stores.js";
import { KmsError } from "../../src/kms/errors.js";
import { ClusterFolder, type ClusterFile } from "../../src/net/cluster-folder.js";
import { CO, type RealtimeCluster, startRealtimeCluster } from "../client/realtime-cluster.js";
import { counterBytes, fakeFleet, fakeStore, notes } from "./cks-fakes.js";

const ACCOUNT = "111122223333";
const CLUSTER_ID = "cluster-0123456789ab";
const PASSWORD = "kmsuser-pass-1";

let cluster: RealtimeCluster;
let dir: string;

function writeClusterFile(states: string[]): void {
  const [host, port] = cluster.addresses[0].split(":");
  const file: ClusterFile = {
    version: 1, clusterId: CLUSTER_ID, lineageId: "lineage-0123456789ab", state: "ACTIVE", hsmType: "hsm2m.medium", zones: ["az-a", "az-b"],
    nextOrigin: cluster.addresses.length + 1, baseAddress: host, port: Number(port), mtls: false,
    hsms: cluster.addresses.map((address, i) => ({
      hsmId: `hsm-${String(i + 1).padStart(16, "0")}`, origin: i + 1, address, availabilityZone: ["az-a", "az-b"][i % 2], state: states[i] as "ACTIVE", folder: `hsms/${i + 1}`,
    })),
  };
  new ClusterFolder(dir).write(file);
}

beforeAll(async () => {
  cluster = await startRealtimeCluster(2);
  dir = mkdtempSync(join(tmpdir(), "hsmsim-cks-"));
  mkdirSync(join(dir, "pki"));
  writeFileSync(join(dir, "pki", "customerCA.crt"), cluster.trustAnchorPem);
  writeClusterFile(["ACTIVE", "ACTIVE"]);
  const setup = connect({ address: cluster.addresses[0], trustAnchor: cluster.trustAnchorPath });
  try {
    setup.console(CO.username, CO.password).createUser("kmsuser", "CU", PASSWORD);
  } finally {
    setup.close();
  }
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it("connects over TLS, keeps keys and AES-GCM in the HSMs, then reports the HSMs killed", async () => {
  const store = fakeStore();
  const directory = folderClusterDirectory([join(dir, "missing"), dir]);
  expect(directory.describe(CLUSTER_ID)?.hsms.map((h) => h.availabilityZone)).toEqual(["az-a", "az-b"]);
  expect(directory.describe("cluster-ffffffffffff")).toBeNull();
  // The folders' clusters belong to one account: 111122223333 unless told otherwise.
  expect(directory.describe(CLUSTER_ID)?.accountId).toBe("111122223333");
  const elsewhere = folderClusterDirectory([dir], { accountId: "444455556666" });
  expect(elsewhere.describe(CLUSTER_ID)?.accountId).toBe("444455556666");
  const theirs = new CustomKeyStores({ store: fakeStore(), fleet: fakeFleet(), directory: elsewhere, nowMs: () => 0, randomBytes: counterBytes() });
  expect(() => theirs.create(ACCOUNT, { CustomKeyStoreName: "Realtime", CloudHsmClusterId: CLUSTER_ID, TrustAnchorCertificate: cluster.trustAnchorPem, KeyStorePassword: PASSWORD }))
    .toThrow(expect.objectContaining({ code: "CloudHsmClusterNotFoundException" }));
  const stores = new CustomKeyStores({ store, fleet: fakeFleet(), directory, nowMs: () => 0, randomBytes: counterBytes() });
  const { CustomKeyStoreId: id } = stores.create(ACCOUNT, { CustomKeyStoreName: "Realtime", CloudHsmClusterId: CLUSTER_ID, TrustAnchorCertificate: cluster.trustAnchorPem, KeyStorePassword: PASSWORD });
  stores.connect(ACCOUNT, id);
  expect(stores.connectionState(id)).toBe("CONNECTING");
  await stores.settled(id);
  expect(stores.connectionState(id)).toBe("CONNECTED");
  // Rotated: the password the store was created with no longer logs in.
  const probe = connect({ address: cluster.addresses[1], trustAnchor: cluster.trustAnchorPath });
  try {
    expect(() => probe.login("kmsuser", PASSWORD)).toThrow(/CKR_PIN_INCORRECT/);
  } finally {
    probe.close();
  }

  const backing = await stores.createBackingKey(id, "arn:aws:kms:us-east-1:111122223333:key/realtime", notes());
  const aad = Buffer.from("aad");
  // Many in flight at once on the one connection (the calls do not block the event loop).
  const plaintexts = Array.from({ length: 16 }, (_, i) => Buffer.from(`message ${i}`));
  const sealed = await Promise.all(plaintexts.map((p) => stores.encrypt(id, backing, p, aad, notes())));
  const opened = await Promise.all(sealed.map((s) => stores.decrypt(id, backing, s.iv, s.ciphertext, aad, notes())));
  expect(opened).toEqual(plaintexts);
  expect(new Set(sealed.map((s) => s.iv.toString("hex"))).size).toBe(16);

  await cluster.kill(0);
  await cluster.kill(1);
  const failed = await stores.encrypt(id, backing, Buffer.from("x"), aad, notes()).then(() => null, (e: unknown) => e);
  expect(failed).toBeInstanceOf(KmsError);
  expect((failed as KmsError).code).toBe("KMSInvalidStateException");
  expect(stores.connectionState(id)).toBe("CONNECTED");

  await stores.disconnect(ACCOUNT, id);
  stores.connect(ACCOUNT, id);
  await stores.settled(id);
  expect(store.rows.get(id)!.connectionErrorCode).toBe("NETWORK_ERRORS");
  await stores.disconnect(ACCOUNT, id);
  writeClusterFile(["DEGRADED", "DEGRADED"]); // what the supervisor writes once it sees them dead
  stores.connect(ACCOUNT, id);
  await stores.settled(id);
  expect(store.rows.get(id)!.connectionErrorCode).toBe("INSUFFICIENT_CLOUDHSM_HSMS");
  await stores.close();
}, 60_000);
