// Info structures of C_GetInfo, C_GetSlotInfo and C_GetTokenInfo, shaped as pkcs11js's.
import type { NativeTokenInfo } from "./addon.js";
import type { Handle } from "./handles.js";
import { CKF_HW_SLOT, CKF_TOKEN_PRESENT } from "./constants.js";

export interface Version { major: number; minor: number }
export interface ModuleInfo {
  cryptokiVersion: Version;
  manufacturerID: string;
  flags: number;
  libraryDescription: string;
  libraryVersion: Version;
}
export interface SlotInfo {
  slotDescription: string;
  manufacturerID: string;
  flags: number;
  hardwareVersion: Version;
  firmwareVersion: Version;
}
export interface TokenInfo {
  label: string;
  manufacturerID: string;
  model: string;
  serialNumber: string;
  flags: number;
  maxSessionCount: number;
  sessionCount: number;
  maxRwSessionCount: number;
  rwSessionCount: number;
  maxPinLen: number;
  minPinLen: number;
  hardwareVersion: Version;
  firmwareVersion: Version;
  utcTime: string;
  totalPublicMemory: number;
  freePublicMemory: number;
  totalPrivateMemory: number;
  freePrivateMemory: number;
}
export interface MechanismInfo { minKeySize: number; maxKeySize: number; flags: number }
export interface SessionInfo { slotID: Handle; state: number; flags: number; deviceError: number }
export interface KeyPair { publicKey: Handle; privateKey: Handle }

export const MANUFACTURER = "hsmsim";
export const VERSION: Version = { major: 0, minor: 1 };
const pad = (text: string, width: number) => text.padEnd(width).slice(0, width);

export function moduleInfo(): ModuleInfo {
  return {
    cryptokiVersion: { major: 2, minor: 40 },
    manufacturerID: pad(MANUFACTURER, 32),
    flags: 0,
    libraryDescription: pad("hsmsim simulated HSM", 32),
    libraryVersion: VERSION,
  };
}

export function slotInfo(slot: number): SlotInfo {
  return {
    slotDescription: pad(`hsmsim slot ${slot}`, 64),
    manufacturerID: pad(MANUFACTURER, 32),
    flags: CKF_TOKEN_PRESENT | CKF_HW_SLOT,
    hardwareVersion: VERSION,
    firmwareVersion: VERSION,
  };
}

export function tokenInfo(t: NativeTokenInfo): TokenInfo {
  return {
    label: t.label,
    manufacturerID: pad(MANUFACTURER, 32),
    model: pad("hsmsim chip", 16),
    serialNumber: pad(t.serialNumber, 16),
    flags: t.flags,
    maxSessionCount: 1024,
    sessionCount: t.sessionCount,
    maxRwSessionCount: 1024,
    rwSessionCount: t.rwSessionCount,
    maxPinLen: t.maxPinLen,
    minPinLen: t.minPinLen,
    hardwareVersion: VERSION,
    firmwareVersion: VERSION,
    utcTime: pad("", 16),
    totalPublicMemory: t.totalMemory,
    freePublicMemory: t.freeMemory,
    totalPrivateMemory: t.totalMemory,
    freePrivateMemory: t.freeMemory,
  };
}
