// The demo's KMS part: the KMS endpoint in this process over a simulated 3-HSM cluster, driven
// through the real AWS SDK: a custom key store over the cluster, a key whose material is in the
// HSMs, a SaaS provider in another account let in by a grant under an encryption-context
// constraint, then cut off by revoking it; the key store disconnected, its key Unavailable.
import { CO_DEMO, KMS_DEMO_ACCOUNTS } from "./kms-demo-accounts.js";
import { simClusterDirectory, simTrustAnchorPem } from "../kms/cluster-directory.js";
import { startKms } from "../kms/endpoint.js";
import { World } from "../sim/world.js";
import type { Output } from "./format.js";

type Sdk = typeof import("@aws-sdk/client-kms");

async function loadSdk(): Promise<Sdk | null> {
  try {
    return await import("@aws-sdk/client-kms");
  } catch {
    return null;
  }
}

/** The exception name an SDK call raised, or "ok". */
async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return "ok";
  } catch (e) {
    return (e as Error).name;
  }
}

export async function runKmsDemo(out: Output): Promise<void> {
  out.step("KMS over the cluster: a custom key store in the HSMs, a SaaS provider let in by a grant, then cut off");
  // The SDK warns once that its releases after January 2027 need Node 22: true, and not this demo's news.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const sdk = await loadSdk();
  if (sdk === null) {
    out.line("skipped: @aws-sdk/client-kms is not installed (npm install @aws-sdk/client-kms to run this part)");
    return;
  }
  const world = new World({ seed: "kms-demo", cluster: { hsmCount: 3 } });
  const kms = await startKms({ dataDir: null, credentials: KMS_DEMO_ACCOUNTS, clusters: simClusterDirectory(world), fleetSeed: "6b6d732d64656d6f" });
  const [owner, saas] = KMS_DEMO_ACCOUNTS.map((who) => new sdk.KMSClient({
    endpoint: kms.url, region: "us-east-1", maxAttempts: 1, credentials: { accessKeyId: who.accessKeyId, secretAccessKey: who.secretAccessKey },
  }));
  try {
    world.cluster.initialize();
    const setup = world.connect("customer-admin");
    setup.console("admin", "password").changePassword("admin", CO_DEMO.password);
    setup.console("admin", CO_DEMO.password).createUser("kmsuser", "CU", "kmsuser-demo-1");
    const { CustomKeyStoreId } = await owner.send(new sdk.CreateCustomKeyStoreCommand({
      CustomKeyStoreName: "customer-hsms", CloudHsmClusterId: world.cluster.clusterId, TrustAnchorCertificate: simTrustAnchorPem(world), KeyStorePassword: "kmsuser-demo-1",
    }));
    await owner.send(new sdk.ConnectCustomKeyStoreCommand({ CustomKeyStoreId }));
    await kms.settled(CustomKeyStoreId!);
    const store = (await owner.send(new sdk.DescribeCustomKeyStoresCommand({ CustomKeyStoreId }))).CustomKeyStores![0];
    out.line(`${kms.url}: key store ${CustomKeyStoreId} over cluster ${world.cluster.clusterId} (3 HSMs, 3 zones): ${store.ConnectionState}; kmsuser's password rotated by KMS`);
    const key = (await owner.send(new sdk.CreateKeyCommand({ Origin: "AWS_CLOUDHSM", CustomKeyStoreId, Description: "customer data key" }))).KeyMetadata!;
    out.line(`CreateKey: ${key.Arn} — its material an AES-256 token key of kmsuser in the HSMs`);
    const context = { tenant: "acme" };
    const grant = await owner.send(new sdk.CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: KMS_DEMO_ACCOUNTS[1].arn, Operations: ["Encrypt", "Decrypt"],
      Constraints: { EncryptionContextSubset: context } }));
    const sealed = await saas.send(new sdk.EncryptCommand({ KeyId: key.Arn, Plaintext: Buffer.from("a customer's record"), EncryptionContext: context }));
    const opened = await saas.send(new sdk.DecryptCommand({ CiphertextBlob: sealed.CiphertextBlob, EncryptionContext: context }));
    out.line(`SaaS provider (account ${KMS_DEMO_ACCOUNTS[1].accountId}) with the grant: Encrypt and Decrypt in the HSMs → "${Buffer.from(opened.Plaintext!).toString()}"`);
    out.line(`  without the grant's context: ${await outcome(saas.send(new sdk.EncryptCommand({ KeyId: key.Arn, Plaintext: Buffer.from("x"), EncryptionContext: { tenant: "other" } })))}`);
    await owner.send(new sdk.RevokeGrantCommand({ KeyId: key.KeyId, GrantId: grant.GrantId }));
    out.line(`customer revokes the grant; the provider's next Decrypt: ${await outcome(saas.send(new sdk.DecryptCommand({ CiphertextBlob: sealed.CiphertextBlob, EncryptionContext: context })))}`);
    await owner.send(new sdk.DisconnectCustomKeyStoreCommand({ CustomKeyStoreId }));
    const state = (await owner.send(new sdk.DescribeKeyCommand({ KeyId: key.KeyId }))).KeyMetadata!.KeyState;
    out.line(`customer disconnects the key store: key ${state}; its own Decrypt: ${await outcome(owner.send(new sdk.DecryptCommand({ CiphertextBlob: sealed.CiphertextBlob, EncryptionContext: context })))}`);
    out.line("for real: hsmsim up --kms (the endpoint as a process beside the HSMs); hsmsim audit --kms DATA --request ID");
  } finally {
    owner.destroy();
    saas.destroy();
    await kms.close();
    world.dispose();
  }
}
