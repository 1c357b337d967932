// The sizing layer's public surface: profiles, the queueing model, the sizing tool and the
// discrete-event runs. Charts and the HTML report (vega) load only where they are asked for
// (`hsmsim size --report`, src/sizing/charts.ts), so importing hsmsim does not load vega.
export { SizingError, type SizingErrorCode } from "./errors.js";
export { parseOperation } from "./operations.js";
export { ESTIMATES, PROFILE_TYPES, PUBLISHED, PUBLISHED_SOURCE, profileFor, publishedFit } from "./profiles.js";
export { type UslFit, fitUsl } from "./usl.js";
export { type ModelResult, kneePerSec, latencyCurve, modelCluster, saturationPerSec } from "./queueing.js";
export { type SizeAnswer, type SizeInput, size } from "./size.js";
export { type DiscreteEventOptions, type DiscreteEventResult, runDiscreteEvent } from "./des.js";
