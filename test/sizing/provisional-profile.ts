// A provisional profile for the discrete-event tests until src/sizing/profiles.ts (engineer "model") lands.
import { OPERATION_CLASSES, type OperationClass, type ServiceProfile } from "../../src/cluster/service-profile.js";

export function provisionalProfile(costs: Partial<Record<OperationClass, { serviceUs: number; perKiBUs?: number; contention?: number; coherency?: number }>>,
  engines = 1, queueCapacity = 64): ServiceProfile {
  const all = {} as ServiceProfile["costs"];
  for (const name of OPERATION_CLASSES) {
    const c = costs[name];
    all[name] = { serviceUs: c?.serviceUs ?? 0, perKiBUs: c?.perKiBUs ?? 0, contention: c?.contention ?? 0, coherency: c?.coherency ?? 0 };
  }
  return { type: "provisional", engines, queueCapacity, timeDilation: 1, distribution: "exponential", costs: all };
}
