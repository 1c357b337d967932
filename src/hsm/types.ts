// Roles, HSM types and their quotas, and the rules for names and passwords (DESIGN
// "Fidelity decisions").
import { HsmError } from "./errors.js";

export type Role = "PRECO" | "CO" | "CU" | "AU";

export type HsmType = "hsm1.medium" | "hsm2m.medium";
export interface HsmTypeLimits {
  maxKeys: number;
  /** Public plus private keys among maxKeys (hsm1.medium has no separate limit). */
  maxAsymmetricKeys: number;
  maxUsers: number;
}
export const HSM_TYPES: Record<HsmType, HsmTypeLimits> = {
  "hsm1.medium": { maxKeys: 3300, maxAsymmetricKeys: 3300, maxUsers: 250 },
  "hsm2m.medium": { maxKeys: 16666, maxAsymmetricKeys: 3333, maxUsers: 1024 },
};

/** PKCS#11 sessions one application may have open on an HSM. */
export const MAX_SESSIONS_PER_APPLICATION = 1024;
export const PRECO_USERNAME = "admin";
/** PRECO's known default password, as on a new CloudHSM HSM. */
export const PRECO_DEFAULT_PASSWORD = "password";

/** A valid username, folded to lower case: usernames are case-insensitive, as in CloudHSM. */
export function checkUsername(name: unknown): string {
  if (typeof name !== "string" || !/^[A-Za-z0-9_]{1,31}$/.test(name)) {
    throw new HsmError("INVALID_USERNAME", "username must be 1–31 characters of A–Z, a–z, 0–9 and _");
  }
  return name.toLowerCase();
}

export function checkPassword(password: unknown): string {
  if (typeof password !== "string" || password.length < 8 || password.length > 32) {
    throw new HsmError("INVALID_PASSWORD", "password must be 8–32 characters");
  }
  return password;
}
