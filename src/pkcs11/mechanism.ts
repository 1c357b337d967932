// Mechanisms: pkcs11js's `{ mechanism, parameter }`, flattened into what the chip takes:
// numbers [type, hasParameter, numberA, numberB, numberC] in a reused Float64Array (read by
// native code in one call), and two optional byte strings.
import { freezeClass } from "../primordials.js";
import { Buffer } from "node:buffer";

import {
  CKR_MECHANISM_PARAM_INVALID, CK_PARAMS_AES_CBC, CK_PARAMS_AES_GCM, CK_PARAMS_AES_GCM_v240, CK_PARAMS_EC_DH, CK_PARAMS_GCM,
  CK_PARAMS_RSA_OAEP, CK_PARAMS_RSA_PSS,
} from "./constants.js";
import { Pkcs11Error } from "./errors.js";

export interface Mechanism {
  mechanism: number;
  // `{ type }` admits pkcs11js's IParams (and its AesGcmParams, RsaOaepParams …), so a
  // pkcs11js Mechanism passes where ours is expected.
  parameter?: Buffer | number | MechanismParams | { type: number } | null;
}
export interface MechanismParams {
  type: number;
  [field: string]: unknown;
}

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
  // (value >>> 0) === value holds exactly for integers from 0 to 0xFFFFFFFF.
  if (typeof value === "number" && value >>> 0 === value) return value;
  if (value === undefined && fallback !== undefined) return fallback;
  throw new TypeError(`${name} must be a non-negative integer`);
}

/** Holds one encoded mechanism; reused call after call (the chip copies it synchronously). */
export class MechanismEncoder {
  readonly numbers = new Float64Array(5);
  bytesA: Buffer | null = null;
  bytesB: Buffer | null = null;

  encode(mechanism: unknown, method: string): this {
    if (mechanism === null || typeof mechanism !== "object") {
      throw new TypeError("mechanism must be an object { mechanism, parameter }");
    }
    const m = mechanism as Mechanism;
    const n = this.numbers;
    n[0] = count(m.mechanism, "mechanism.mechanism");
    n[1] = 1;
    n[2] = n[3] = n[4] = 0;
    this.bytesA = this.bytesB = null;
    const p = m.parameter;
    if (p === undefined || p === null) {
      n[1] = 0;
    } else if (Buffer.isBuffer(p)) {
      this.bytesA = p;
    } else if (typeof p === "number") {
      n[2] = count(p, "mechanism.parameter");
    } else if (typeof p === "object") {
      this.encodeParams(p as MechanismParams, method);
    } else {
      throw new TypeError("mechanism.parameter must be a Buffer, a number or a params object");
    }
    return this;
  }

  private encodeParams(params: MechanismParams, method: string): void {
    const n = this.numbers;
    switch (params.type) {
      case CK_PARAMS_AES_GCM:
      case CK_PARAMS_AES_GCM_v240:
      case CK_PARAMS_GCM:
        this.bytesA = requiredBuffer(params.iv, "mechanism.parameter.iv");
        this.bytesB = optionalBuffer(params.aad, "mechanism.parameter.aad");
        n[2] = count(params.tagBits, "mechanism.parameter.tagBits", 128);
        return;
      case CK_PARAMS_AES_CBC:
        this.bytesA = requiredBuffer(params.iv, "mechanism.parameter.iv");
        return;
      case CK_PARAMS_EC_DH:
        this.bytesA = requiredBuffer(params.publicData, "mechanism.parameter.publicData");
        this.bytesB = optionalBuffer(params.sharedData, "mechanism.parameter.sharedData");
        n[2] = count(params.kdf, "mechanism.parameter.kdf");
        return;
      case CK_PARAMS_RSA_OAEP:
        this.bytesA = optionalBuffer(params.sourceData, "mechanism.parameter.sourceData");
        n[2] = count(params.hashAlg, "mechanism.parameter.hashAlg");
        n[3] = count(params.mgf, "mechanism.parameter.mgf");
        n[4] = count(params.source, "mechanism.parameter.source", 0);
        return;
      case CK_PARAMS_RSA_PSS:
        n[2] = count(params.hashAlg, "mechanism.parameter.hashAlg");
        n[3] = count(params.mgf, "mechanism.parameter.mgf");
        n[4] = count(params.saltLen, "mechanism.parameter.saltLen");
        return;
      default:
        // A parameter structure hsmsim has no mechanism for: the token would reject it.
        throw new Pkcs11Error(CKR_MECHANISM_PARAM_INVALID, method);
    }
  }
}

// Exported classes are frozen: no code in the process patches a method every instance shares.
freezeClass(MechanismEncoder);
