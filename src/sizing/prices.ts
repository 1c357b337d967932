// Hourly on-demand prices per HSM, for the sizing tool's monthly cost (730 h × HSMs × price).
//
// These defaults could NOT be confirmed against AWS's pricing page from this project's sources
// (https://aws.amazon.com/cloudhsm/pricing/ was not among the stored pages on 2026-12-02). They
// are the long-quoted US East (N. Virginia) figure, USD 1.45 per HSM-hour, used for both types:
// CHECK them for your region and type and pass --price-per-hour. Prices vary by region.
import { SizingError } from "./errors.js";
import { type ProfileType, checkProfileType } from "./profiles.js";

export interface HourlyPrice {
  usdPerHour: number;
  source: string;
  /** The day the figure was taken, and whether it was confirmed. */
  asOf: string;
  confirmed: boolean;
}

const UNCONFIRMED = "US East (N. Virginia) on-demand figure long quoted for CloudHSM; not confirmed against https://aws.amazon.com/cloudhsm/pricing/ — check it";

export const HOURLY_PRICES: Readonly<Record<ProfileType, HourlyPrice>> = Object.freeze({
  "hsm1.medium": Object.freeze({ usdPerHour: 1.45, source: UNCONFIRMED, asOf: "2026-12-02", confirmed: false }),
  "hsm2m.medium": Object.freeze({ usdPerHour: 1.45, source: UNCONFIRMED, asOf: "2026-12-02", confirmed: false }),
  unlimited: Object.freeze({ usdPerHour: 0, source: "a simulator's type: no price", asOf: "2026-12-02", confirmed: true }),
});

/** Hours in a month for the monthly figure (AWS's own convention: 730). */
export const HOURS_PER_MONTH = 730;

/** The price to use: the override when given (checked), else the type's default. */
export function hourlyPrice(type: string, overrideUsdPerHour?: number): HourlyPrice {
  const checked = checkProfileType(type);
  if (overrideUsdPerHour === undefined) return HOURLY_PRICES[checked];
  if (typeof overrideUsdPerHour !== "number" || !Number.isFinite(overrideUsdPerHour) || overrideUsdPerHour < 0 || overrideUsdPerHour > 1_000_000)
    throw new SizingError("INVALID_ARGUMENT", `price per hour must be a number of USD from 0 to 1000000 (got ${String(overrideUsdPerHour)})`);
  return { usdPerHour: overrideUsdPerHour, source: "given by the user", asOf: "", confirmed: true };
}

/** USD per month for `hsmCount` HSMs. */
export function monthlyCostUsd(hsmCount: number, usdPerHour: number): number {
  return HOURS_PER_MONTH * hsmCount * usdPerHour;
}
