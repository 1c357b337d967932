// The byte formats around the fleet's chip calls, none of them secret: ECDSA signatures (the chip
// gives r‖s, AWS returns DER), PKCS#1 v1.5 DigestInfo prefixes (signing a digest with the raw
// RSA mechanism), and public keys as SubjectPublicKeyInfo (built by node:crypto from the
// public point or modulus the chip reports).
import { Buffer } from "node:buffer";
import { type KeyObject, createPublicKey } from "node:crypto";

/** The DER SEQUENCE { INTEGER r, INTEGER s } of a fixed-width r‖s signature. */
export function rawToDer(raw: Buffer): Buffer {
  const half = raw.length / 2;
  const integer = (bytes: Buffer): Buffer => {
    let start = 0;
    while (start < bytes.length - 1 && bytes[start] === 0) start++;
    const body = bytes.subarray(start);
    // A leading 1 bit would make the INTEGER negative: DER adds one zero byte.
    const content = body[0] & 0x80 ? Buffer.concat([Buffer.from([0]), body]) : body;
    return Buffer.concat([Buffer.from([0x02, content.length]), content]);
  };
  const r = integer(raw.subarray(0, half));
  const s = integer(raw.subarray(half));
  const length = r.length + s.length;
  const head = length < 0x80 ? Buffer.from([0x30, length]) : Buffer.from([0x30, 0x81, length]);
  return Buffer.concat([head, r, s]);
}

/**
 * The r‖s (each `fieldBytes` wide) of a DER ECDSA signature, or null unless `der` is exactly
 * one strict-DER SEQUENCE of two positive minimal INTEGERs that fit the field: a verifier that
 * took BER or trailing bytes would accept several encodings of one signature.
 */
export function derToRaw(der: Buffer, fieldBytes: number): Buffer | null {
  let at = 0;
  const length = (): number | null => {
    if (at >= der.length) return null;
    const first = der[at++];
    if (first < 0x80) return first;
    if (first !== 0x81 || at >= der.length) return null; // signatures of P-256/P-384 never need more
    const value = der[at++];
    return value >= 0x80 ? value : null; // minimal: a short form was possible
  };
  if (der.length < 8 || der[at++] !== 0x30) return null;
  const total = length();
  if (total === null || at + total !== der.length) return null;
  const out = Buffer.alloc(2 * fieldBytes);
  for (let i = 0; i < 2; i++) {
    if (at >= der.length || der[at++] !== 0x02) return null;
    const n = length();
    if (n === null || n === 0 || at + n > der.length) return null;
    const body = der.subarray(at, at + n);
    at += n;
    if (body[0] & 0x80) return null; // negative
    if (body.length > 1 && body[0] === 0 && (body[1] & 0x80) === 0) return null; // not minimal
    const value = body[0] === 0 ? body.subarray(1) : body;
    if (value.length > fieldBytes || value.every((b) => b === 0)) return null; // too wide, or zero
    value.copy(out, i * fieldBytes + fieldBytes - value.length);
  }
  return at === der.length ? out : null;
}

/** The DER DigestInfo prefix of PKCS#1 v1.5 (RFC 8017, section 9.2 note 1) before a digest. */
export const DIGEST_INFO_PREFIX: Readonly<Record<"sha256" | "sha384" | "sha512", Buffer>> = Object.freeze({
  sha256: Buffer.from("3031300d060960864801650304020105000420", "hex"),
  sha384: Buffer.from("3041300d060960864801650304020205000430", "hex"),
  sha512: Buffer.from("3051300d060960864801650304020305000440", "hex"),
});

/** The uncompressed point inside CKA_EC_POINT's DER OCTET STRING. */
export function ecPointOf(attribute: Buffer): Buffer {
  if (attribute.length > 2 && attribute[0] === 0x04) {
    if (attribute[1] < 0x80 && attribute[1] === attribute.length - 2) return attribute.subarray(2);
    if (attribute[1] === 0x81 && attribute.length > 3 && attribute[2] === attribute.length - 3) return attribute.subarray(3);
  }
  return attribute; // already the raw point
}

const base64url = (b: Buffer): string => b.toString("base64url");

export function ecPublicKey(point: Buffer, curve: "P-256" | "P-384"): KeyObject {
  const width = curve === "P-256" ? 32 : 48;
  if (point.length !== 1 + 2 * width || point[0] !== 0x04) throw new Error("the chip reported a malformed EC point");
  return createPublicKey({
    key: { kty: "EC", crv: curve, x: base64url(point.subarray(1, 1 + width)), y: base64url(point.subarray(1 + width)) },
    format: "jwk",
  });
}

export function rsaPublicKey(modulus: Buffer, publicExponent: Buffer): KeyObject {
  return createPublicKey({ key: { kty: "RSA", n: base64url(modulus), e: base64url(publicExponent) }, format: "jwk" });
}
