// RSA-2048 across the chip benchmark's peers: with one key (made by node:crypto, imported into the
// tokens) a signature made by any of hsmsim, node:crypto and SoftHSMv2 verifies on the others, for
// PKCS#1 v1.5 (deterministic, so byte-identical) and PSS (SHA-256, MGF1-SHA-256, salt 32), through
// the hashing and the raw mechanisms; altered messages and signatures fail everywhere; and a key
// pair the token generates (CKM_RSA_PKCS_KEY_PAIR_GEN, e = 65537) works with node:crypto.
import * as crypto from "node:crypto";
import { existsSync } from "node:fs";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import * as P from "../../src/index.js";
import { type Peer, SOFTHSM_LIBRARY, hsmsimPeer, softhsmPeer } from "../../bench/peers.js";
import {
  type ImportedRsaKey, type RsaPadding, PSS_SALT_BYTES, SHA256_DIGEST_INFO_PREFIX, generateRsaKeyPair, importRsaKeyPair,
  nodePublicKeyOf, nodeRsaKey, nodeRsaKeyPair, rawRsaMechanism, rsaMechanism, tokenSign, tokenVerify,
} from "../../bench/rsa.js";

const nodePair = nodeRsaKeyPair();
const message = Buffer.from("a SaaS provider signs with its customer's key");
const digest = crypto.createHash("sha256").update(message).digest();
const paddings: RsaPadding[] = ["pkcs1", "pss"];

function altered(b: Buffer, index = 0): Buffer {
  const copy = Buffer.from(b);
  copy[index] ^= 0x01;
  return copy;
}

/** The token's signature over `message`, through the hashing mechanism or the raw one on a digest. */
function signOn(peer: Peer, key: ImportedRsaKey, padding: RsaPadding, raw: boolean): Buffer {
  if (!raw) return tokenSign(peer.pkcs11, peer.session, rsaMechanism(padding), key.privateKey, message);
  const input = padding === "pkcs1" ? Buffer.concat([SHA256_DIGEST_INFO_PREFIX, digest]) : digest;
  return tokenSign(peer.pkcs11, peer.session, rawRsaMechanism(padding), key.privateKey, input);
}

function verifyOn(peer: Peer, key: ImportedRsaKey, padding: RsaPadding, raw: boolean, data: Buffer, signature: Buffer): boolean {
  if (!raw) return tokenVerify(peer.pkcs11, peer.session, rsaMechanism(padding), key.publicKey, data, signature);
  const d = crypto.createHash("sha256").update(data).digest();
  const input = padding === "pkcs1" ? Buffer.concat([SHA256_DIGEST_INFO_PREFIX, d]) : d;
  return tokenVerify(peer.pkcs11, peer.session, rawRsaMechanism(padding), key.publicKey, input, signature);
}

const nodeVerify = (padding: RsaPadding, data: Buffer, signature: Buffer, key = nodePair.publicKey) =>
  crypto.verify("sha256", data, nodeRsaKey(key, padding), signature);

let hsmsim: Peer;
let hsmsimKey: ImportedRsaKey;
beforeAll(() => {
  hsmsim = hsmsimPeer();
  hsmsimKey = importRsaKeyPair(hsmsim.pkcs11, hsmsim.session, nodePair);
});
afterAll(() => hsmsim?.close());

describe.each(paddings)("RSA-2048 %s: hsmsim and node:crypto with the same key", (padding) => {
  it.each([false, true])("hsmsim's signatures (raw mechanism: %s) verify with node:crypto, and node's on hsmsim", (raw) => {
    const ours = signOn(hsmsim, hsmsimKey, padding, raw);
    expect(ours.length).toBe(256);
    expect(nodeVerify(padding, message, ours)).toBe(true);
    expect(nodeVerify(padding, altered(message), ours)).toBe(false);
    expect(nodeVerify(padding, message, altered(ours, 100))).toBe(false);

    const theirs = crypto.sign("sha256", message, nodeRsaKey(nodePair.privateKey, padding));
    expect(verifyOn(hsmsim, hsmsimKey, padding, raw, message, theirs)).toBe(true);
    expect(verifyOn(hsmsim, hsmsimKey, padding, raw, altered(message), theirs)).toBe(false);
    expect(verifyOn(hsmsim, hsmsimKey, padding, raw, message, altered(theirs, 255))).toBe(false);

    if (padding === "pkcs1") {
      // PKCS#1 v1.5 is deterministic: the same key gives the same bytes.
      expect(ours.toString("hex")).toBe(theirs.toString("hex"));
    } else {
      // PSS is randomized by its salt: two signatures differ, both verify.
      expect(ours.equals(signOn(hsmsim, hsmsimKey, padding, raw))).toBe(false);
    }
  });
});

describe("RSA-2048 PSS parameters are the ones named", () => {
  it("a verifier expecting another salt length refuses hsmsim's signature; one recovering it accepts", () => {
    const ours = signOn(hsmsim, hsmsimKey, "pss", false);
    const pss = (saltLength: number) => ({ key: nodePair.publicKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength });
    expect(crypto.verify("sha256", message, pss(20), ours)).toBe(false);
    expect(crypto.verify("sha256", message, pss(crypto.constants.RSA_PSS_SALTLEN_AUTO), ours)).toBe(true);
    expect(crypto.verify("sha256", message, pss(PSS_SALT_BYTES), ours)).toBe(true);
    // A PKCS#1 v1.5 verifier does not take a PSS signature, nor the reverse.
    expect(nodeVerify("pkcs1", message, ours)).toBe(false);
    expect(verifyOn(hsmsim, hsmsimKey, "pss", false, message, signOn(hsmsim, hsmsimKey, "pkcs1", false))).toBe(false);
  });
});

describe("RSA-2048 key-pair generation on hsmsim", () => {
  it("gives a 2048-bit modulus with e = 65537, and its signatures verify with node:crypto", () => {
    const generated = generateRsaKeyPair(hsmsim.pkcs11, hsmsim.session);
    const [n, e] = hsmsim.pkcs11.C_GetAttributeValue(hsmsim.session, generated.publicKey, [{ type: P.CKA_MODULUS }, { type: P.CKA_PUBLIC_EXPONENT }]);
    expect((n.value as Buffer).length).toBe(256);
    expect((n.value as Buffer)[0] & 0x80).toBe(0x80);
    expect(Buffer.from(e.value as Buffer).toString("hex")).toBe("010001");
    const nodePublic = nodePublicKeyOf(hsmsim.pkcs11, hsmsim.session, generated.publicKey);
    for (const padding of paddings) {
      const signature = signOn(hsmsim, generated, padding, false);
      expect(nodeVerify(padding, message, signature, nodePublic)).toBe(true);
      // Not the imported key's signature: the generated key is a new one.
      expect(nodeVerify(padding, message, signature)).toBe(false);
    }
  });
});

describe.skipIf(!existsSync(SOFTHSM_LIBRARY))("RSA-2048 across hsmsim and SoftHSMv2", () => {
  let softhsm: Peer;
  let softhsmKey: ImportedRsaKey;
  beforeAll(() => {
    const peer = softhsmPeer();
    if (typeof peer === "string") throw new Error(peer);
    softhsm = peer;
    softhsmKey = importRsaKeyPair(softhsm.pkcs11, softhsm.session, nodePair);
  });
  afterAll(() => softhsm?.close());

  it.each(paddings)("%s: each token's signature verifies on the other and with node:crypto", (padding) => {
    for (const raw of [false, true]) {
      const fromSofthsm = signOn(softhsm, softhsmKey, padding, raw);
      const fromHsmsim = signOn(hsmsim, hsmsimKey, padding, raw);
      expect(verifyOn(hsmsim, hsmsimKey, padding, raw, message, fromSofthsm)).toBe(true);
      expect(verifyOn(softhsm, softhsmKey, padding, raw, message, fromHsmsim)).toBe(true);
      expect(verifyOn(softhsm, softhsmKey, padding, raw, altered(message), fromHsmsim)).toBe(false);
      expect(nodeVerify(padding, message, fromSofthsm)).toBe(true);
      if (padding === "pkcs1") expect(fromSofthsm.equals(fromHsmsim)).toBe(true);
    }
  });
});
