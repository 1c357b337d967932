// Mechanisms: pkcs11js's `{ mechanism, parameter }`, flattened into the seven values the
// chip takes (type, hasParameter, bytesA, bytesB, numberA, numberB, numberC).
import * as C from "./constants.js";
import { Pkcs11Error } from "./errors.js";

export interface Mechanism {
  mechanism: number;
  parameter?: Buffer | number | MechanismParams | null;
}
export interface MechanismParams {
  type: number;
  [field: string]: unknown;
}
export type NativeMechanism = [number, boolean, Buffer | null, Buffer | null, number, number, number];

function optionalBuffer(value: unknown, name: string): Buffer | null {
  if (value === undefined || value === null) return null;
  if (!Buffer.isBuffer(value)) throw new TypeError(`${name} must be a Buffer`);
  return value;
}
function requiredBuffer(value: unknown, name: string): Buffer {
  if (!Buffer.isBuffer(value)) throw new TypeError(`${name} must be a Buffer`);
  return value;
}
function count(value: unknown, name: string, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new TypeError(`${name} must be a non-negative integer`);
  }
  return value;
}

export function mechanismArgs(mechanism: unknown, method: string): NativeMechanism {
  if (mechanism === null || typeof mechanism !== "object") {
    throw new TypeError("mechanism must be an object { mechanism, parameter }");
  }
  const m = mechanism as Mechanism;
  const type = count(m.mechanism, "mechanism.mechanism");
  const p = m.parameter;
  if (p === undefined || p === null) return [type, false, null, null, 0, 0, 0];
  if (Buffer.isBuffer(p)) return [type, true, p, null, 0, 0, 0];
  if (typeof p === "number") return [type, true, null, null, count(p, "mechanism.parameter"), 0, 0];
  if (typeof p !== "object") throw new TypeError("mechanism.parameter must be a Buffer, a number or a params object");
  const params = p as MechanismParams;
  switch (params.type) {
    case C.CK_PARAMS_AES_GCM:
    case C.CK_PARAMS_AES_GCM_v240:
    case C.CK_PARAMS_GCM:
      return [
        type, true,
        requiredBuffer(params.iv, "mechanism.parameter.iv"),
        optionalBuffer(params.aad, "mechanism.parameter.aad"),
        count(params.tagBits, "mechanism.parameter.tagBits", 128), 0, 0,
      ];
    case C.CK_PARAMS_AES_CBC:
      return [type, true, requiredBuffer(params.iv, "mechanism.parameter.iv"), null, 0, 0, 0];
    case C.CK_PARAMS_EC_DH:
      return [
        type, true,
        requiredBuffer(params.publicData, "mechanism.parameter.publicData"),
        optionalBuffer(params.sharedData, "mechanism.parameter.sharedData"),
        count(params.kdf, "mechanism.parameter.kdf"), 0, 0,
      ];
    case C.CK_PARAMS_RSA_OAEP:
      return [
        type, true,
        optionalBuffer(params.sourceData, "mechanism.parameter.sourceData"), null,
        count(params.hashAlg, "mechanism.parameter.hashAlg"),
        count(params.mgf, "mechanism.parameter.mgf"),
        count(params.source, "mechanism.parameter.source", 0),
      ];
    case C.CK_PARAMS_RSA_PSS:
      return [
        type, true, null, null,
        count(params.hashAlg, "mechanism.parameter.hashAlg"),
        count(params.mgf, "mechanism.parameter.mgf"),
        count(params.saltLen, "mechanism.parameter.saltLen"),
      ];
    default:
      // A parameter structure hsmsim has no mechanism for: the token would reject it.
      throw new Pkcs11Error(C.CKR_MECHANISM_PARAM_INVALID, method);
  }
}
