// Custom-key-store Encrypt/Decrypt through CustomKeyStores over
// a 2-HSM real-time cluster, sequential and 32 in flight. Run: npx tsx bench/kms-custom-key-store.ts
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { connect } from "../src/client/remote/connect.js";
import { folderClusterDirectory } from "../src/kms/cluster-directory.js";
import { CustomKeyStores } from "../src/kms/custom-key-stores.js";
import { ClusterFolder } from "../src/net/cluster-folder.js";
import { CO, startRealtimeCluster } from "../test/client/realtime-cluster.js";
import { counterBytes, fakeFleet, fakeStore, notes } from "../test/kms/cks-fakes.js";

const cluster = await startRealtimeCluster(2);
const dir = mkdtempSync(join(tmpdir(), "hsmsim-cks-measure-"));
try {
  mkdirSync(join(dir, "pki"));
  writeFileSync(join(dir, "pki", "customerCA.crt"), cluster.trustAnchorPem);
  const [host, port] = cluster.addresses[0].split(":");
  new ClusterFolder(dir).write({ version: 1, clusterId: "cluster-0123456789ab", lineageId: "lineage-0123456789ab", state: "ACTIVE", hsmType: "hsm2m.medium",
    zones: ["az-a", "az-b"], nextOrigin: 3, baseAddress: host, port: Number(port), mtls: false,
    hsms: cluster.addresses.map((address, i) => ({ hsmId: `hsm-${String(i + 1).padStart(16, "0")}`, origin: i + 1, address, availabilityZone: ["az-a", "az-b"][i], state: "ACTIVE" as const, folder: `hsms/${i + 1}` })) });
  const setup = connect({ address: cluster.addresses[0], trustAnchor: cluster.trustAnchorPath });
  setup.console(CO.username, CO.password).createUser("kmsuser", "CU", "kmsuser-pass-1");
  setup.close();
  const stores = new CustomKeyStores({ store: fakeStore(), fleet: fakeFleet(), directory: folderClusterDirectory([dir]), nowMs: () => performance.now(), randomBytes: counterBytes(), requestsPerSecond: 1e9 });
  const { CustomKeyStoreId: id } = stores.create("111122223333", { CustomKeyStoreName: "m", CloudHsmClusterId: "cluster-0123456789ab", TrustAnchorCertificate: cluster.trustAnchorPem, KeyStorePassword: "kmsuser-pass-1" });
  stores.connect("111122223333", id);
  await stores.settled(id);
  const key = await stores.createBackingKey(id, "arn:aws:kms:us-east-1:111122223333:key/m", notes());
  const pt = Buffer.alloc(32, 7), aad = Buffer.from("ctx");
  const n = 2_000;
  for (const inFlight of [1, 32]) {
    let t = performance.now();
    const sealed: { iv: Buffer; ciphertext: Buffer }[] = [];
    for (let i = 0; i < n; i += inFlight) sealed.push(...await Promise.all(Array.from({ length: inFlight }, () => stores.encrypt(id, key, pt, aad, notes()))));
    const enc = n / ((performance.now() - t) / 1000);
    t = performance.now();
    for (let i = 0; i < n; i += inFlight) await Promise.all(sealed.slice(i, i + inFlight).map((s) => stores.decrypt(id, key, s.iv, s.ciphertext, aad, notes())));
    const dec = n / ((performance.now() - t) / 1000);
    console.log(`in flight ${inFlight}: encrypt ${enc.toFixed(0)}/s, decrypt ${dec.toFixed(0)}/s`);
  }
  await stores.close();
} finally {
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
