// The remote client's costs, side by side: the same calls in-process (the chip), through the
// bridge alone (the worker hosting a memory chip: thread hop + Atomics.wait + structured clone),
// and against a real-time cluster over TLS (HSMs in a worker thread of this process, so both
// ends share this machine's cores). Run: npx tsx bench/remote.bench.ts [hsms=2] [seconds=1]
import { RemoteLink } from "../src/client/remote/link.js";
import { load } from "../src/index.js";
import * as C from "../src/pkcs11/constants.js";
import { PKCS11 } from "../src/pkcs11/pkcs11.js";
import { openUserSession } from "../src/pkcs11/setup.js";
import { ALICE, startRealtimeCluster } from "../test/client/realtime-cluster.js";

const hsmCount = Number(process.argv[2] ?? 2);
const seconds = Number(process.argv[3] ?? 1);

interface Row { name: string; opsPerSec: number; p50Us: number; p99Us: number }
const rows: Row[] = [];

function measure(name: string, op: () => void): void {
  for (let i = 0; i < 50; i++) op(); // warm up
  const samples: number[] = [];
  const endMs = performance.now() + seconds * 1000;
  while (performance.now() < endMs) {
    const t = performance.now();
    op();
    samples.push((performance.now() - t) * 1000);
  }
  samples.sort((a, b) => a - b);
  const total = samples.reduce((a, b) => a + b, 0);
  rows.push({ name, opsPerSec: Math.round(samples.length / (total / 1e6)), p50Us: Math.round(samples[samples.length >> 1]), p99Us: Math.round(samples[Math.floor(samples.length * 0.99)]) });
}

async function measureInFlight(name: string, inFlight: number, op: () => Promise<unknown>): Promise<void> {
  let done = 0;
  const endMs = performance.now() + seconds * 1000;
  const startMs = performance.now();
  const lane = async () => {
    while (performance.now() < endMs) {
      await op();
      done++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  rows.push({ name, opsPerSec: Math.round(done / ((performance.now() - startMs) / 1000)), p50Us: NaN, p99Us: NaN });
}

type Setup = { pkcs11: PKCS11; session: Buffer };

function hmacKey({ pkcs11, session }: Setup): Buffer {
  return pkcs11.C_GenerateKey(session, { mechanism: C.CKM_GENERIC_SECRET_KEY_GEN }, [
    { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }, { type: C.CKA_KEY_TYPE, value: C.CKK_GENERIC_SECRET }, { type: C.CKA_VALUE_LEN, value: 32 },
    { type: C.CKA_SIGN, value: true }, { type: C.CKA_TOKEN, value: false },
  ]);
}
function aesKey({ pkcs11, session }: Setup): Buffer {
  return pkcs11.C_GenerateKey(session, { mechanism: C.CKM_AES_KEY_GEN }, [
    { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }, { type: C.CKA_KEY_TYPE, value: C.CKK_AES }, { type: C.CKA_VALUE_LEN, value: 32 },
    { type: C.CKA_ENCRYPT, value: true }, { type: C.CKA_TOKEN, value: false },
  ]);
}
function ecKey({ pkcs11, session }: Setup): Buffer {
  return pkcs11.C_GenerateKeyPair(session, { mechanism: C.CKM_EC_KEY_PAIR_GEN },
    [{ type: C.CKA_EC_PARAMS, value: Buffer.from("06082a8648ce3d030107", "hex") }, { type: C.CKA_TOKEN, value: false }],
    [{ type: C.CKA_SIGN, value: true }, { type: C.CKA_TOKEN, value: false }]).privateKey;
}

function suite(label: string, s: Setup): void {
  const { pkcs11, session } = s;
  const hmac = hmacKey(s);
  const aes = aesKey(s);
  const ec = ecKey(s);
  const random = Buffer.alloc(32);
  const mac = Buffer.alloc(32);
  const data64 = Buffer.alloc(64, 1);
  const plain4k = Buffer.alloc(4096, 2);
  const sealed = Buffer.alloc(4096 + 16);
  const signature = Buffer.alloc(64);
  const gcm = { mechanism: C.CKM_AES_GCM, parameter: { type: C.CK_PARAMS_AES_GCM, iv: Buffer.alloc(12, 3), tagBits: 128 } };
  measure(`${label}: C_GetSessionInfo`, () => pkcs11.C_GetSessionInfo(session));
  measure(`${label}: C_GenerateRandom 32 B`, () => pkcs11.C_GenerateRandom(session, random));
  measure(`${label}: HMAC-SHA256 64 B (SignInit+Sign)`, () => {
    pkcs11.C_SignInit(session, { mechanism: C.CKM_SHA256_HMAC }, hmac);
    pkcs11.C_Sign(session, data64, mac);
  });
  measure(`${label}: AES-GCM 4 KiB (EncryptInit+Encrypt)`, () => {
    pkcs11.C_EncryptInit(session, gcm, aes);
    pkcs11.C_Encrypt(session, plain4k, sealed);
  });
  measure(`${label}: ECDSA P-256 sign (SignInit+Sign)`, () => {
    pkcs11.C_SignInit(session, { mechanism: C.CKM_ECDSA_SHA256 }, ec);
    pkcs11.C_Sign(session, data64, signature);
  });
}

async function asyncSuite(label: string, pkcs11: PKCS11, credentials: string | null, s: Setup): Promise<void> {
  const hmac = hmacKey(s);
  for (const inFlight of [1, 8, 64]) {
    // One session per lane: an operation belongs to its session.
    const sessions = Array.from({ length: inFlight }, () => pkcs11.C_OpenSession(pkcs11.C_GetSlotList(true)[0], C.CKF_SERIAL_SESSION));
    let next = 0;
    await measureInFlight(`${label}: HMAC-SHA256 64 B, ${inFlight} in flight (C_Sign callback form)`, inFlight, () => {
      const session = sessions[next++ % inFlight];
      pkcs11.C_SignInit(session, { mechanism: C.CKM_SHA256_HMAC }, hmac);
      return pkcs11.C_SignAsync(session, Buffer.alloc(64, 1), Buffer.alloc(32));
    });
    for (const session of sessions) pkcs11.C_CloseSession(session);
  }
  void credentials;
}

async function main(): Promise<void> {
  const local = load("memory:?pinHashIterations=16");
  local.C_Initialize();
  const localSetup = { pkcs11: local, ...openUserSession(local, { soPin: "so-pin-1", userPin: "user-pin-1" }) };
  suite("in-process chip", localSetup);

  const link = new RemoteLink({ kind: "memory", target: "memory:?pinHashIterations=16" });
  const bridged = new PKCS11(link.chip());
  bridged.C_Initialize();
  const bridgedSetup = { pkcs11: bridged, ...openUserSession(bridged, { soPin: "so-pin-1", userPin: "user-pin-1" }) };
  suite("bridge only (worker, memory chip)", bridgedSetup);
  await asyncSuite("bridge only", bridged, null, bridgedSetup);
  link.close();

  const cluster = await startRealtimeCluster(hsmCount);
  try {
    const remote = load(`cloudhsm://${cluster.addresses[0]}?ca=${encodeURIComponent(cluster.trustAnchorPath)}`);
    remote.C_Initialize();
    const session = remote.C_OpenSession(Buffer.alloc(8), C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION);
    remote.C_Login(session, C.CKU_USER, `${ALICE.username}:${ALICE.password}`);
    const remoteSetup = { pkcs11: remote, session };
    suite(`remote, ${hsmCount} HSM(s), TLS`, remoteSetup);
    await asyncSuite(`remote, ${hsmCount} HSM(s), TLS`, remote, null, remoteSetup);
    remote.C_Finalize();
    remote.close();
  } finally {
    await cluster.stop();
  }
  console.table(rows);
}

await main();
