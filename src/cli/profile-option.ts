// The CLI's side of performance profiles: `--profile NAME|FILE.json` and `--time-dilation K`
// turned into the plain ServiceProfile that an HSM process receives (src/net cannot import
// src/sizing, so names are resolved here with the model's profileFor).
import { closeSync, constants, fstatSync, openSync, readFileSync } from "node:fs";

import { type ServiceProfile, checkServiceProfile } from "../cluster/service-profile.js";
import { PROFILE_TYPES, profileFor } from "../sizing/profiles.js";
import { UsageError, type ValueParser } from "./command.js";

export { PROFILE_TYPES };

/** The largest dilation a profile accepts (service-profile.ts's bound). */
export const MAX_TIME_DILATION = 1_000_000;

/** A profile file's largest size (a profile is about 3 KiB of JSON). */
const MAX_PROFILE_FILE_BYTES = 1024 * 1024;

/** `--time-dilation K`: a number from 1 (real speed) up; decimals allowed (1.5). */
export const timeDilationParser: ValueParser<number> = (text, name) => {
  const k = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(k >= 1 && k <= MAX_TIME_DILATION)) {
    throw new UsageError(`${name} takes a number from 1 to ${MAX_TIME_DILATION} (every service time × it), not '${text}'`);
  }
  return k;
};

/**
 * A profile by name (hsm1.medium, hsm2m.medium, unlimited) or from a JSON file (a
 * ServiceProfile, checked field by field); `timeDilation`, when given, replaces the profile's
 * own. Every failure is a UsageError naming the file or the field (exit 2).
 */
export function resolveProfile(nameOrFile: string, timeDilation?: number, option = "--profile"): ServiceProfile {
  let profile: ServiceProfile;
  if ((PROFILE_TYPES as readonly string[]).includes(nameOrFile)) {
    profile = profileFor(nameOrFile);
  } else {
    let text: string;
    let fd: number;
    try {
      // Non-blocking: a FIFO must not hang the command; then only a regular file of sane size is read
      // (readFileSync of /dev/zero grows a buffer until the process runs out of memory).
      fd = openSync(nameOrFile, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new UsageError(`${option} takes ${PROFILE_TYPES.join(", ")} or a JSON profile file; '${nameOrFile}' is neither${code === "ENOENT" ? "" : ` (${code ?? String(e)})`}`);
    }
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) throw new UsageError(`${option} ${nameOrFile}: not a regular file`);
      if (stat.size > MAX_PROFILE_FILE_BYTES) throw new UsageError(`${option} ${nameOrFile}: ${stat.size} bytes, more than a profile's ${MAX_PROFILE_FILE_BYTES}`);
      text = readFileSync(fd, "utf8");
    } finally {
      closeSync(fd);
    }
    let plain: unknown;
    try {
      plain = JSON.parse(text);
    } catch (e) {
      throw new UsageError(`${option} ${nameOrFile}: not JSON (${(e as Error).message})`);
    }
    try {
      profile = checkServiceProfile(plain);
    } catch (e) {
      throw new UsageError(`${option} ${nameOrFile}: ${(e as Error).message}`);
    }
  }
  return timeDilation === undefined ? profile : withTimeDilation(profile, timeDilation);
}

/** The same profile run `timeDilation` times slower than life (replacing its own dilation, not multiplying it). */
export function withTimeDilation(profile: ServiceProfile, timeDilation: number): ServiceProfile {
  try {
    return checkServiceProfile({ ...profile, timeDilation });
  } catch (e) {
    throw new UsageError(`--time-dilation: ${(e as Error).message}`);
  }
}
