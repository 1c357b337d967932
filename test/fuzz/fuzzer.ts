// A seeded fuzzer for the PKCS11 facade: random types, sizes, handles, templates and
// mechanism parameters thrown at every exported C_ method. A call may return or throw a
// TypeError or a Pkcs11Error; anything else is a finding. Every returned Buffer and every
// output buffer is scanned for the bytes of a non-extractable key planted in the token.
import * as P from "../../src/index.js";

export interface FuzzReport {
  calls: number;
  returned: number;
  typeErrors: number;
  pkcs11Errors: number;
  findings: string[];
}

/** mulberry32: small, fast, and a seed replays a run exactly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SECRET = Buffer.from("f00dfacecafebeef0123456789abcdef", "hex");
const ATTRIBUTE_TYPES = [P.CKA_CLASS, P.CKA_TOKEN, P.CKA_PRIVATE, P.CKA_LABEL, P.CKA_VALUE, P.CKA_KEY_TYPE, P.CKA_SENSITIVE,
  P.CKA_EXTRACTABLE, P.CKA_ENCRYPT, P.CKA_DECRYPT, P.CKA_SIGN, P.CKA_VERIFY, P.CKA_WRAP, P.CKA_UNWRAP, P.CKA_DERIVE,
  P.CKA_VALUE_LEN, P.CKA_EC_PARAMS, P.CKA_EC_POINT, P.CKA_MODULUS, P.CKA_MODULUS_BITS, P.CKA_PUBLIC_EXPONENT,
  P.CKA_ALLOWED_MECHANISMS, P.CKA_TRUSTED, P.CKA_WRAP_WITH_TRUSTED, P.CKA_MODIFIABLE, P.CKA_COPYABLE, P.CKA_DESTROYABLE,
  P.CKA_LOCAL, P.CKA_ID, P.CKA_START_DATE, 0x80000001, 0xffffffff];
const MECHANISMS = [P.CKM_AES_GCM, P.CKM_AES_CBC, P.CKM_AES_CBC_PAD, P.CKM_AES_ECB, P.CKM_AES_KEY_WRAP, P.CKM_AES_KEY_WRAP_KWP,
  P.CKM_AES_KEY_GEN, P.CKM_GENERIC_SECRET_KEY_GEN, P.CKM_SHA256, P.CKM_SHA512, P.CKM_SHA256_HMAC, P.CKM_SHA384_HMAC_GENERAL,
  P.CKM_ECDSA, P.CKM_ECDSA_SHA256, P.CKM_EC_KEY_PAIR_GEN, P.CKM_ECDH1_DERIVE, P.CKM_RSA_PKCS, P.CKM_RSA_PKCS_OAEP,
  P.CKM_SHA256_RSA_PKCS_PSS, P.CKM_DES3_CBC, 0x80001087];
const PARAM_TYPES = [P.CK_PARAMS_AES_GCM, P.CK_PARAMS_AES_GCM_v240, P.CK_PARAMS_AES_CBC, P.CK_PARAMS_EC_DH, P.CK_PARAMS_RSA_OAEP,
  P.CK_PARAMS_RSA_PSS, P.CK_PARAMS_RC5, 999];

/** What the fuzzer runs against: a PKCS11 with a user logged in on `session`. */
export interface FuzzTarget {
  pkcs11: P.PKCS11;
  slot: Buffer;
  session: Buffer;
  /** The PIN C_Login takes for the user (the device's is "name:password"). */
  userPin: string;
  close(): void;
}

/** The chip, standard profile. */
export function memoryTarget(): FuzzTarget {
  const pkcs11 = P.load("memory:?pinHashIterations=1&maxPinFailures=1000");
  pkcs11.C_Initialize();
  const { slot, session } = P.openUserSession(pkcs11, { soPin: "so-pin-1", userPin: "user-pin-1", label: "fuzz" });
  return { pkcs11, slot, session, userPin: "user-pin-1", close: () => undefined };
}

export async function fuzz(calls: number, seed: number, target: FuzzTarget = memoryTarget()): Promise<FuzzReport> {
  const random = prng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)];
  const report: FuzzReport = { calls: 0, returned: 0, typeErrors: 0, pkcs11Errors: 0, findings: [] };

  const { pkcs11, slot, session: admin } = target;
  const locked = pkcs11.C_CreateObject(admin, [
    { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_KEY_TYPE, value: P.CKK_AES }, { type: P.CKA_VALUE, value: SECRET },
    { type: P.CKA_EXTRACTABLE, value: false }, { type: P.CKA_SENSITIVE, value: true }, { type: P.CKA_TOKEN, value: true },
    { type: P.CKA_COPYABLE, value: true },
  ]);
  const handles: Buffer[] = [slot, admin, locked];
  for (let i = 0; i < 3; i++) handles.push(pkcs11.C_OpenSession(slot, P.CKF_SERIAL_SESSION | (i ? P.CKF_RW_SESSION : 0)));
  handles.push(pkcs11.C_GenerateKey(admin, { mechanism: P.CKM_AES_KEY_GEN }, [{ type: P.CKA_VALUE_LEN, value: 32 }, { type: P.CKA_EXTRACTABLE, value: true }]));
  const pair = pkcs11.C_GenerateKeyPair(admin, { mechanism: P.CKM_EC_KEY_PAIR_GEN },
    [{ type: P.CKA_EC_PARAMS, value: Buffer.from("06082a8648ce3d030107", "hex") }], [{ type: P.CKA_DERIVE, value: true }]);
  handles.push(pair.publicKey, pair.privateKey);

  const revive = () => {
    for (const step of [
      () => pkcs11.C_Initialize(),
      () => handles.push(pkcs11.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION)),
      () => pkcs11.C_Login(handles[handles.length - 1], P.CKU_USER, target.userPin),
    ]) {
      try {
        step();
      } catch (e) {
        if (!(e instanceof P.Pkcs11Error)) throw e;
      }
    }
    if (handles.length > 64) handles.splice(8, handles.length - 64);
  };
  const buffer = (): Buffer => {
    const sizes = [0, 1, 7, 8, 12, 16, 24, 32, 33, 64, 65, 100, 256, 4096];
    const b = Buffer.alloc(pick(sizes));
    for (let i = 0; i < b.length; i++) b[i] = int(256);
    return b;
  };
  // Most calls are well-typed, so they get past argument checks into the token; the rest
  // carry garbage in any position.
  let wellTyped = true;
  const handle = (): unknown => {
    const r = wellTyped ? random() * 0.75 : random();
    if (r < 0.6) return pick(handles);
    if (r < 0.75) { const h = Buffer.alloc(8); h.writeUInt32LE(int(64), 0); return h; }
    if (r < 0.85) return buffer();
    return value();
  };
  const attrValue = (): unknown => (wellTyped ? pick<() => unknown>([() => random() < 0.5, () => int(70000), buffer, () => "label"])() : pick<() => unknown>([() => random() < 0.5, () => int(70000), buffer, () => "label", () => undefined,
    () => [P.CKM_AES_GCM, int(5000)], () => new Date(), () => ({}), () => -1, () => 1.5])());
  const template = (): unknown => {
    if (!wellTyped && random() < 0.2) return value();
    return Array.from({ length: int(6) }, () => (!wellTyped && random() < 0.2 ? value()
      : { type: wellTyped || random() < 0.7 ? pick(ATTRIBUTE_TYPES) : value(), value: attrValue() }));
  };
  const mechanism = (): unknown => {
    const r = random();
    if (!wellTyped && r < 0.2) return value();
    const m: Record<string, unknown> = { mechanism: wellTyped || random() < 0.7 ? pick(MECHANISMS) : value() };
    if (r < 0.3) m.parameter = buffer();
    else if (r < 0.4) m.parameter = int(100);
    else if (r < 0.9) {
      m.parameter = { type: pick(PARAM_TYPES), iv: wellTyped || random() < 0.8 ? buffer() : value(), aad: random() < 0.5 ? buffer() : undefined,
        tagBits: wellTyped ? pick([0, 32, 96, 104, 128, 129]) : pick([0, 32, 96, 104, 128, 129, -8, 1.5]), publicData: buffer(), sharedData: random() < 0.5 ? buffer() : undefined,
        kdf: pick([1, 2, 6, 7, 8, 99]), hashAlg: pick([P.CKM_SHA256, P.CKM_SHA_1, 12345]), mgf: pick([1, 2, 3, 4, 77]),
        saltLen: pick([0, 32, 1 << 20]), source: pick([0, 1, 2]), sourceData: random() < 0.5 ? buffer() : undefined };
    }
    return m;
  };
  function value(): unknown {
    return pick<() => unknown>([() => undefined, () => null, () => int(1 << 20), () => -int(100), () => 1e300, () => NaN,
      () => "string", buffer, () => ({}), () => [], () => Symbol("s"), () => 10n, () => new Uint8Array(8), () => () => 1])();
  }

  // Argument generators for each method, by the kind pkcs11js gives each position.
  type Gen = () => unknown;
  const B: Gen = () => (wellTyped ? buffer() : pick<() => unknown>([buffer, value])());
  const S: Gen = handle, H: Gen = handle, T: Gen = template, M: Gen = mechanism, N: Gen = () => (wellTyped ? int(5) : value());
  const PIN: Gen = () => pick<() => unknown>([() => target.userPin, () => "so-pin-1", () => "x".repeat(int(300)), ...(wellTyped ? [] : [value])])();
  const methods: Record<string, Gen[]> = {
    C_GetInfo: [], C_GetSlotList: [() => (random() < 0.8 ? true : value())], C_GetSlotInfo: [H], C_GetTokenInfo: [H],
    C_GetMechanismList: [H], C_GetMechanismInfo: [H, () => pick(MECHANISMS)], C_InitToken: [H, PIN, () => "l"],
    C_InitPIN: [S, PIN], C_SetPIN: [S, PIN, PIN], C_OpenSession: [H, () => pick([4, 6, 2, 0, -1])], C_CloseSession: [S],
    C_GetSessionInfo: [S], C_Login: [S, () => pick([0, 1, 2, 3]), PIN], C_Logout: [S],
    C_CreateObject: [S, T], C_CopyObject: [S, H, T], C_DestroyObject: [S, H], C_GetObjectSize: [S, H],
    C_GetAttributeValue: [S, H, T], C_SetAttributeValue: [S, H, T], C_FindObjectsInit: [S, T], C_FindObjects: [S, N],
    C_FindObjectsFinal: [S], C_EncryptInit: [S, M, H], C_Encrypt: [S, B, B], C_EncryptUpdate: [S, B, B], C_EncryptFinal: [S, B],
    C_DecryptInit: [S, M, H], C_Decrypt: [S, B, B], C_DecryptUpdate: [S, B, B], C_DecryptFinal: [S, B],
    C_DigestInit: [S, M], C_Digest: [S, B, B], C_DigestUpdate: [S, B], C_DigestKey: [S, H], C_DigestFinal: [S, B],
    C_SignInit: [S, M, H], C_Sign: [S, B, B], C_SignUpdate: [S, B], C_SignFinal: [S, B],
    C_VerifyInit: [S, M, H], C_Verify: [S, B, B], C_VerifyUpdate: [S, B], C_VerifyFinal: [S, B],
    C_GenerateKey: [S, M, T], C_GenerateKeyPair: [S, M, T, T], C_WrapKey: [S, M, H, H, B], C_UnwrapKey: [S, M, H, B, T],
    C_DeriveKey: [S, M, H, T], C_SeedRandom: [S, B], C_GenerateRandom: [S, B], C_WaitForSlotEvent: [N],
    C_SignRecoverInit: [S, M, H], C_DigestEncryptUpdate: [S, B, B],
    C_EncryptAsync: [S, B, B], C_DecryptAsync: [S, B, B], C_SignAsync: [S, B, B], C_VerifyAsync: [S, B, B],
    C_DigestAsync: [S, B, B], C_GenerateKeyAsync: [S, M, T], C_WrapKeyAsync: [S, M, H, H, B],
  };
  const names = Object.keys(methods);

  const leaks = (v: unknown, depth = 0): boolean => {
    if (depth > 4 || v === null || v === undefined) return false;
    if (Buffer.isBuffer(v)) return v.includes(SECRET);
    if (Array.isArray(v)) return v.some((x) => leaks(x, depth + 1));
    if (typeof v === "object") return Object.values(v as object).some((x) => leaks(x, depth + 1));
    return false;
  };

  for (let i = 0; i < calls; i++) {
    const name = pick(names);
    wellTyped = random() < 0.8;
    const args = methods[name].map((g) => g());
    if (!wellTyped && random() < 0.2) args.pop();
    if (!wellTyped && random() < 0.2) args.push(value());
    report.calls++;
    try {
      let result = (pkcs11 as unknown as Record<string, (...a: unknown[]) => unknown>)[name](...args);
      if (result instanceof Promise) result = await result;
      report.returned++;
      if (leaks(result) || args.some((a) => leaks(a))) report.findings.push(`seed ${seed} call ${i}: ${name} exposed the locked key`);
    } catch (e) {
      if (e instanceof P.Pkcs11Error) report.pkcs11Errors++;
      else if (e instanceof TypeError) report.typeErrors++;
      else report.findings.push(`seed ${seed} call ${i}: ${name} threw ${String(e)}`);
      if (args.some((a) => leaks(a))) report.findings.push(`seed ${seed} call ${i}: ${name} wrote the locked key into an argument`);
    }
    // The fuzzer closes sessions, logs out and finalizes: revive the module now and then,
    // so later calls reach deep code paths again.
    if (i % 200 === 199) revive();
  }
  try {
    pkcs11.C_Finalize();
  } catch {
    // already finalized is fine: the fuzzer may have called it
  }
  target.close();
  return report;
}
