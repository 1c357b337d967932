// Templates: pkcs11js's `{ type, value }` lists, encoded into one Buffer for the chip:
// u32 count, then per attribute u32 type, u32 length, value bytes (little-endian).
import { Buffer } from "node:buffer";

import { CKA_END_DATE, CKA_START_DATE } from "./constants.js";

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
      throw new TypeError(`${name}.value must be a non-negative integer when a number`);
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
    return Buffer.from(value.toISOString().slice(0, 10).replace(/-/g, ""), "ascii");
  }
  if (Array.isArray(value)) {
    return Buffer.concat(value.map((v, i) => encodeValue(type, v, `${name}.value[${i}]`)));
  }
  throw new TypeError(`${name}.value must be a number, boolean, string, Buffer, Date or number[]`);
}

export function encodeTemplate(template: unknown, name: string): Buffer {
  if (!Array.isArray(template)) throw new TypeError(`${name} must be an array of { type, value }`);
  const parts: Buffer[] = [];
  let total = 4;
  for (let i = 0; i < template.length; i++) {
    const attr = template[i] as Attribute;
    const where = `${name}[${i}]`;
    if (attr === null || typeof attr !== "object") throw new TypeError(`${where} must be an object { type, value }`);
    const type = checkAttributeType(attr.type, where);
    const value = encodeValue(type, attr.value, where);
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
