// KMS's own HSM fleet, where the key material of AWS_KMS keys lives: a token of the chip (a
// `file:` token folder in the data folder, or `memory:` for a store that lives in memory). Every
// key is a token key, non-extractable and sensitive, labelled with the name KMS gives it; its
// plaintext never enters the JavaScript heap. The fleet also holds KMS's own keys: the record
// key (HMAC-SHA-256 over store rows and grant tokens), the sealing key (AES-256-GCM for secrets
// at rest, e.g. kmsuser passwords) and the trail's signing key.
//
// Opening the token, its PINs and which keys on it the fleet trusts are fleet-token.ts's. Here,
// one logged-in session serves every synchronous call (each runs Init and the call back to back,
// so calls from concurrent requests never interleave on it); createKey, which is asynchronous,
// runs on a session of its own.
import { Buffer } from "node:buffer";

import * as C from "../pkcs11/constants.js";
import { Pkcs11Error } from "../pkcs11/errors.js";
import type { Handle } from "../pkcs11/handles.js";
import type { Mechanism } from "../pkcs11/mechanism.js";
import type { PKCS11 } from "../pkcs11/pkcs11.js";
import { freezeClass } from "../primordials.js";
import { KmsError } from "./errors.js";
import {
  type AsymmetricEncryptionAlgorithm, HASH_MECHANISM, KEY_SPECS, MACS, RSA_SPECS, type MacAlgorithm, MAX_FLEET_INPUT_BYTES, MGF, OAEP, SIGNING,
  type SigningAlgorithm, type SigningScheme, buffer, checkLabel, fail, internal, isCkr, signingInput,
} from "./fleet-algorithms.js";
import { derToRaw, ecPointOf, ecPublicKey, rawToDer, rsaPublicKey } from "./fleet-codec.js";
import { type FleetKey, type FleetToken, closeFleetToken, findFleetKeys, generateFleetKey, openFleetToken } from "./fleet-token.js";
import type { KeySpec, KeyUsage } from "./types.js";

export interface FleetOptions {
  /** "file:DIR" (durable; created 0700 if absent) or "memory:?seed=HEX" (deterministic, nothing durable). */
  target: string;
}

export type { AsymmetricEncryptionAlgorithm, MacAlgorithm, SigningAlgorithm } from "./fleet-algorithms.js";
export { MAX_FLEET_INPUT_BYTES } from "./fleet-algorithms.js";

/** The label prefix of KMS's own keys: createKey refuses it, and no public method reaches them. */
export const RESERVED_LABEL_PREFIX = "kms-internal/";
export { FLEET_PIN_FILE, FLEET_TOKEN_LABEL } from "./fleet-token.js";
const RECORD_LABEL = `${RESERVED_LABEL_PREFIX}record-hmac`;
const SEALING_LABEL = `${RESERVED_LABEL_PREFIX}sealing-aes`;
const TRAIL_LABEL = `${RESERVED_LABEL_PREFIX}trail-ecdsa`;
/** A token data object: what KMS last knew of its store and trail (see readAnchor). */
const ANCHOR_LABEL = `${RESERVED_LABEL_PREFIX}anchor`;
const MAX_ANCHOR_BYTES = 4096;
const SEAL_VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;


export class Fleet {
  readonly #pkcs11: PKCS11;
  readonly #slot: Handle;
  #session: Handle;
  /** label → key; KMS's own keys are not in it. */
  readonly #keys = new Map<string, FleetKey>();
  /** Labels whose createKey is under way. */
  readonly #creating = new Set<string>();
  #recordKey: Handle | null = null;
  #sealingKey: Handle | null = null;
  #trailKey: FleetKey | null = null;
  #closed = false;
  /** Ignored by CKM_CLOUDHSM_AES_GCM (the chip draws the IV) but required by the parameter's shape. */
  readonly #unusedIv = Buffer.alloc(IV_BYTES);

  private constructor(token: FleetToken) {
    this.#pkcs11 = token.pkcs11;
    this.#slot = token.slot;
    this.#session = token.session;
  }

  /** Opens the fleet's token (initializing it on first use) and takes its keys; makes KMS's own keys if missing. */
  static async open(options: FleetOptions): Promise<Fleet> {
    let target: unknown;
    try {
      target = options?.target;
    } catch (e) {
      throw internal(e, "read its options");
    }
    const token = openFleetToken(target);
    try {
      const fleet = new Fleet(token);
      for (const [label, key] of findFleetKeys(token)) {
        if (label === RECORD_LABEL) fleet.#recordKey = key.handle;
        else if (label === SEALING_LABEL) fleet.#sealingKey = key.handle;
        else if (label === TRAIL_LABEL) fleet.#trailKey = key;
        else fleet.#keys.set(label, key);
      }
      fleet.#recordKey ??= (await fleet.#generate(RECORD_LABEL, "HMAC_256")).handle;
      fleet.#sealingKey ??= (await fleet.#generate(SEALING_LABEL, "SYMMETRIC_DEFAULT")).handle;
      fleet.#trailKey ??= await fleet.#generate(TRAIL_LABEL, "ECC_NIST_P256", "SIGN_VERIFY");
      return fleet;
    } catch (e) {
      closeFleetToken(token.pkcs11);
      throw internal(e, "open its token");
    }
  }

  #generate(label: string, spec: KeySpec, usage?: KeyUsage): Promise<FleetKey> {
    return generateFleetKey({ pkcs11: this.#pkcs11, slot: this.#slot, session: this.#session }, label, spec, usage);
  }





  #open(): void {
    if (this.#closed) throw fail("KMSInternalException", "KMS's fleet is closed");
  }

  /** A key of the application's (never one of KMS's own); KMSInternalException when no key has the label. */
  #key(label: string): FleetKey {
    this.#open();
    const key = typeof label === "string" ? this.#keys.get(label) : undefined;
    if (key === undefined) throw fail("KMSInternalException", `the fleet has no key labelled '${String(label).slice(0, 200)}'`);
    return key;
  }

  /**
   * Runs one synchronous chip operation on the shared session. A chip error that may have left an
   * operation active there replaces the session, so the next request starts clean.
   */
  #run<T>(what: string, operation: (p: PKCS11, s: Handle) => T): T {
    try {
      return operation(this.#pkcs11, this.#session);
    } catch (e) {
      if (e instanceof KmsError) throw e;
      if (e instanceof Pkcs11Error) this.#renewSession();
      throw internal(e, what);
    }
  }

  #renewSession(): void {
    try {
      // Opened before the old one closes: closing an application's last session would log it out.
      const fresh = this.#pkcs11.C_OpenSession(this.#slot, C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION);
      const old = this.#session;
      this.#session = fresh;
      this.#pkcs11.C_CloseSession(old);
    } catch { /* the module is gone: later calls fail on their own */ }
  }

  /** Generates key material for `spec` under `label` (RSA key generation is slow: asynchronous). `usage` narrows an RSA pair to one use. */
  async createKey(label: string, spec: KeySpec, usage?: KeyUsage): Promise<void> {
    this.#open();
    checkLabel(label);
    if (label.startsWith(RESERVED_LABEL_PREFIX)) throw fail("KMSInternalException", `fleet labels starting '${RESERVED_LABEL_PREFIX}' are KMS's own`);
    if (!KEY_SPECS.includes(spec)) throw fail("ValidationException", `KeySpec '${String(spec)}' is not one the fleet makes`);
    if (this.#keys.has(label) || this.#creating.has(label)) throw fail("KMSInternalException", `the fleet already has a key labelled '${label}'`);
    this.#creating.add(label);
    try {
      const key = await this.#generate(label, spec, usage);
      if (!this.#closed) this.#keys.set(label, key); // else made on the token: found by label at the next open
    } catch (e) {
      throw internal(e, `create key '${label}'`);
    } finally {
      this.#creating.delete(label);
      if (this.#closed && this.#creating.size === 0) this.#shutdown();
    }
  }

  hasKey(label: string): boolean {
    this.#open();
    return typeof label === "string" && this.#keys.has(label);
  }

  destroyKey(label: string): void {
    const key = this.#key(label);
    this.#run(`destroy key '${label}'`, (p, s) => {
      p.C_DestroyObject(s, key.handle);
      if (key.publicHandle !== null) p.C_DestroyObject(s, key.publicHandle);
    });
    this.#keys.delete(label);
  }

  #symmetric(label: string): Handle {
    const key = this.#key(label);
    if (key.spec !== "SYMMETRIC_DEFAULT") throw fail("InvalidKeyUsageException", `the key is ${key.spec}: symmetric encryption needs SYMMETRIC_DEFAULT`);
    return key.handle;
  }

  /** iv ‖ ciphertext ‖ tag under an AES key: the chip draws the IV (CKM_CLOUDHSM_AES_GCM), one Init and one call. */
  #gcmEncrypt(handle: Handle, plaintext: Buffer, aad: Buffer): Buffer {
    return this.#run("encrypt", (p, s) => {
      p.C_EncryptInit(s, { mechanism: C.CKM_CLOUDHSM_AES_GCM, parameter: { type: C.CK_PARAMS_GCM, iv: this.#unusedIv, aad, tagBits: 128 } }, handle);
      return p.C_Encrypt(s, plaintext, Buffer.alloc(IV_BYTES + plaintext.length + TAG_BYTES));
    });
  }

  #gcmDecrypt(handle: Handle, iv: Buffer, ciphertext: Buffer, aad: Buffer, failure: () => KmsError): Buffer {
    // `failure` makes the error only when needed: an Error's stack costs more than the decryption.
    if (iv.length !== IV_BYTES || ciphertext.length < TAG_BYTES) throw failure();
    return this.#run("decrypt", (p, s) => {
      p.C_DecryptInit(s, { mechanism: C.CKM_AES_GCM, parameter: { type: C.CK_PARAMS_GCM, iv, aad, tagBits: 128 } }, handle);
      try {
        // Never a 0-byte output buffer: the chip would take it as a length query and leave the operation active.
        return p.C_Decrypt(s, ciphertext, Buffer.alloc(Math.max(1, ciphertext.length - TAG_BYTES)));
      } catch (e) {
        if (isCkr(e, C.CKR_ENCRYPTED_DATA_INVALID, C.CKR_ENCRYPTED_DATA_LEN_RANGE)) throw failure();
        throw e;
      }
    });
  }

  /** AES-256-GCM under a SYMMETRIC_DEFAULT key: a fresh 12-byte IV from the chip; ciphertext ends with the 16-byte tag. */
  encrypt(label: string, plaintext: Buffer, aad: Buffer): { iv: Buffer; ciphertext: Buffer } {
    const handle = this.#symmetric(label);
    const out = this.#gcmEncrypt(handle, buffer(plaintext, "Plaintext"), buffer(aad, "aad"));
    return { iv: out.subarray(0, IV_BYTES), ciphertext: out.subarray(IV_BYTES) };
  }

  /** KmsError InvalidCiphertextException when the tag does not verify. */
  decrypt(label: string, iv: Buffer, ciphertext: Buffer, aad: Buffer): Buffer {
    const handle = this.#symmetric(label);
    const failure = () => fail("InvalidCiphertextException", "the ciphertext does not decrypt under this key and encryption context");
    return this.#gcmDecrypt(handle, buffer(iv, "iv"), buffer(ciphertext, "CiphertextBlob"), buffer(aad, "aad"), failure);
  }

  random(length: number): Buffer {
    this.#open();
    if (!Number.isSafeInteger(length) || length < 1 || length > MAX_FLEET_INPUT_BYTES) {
      throw fail("ValidationException", `NumberOfBytes must be an integer from 1 to ${MAX_FLEET_INPUT_BYTES}`);
    }
    return this.#run("generate random bytes", (p, s) => p.C_GenerateRandom(s, Buffer.alloc(length)));
  }

  #signingKey(label: string, algorithm: SigningAlgorithm): { key: FleetKey; scheme: SigningScheme } {
    const key = this.#key(label);
    const scheme = Object.hasOwn(SIGNING, algorithm) ? SIGNING[algorithm] : undefined;
    if (scheme === undefined) throw fail("ValidationException", `SigningAlgorithm '${String(algorithm)}' is not one the fleet serves`);
    if (!scheme.specs.includes(key.spec)) throw fail("InvalidKeyUsageException", `SigningAlgorithm ${algorithm} is not valid for a ${key.spec} key`);
    return { key, scheme };
  }

  /** MessageType RAW hashes `message`; DIGEST takes it as the digest (its length must fit the algorithm: ValidationException). ECDSA signatures are DER, as AWS's. */
  sign(label: string, algorithm: SigningAlgorithm, message: Buffer, messageType: "RAW" | "DIGEST"): Buffer {
    const { key, scheme } = this.#signingKey(label, algorithm);
    const { mechanism, input } = signingInput(scheme, buffer(message, "Message"), messageType);
    const signature = this.#run("sign", (p, s) => {
      p.C_SignInit(s, mechanism, key.handle);
      return p.C_Sign(s, input, Buffer.alloc(512));
    });
    return scheme.family === "ecdsa" ? rawToDer(signature) : Buffer.from(signature);
  }

  /** False for a signature that does not verify, malformed DER included (the caller raises KMSInvalidSignatureException). */
  verify(label: string, algorithm: SigningAlgorithm, message: Buffer, messageType: "RAW" | "DIGEST", signature: Buffer): boolean {
    const { key, scheme } = this.#signingKey(label, algorithm);
    const { mechanism, input } = signingInput(scheme, buffer(message, "Message"), messageType);
    buffer(signature, "Signature");
    let checked: Buffer | null = signature;
    if (scheme.family === "ecdsa") checked = derToRaw(signature, key.spec === "ECC_NIST_P256" ? 32 : 48);
    if (checked === null || key.publicHandle === null) return false;
    const publicHandle = key.publicHandle;
    return this.#run("verify", (p, s) => {
      p.C_VerifyInit(s, mechanism, publicHandle);
      try {
        return p.C_Verify(s, input, checked);
      } catch (e) {
        if (isCkr(e, C.CKR_SIGNATURE_INVALID, C.CKR_SIGNATURE_LEN_RANGE)) return false;
        throw e;
      }
    });
  }

  /** The public key as DER SubjectPublicKeyInfo. */
  publicKey(label: string): Buffer {
    const key = this.#key(label);
    if (key.publicHandle === null) throw fail("UnsupportedOperationException", `a ${key.spec} key has no public key`);
    return Buffer.from(this.#spki(key));
  }

  #spki(key: FleetKey): Buffer {
    if (key.spki !== null) return key.spki;
    const publicHandle = key.publicHandle as Handle;
    const keyObject = this.#run("read a public key", (p, s) => {
      if (key.spec === "ECC_NIST_P256" || key.spec === "ECC_NIST_P384") {
        const [point] = p.C_GetAttributeValue(s, publicHandle, [{ type: C.CKA_EC_POINT }]);
        return ecPublicKey(ecPointOf(point.value), key.spec === "ECC_NIST_P256" ? "P-256" : "P-384");
      }
      const [modulus, exponent] = p.C_GetAttributeValue(s, publicHandle, [{ type: C.CKA_MODULUS }, { type: C.CKA_PUBLIC_EXPONENT }]);
      return rsaPublicKey(modulus.value, exponent.value);
    });
    key.spki = keyObject.export({ type: "spki", format: "der" });
    return key.spki;
  }

  #rsa(label: string, algorithm: AsymmetricEncryptionAlgorithm): { key: FleetKey; mechanism: Mechanism } {
    const key = this.#key(label);
    const hash = Object.hasOwn(OAEP, algorithm) ? OAEP[algorithm] : undefined;
    if (hash === undefined) throw fail("ValidationException", `EncryptionAlgorithm '${String(algorithm)}' is not one the fleet serves`);
    if (!RSA_SPECS.includes(key.spec)) throw fail("InvalidKeyUsageException", `EncryptionAlgorithm ${algorithm} is not valid for a ${key.spec} key`);
    const parameter = { type: C.CK_PARAMS_RSA_OAEP, hashAlg: HASH_MECHANISM[hash], mgf: MGF[hash] };
    return { key, mechanism: { mechanism: C.CKM_RSA_PKCS_OAEP, parameter } };
  }

  asymmetricEncrypt(label: string, algorithm: AsymmetricEncryptionAlgorithm, plaintext: Buffer): Buffer {
    const { key, mechanism } = this.#rsa(label, algorithm);
    buffer(plaintext, "Plaintext");
    const publicHandle = key.publicHandle as Handle;
    return this.#run("encrypt", (p, s) => {
      p.C_EncryptInit(s, mechanism, publicHandle);
      try {
        return Buffer.from(p.C_Encrypt(s, plaintext, Buffer.alloc(512)));
      } catch (e) {
        if (isCkr(e, C.CKR_DATA_LEN_RANGE)) throw fail("ValidationException", `Plaintext is too long for a ${key.spec} key with ${algorithm}`);
        throw e;
      }
    });
  }

  /** KmsError InvalidCiphertextException when it does not decrypt. */
  asymmetricDecrypt(label: string, algorithm: AsymmetricEncryptionAlgorithm, ciphertext: Buffer): Buffer {
    const { key, mechanism } = this.#rsa(label, algorithm);
    buffer(ciphertext, "CiphertextBlob");
    return this.#run("decrypt", (p, s) => {
      p.C_DecryptInit(s, mechanism, key.handle);
      try {
        return Buffer.from(p.C_Decrypt(s, ciphertext, Buffer.alloc(512)));
      } catch (e) {
        if (isCkr(e, C.CKR_ENCRYPTED_DATA_INVALID, C.CKR_ENCRYPTED_DATA_LEN_RANGE)) {
          throw fail("InvalidCiphertextException", "the ciphertext does not decrypt under this key and algorithm");
        }
        throw e;
      }
    });
  }

  #macKey(label: string, algorithm: MacAlgorithm): { handle: Handle; mechanism: number } {
    const key = this.#key(label);
    const mac = Object.hasOwn(MACS, algorithm) ? MACS[algorithm] : undefined;
    if (mac === undefined) throw fail("ValidationException", `MacAlgorithm '${String(algorithm)}' is not one the fleet serves`);
    if (mac.spec !== key.spec) throw fail("InvalidKeyUsageException", `MacAlgorithm ${algorithm} is not valid for a ${key.spec} key`);
    return { handle: key.handle, mechanism: mac.mechanism };
  }

  #hmac(handle: Handle, mechanism: number, message: Buffer): Buffer {
    return this.#run("compute a MAC", (p, s) => {
      p.C_SignInit(s, { mechanism }, handle);
      return Buffer.from(p.C_Sign(s, message, Buffer.alloc(64)));
    });
  }

  generateMac(label: string, algorithm: MacAlgorithm, message: Buffer): Buffer {
    const { handle, mechanism } = this.#macKey(label, algorithm);
    return this.#hmac(handle, mechanism, buffer(message, "Message"));
  }

  verifyMac(label: string, algorithm: MacAlgorithm, message: Buffer, mac: Buffer): boolean {
    const { handle, mechanism } = this.#macKey(label, algorithm);
    buffer(message, "Message");
    buffer(mac, "Mac");
    return this.#run("verify a MAC", (p, s) => {
      p.C_VerifyInit(s, { mechanism }, handle);
      try {
        return p.C_Verify(s, message, mac);
      } catch (e) {
        if (isCkr(e, C.CKR_SIGNATURE_INVALID, C.CKR_SIGNATURE_LEN_RANGE)) return false;
        throw e;
      }
    });
  }

  /** HMAC-SHA-256 under KMS's record key. */
  recordMac(data: Buffer): Buffer {
    this.#open();
    return this.#hmac(this.#recordKey as Handle, C.CKM_SHA256_HMAC, buffer(data, "data"));
  }

  static #sealAad(purpose: unknown): Buffer {
    if (typeof purpose !== "string" || purpose === "") throw fail("KMSInternalException", "a sealing purpose is a non-empty string");
    return Buffer.from(`hsmsim-kms-seal/v${SEAL_VERSION}\0${purpose}`, "utf8");
  }

  /** AES-256-GCM under KMS's sealing key, `purpose` bound as AAD: version ‖ iv ‖ ciphertext ‖ tag. */
  seal(data: Buffer, purpose: string): Buffer {
    this.#open();
    const aad = Fleet.#sealAad(purpose);
    const out = this.#gcmEncrypt(this.#sealingKey as Handle, buffer(data, "data"), aad);
    return Buffer.concat([Buffer.from([SEAL_VERSION]), out]);
  }

  /** KmsError KMSInternalException when the sealed blob is not the fleet's or not for `purpose`. */
  unseal(sealed: Buffer, purpose: string): Buffer {
    this.#open();
    const aad = Fleet.#sealAad(purpose);
    buffer(sealed, "sealed");
    const failure = () => fail("KMSInternalException", `a sealed secret (${purpose}) does not open: it is altered, truncated, for another purpose or from another fleet`);
    if (sealed.length < 1 + IV_BYTES + TAG_BYTES || sealed[0] !== SEAL_VERSION) throw failure();
    return this.#gcmDecrypt(this.#sealingKey as Handle, sealed.subarray(1, 1 + IV_BYTES), sealed.subarray(1 + IV_BYTES), aad, failure);
  }

  /** ECDSA P-256 over SHA-256 of `data` with the trail's signing key: DER. */
  signTrail(data: Buffer): Buffer {
    this.#open();
    const key = this.#trailKey as FleetKey;
    buffer(data, "data");
    const raw = this.#run("sign a trail record", (p, s) => {
      p.C_SignInit(s, { mechanism: C.CKM_ECDSA_SHA256 }, key.handle);
      return p.C_Sign(s, data, Buffer.alloc(64));
    });
    return rawToDer(raw);
  }

  /**
   * The anchor: a few bytes KMS keeps in the fleet's token, apart from its store and its trail
   * (a private token data object, sealed in the token folder by the chip like its keys), so an
   * older copy of kms.db or a cut trail does not match it. null before the first write.
   */
  readAnchor(): Buffer | null {
    const handle = this.#anchorHandle();
    if (handle === null) return null;
    return this.#run("read the anchor", (p, s) => p.getAttributeValues(s, handle, [{ type: C.CKA_VALUE }]).attributes[0].value ?? null);
  }

  writeAnchor(value: Buffer): void {
    if (!Buffer.isBuffer(value) || value.length === 0 || value.length > MAX_ANCHOR_BYTES) throw fail("KMSInternalException", `an anchor is 1–${MAX_ANCHOR_BYTES} bytes`);
    const handle = this.#anchorHandle();
    this.#run("write the anchor", (p, s) => {
      if (handle !== null) p.C_SetAttributeValue(s, handle, [{ type: C.CKA_VALUE, value }]);
      else p.C_CreateObject(s, [{ type: C.CKA_CLASS, value: C.CKO_DATA }, { type: C.CKA_TOKEN, value: true }, { type: C.CKA_PRIVATE, value: true },
        { type: C.CKA_LABEL, value: ANCHOR_LABEL }, { type: C.CKA_VALUE, value }]);
    });
  }

  #anchorHandle(): Handle | null {
    this.#open();
    return this.#run("find the anchor", (p, s) => {
      p.C_FindObjectsInit(s, [{ type: C.CKA_CLASS, value: C.CKO_DATA }, { type: C.CKA_LABEL, value: ANCHOR_LABEL }]);
      try {
        return p.C_FindObjects(s, 1)[0] ?? null;
      } finally {
        p.C_FindObjectsFinal(s);
      }
    });
  }

  /** The trail signing key's public key, PEM (SPKI). */
  trailPublicKeyPem(): string {
    this.#open();
    const der = this.#spki(this.#trailKey as FleetKey);
    return `-----BEGIN PUBLIC KEY-----\n${der.toString("base64").replace(/.{1,64}/g, "$&\n")}-----END PUBLIC KEY-----\n`;
  }

  /**
   * Logs out, finalizes and frees the token folder for another process; later calls fail with
   * KMSInternalException, and a second close does nothing. A createKey under way finishes first
   * (its key is written to the folder while the folder is still locked), then the fleet shuts.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#creating.size === 0) this.#shutdown();
  }

  #shutdown(): void {
    const p = this.#pkcs11;
    try {
      p.C_Logout(this.#session);
    } catch { /* already logged out */ }
    closeFleetToken(p);
    this.#keys.clear();
  }
}

freezeClass(Fleet);
