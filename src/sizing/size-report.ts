// The sizing answer as charts (SVG) and one self-contained HTML report: throughput of the mix
// against HSM count, and latency against offered load with the spares down (knee and target marked).
import { type ThroughputPoint, latencyChartSvg, throughputChartSvg, writeChart } from "./charts.js";
import { SizingError } from "./errors.js";
import { parseOperation } from "./operations.js";
import { PUBLISHED, PUBLISHED_SOURCE, calibrationTable, profileFor } from "./profiles.js";
import { htmlReport } from "./report.js";
import { type LoadItem, kneePerSec, latencyCurve, modelCluster } from "./queueing.js";
import { MAX_HSMS, type SizeAnswer } from "./size.js";

export interface SizeCharts {
  throughput: { title: string; svg: string };
  latency: { title: string; svg: string };
}

function loadOf(answer: SizeAnswer): LoadItem[] {
  return answer.operations.map((o) => ({ ...parseOperation(o.operation), operation: o.operation, ratePerSec: o.ratePerSec }));
}

const fmt = (x: number) => Math.round(x).toLocaleString("en-US");

/** The two charts of a sizing answer. */
export async function sizeCharts(answer: SizeAnswer): Promise<SizeCharts> {
  const profile = profileFor(answer.type);
  const load = loadOf(answer);
  const mixName = answer.operations.map((o) => o.operation).join(" + ");
  const single = answer.operations.length === 1 ? answer.operations[0].operation : undefined;

  // Capacity of this mix (its proportions kept) against the HSM count, all up.
  const series: ThroughputPoint[] = [];
  for (let n = 1; n <= MAX_HSMS; n++) {
    const capacity = modelCluster({ profile, hsmCount: n, load, spreading: answer.spreading }).capacityPerSec;
    if (Number.isFinite(capacity)) series.push({ hsmCount: n, opsPerSec: capacity, source: "model" });
  }
  for (const p of PUBLISHED) if (p.type === answer.type && p.operation === single) series.push({ hsmCount: p.hsmCount, opsPerSec: p.opsPerSec, source: "published" });
  const throughputTitle = `${answer.type}: saturation throughput of ${mixName} against HSM count`;

  const live = answer.hsmCount - answer.spare;
  const sized = { profile, hsmCount: live, memberCount: answer.hsmCount, load, networkRttUs: answer.networkRttUs, spreading: answer.spreading };
  const curve = latencyCurve(sized, { points: 60, toUtilisation: 0.99 });
  const knee = kneePerSec(sized);
  const latencyTitle = `${answer.type}: latency of the mix with ${live} of ${answer.hsmCount} HSMs up (knee ${fmt(knee)} ops/s)`;

  if (series.length === 0) throw new SizingError("INVALID_ARGUMENT", "this load takes no engine time: there is no throughput limit to chart");
  return {
    throughput: { title: throughputTitle, svg: await throughputChartSvg({ title: throughputTitle, operation: mixName, series }) },
    latency: {
      title: latencyTitle,
      svg: await latencyChartSvg({
        title: latencyTitle,
        series: curve.map((p) => ({ offeredPerSec: p.offeredPerSec, p50Ms: p.p50Ms, p95Ms: p.p95Ms, p99Ms: p.p99Ms, source: "model" as const })),
        kneePerSec: knee,
        ...(answer.p99TargetMs === null ? {} : { targetP99Ms: answer.p99TargetMs }),
      }),
    },
  };
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const ms = (x: number | null | undefined) => (x === null || x === undefined ? "—" : `${x.toFixed(2)} ms`);

function stateText(s: SizeAnswer["allUp"]): string {
  if (!s.stable || s.latency === null) return `${s.liveHsms} up: ${pct(s.utilisation)} busy, saturated`;
  return `${s.liveHsms} up: ${pct(s.utilisation)} busy; p50 ${ms(s.latency.p50Ms)}, p95 ${ms(s.latency.p95Ms)}, p99 ${ms(s.latency.p99Ms)}`;
}

/** The answer, its inputs, notes and charts as one HTML page (`generatedAt`: an ISO time, passed in). */
export async function sizeReportHtml(answer: SizeAnswer, generatedAt: string, charts?: SizeCharts): Promise<string> {
  const c = charts ?? (await sizeCharts(answer));
  return htmlReport({
    title: `Sizing: ${answer.hsmCount} × ${answer.type}`,
    generatedAt,
    inputs: [
      ...answer.operations.map((o) => ({ label: `peak ${o.operation}`, value: `${fmt(o.ratePerSec)} ops/s` })),
      { label: "p99 target", value: answer.p99TargetMs === null ? "none (stability only)" : `${answer.p99TargetMs} ms for every operation` },
      { label: "spare HSMs", value: answer.spare },
      { label: "HSM type", value: answer.type },
      { label: "network round trip", value: `${answer.networkRttUs} µs (2 per operation)` },
    ],
    answer: [
      { label: "HSMs needed", value: answer.hsmCount },
      { label: "all up", value: stateText(answer.allUp) },
      { label: `${answer.spare} down (sized for)`, value: stateText(answer.withSpareDown) },
      { label: "one HSM down at peak", value: stateText(answer.oneDown) },
      { label: "headroom", value: `+${answer.headroom.percent.toFixed(1)}% (${fmt(answer.headroom.opsPerSec)} ops/s) with ${answer.spare} down` },
      { label: "knee (all up)", value: `${fmt(answer.kneePerSec)} ops/s` },
      { label: "monthly cost", value: `$${answer.cost.monthlyUsd.toFixed(2)} (${answer.cost.hoursPerMonth} h × ${answer.hsmCount} × $${answer.cost.usdPerHour}/h)` },
      ...answer.operations.map((o) => ({ label: `${o.operation}${o.estimate ? " (estimate)" : ""}`, value: `service ${ms(o.serviceMs)}; p99 ${ms(o.p99WithSpareDownMs)} with ${answer.spare} down; alone saturates at ${Number.isFinite(o.capacityAllUpPerSec) ? fmt(o.capacityAllUpPerSec) : "—"} ops/s` })),
    ],
    notes: [
      `Calibrated to ${PUBLISHED_SOURCE.title} (${PUBLISHED_SOURCE.url}, read ${PUBLISHED_SOURCE.readOn}): RSA-2048 and EC P-256 sign at 2, 3 and 6 HSMs, fitted with the Universal Scalability Law.`,
      `AWS publishes 2, 3 and 6 HSMs only: beyond 6 the curves are the fitted law's extrapolation. ${calibrationTable().filter((r) => r.type === answer.type)
        .map((r) => `${r.operation}: λ ${fmt(r.lambdaPerSec)}/s per HSM, σ ${r.contention.toFixed(4)}, κ ${r.coherency.toFixed(5)}, ${Number.isFinite(r.peakHsmCount) ? `peaks at ${r.peakHsmCount.toFixed(1)} HSMs` : "never peaks"}`).join("; ")}.`,
      ...answer.operations.filter((o) => o.estimate).map((o) => `${o.operation} is an ESTIMATE (no published figure): ${o.reasoning}.`),
      `Price: ${answer.cost.source}.`,
      `Model: each HSM's engines an M/M/c queue (exponential service); the client's load spreading modelled as ${answer.spreading === "pooled" ? "one pooled queue over every HSM's engines" : "independent queues, one per HSM"}; the p99 target holds for every operation; HSMs that are down still count as members for the USL factor.`,
    ],
    charts: [c.throughput, c.latency],
  });
}

/** Writes the charts into `dir` (throughput.svg, latency.svg) and returns their paths. */
export function writeSizeCharts(dir: string, charts: SizeCharts): string[] {
  const paths = [`${dir}/throughput.svg`, `${dir}/latency.svg`];
  writeOutput(paths[0], charts.throughput.svg);
  writeOutput(paths[1], charts.latency.svg);
  return paths;
}

/** Writes a chart or report; a file that cannot be written is a SizingError naming the path. */
export function writeOutput(path: string, content: string): void {
  try {
    writeChart(path, content);
  } catch (error) {
    if (error instanceof SizingError) throw error;
    throw new SizingError("OUTPUT_FAILED", `cannot write ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
}
