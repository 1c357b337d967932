// Variance reduction for the discrete-event runs: exponential service times and arrival gaps
// drawn from stratified uniforms. Each block of K draws holds exactly one uniform from each of
// the K strata [i/K, (i+1)/K), in a shuffled order: every draw is still uniform on (0, 1), so
// the distributions (M/M/c's) are unchanged, but a block's mean is nearly exact, so the sample
// mean of n exponential draws wanders by about √(2/(K·n)) rather than √(1/n). Without it, a
// run of 2 000 signs reads the capacity a few percent off by chance alone (measured: a seed's
// first 2 100 draws averaged 6.7% above the mean); with it, short runs measure the profile.
import type { Random } from "../runtime/random.js";
import { type OperationClass, type ServiceProfile, type ServiceTimeFn, checkServiceProfile, classifyRequest, hashingUs, meanServiceUs, requestedKeyBits, rsaKeyScale } from "../cluster/service-profile.js";

export const STRATA = 64;

/** A uniform draw in (0, 1) with 52 bits, from the injected randomness. */
export function uniformOf(random: Random): number {
  return (random.int(2 ** 26) * 2 ** 26 + random.int(2 ** 26) + 0.5) / 2 ** 52;
}

/** Uniforms on (0, 1), one per stratum in each block of `strata` draws, blocks shuffled by `random`. */
export function stratifiedUniforms(random: Random, strata = STRATA): () => number {
  const order: number[] = [];
  return () => {
    if (order.length === 0) {
      for (let i = 0; i < strata; i++) order.push(i);
      for (let i = strata - 1; i > 0; i--) {
        const j = random.int(i + 1);
        [order[i], order[j]] = [order[j], order[i]];
      }
    }
    return (order.pop()! + uniformOf(random)) / strata;
  };
}

/**
 * The profile's service times (as profileServiceTime prices them: same classes, sizes, USL
 * factor, dilation), exponential draws from stratified uniforms, one stream per operation
 * class so a mix keeps each class's own strata.
 */
export function stratifiedServiceTime(profile: ServiceProfile, random: Random): ServiceTimeFn {
  const checked = checkServiceProfile(profile);
  const streams = new Map<OperationClass, () => number>();
  return (op, demand) => {
    const opClass = classifyRequest(op, demand.mechanism);
    const base = meanServiceUs(checked, opClass, demand.inputBytes, demand.memberCount) * rsaKeyScale(opClass, demand.keyBits ?? requestedKeyBits(op));
    if (base === 0) return 0;
    const mean = base + hashingUs(checked, op, demand);
    if (checked.distribution === "fixed") return mean;
    let draw = streams.get(opClass);
    if (draw === undefined) streams.set(opClass, (draw = stratifiedUniforms(random.fork(opClass))));
    return -mean * Math.log(draw());
  };
}
