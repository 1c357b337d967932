// Passwords are stored only as salted scrypt hashes and compared in constant time
// (DESIGN invariant 6). scrypt is deliberately slow: that is what makes a stolen user table
// expensive to attack, and it is why logins are slow (see the README's login rate).
import { randomBytes, scryptSync as nodeScryptSync, timingSafeEqual as nodeTimingSafeEqual } from "node:crypto";

import { BufferFromString } from "../primordials.js";

// Captured at load: a later crypto.scryptSync = hook (or syncBuiltinESMExports) does not see passwords.
const scryptSync = nodeScryptSync;
const timingSafeEqual = nodeTimingSafeEqual;

export interface PasswordHash {
  salt: Buffer;
  hash: Buffer;
  /** log2 of scrypt's N. */
  cost: number;
}

export const DEFAULT_PASSWORD_COST = 15;

/** `salt` comes from the caller in deterministic runs; 16 fresh random bytes otherwise. */
export function hashPassword(password: string, cost: number = DEFAULT_PASSWORD_COST, salt: Buffer = randomBytes(16)): PasswordHash {
  return { salt, hash: derive(password, salt, cost), cost };
}

export function verifyPassword(password: string, stored: PasswordHash): boolean {
  const candidate = derive(password, stored.salt, stored.cost);
  return candidate.length === stored.hash.length && timingSafeEqual(candidate, stored.hash);
}

let derivations = 0;

/** How many slow hashes this process has computed: lets tests check that every login path pays one. */
export function passwordDerivations(): number {
  return derivations;
}

function derive(password: string, salt: Buffer, cost: number): Buffer {
  derivations++;
  const N = 2 ** cost;
  // As bytes through a captured Buffer.from: Node's scrypt would otherwise call the (replaceable) global Buffer.from on it.
  return scryptSync(BufferFromString(password), salt, 32, { N, r: 8, p: 1, maxmem: 256 * N * 8 + 1024 * 1024 });
}
