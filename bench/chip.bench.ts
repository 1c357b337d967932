// The chip's benchmark: hsmsim through the pkcs11js-shaped API side by side with
// node:crypto doing the same work and SoftHSMv2 through pkcs11js, in one run; prints ops/s
// and in-run ratios, and checks the targets of issue 2. Run: npm run bench [-- --time MS]
import * as crypto from "node:crypto";

import { Bench } from "tinybench";

import * as P from "../src/index.js";
import { nativeAddon } from "../src/pkcs11/addon.js";
import { type Peer, hsmsimPeer, numberOption, softhsmPeer } from "./peers.js";
import { type RsaPadding, generateRsaKeyPair, importRsaKeyPair, nodeRsaKey, nodeRsaKeyPair, rsaMechanism, tokenSign, tokenVerify } from "./rsa.js";

const timeMs = numberOption("--time", 700);
const only = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1] : "";

const hsmsim = hsmsimPeer();
const softhsm = softhsmPeer();
const peers: Peer[] = typeof softhsm === "string" ? [hsmsim] : [hsmsim, softhsm];
if (typeof softhsm === "string") console.log(`note: ${softhsm}`);

const keyBytes = crypto.randomBytes(32);
const iv = crypto.randomBytes(12);
const P256 = Buffer.from("06082a8648ce3d030107", "hex");

interface PeerKeys { aes: Buffer; hmac: Buffer; ecPrivate: Buffer; ecPublic: Buffer }
const keys = new Map<Peer, PeerKeys>();
for (const peer of peers) {
  const { pkcs11, session } = peer;
  const aes = pkcs11.C_CreateObject(session, [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES }, { type: P.CKA_VALUE, value: keyBytes },
    { type: P.CKA_ENCRYPT, value: true }, { type: P.CKA_DECRYPT, value: true }, { type: P.CKA_TOKEN, value: false },
  ]);
  const hmac = pkcs11.C_CreateObject(session, [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_GENERIC_SECRET }, { type: P.CKA_VALUE, value: keyBytes },
    { type: P.CKA_SIGN, value: true }, { type: P.CKA_VERIFY, value: true }, { type: P.CKA_TOKEN, value: false },
  ]);
  const ec = pkcs11.C_GenerateKeyPair(session, { mechanism: P.CKM_EC_KEY_PAIR_GEN },
    [{ type: P.CKA_EC_PARAMS, value: P256 }, { type: P.CKA_VERIFY, value: true }, { type: P.CKA_TOKEN, value: false }],
    [{ type: P.CKA_SIGN, value: true }, { type: P.CKA_TOKEN, value: false }]);
  keys.set(peer, { aes, hmac, ecPrivate: ec.privateKey, ecPublic: ec.publicKey });
}
const nodeEc = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });

const gcmMechanism: P.Mechanism = { mechanism: P.CKM_AES_GCM, parameter: { type: P.CK_PARAMS_AES_GCM, iv, aad: Buffer.alloc(0), tagBits: 128 } };

interface Row { group: string; task: string; opsPerSecond: number }
const rows: Row[] = [];

interface GroupOptions {
  time?: number;
  iterations?: number;
  /** ops/s as runs ÷ total time (1000 / mean latency) rather than tinybench's mean of per-sample
   *  rates, which fast outliers inflate when latencies spread widely (RSA key generation). */
  perTotalTime?: boolean;
}

async function group(name: string, tasks: Record<string, () => void>, options: GroupOptions = {}): Promise<void> {
  if (only && !name.includes(only)) return;
  const bench = new Bench({ time: options.time ?? timeMs, iterations: options.iterations, warmupTime: 100 });
  for (const [task, fn] of Object.entries(tasks)) bench.add(task, fn);
  await bench.run();
  for (const task of bench.tasks) {
    const result = task.result as { state: string; throughput?: { mean: number }; period?: number; error?: unknown };
    if (result.state !== "completed" || !result.throughput || !result.period) throw new Error(`${name} / ${task.name}: ${String(result.error)}`);
    rows.push({ group: name, task: task.name, opsPerSecond: options.perTotalTime ? 1000 / result.period : result.throughput.mean });
  }
}

for (const size of [64, 1024, 4096, 65536, 1 << 20]) {
  const input = crypto.randomBytes(size);
  const output = Buffer.alloc(size + 16);
  const tasks: Record<string, () => void> = {};
  for (const peer of peers) {
    const k = keys.get(peer)!;
    tasks[peer.name] = () => {
      peer.pkcs11.C_EncryptInit(peer.session, gcmMechanism, k.aes);
      peer.pkcs11.C_Encrypt(peer.session, input, output);
    };
  }
  tasks["node:crypto"] = () => {
    const c = crypto.createCipheriv("aes-256-gcm", keyBytes, iv);
    c.update(input);
    c.final();
    c.getAuthTag();
  };
  if (size === 1 << 20) {
    const raw = nativeAddon();
    tasks["raw OpenSSL"] = () => {
      raw.rawGcmEncryptLoop(keyBytes, iv, input, output, 1);
    };
  }
  await group(`AES-256-GCM encrypt ${size >= 1 << 20 ? "1 MiB" : size >= 1024 ? `${size / 1024} KiB` : `${size} B`}`, tasks);
}

for (const size of [64, 4096]) {
  const input = crypto.randomBytes(size);
  const output = Buffer.alloc(32);
  const tasks: Record<string, () => void> = {};
  for (const peer of peers) {
    const k = keys.get(peer)!;
    tasks[peer.name] = () => {
      peer.pkcs11.C_SignInit(peer.session, { mechanism: P.CKM_SHA256_HMAC }, k.hmac);
      peer.pkcs11.C_Sign(peer.session, input, output);
    };
  }
  tasks["node:crypto"] = () => {
    crypto.createHmac("sha256", keyBytes).update(input).digest();
  };
  await group(`HMAC-SHA256 sign ${size === 64 ? "64 B" : "4 KiB"}`, tasks);
}

{
  // CKM_ECDSA over a SHA-256 digest (SoftHSMv2 2.6 has no CKM_ECDSA_SHA256); node:crypto hashes 32 bytes first.
  const digest = crypto.createHash("sha256").update("benchmark").digest();
  const signature = Buffer.alloc(64);
  const sign: Record<string, () => void> = {}, verify: Record<string, () => void> = {};
  const signatures = new Map<Peer, Buffer>();
  for (const peer of peers) {
    const k = keys.get(peer)!;
    peer.pkcs11.C_SignInit(peer.session, { mechanism: P.CKM_ECDSA }, k.ecPrivate);
    signatures.set(peer, Buffer.from(peer.pkcs11.C_Sign(peer.session, digest, Buffer.alloc(64))));
    sign[peer.name] = () => {
      peer.pkcs11.C_SignInit(peer.session, { mechanism: P.CKM_ECDSA }, k.ecPrivate);
      peer.pkcs11.C_Sign(peer.session, digest, signature);
    };
    verify[peer.name] = () => {
      peer.pkcs11.C_VerifyInit(peer.session, { mechanism: P.CKM_ECDSA }, k.ecPublic);
      peer.pkcs11.C_Verify(peer.session, digest, signatures.get(peer)!);
    };
  }
  const nodeSignature = crypto.sign("sha256", digest, { key: nodeEc.privateKey, dsaEncoding: "ieee-p1363" });
  sign["node:crypto"] = () => {
    crypto.sign("sha256", digest, { key: nodeEc.privateKey, dsaEncoding: "ieee-p1363" });
  };
  verify["node:crypto"] = () => {
    crypto.verify("sha256", digest, { key: nodeEc.publicKey, dsaEncoding: "ieee-p1363" }, nodeSignature);
  };
  await group("ECDSA P-256 sign", sign);
  await group("ECDSA P-256 verify", verify);
}

{
  // RSA-2048 with one key made by node:crypto and imported into each token, so all three sign with
  // the same key; the tokens hash the message (CKM_SHA256_RSA_PKCS[_PSS]) as crypto.sign("sha256") does.
  const nodeRsa = nodeRsaKeyPair();
  const message = Buffer.from("an RSA-2048 benchmark message, hashed with SHA-256 by the signer");
  for (const padding of ["pkcs1", "pss"] as RsaPadding[]) {
    const mechanism = rsaMechanism(padding);
    const sign: Record<string, () => void> = {}, verify: Record<string, () => void> = {};
    const nodeSignature = crypto.sign("sha256", message, nodeRsaKey(nodeRsa.privateKey, padding));
    for (const peer of peers) {
      const { pkcs11, session } = peer;
      const key = importRsaKeyPair(pkcs11, session, nodeRsa);
      // The bench's own cross-check: each peer's signature verifies with node:crypto, node's on the peer.
      const signature = tokenSign(pkcs11, session, mechanism, key.privateKey, message);
      if (!crypto.verify("sha256", message, nodeRsaKey(nodeRsa.publicKey, padding), signature) ||
          !tokenVerify(pkcs11, session, mechanism, key.publicKey, message, nodeSignature))
        throw new Error(`${peer.name}: RSA ${padding} signatures do not cross-verify with node:crypto`);
      const out = Buffer.alloc(256);
      sign[peer.name] = () => {
        pkcs11.C_SignInit(session, mechanism, key.privateKey);
        pkcs11.C_Sign(session, message, out);
      };
      verify[peer.name] = () => {
        pkcs11.C_VerifyInit(session, mechanism, key.publicKey);
        if (!pkcs11.C_Verify(session, message, signature)) throw new Error(`${peer.name}: RSA verify failed`);
      };
    }
    sign["node:crypto"] = () => void crypto.sign("sha256", message, nodeRsaKey(nodeRsa.privateKey, padding));
    verify["node:crypto"] = () => {
      if (!crypto.verify("sha256", message, nodeRsaKey(nodeRsa.publicKey, padding), nodeSignature)) throw new Error("node:crypto: RSA verify failed");
    };
    const label = padding === "pkcs1" ? "PKCS#1 v1.5" : "PSS";
    await group(`RSA-2048 sign ${label} (SHA-256)`, sign);
    await group(`RSA-2048 verify ${label} (SHA-256)`, verify);
  }
  // Key generation takes hundreds of ms with a wide spread (the prime search is random): a longer
  // budget and at least 30 runs per peer, rated by total time.
  const keygen: Record<string, () => void> = {};
  for (const peer of peers) {
    keygen[peer.name] = () => {
      const pair = generateRsaKeyPair(peer.pkcs11, peer.session);
      peer.pkcs11.C_DestroyObject(peer.session, pair.privateKey);
      peer.pkcs11.C_DestroyObject(peer.session, pair.publicKey);
    };
  }
  keygen["node:crypto"] = () => void nodeRsaKeyPair();
  await group("RSA-2048 key-pair generation (+ destroy)", keygen, { time: Math.max(10 * timeMs, 5000), iterations: 30, perTotalTime: true });
}

for (const size of [32, 4096]) {
  const out = Buffer.alloc(size);
  const tasks: Record<string, () => void> = {};
  for (const peer of peers) tasks[peer.name] = () => void peer.pkcs11.C_GenerateRandom(peer.session, out);
  tasks["node:crypto"] = () => void crypto.randomFillSync(out);
  await group(`C_GenerateRandom ${size === 32 ? "32 B" : "4 KiB"}`, tasks);
}

{
  const tasks: Record<string, () => void> = {};
  for (const peer of peers) {
    tasks[peer.name] = () => {
      const key = peer.pkcs11.C_GenerateKey(peer.session, { mechanism: P.CKM_AES_KEY_GEN },
        [{ type: P.CKA_VALUE_LEN, value: 32 }, { type: P.CKA_TOKEN, value: false }, { type: P.CKA_ENCRYPT, value: true }]);
      peer.pkcs11.C_DestroyObject(peer.session, key);
    };
  }
  tasks["node:crypto"] = () => void crypto.generateKeySync("aes", { length: 256 });
  await group("C_GenerateKey AES-256 (+ destroy)", tasks);
}

for (const peer of peers) peer.close();

// ---- Report ----
const byGroup = new Map<string, Map<string, number>>();
for (const row of rows) {
  if (!byGroup.has(row.group)) byGroup.set(row.group, new Map());
  byGroup.get(row.group)!.set(row.task, row.opsPerSecond);
}
const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(1));
const ratio = (a?: number, b?: number) => (a && b ? `${(a / b).toFixed(2)}x` : "—");
console.log(`\n| operation | hsmsim ops/s | SoftHSMv2 ops/s | node:crypto ops/s | hsmsim ÷ SoftHSMv2 | hsmsim ÷ node:crypto |`);
console.log(`|---|---:|---:|---:|---:|---:|`);
for (const [name, tasks] of byGroup) {
  const h = tasks.get("hsmsim"), s = tasks.get("SoftHSMv2"), n = tasks.get("node:crypto");
  console.log(`| ${name} | ${fmt(h ?? 0)} | ${s ? fmt(s) : "—"} | ${n ? fmt(n) : "—"} | ${ratio(h, s)} | ${ratio(h, n)} |`);
}
const raw = byGroup.get("AES-256-GCM encrypt 1 MiB")?.get("raw OpenSSL");
if (raw) console.log(`\nAES-256-GCM 1 MiB: raw OpenSSL loop ${fmt(raw)} ops/s; hsmsim reaches ${(100 * (byGroup.get("AES-256-GCM encrypt 1 MiB")!.get("hsmsim")! / raw)).toFixed(1)}% of it`);

const targets: [string, string, string, number][] = [
  ["GCM 4 KiB vs SoftHSMv2", "AES-256-GCM encrypt 4 KiB", "SoftHSMv2", 5],
  ["GCM 4 KiB vs node:crypto", "AES-256-GCM encrypt 4 KiB", "node:crypto", 3],
  ["GCM 64 B vs SoftHSMv2", "AES-256-GCM encrypt 64 B", "SoftHSMv2", 5],
  ["GCM 1 MiB vs raw OpenSSL", "AES-256-GCM encrypt 1 MiB", "raw OpenSSL", 0.8],
  ["HMAC 64 B vs SoftHSMv2", "HMAC-SHA256 sign 64 B", "SoftHSMv2", 3],
  ["ECDSA sign vs SoftHSMv2", "ECDSA P-256 sign", "SoftHSMv2", 1.3],
  ["random 32 B vs SoftHSMv2", "C_GenerateRandom 32 B", "SoftHSMv2", 1.3],
];
console.log("\nTargets (in-run ratios):");
for (const [label, groupName, peer, want] of targets) {
  const tasks = byGroup.get(groupName);
  const h = tasks?.get("hsmsim"), other = tasks?.get(peer);
  if (!h || !other) {
    console.log(`  ${label}: not measured`);
    continue;
  }
  const got = h / other;
  console.log(`  ${got >= want ? "MET " : "MISS"} ${label}: ${got.toFixed(2)}x (target ${want}x)`);
}
