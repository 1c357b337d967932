// The Universal Scalability Law (Gunther): the throughput of N HSMs is
//   X(N) = λN / (1 + σ(N−1) + κN(N−1))
// with λ the one-HSM rate, σ the share of the work that is serialized (contention) and κ the
// cost each pair of HSMs adds (coherency: N(N−1) pairs exchanging heartbeats, replication and
// key-availability checks). σ and κ are kept ≥ 0: a negative σ or κ would mean that adding an HSM
// makes every HSM faster, which nothing in a cluster does (it is a fit artefact, not physics).
import { SizingError } from "./errors.js";

export interface UslPoint {
  hsmCount: number;
  opsPerSec: number;
}

export interface UslParameters {
  /** One HSM's rate (ops/s): the law's λ. */
  lambdaPerSec: number;
  /** σ ≥ 0, the serialized share. */
  contention: number;
  /** κ ≥ 0, the per-pair coherency cost. */
  coherency: number;
}

export interface UslFit extends UslParameters {
  /** max |X(N)/published − 1| over the points (0.05 = 5%). */
  maxRelativeError: number;
  /** Each point with the law's value and the relative error (model ÷ published − 1). */
  points: { hsmCount: number; opsPerSec: number; fittedPerSec: number; relativeError: number }[];
}

/** The law's denominator 1 + σ(N−1) + κN(N−1). */
export function uslFactor(contention: number, coherency: number, hsmCount: number): number {
  return 1 + contention * (hsmCount - 1) + coherency * hsmCount * (hsmCount - 1);
}

/** X(N) for fitted parameters. */
export function uslThroughput(p: UslParameters, hsmCount: number): number {
  return (p.lambdaPerSec * hsmCount) / uslFactor(p.contention, p.coherency, hsmCount);
}

function checkPoints(points: readonly UslPoint[]): void {
  if (!Array.isArray(points) || points.length < 2) throw new SizingError("INVALID_ARGUMENT", "fitUsl: give at least 2 points { hsmCount, opsPerSec }");
  const seen = new Set<number>();
  for (const p of points) {
    if (p === null || typeof p !== "object" || !Number.isInteger(p.hsmCount) || p.hsmCount < 1 || p.hsmCount > 1000)
      throw new SizingError("INVALID_ARGUMENT", `fitUsl: hsmCount must be an integer from 1 to 1000 (got ${String(p?.hsmCount)})`);
    if (typeof p.opsPerSec !== "number" || !Number.isFinite(p.opsPerSec) || p.opsPerSec <= 0)
      throw new SizingError("INVALID_ARGUMENT", `fitUsl: opsPerSec must be a finite number > 0 (got ${String(p.opsPerSec)})`);
    if (seen.has(p.hsmCount)) throw new SizingError("INVALID_ARGUMENT", `fitUsl: hsmCount ${p.hsmCount} appears twice`);
    seen.add(p.hsmCount);
  }
}

/**
 * For given σ and κ, the λ minimizing Σ (X(Nᵢ)/yᵢ − 1)² (closed form: the fit is linear in λ),
 * and that sum.
 */
function bestLambda(points: readonly UslPoint[], contention: number, coherency: number): { lambda: number; cost: number } {
  // X(Nᵢ)/yᵢ = λ·aᵢ with aᵢ = Nᵢ / (F(Nᵢ)·yᵢ): minimize Σ(λaᵢ − 1)² → λ = Σaᵢ / Σaᵢ².
  let sumA = 0;
  let sumA2 = 0;
  const a = points.map((p) => p.hsmCount / (uslFactor(contention, coherency, p.hsmCount) * p.opsPerSec));
  for (const v of a) {
    sumA += v;
    sumA2 += v * v;
  }
  const lambda = sumA / sumA2;
  let cost = 0;
  for (const v of a) cost += (lambda * v - 1) ** 2;
  return { lambda, cost };
}

const SIGMA_MAX = 1;
const KAPPA_MAX = 0.2;
const GRID = 40;
const REFINEMENTS = 25;
/** Below this, σ or κ is the grid's rounding, not a finding: reported as 0. */
const ZERO = 1e-12;

/**
 * Least squares on the relative error, σ and κ constrained to ≥ 0: a coarse grid over
 * σ ∈ [0, 1], κ ∈ [0, 0.2], then the grid shrunk around the best cell (deterministic: the same
 * points always give the same fit, to the last bit).
 */
export function fitUsl(points: readonly UslPoint[]): UslFit {
  checkPoints(points);
  let best = { sigma: 0, kappa: 0, ...bestLambda(points, 0, 0) };
  let sigmaLo = 0, sigmaHi = SIGMA_MAX, kappaLo = 0, kappaHi = KAPPA_MAX;
  for (let round = 0; round <= REFINEMENTS; round++) {
    const sigmaStep = (sigmaHi - sigmaLo) / GRID;
    const kappaStep = (kappaHi - kappaLo) / GRID;
    for (let i = 0; i <= GRID; i++) {
      for (let j = 0; j <= GRID; j++) {
        const sigma = sigmaLo + i * sigmaStep;
        const kappa = kappaLo + j * kappaStep;
        const { lambda, cost } = bestLambda(points, sigma, kappa);
        if (cost < best.cost) best = { sigma, kappa, lambda, cost };
      }
    }
    // Shrink to the two cells around the best, never below 0 (the constraint).
    sigmaLo = Math.max(0, best.sigma - 2 * sigmaStep);
    sigmaHi = best.sigma + 2 * sigmaStep;
    kappaLo = Math.max(0, best.kappa - 2 * kappaStep);
    kappaHi = best.kappa + 2 * kappaStep;
  }
  const contention = best.sigma < ZERO ? 0 : best.sigma;
  const coherency = best.kappa < ZERO ? 0 : best.kappa;
  const params: UslParameters = { lambdaPerSec: bestLambda(points, contention, coherency).lambda, contention, coherency };
  const fitted = points.map((p) => {
    const fittedPerSec = uslThroughput(params, p.hsmCount);
    return { hsmCount: p.hsmCount, opsPerSec: p.opsPerSec, fittedPerSec, relativeError: fittedPerSec / p.opsPerSec - 1 };
  });
  return { ...params, maxRelativeError: Math.max(...fitted.map((p) => Math.abs(p.relativeError))), points: fitted };
}

/**
 * The HSM count where the law's throughput peaks, √((1 − σ)/κ) (Infinity when κ = 0: the curve
 * only rises). Past it each added HSM costs more in coherency than it brings. For a fit to
 * AWS's points (2, 3, 6 HSMs) anything beyond 6 is the law's extrapolation, not a measurement.
 */
export function peakHsmCount(p: Pick<UslParameters, "contention" | "coherency">): number {
  return p.coherency === 0 ? Infinity : Math.sqrt(Math.max(0, 1 - p.contention) / p.coherency);
}
