// The fleet's token, apart from what KMS does with its keys (fleet.ts): opening it (initialized
// with random PINs on first use, the PINs kept in DIR/fleet.pin for a `file:` token), finding the
// keys it holds — only keys the chip generated and that were never extractable, so whoever holds
// fleet.pin cannot plant a key whose value they know — and generating new ones.
import { Buffer } from "node:buffer";
import { join } from "node:path";

import * as C from "../pkcs11/constants.js";
import type { Handle } from "../pkcs11/handles.js";
import { PKCS11 } from "../pkcs11/pkcs11.js";
import { parseFileTarget } from "../pkcs11/target.js";
import { KEY_SPECS, fail, internal } from "./fleet-algorithms.js";
import { EC_PARAMS, HMAC_KEY_BYTES, type Pins, RSA_BITS, newPins, pairTemplates, readPinFile, secretTemplate, writePinFile } from "./fleet-setup.js";
import type { KeySpec, KeyUsage } from "./types.js";

/** The fleet token's label (C_GetTokenInfo pads it to 32 characters). */
export const FLEET_TOKEN_LABEL = "hsmsim-kms-fleet";
/** The file, in a `file:` fleet's folder, that keeps the token's PINs. */
export const FLEET_PIN_FILE = "fleet.pin";

/** One key of the fleet: its handles (a secret key, or a key pair) and what it is. */
export interface FleetKey {
  spec: KeySpec;
  /** The secret key or the private key. */
  handle: Handle;
  /** The public key of a pair. */
  publicHandle: Handle | null;
  /** The SPKI DER, made once (public, so it may be cached). */
  spki: Buffer | null;
}

/** An open fleet token: its module, its slot, and a session logged in as its user. */
export interface FleetToken {
  pkcs11: PKCS11;
  slot: Handle;
  session: Handle;
}

/** Opens the fleet's token at `target` ('file:DIR' or 'memory:…'), initializing it on first use. */
export function openFleetToken(target: unknown): FleetToken {
  // A 'file:' with no folder (options alone) would be the shared default token folder, not one of KMS's own.
  if (typeof target !== "string" || !/^(file:[^?]|memory:)/.test(target)) {
    throw fail("KMSInternalException", "the fleet's target is 'file:DIR' or 'memory:[?seed=HEX]'");
  }
  let pinPath: string | null = null;
  let pkcs11: PKCS11;
  try {
    if (target.startsWith("file:")) pinPath = join(parseFileTarget(target).folder, FLEET_PIN_FILE);
    pkcs11 = new PKCS11(target);
  } catch (e) {
    throw internal(e, "open its token folder");
  }
  try {
    pkcs11.C_Initialize();
    const { slot, pins } = initializeToken(pkcs11, pinPath);
    const session = pkcs11.C_OpenSession(slot, C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION);
    pkcs11.C_Login(session, C.CKU_USER, pins.userPin);
    return { pkcs11, slot, session };
  } catch (e) {
    closeFleetToken(pkcs11);
    throw internal(e, "open its token");
  }
}

/** Finalizes and closes the token's module (quietly: it may be half open). */
export function closeFleetToken(pkcs11: PKCS11): void {
  try {
    pkcs11.C_Finalize();
  } catch { /* not initialized */ }
  pkcs11.close();
}

/** The fleet's slot, its token initialized (with new PINs on first use) and its PINs. */
function initializeToken(pkcs11: PKCS11, pinPath: string | null): { slot: Handle; pins: Pins } {
  const slots = pkcs11.C_GetSlotList(true);
  const infos = slots.map((slot) => pkcs11.C_GetTokenInfo(slot));
  const ours = infos.findIndex((info) => (info.flags & C.CKF_TOKEN_INITIALIZED) !== 0 && info.label.trim() === FLEET_TOKEN_LABEL);
  if (ours >= 0) {
    const pins = pinPath === null ? null : readPinFile(pinPath);
    if (pins === null) throw fail("KMSInternalException", `the fleet's token exists but ${pinPath ?? "its PIN"} is missing: the token cannot be opened`);
    // A first open that stopped between C_InitToken and C_InitPIN: finish it.
    if ((infos[ours].flags & C.CKF_USER_PIN_INITIALIZED) === 0) initializeUserPin(pkcs11, slots[ours], pins);
    return { slot: slots[ours], pins };
  }
  const free = infos.findIndex((info) => (info.flags & C.CKF_TOKEN_INITIALIZED) === 0);
  if (free < 0) throw fail("KMSInternalException", "the fleet's target has no free slot for KMS's token");
  // A PIN file without its token (a first open that stopped half-way) is used again.
  let pins = pinPath === null ? null : readPinFile(pinPath);
  if (pins === null) {
    pins = newPins();
    if (pinPath !== null) writePinFile(pinPath, pins);
  }
  const slot = slots[free];
  pkcs11.C_InitToken(slot, pins.soPin, FLEET_TOKEN_LABEL);
  initializeUserPin(pkcs11, slot, pins);
  return { slot, pins };
}

function initializeUserPin(pkcs11: PKCS11, slot: Handle, pins: Pins): void {
  const session = pkcs11.C_OpenSession(slot, C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION);
  try {
    pkcs11.C_Login(session, C.CKU_SO, pins.soPin);
    pkcs11.C_InitPIN(session, pins.userPin);
    pkcs11.C_Logout(session);
  } finally {
    pkcs11.C_CloseSession(session);
  }
}

/** Whether a key object is of the type and size its spec (its CKA_ID) says: a chip-made 1-byte "HMAC_256" key is not. */
function ofItsSpec(p: PKCS11, s: Handle, handle: Handle, spec: KeySpec): boolean {
  const [type, valueLen, modulus, ecParams] = p.getAttributeValues(s, handle, [
    { type: C.CKA_KEY_TYPE }, { type: C.CKA_VALUE_LEN }, { type: C.CKA_MODULUS }, { type: C.CKA_EC_PARAMS },
  ]).attributes.map((a) => a.value ?? Buffer.alloc(0));
  const keyType = type.length >= 4 ? type.readUInt32LE(0) : -1;
  const length = valueLen.length >= 4 ? valueLen.readUInt32LE(0) : -1;
  if (spec === "SYMMETRIC_DEFAULT") return keyType === C.CKK_AES && length === 32;
  if (spec === "HMAC_256" || spec === "HMAC_384" || spec === "HMAC_512") return keyType === C.CKK_GENERIC_SECRET && length === HMAC_KEY_BYTES[spec];
  if (spec === "ECC_NIST_P256" || spec === "ECC_NIST_P384") return keyType === C.CKK_EC && ecParams.equals(EC_PARAMS[spec]);
  if (spec === "RSA_2048" || spec === "RSA_3072" || spec === "RSA_4096") return keyType === C.CKK_RSA && modulus.length * 8 === RSA_BITS[spec];
  return false;
}

/**
 * Every key on the token, by label. Refuses to open (KMSInternalException) on a key the fleet did
 * not make (imported, or once extractable), a second key under one label, or a pair missing its
 * public half; objects that are not fleet keys (the anchor, a data object) are passed over.
 */
export function findFleetKeys(token: FleetToken): Map<string, FleetKey> {
  const { pkcs11: p, session: s } = token;
  p.C_FindObjectsInit(s, [{ type: C.CKA_TOKEN, value: true }]);
  const handles: Handle[] = [];
  for (let batch = p.C_FindObjects(s, 256); batch.length > 0; batch = p.C_FindObjects(s, 256)) handles.push(...batch);
  p.C_FindObjectsFinal(s);
  const publicOf = new Map<string, Handle>();
  const found: { label: string; spec: KeySpec; handle: Handle }[] = [];
  for (const handle of handles) {
    // The non-throwing read: a public key has no CKA_NEVER_EXTRACTABLE (its value comes back null).
    const [cls, label, id, local, neverExtractable] = p.getAttributeValues(s, handle, [
      { type: C.CKA_CLASS }, { type: C.CKA_LABEL }, { type: C.CKA_ID }, { type: C.CKA_LOCAL }, { type: C.CKA_NEVER_EXTRACTABLE },
    ]).attributes.map((a) => a.value ?? Buffer.alloc(0));
    if (cls.length < 4) continue;
    const objectClass = cls.readUInt32LE(0);
    const labelText = label.toString("utf8");
    const spec = id.toString("utf8") as KeySpec;
    if (!KEY_SPECS.includes(spec)) continue; // not a key the fleet made
    // Whoever holds fleet.pin could import a key whose value they know under a fleet label: the
    // fleet uses only keys the chip generated and that were never extractable.
    const madeHere = local[0] === 1 && (objectClass === C.CKO_PUBLIC_KEY || neverExtractable[0] === 1) && ofItsSpec(p, s, handle, spec);
    const seen = objectClass === C.CKO_PUBLIC_KEY ? publicOf.has(labelText) : found.some((f) => f.label === labelText);
    if (!madeHere || seen) {
      const why = seen ? "a second one" : "imported, once extractable, or not of its spec";
      throw fail("KMSInternalException", `the fleet's token holds a key labelled '${labelText}' the fleet did not make (${why}): refusing to open`);
    }
    if (objectClass === C.CKO_PUBLIC_KEY) publicOf.set(labelText, handle);
    else found.push({ label: labelText, spec, handle });
  }
  const keys = new Map<string, FleetKey>();
  for (const { label, spec, handle } of found) {
    const isPair = !spec.startsWith("SYMMETRIC") && !spec.startsWith("HMAC");
    const publicHandle = isPair ? publicOf.get(label) ?? null : null;
    if (isPair && publicHandle === null) throw fail("KMSInternalException", `the fleet's key '${label}' has lost its public half`);
    if (publicHandle !== null && !halvesMatch(token, spec, handle, publicHandle)) {
      throw fail("KMSInternalException", `the fleet's key '${label}' has a public half of another key: refusing to open`);
    }
    keys.set(label, { spec, handle, publicHandle, spki: null });
  }
  return keys;
}

/**
 * Whether a pair's public half is its private key's: the same RSA modulus; an EC signature by the
 * private key over a fixed challenge that the public key verifies (a private EC key carries no point).
 */
function halvesMatch(token: FleetToken, spec: KeySpec, privateHandle: Handle, publicHandle: Handle): boolean {
  const { pkcs11: p, session: s } = token;
  if (spec.startsWith("RSA_")) {
    const [a, b] = [privateHandle, publicHandle].map((h) => p.getAttributeValues(s, h, [{ type: C.CKA_MODULUS }]).attributes[0].value ?? Buffer.alloc(0));
    return a.length > 0 && a.equals(b);
  }
  const challenge = Buffer.alloc(32, 0x5a);
  p.C_SignInit(s, { mechanism: C.CKM_ECDSA }, privateHandle);
  const signature = p.C_Sign(s, challenge, Buffer.alloc(132));
  p.C_VerifyInit(s, { mechanism: C.CKM_ECDSA }, publicHandle);
  return p.C_Verify(s, challenge, signature);
}

/** Makes one key on a session of its own (the shared one stays free for synchronous calls meanwhile). */
export async function generateFleetKey(token: FleetToken, label: string, spec: KeySpec, usage?: KeyUsage): Promise<FleetKey> {
  const p = token.pkcs11;
  const session = p.C_OpenSession(token.slot, C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION);
  try {
    if (spec === "SYMMETRIC_DEFAULT") {
      const handle = await p.C_GenerateKeyAsync(session, { mechanism: C.CKM_AES_KEY_GEN }, secretTemplate(label, spec, C.CKK_AES, 32, { encrypt: true, sign: false }));
      return { spec, handle, publicHandle: null, spki: null };
    }
    if (spec === "HMAC_256" || spec === "HMAC_384" || spec === "HMAC_512") {
      const template = secretTemplate(label, spec, C.CKK_GENERIC_SECRET, HMAC_KEY_BYTES[spec], { encrypt: false, sign: true });
      const handle = await p.C_GenerateKeyAsync(session, { mechanism: C.CKM_GENERIC_SECRET_KEY_GEN }, template);
      return { spec, handle, publicHandle: null, spki: null };
    }
    const { mechanism, pub, priv } = pairTemplates(label, spec, usage);
    const pair = await p.C_GenerateKeyPairAsync(session, { mechanism }, pub, priv);
    return { spec, handle: pair.privateKey, publicHandle: pair.publicKey, spki: null };
  } finally {
    try {
      p.C_CloseSession(session);
    } catch { /* the fleet was closed meanwhile */ }
  }
}
