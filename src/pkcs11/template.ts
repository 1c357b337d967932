// Templates: pkcs11js's `{ type, value }` lists, encoded into one Buffer for the chip:
// u32 count, then per attribute u32 type, u32 length, value bytes (little-endian).
import { Buffer } from "node:buffer";

import * as C from "./constants.js";
import { Pkcs11Error } from "./errors.js";

const { CKA_END_DATE, CKA_START_DATE } = C;

/** Most attributes one template may carry: bounds the work a JavaScript array's length can ask for. */
export const MAX_TEMPLATE_ATTRIBUTES = 1024;
/** Largest attribute value accepted (the largest real one, an RSA-8192 modulus, is 1 KiB). */
export const MAX_ATTRIBUTE_VALUE_BYTES = 1 << 20;

// The attributes whose value has a fixed C type. pkcs11js hands the token whatever bytes the
// JavaScript value gives (a string as UTF-8), and a token answers CKR_ATTRIBUTE_VALUE_INVALID
// when their length does not fit the type; the facade answers the same before any backend
// reads the value (which the chip would otherwise take as missing: CKR_TEMPLATE_INCOMPLETE).
type Kind = "CK_BBOOL" | "CK_ULONG" | "CK_DATE" | "CK_MECHANISM_TYPE[]";
const KINDS = new Map<number, Kind>([
  ...[C.CKA_TOKEN, C.CKA_PRIVATE, C.CKA_MODIFIABLE, C.CKA_DESTROYABLE, C.CKA_COPYABLE, C.CKA_DERIVE, C.CKA_LOCAL,
    C.CKA_ENCRYPT, C.CKA_DECRYPT, C.CKA_VERIFY, C.CKA_VERIFY_RECOVER, C.CKA_SIGN, C.CKA_SIGN_RECOVER, C.CKA_WRAP,
    C.CKA_UNWRAP, C.CKA_TRUSTED, C.CKA_SENSITIVE, C.CKA_EXTRACTABLE, C.CKA_WRAP_WITH_TRUSTED, C.CKA_ALWAYS_SENSITIVE,
    C.CKA_NEVER_EXTRACTABLE, C.CKA_ALWAYS_AUTHENTICATE].map((t) => [t, "CK_BBOOL"] as const),
  ...[C.CKA_CLASS, C.CKA_KEY_TYPE, C.CKA_KEY_GEN_MECHANISM, C.CKA_VALUE_LEN, C.CKA_MODULUS_BITS, C.CKA_CERTIFICATE_TYPE,
    C.CKA_CERTIFICATE_CATEGORY].map((t) => [t, "CK_ULONG"] as const),
  [CKA_START_DATE, "CK_DATE"],
  [CKA_END_DATE, "CK_DATE"],
  [C.CKA_ALLOWED_MECHANISMS, "CK_MECHANISM_TYPE[]"],
]);

function kindFits(kind: Kind, length: number): boolean {
  switch (kind) {
    case "CK_BBOOL": return length === 1;
    case "CK_ULONG": return length === 8;
    case "CK_DATE": return length === 0 || length === 8;
    default: return length % 8 === 0;
  }
}

const attributeNames = new Map<number, string>();
for (const [name, value] of Object.entries(C)) {
  if (name.startsWith("CKA_") && typeof value === "number" && !attributeNames.has(value)) attributeNames.set(value, name);
}
function attributeName(type: number): string {
  return attributeNames.get(type) ?? `0x${type.toString(16).toUpperCase()}`;
}
function describeValue(value: unknown): string {
  if (Buffer.isBuffer(value)) return `a ${value.length}-byte Buffer`;
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a Date";
  return `a ${typeof value}`;
}

export type AttributeValue = number | boolean | string | Buffer | Date | number[] | null | undefined;
export interface Attribute {
  type: number;
  value?: AttributeValue;
}
export type Template = Attribute[];
export interface AttributeResult {
  type: number;
  value: Buffer;
}
export type TemplateResult = AttributeResult[];

export function checkAttributeType(type: unknown, name: string): number {
  if (typeof type !== "number" || !Number.isInteger(type) || type < 0 || type > 0xffffffff) {
    throw new TypeError(`${name}.type must be an attribute type (an integer from 0 to 0xFFFFFFFF)`);
  }
  return type;
}

function encodeValue(type: number, value: AttributeValue, name: string): Buffer {
  if (value === undefined || value === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === "boolean") return Buffer.from([value ? 1 : 0]);
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value < 0 || value > Number.MAX_SAFE_INTEGER) {
      throw new TypeError(`${name}.value (${attributeName(type)}) must be a non-negative integer when a number, not ${value}`);
    }
    const b = Buffer.alloc(8);
    b.writeUInt32LE(value % 0x100000000, 0);
    b.writeUInt32LE(Math.floor(value / 0x100000000), 4);
    return b;
  }
  if (typeof value === "string") return Buffer.from(value, "utf8");
  if (value instanceof Date) {
    if (type !== CKA_START_DATE && type !== CKA_END_DATE) {
      throw new TypeError(`${name}.value may be a Date only for CKA_START_DATE or CKA_END_DATE`);
    }
    const year = value.getUTCFullYear();
    if (Number.isNaN(year) || year < 0 || year > 9999) throw new TypeError(`${name}.value is not a valid date`);
    return Buffer.from(value.toISOString().slice(0, 10).replace(/-/g, ""), "ascii");
  }
  if (Array.isArray(value)) {
    return Buffer.concat(value.map((v, i) => encodeValue(type, v, `${name}.value[${i}]`)));
  }
  throw new TypeError(`${name}.value must be a number, boolean, string, Buffer, Date or number[]`);
}

/**
 * Encodes a template for the backend; `method` names the call in errors. Search templates
 * skip the type check of fixed-type attributes: a token finds nothing for them, as SoftHSMv2.
 */
export function encodeTemplate(template: unknown, name: string, method = "", purpose: "object" | "search" = "object"): Buffer {
  if (!Array.isArray(template)) throw new TypeError(`${name} must be an array of { type, value }`);
  checkTemplateLength(template, name);
  const parts: Buffer[] = [];
  let total = 4;
  for (let i = 0; i < template.length; i++) {
    const attr = template[i] as Attribute;
    const where = `${name}[${i}]`;
    if (attr === null || typeof attr !== "object") throw new TypeError(`${where} must be an object { type, value }`);
    const type = checkAttributeType(attr.type, where);
    const value = encodeValue(type, attr.value, where);
    if (value.length > MAX_ATTRIBUTE_VALUE_BYTES) {
      throw new Pkcs11Error(C.CKR_ATTRIBUTE_VALUE_INVALID, method,
        `${where} (${attributeName(type)}) is ${value.length} bytes; an attribute value holds at most ${MAX_ATTRIBUTE_VALUE_BYTES}`);
    }
    const kind = purpose === "search" ? undefined : KINDS.get(type);
    if (kind !== undefined && !kindFits(kind, value.length)) {
      throw new Pkcs11Error(C.CKR_ATTRIBUTE_VALUE_INVALID, method,
        `${where} (${attributeName(type)}) must be a ${kind}, given ${describeValue(attr.value)}`);
    }
    const header = Buffer.allocUnsafe(8);
    header.writeUInt32LE(type, 0);
    header.writeUInt32LE(value.length, 4);
    parts.push(header, value);
    total += 8 + value.length;
  }
  const out = Buffer.allocUnsafe(total);
  out.writeUInt32LE(template.length, 0);
  let offset = 4;
  for (const part of parts) {
    part.copy(out, offset);
    offset += part.length;
  }
  return out;
}

/** A template's length is a JavaScript number anyone can set (a sparse array of 2^32−1): bound it first. */
export function checkTemplateLength(template: unknown[], name: string): void {
  if (template.length > MAX_TEMPLATE_ATTRIBUTES) {
    throw new TypeError(`${name} has ${template.length} attributes; at most ${MAX_TEMPLATE_ATTRIBUTES}`);
  }
}
