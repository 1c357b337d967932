// The sizing charts: Vega-Lite specifications rendered to SVG by Vega in Node (no browser, no
// canvas: Vega estimates text widths itself), so `hsmsim size`, `hsmsim bench` and
// `npm run bench:sizing` draw the same pictures from plain numbers. Each chart is a function
// from validated data to a spec (exported, so a caller may also save it for an interactive
// viewer) and an async function to the SVG string. Colours are Okabe–Ito (colour-blind safe),
// and every source also has its own point shape, so nothing relies on colour alone.
import { closeSync, constants, mkdirSync, openSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
// Bad data (a non-finite number, an empty series, an unknown source) is a SizingError INVALID_ARGUMENT
// whose message names the field; so is a spec Vega-Lite or Vega refuses.
import { SizingError } from "./errors.js";

/** Where a number comes from: AWS's table, the queueing model, a discrete-event run, a measured run. */
export const CHART_SOURCES = ["published", "model", "discrete-event", "measured"] as const;
export type ChartSource = (typeof CHART_SOURCES)[number];

export interface ThroughputPoint {
  hsmCount: number;
  opsPerSec: number;
  source: ChartSource;
  /** Shown beside the source in the legend and the point's label, e.g. "time-dilated ×20". */
  note?: string;
}
export interface ThroughputChartInput {
  title: string;
  /** The operation, e.g. "ecdsa-p256-sign": the y axis says what is counted. */
  operation: string;
  series: ThroughputPoint[];
  /** Under the title (default: what the chart shows), e.g. "hsm2m.medium; measured time-dilated ×20". */
  subtitle?: string;
}

export interface LatencyPoint {
  offeredPerSec: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  source: ChartSource;
  /** Names the curve a point belongs to when there are several of one source (e.g. "4 HSMs", "3 HSMs, one down"): each is its own line, dashed differently. */
  label?: string;
}
export interface LatencyChartInput {
  title: string;
  series: LatencyPoint[];
  /** Offered load past which latency climbs steeply: a vertical rule with its value. */
  kneePerSec?: number;
  /** The p99 the user asked for: a horizontal rule. */
  targetP99Ms?: number;
  subtitle?: string;
}

export interface FailoverPoint {
  atSec: number;
  opsPerSec: number;
  /** null where no request completed in the interval (the p99 line breaks there). */
  p99Ms: number | null;
  /** Requests that failed (after the client's retries) per second in the interval: bars under the throughput line. */
  failedPerSec?: number;
}
export interface FailoverChartInput {
  title: string;
  series: FailoverPoint[];
  killAtSec: number;
  recoveredAtSec?: number;
  source: ChartSource;
  /** The load offered throughout: a horizontal rule in the throughput panel, so the dip shows against the demand. */
  offeredPerSec?: number;
  subtitle?: string;
}

const MAX_POINTS = 10_000;
const MAX_TEXT = 200;
const MAX_HSMS = 1_000;

const FONT = "Helvetica, Arial, sans-serif";
const WIDTH = 520;
// Characters per line that fit the plot's width at the title's and subtitle's font sizes (Vega estimates ~0.55 em a character).
const TITLE_CHARS = 52;
const SUBTITLE_CHARS = 72;
// Okabe–Ito: distinguishable with the common colour-vision deficiencies and in greyscale print.
const SOURCE_STYLE: Record<ChartSource, { label: string; color: string; shape: string }> = {
  published: { label: "published (AWS)", color: "#000000", shape: "diamond" },
  model: { label: "queueing model", color: "#0072B2", shape: "stroke" },
  "discrete-event": { label: "discrete-event run", color: "#D55E00", shape: "triangle-up" },
  measured: { label: "measured", color: "#009E73", shape: "square" },
};
const PERCENTILES = [
  { key: "p50", label: "p50", color: "#56B4E9" },
  { key: "p95", label: "p95", color: "#E69F00" },
  { key: "p99", label: "p99", color: "#D55E00" },
] as const;
const KILL_COLOR = "#D55E00";
const RECOVERED_COLOR = "#009E73";
const RULE_COLOR = "#444444";
const DASHES = [[1, 0], [8, 4], [2, 3], [12, 3, 2, 3]];
const LINE_COLOR = "#0072B2";

const CONFIG = {
  font: FONT,
  background: "white",
  padding: 12,
  view: { stroke: null },
  title: { fontSize: 18, anchor: "start", offset: 12, subtitleFontSize: 13, subtitleColor: "#555555", subtitlePadding: 4 },
  axis: { labelFontSize: 13, titleFontSize: 14, titleFontWeight: "normal", titleColor: "#222222", labelColor: "#333333", gridColor: "#e6e6e6", domainColor: "#888888", tickColor: "#888888" },
  legend: { labelFontSize: 13, titleFontSize: 13, titleFontWeight: "normal", symbolSize: 110, symbolStrokeWidth: 2.5, labelLimit: WIDTH - 40, orient: "bottom", direction: "vertical" },
  text: { fontSize: 13 },
};

// ---------------------------------------------------------------------------------------------
// Validation: every chart input is checked before a spec is built (a NaN would draw nothing, an
// unknown source would draw in the wrong colour, without a word).

function fail(field: string, rule: string, got?: unknown): never {
  const shown = got === undefined ? "" : ` (got ${describe(got)})`;
  throw new SizingError("INVALID_ARGUMENT", `chart: ${field} must be ${rule}${shown}`);
}

function describe(value: unknown): string {
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (value === null) return "null";
  return Array.isArray(value) ? "an array" : typeof value;
}

function record(value: unknown, field: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) fail(field, "an object", value);
  return value as Record<string, unknown>;
}

function text(value: unknown, field: string): string {
  if (typeof value !== "string" || value.trim() === "" || value.length > MAX_TEXT) fail(field, `a non-empty string of at most ${MAX_TEXT} characters`, value);
  return value;
}

function optionalText(value: unknown, field: string): string | undefined {
  return value === undefined ? undefined : text(value, field);
}

function nonNegative(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) fail(field, "a finite number ≥ 0", value);
  return value;
}

function positive(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) fail(field, "a finite number > 0", value);
  return value;
}

function source(value: unknown, field: string): ChartSource {
  if (typeof value !== "string" || !(CHART_SOURCES as readonly string[]).includes(value)) fail(field, `one of ${CHART_SOURCES.join(", ")}`, value);
  return value as ChartSource;
}

function points(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_POINTS) fail(field, `an array of 1 to ${MAX_POINTS} points`, value);
  return value;
}

function checkThroughput(input: unknown): ThroughputChartInput {
  const o = record(input, "the throughput chart's input");
  return {
    title: text(o.title, "title"),
    operation: text(o.operation, "operation"),
    subtitle: optionalText(o.subtitle, "subtitle"),
    series: points(o.series, "series").map((item, i) => {
      const p = record(item, `series[${i}]`);
      const hsmCount = p.hsmCount;
      if (!Number.isInteger(hsmCount) || (hsmCount as number) < 1 || (hsmCount as number) > MAX_HSMS) fail(`series[${i}].hsmCount`, `an integer from 1 to ${MAX_HSMS}`, hsmCount);
      return { hsmCount: hsmCount as number, opsPerSec: nonNegative(p.opsPerSec, `series[${i}].opsPerSec`), source: source(p.source, `series[${i}].source`), note: optionalText(p.note, `series[${i}].note`) };
    }),
  };
}

function checkLatency(input: unknown): LatencyChartInput {
  const o = record(input, "the latency chart's input");
  return {
    title: text(o.title, "title"),
    series: points(o.series, "series").map((item, i) => {
      const p = record(item, `series[${i}]`);
      return {
        offeredPerSec: nonNegative(p.offeredPerSec, `series[${i}].offeredPerSec`),
        p50Ms: nonNegative(p.p50Ms, `series[${i}].p50Ms`),
        p95Ms: nonNegative(p.p95Ms, `series[${i}].p95Ms`),
        p99Ms: nonNegative(p.p99Ms, `series[${i}].p99Ms`),
        source: source(p.source, `series[${i}].source`),
        label: optionalText(p.label, `series[${i}].label`),
      };
    }),
    subtitle: optionalText(o.subtitle, "subtitle"),
    kneePerSec: o.kneePerSec === undefined ? undefined : nonNegative(o.kneePerSec, "kneePerSec"),
    targetP99Ms: o.targetP99Ms === undefined ? undefined : positive(o.targetP99Ms, "targetP99Ms"),
  };
}

function checkFailover(input: unknown): FailoverChartInput {
  const o = record(input, "the failover chart's input");
  const killAtSec = nonNegative(o.killAtSec, "killAtSec");
  const recoveredAtSec = o.recoveredAtSec === undefined ? undefined : nonNegative(o.recoveredAtSec, "recoveredAtSec");
  if (recoveredAtSec !== undefined && recoveredAtSec < killAtSec) fail("recoveredAtSec", `at or after killAtSec (${killAtSec})`, recoveredAtSec);
  return {
    title: text(o.title, "title"),
    series: points(o.series, "series").map((item, i) => {
      const p = record(item, `series[${i}]`);
      return {
        atSec: nonNegative(p.atSec, `series[${i}].atSec`),
        opsPerSec: nonNegative(p.opsPerSec, `series[${i}].opsPerSec`),
        p99Ms: p.p99Ms === null ? null : nonNegative(p.p99Ms, `series[${i}].p99Ms`),
        failedPerSec: p.failedPerSec === undefined ? undefined : nonNegative(p.failedPerSec, `series[${i}].failedPerSec`),
      };
    }),
    killAtSec,
    recoveredAtSec,
    source: source(o.source, "source"),
    offeredPerSec: o.offeredPerSec === undefined ? undefined : nonNegative(o.offeredPerSec, "offeredPerSec"),
    subtitle: optionalText(o.subtitle, "subtitle"),
  };
}

// ---------------------------------------------------------------------------------------------
// Specs.

const count = (n: number): string => Math.round(n).toLocaleString("en-US");
const ms = (n: number): string => (n >= 100 ? count(n) : String(Number(n.toPrecision(3))));
const seconds = (n: number): string => String(Number(n.toFixed(2)));

/** Text broken into lines of at most `width` characters (at spaces where it can): a long title wraps instead of widening the chart. */
export function wrapText(value: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of value.split(/\s+/).filter((w) => w !== "")) {
    for (let rest = word; rest !== ""; ) {
      const room = line === "" ? width : width - line.length - 1;
      if (rest.length <= room) {
        line = line === "" ? rest : `${line} ${rest}`;
        rest = "";
      } else if (line !== "") {
        lines.push(line);
        line = "";
      } else {
        lines.push(rest.slice(0, width));
        rest = rest.slice(width);
      }
    }
  }
  if (line !== "") lines.push(line);
  return lines;
}

/** The chart's title block: title and subtitle wrapped to the plot's width. */
function titleBlock(title: string, subtitle: string) {
  return { text: wrapText(title, TITLE_CHARS), subtitle: wrapText(subtitle, SUBTITLE_CHARS) };
}

/** A label per distinct (source, note), in source order: the legend's entries. */
function seriesLabel(p: { source: ChartSource; note?: string }): string {
  const label = SOURCE_STYLE[p.source].label;
  return p.note === undefined ? label : `${label} (${p.note})`;
}

function orderedLabels<T extends { source: ChartSource; note?: string }>(series: T[]): { domain: string[]; colors: string[]; shapes: string[] } {
  const seen = new Map<string, ChartSource>();
  for (const src of CHART_SOURCES) for (const p of series) if (p.source === src && !seen.has(seriesLabel(p))) seen.set(seriesLabel(p), src);
  const domain = [...seen.keys()];
  return { domain, colors: domain.map((l) => SOURCE_STYLE[seen.get(l)!].color), shapes: domain.map((l) => SOURCE_STYLE[seen.get(l)!].shape) };
}

/** Throughput against HSM count: the model as a line, every other source as points. */
export function throughputChartSpec(input: ThroughputChartInput): TopLevelSpec {
  const data = checkThroughput(input);
  const rows = data.series.map((p) => ({
    hsmCount: p.hsmCount,
    opsPerSec: p.opsPerSec,
    series: seriesLabel(p),
    description: `${seriesLabel(p)}: ${p.hsmCount} HSM${p.hsmCount === 1 ? "" : "s"}, ${count(p.opsPerSec)} ops/s`,
  }));
  const lineRows = rows.filter((_, i) => data.series[i].source === "model").sort((a, b) => a.hsmCount - b.hsmCount);
  // The published points last, so drawn on top: they are the reference the others are judged against.
  const pointRows = [...rows.filter((_, i) => !["model", "published"].includes(data.series[i].source)), ...rows.filter((_, i) => data.series[i].source === "published")];
  const { domain, colors, shapes } = orderedLabels(data.series);
  const maxHsms = Math.max(...data.series.map((p) => p.hsmCount));
  const x = { field: "hsmCount", type: "quantitative", title: "HSMs in the cluster", scale: { domain: [0, maxHsms] }, axis: { tickMinStep: 1, format: "d" } };
  const y = { field: "opsPerSec", type: "quantitative", title: `${data.operation} throughput (ops/s)`, scale: { zero: true, nice: true }, axis: { format: ",.0f" } };
  const color = { field: "series", type: "nominal", title: "source", scale: { domain, range: colors } };
  const shape = { field: "series", type: "nominal", title: "source", scale: { domain, range: shapes } };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    config: CONFIG,
    title: titleBlock(data.title, data.subtitle ?? `${data.operation}: operations per second the whole cluster completes`),
    width: WIDTH,
    height: 320,
    layer: [
      { data: { values: lineRows }, mark: { type: "line", strokeWidth: 2.5 }, encoding: { x, y, color, description: { value: `${SOURCE_STYLE.model.label}: ${data.operation} throughput against HSM count` } } },
      { data: { values: pointRows }, mark: { type: "point", filled: true, size: 110, opacity: 1, stroke: "white", strokeWidth: 0.8 }, encoding: { x, y, color, shape, description: { field: "description" } } },
    ],
    resolve: { scale: { color: "shared", shape: "shared" } },
  } as unknown as TopLevelSpec;
}

/** Latency percentiles against offered load: model lines, measured and discrete-event points, the knee and the target. */
export function latencyChartSpec(input: LatencyChartInput): TopLevelSpec {
  const data = checkLatency(input);
  const rows = data.series.flatMap((p) => PERCENTILES.map(({ key }) => ({
    offeredPerSec: p.offeredPerSec,
    percentile: key,
    latencyMs: p[`${key}Ms`],
    source: SOURCE_STYLE[p.source].label,
    model: p.source === "model",
    curve: p.label ?? SOURCE_STYLE[p.source].label,
    lineDescription: `${p.label ?? SOURCE_STYLE[p.source].label}: ${key} latency against offered load`,
    description: `${p.label === undefined ? SOURCE_STYLE[p.source].label : `${SOURCE_STYLE[p.source].label}, ${p.label}`}: ${key} ${ms(p[`${key}Ms`])} ms at ${count(p.offeredPerSec)} ops/s offered`,
  })));
  const latencies = rows.map((r) => r.latencyMs).concat(data.targetP99Ms === undefined ? [] : [data.targetP99Ms]);
  const minMs = Math.min(...latencies);
  const maxMs = Math.max(...latencies);
  // Near saturation p99 grows by orders of magnitude: a log axis keeps the low-load percentiles readable.
  const logScale = minMs > 0 && maxMs / minMs > 50;
  const maxOffered = Math.max(...data.series.map((p) => p.offeredPerSec), data.kneePerSec ?? 0);
  const x = { field: "offeredPerSec", type: "quantitative", title: "offered load (ops/s)", scale: { domain: [0, maxOffered], nice: true }, axis: { format: ",.0f" } };
  const y = { field: "latencyMs", type: "quantitative", title: logScale ? "latency (ms, log scale)" : "latency (ms)", scale: logScale ? { type: "log", domain: [minMs, maxMs], nice: true } : { zero: true, domain: [0, maxMs], nice: true } };
  const color = { field: "percentile", type: "nominal", title: "percentile", scale: { domain: PERCENTILES.map((p) => p.key), range: PERCENTILES.map((p) => p.color) } };
  const sources = CHART_SOURCES.filter((s) => data.series.some((p) => p.source === s));
  const shape = { field: "source", type: "nominal", title: "source", scale: { domain: sources.map((s) => SOURCE_STYLE[s].label), range: sources.map((s) => SOURCE_STYLE[s].shape) }, legend: { symbolFillColor: "#444444", symbolStrokeColor: "#444444" } };
  // Several model curves (all up, one HSM down…): one line per curve and percentile, the curves told apart by their dash.
  const modelRows = rows.filter((r) => r.model).sort((a, b) => a.offeredPerSec - b.offeredPerSec);
  const curves = [...new Set(rows.filter((r) => r.model).map((r) => r.curve))]; // in the caller's order: the first is solid
  const dash = curves.length > 1
    ? { strokeDash: { field: "curve", type: "nominal", title: "model curve", scale: { domain: curves, range: curves.map((_, i) => DASHES[i % DASHES.length]) }, legend: { symbolStrokeColor: "#444444", symbolType: "stroke", symbolSize: 400 } } }
    : { detail: { field: "curve", type: "nominal" } };
  const layers: unknown[] = [
    { data: { values: modelRows }, mark: { type: "line", strokeWidth: 2.5 }, encoding: { x, y, color, ...dash, description: { field: "lineDescription" } } },
    { data: { values: rows.filter((r) => !r.model) }, mark: { type: "point", filled: true, size: 90, opacity: 1, stroke: "white", strokeWidth: 0.8 }, encoding: { x, y, color, shape, description: { field: "description" } } },
  ];
  if (data.targetP99Ms !== undefined) {
    const at = [{ latencyMs: data.targetP99Ms, offeredPerSec: 0, label: `p99 target ${ms(data.targetP99Ms)} ms` }];
    layers.push(
      { data: { values: at }, mark: { type: "rule", color: PERCENTILES[2].color, strokeDash: [6, 4], strokeWidth: 1.5 }, encoding: { y: { field: "latencyMs", type: "quantitative" }, description: { field: "label" } } },
      { data: { values: at }, mark: { type: "text", align: "left", baseline: "bottom", dx: 4, dy: -3, color: PERCENTILES[2].color, fontWeight: "bold" }, encoding: { x: { field: "offeredPerSec", type: "quantitative" }, y: { field: "latencyMs", type: "quantitative" }, text: { field: "label" } } },
    );
  }
  if (data.kneePerSec !== undefined) {
    const at = [{ offeredPerSec: data.kneePerSec, label: `knee ≈ ${count(data.kneePerSec)} ops/s` }];
    layers.push(
      { data: { values: at }, mark: { type: "rule", color: RULE_COLOR, strokeDash: [4, 4], strokeWidth: 1.5 }, encoding: { x: { field: "offeredPerSec", type: "quantitative" }, description: { field: "label" } } },
      // Left of the rule, unless the knee is so near the origin that the label would leave the chart.
      { data: { values: at }, mark: { type: "text", ...(data.kneePerSec < 0.35 * maxOffered ? { align: "left", dx: 4 } : { align: "right", dx: -4 }), baseline: "top", y: 4, color: RULE_COLOR, fontWeight: "bold" }, encoding: { x: { field: "offeredPerSec", type: "quantitative" }, text: { field: "label" } } },
    );
  }
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    config: CONFIG,
    title: titleBlock(data.title, data.subtitle ?? "latency percentiles against the offered load"),
    width: WIDTH,
    height: 320,
    layer: layers,
    resolve: { scale: { color: "shared", shape: "shared" } },
  } as unknown as TopLevelSpec;
}

/** Throughput and p99 over time around an HSM killed at peak: two panels on one time axis. */
export function failoverChartSpec(input: FailoverChartInput): TopLevelSpec {
  const data = checkFailover(input);
  const rows = data.series.slice().sort((a, b) => a.atSec - b.atSec);
  const offered = data.offeredPerSec === undefined ? [] : [{ opsPerSec: data.offeredPerSec, label: `offered ${count(data.offeredPerSec)} ops/s` }];
  const times = rows.map((r) => r.atSec).concat(data.killAtSec, data.recoveredAtSec ?? data.killAtSec);
  const xDomain = [Math.min(...times), Math.max(...times)];
  // The kill's label sits left of its rule and the recovery's right of its own, both at the foot of
  // the panel, where a throughput line that is high before the kill and after the recovery leaves room.
  const events = [{ atSec: data.killAtSec, label: `HSM killed at ${seconds(data.killAtSec)} s`, color: KILL_COLOR, align: "right", dx: -4 }];
  if (data.recoveredAtSec !== undefined) events.push({ atSec: data.recoveredAtSec, label: `recovered at ${seconds(data.recoveredAtSec)} s`, color: RECOVERED_COLOR, align: "left", dx: 4 });
  const x = (title: string | null) => ({ field: "atSec", type: "quantitative", title, scale: { domain: xDomain }, axis: { labels: title !== null, format: "~r" } });
  const eventColor = { field: "color", type: "nominal", scale: null, legend: null };
  const panel = (y: unknown, lineRows: unknown[], lineDescription: string, description: string, withLabels: boolean, xTitle: string | null, withPoints: boolean) => ({
    width: WIDTH,
    height: 170,
    layer: [
      ...(withLabels && offered.length > 0 ? [
        { data: { values: offered }, mark: { type: "rule", color: RULE_COLOR, strokeDash: [2, 3], strokeWidth: 1.5 }, encoding: { y, description: { field: "label" } } },
        { data: { values: offered }, mark: { type: "text", align: "left", baseline: "bottom", x: 4, dy: -3, color: RULE_COLOR }, encoding: { y, text: { field: "label" } } },
      ] : []),
      { data: { values: events }, mark: { type: "rule", strokeDash: [6, 4], strokeWidth: 2 }, encoding: { x: x(xTitle), color: eventColor, description: { field: "label" } } },
      ...(withLabels ? events.map((e) => ({ data: { values: [e] }, mark: { type: "text", align: e.align, dx: e.dx, baseline: "bottom", y: "height", dy: -4, fontWeight: "bold" }, encoding: { x: x(xTitle), color: eventColor, text: { field: "label" } } })) : []),
      ...(withLabels && failedRows.length > 0 ? [
        { data: { values: failedRows }, mark: { type: "bar", width: barWidth, color: KILL_COLOR }, encoding: { x: x(xTitle), y: { ...(y as object), field: "failedPerSec" }, description: { field: "failedText" } } },
        // The tallest bar says what the bars are (a legend for one bar would be heavier than the bar).
        { data: { values: [worstFailed] }, mark: { type: "text", align: "left", baseline: "bottom", dx: barWidth / 2 + 3, dy: -2, color: KILL_COLOR }, encoding: { x: x(xTitle), y: { ...(y as object), field: "failedPerSec" }, text: { field: "failedLabel" } } },
      ] : []),
      { data: { values: lineRows }, mark: { type: "line", color: LINE_COLOR, strokeWidth: 2.5 }, encoding: { x: x(xTitle), y, description: { value: lineDescription } } },
      // Points too where the line breaks (an interval with no completed request): a lone value between gaps stays visible.
      ...(withPoints ? [{ data: { values: lineRows }, mark: { type: "point", filled: true, size: 30, color: LINE_COLOR, opacity: 1 }, encoding: { x: x(xTitle), y, description: { field: description } } }] : []),
    ],
  });
  // Failures as bars, each as wide as most of its interval (the series is sorted; the narrowest gap decides).
  const gaps = rows.slice(1).map((r, i) => r.atSec - rows[i].atSec).filter((g) => g > 0);
  const span = xDomain[1] - xDomain[0];
  const barWidth = gaps.length === 0 || span === 0 ? 4 : Math.max(2, Math.min(40, (0.8 * Math.min(...gaps) * WIDTH) / span));
  const failedRows = rows.filter((r) => (r.failedPerSec ?? 0) > 0).map((r) => ({ ...r, failedText: `${seconds(r.atSec)} s: ${count(r.failedPerSec!)} failed ops/s` }));
  const worstFailed = failedRows.reduce((a, b) => (b.failedPerSec! > a.failedPerSec! ? b : a), failedRows[0] ?? {});
  if (failedRows.length > 0) Object.assign(worstFailed, { failedLabel: `${count(worstFailed.failedPerSec!)} failed/s` });
  const withText = rows.map((r) => ({ ...r, throughputText: `${seconds(r.atSec)} s: ${count(r.opsPerSec)} ops/s`, p99Text: r.p99Ms === null ? `${seconds(r.atSec)} s: no request completed` : `${seconds(r.atSec)} s: p99 ${ms(r.p99Ms)} ms` }));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    config: CONFIG,
    title: titleBlock(data.title, data.subtitle ?? `an HSM killed at peak load (${SOURCE_STYLE[data.source].label})`),
    spacing: 18,
    vconcat: [
      panel({ field: "opsPerSec", type: "quantitative", title: "throughput (ops/s)", scale: { zero: true }, axis: { format: ",.0f" } }, withText, `throughput over time (${SOURCE_STYLE[data.source].label})`, "throughputText", true, null, false),
      panel({ field: "p99Ms", type: "quantitative", title: "p99 latency (ms)", scale: { zero: true } }, withText, `p99 latency over time (${SOURCE_STYLE[data.source].label})`, "p99Text", false, "time (s)", true),
    ],
  } as unknown as TopLevelSpec;
}

/** A load generator's timeline window (src/sizing/load.ts's TimelineWindow, structurally). */
export interface TimelineWindowLike {
  startMs: number;
  endMs: number;
  opsPerSec: number;
  failed: number;
  p99Ms: number | null;
}

/** The failover chart's series from a load run's timeline: each window plotted at its middle, its failures per second. */
export function failoverSeriesFromTimeline(windows: readonly TimelineWindowLike[]): FailoverPoint[] {
  return points(windows, "timeline").map((item, i) => {
    const w = record(item, `timeline[${i}]`);
    const startMs = nonNegative(w.startMs, `timeline[${i}].startMs`);
    const endMs = nonNegative(w.endMs, `timeline[${i}].endMs`);
    if (endMs <= startMs) fail(`timeline[${i}].endMs`, `after startMs (${startMs})`, endMs);
    return {
      atSec: (startMs + endMs) / 2000,
      opsPerSec: nonNegative(w.opsPerSec, `timeline[${i}].opsPerSec`),
      p99Ms: w.p99Ms === null ? null : nonNegative(w.p99Ms, `timeline[${i}].p99Ms`),
      failedPerSec: nonNegative(w.failed, `timeline[${i}].failed`) / ((endMs - startMs) / 1000),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Rendering.

/** Vega-Lite's warnings go here rather than to the console (a test turns them into failures). */
export interface RenderOptions {
  onWarning?: (message: string) => void;
}

/** Compiles a Vega-Lite spec and renders it to an SVG string, headless. */
export async function renderSvg(spec: TopLevelSpec, options: RenderOptions = {}): Promise<string> {
  const joined = (args: unknown[]) => args.map(String).join(" ");
  const logger = {
    level: () => logger,
    error: (...args: unknown[]) => { throw new SizingError("INVALID_ARGUMENT", `chart: the spec could not be compiled: ${joined(args)}`); },
    warn: (...args: unknown[]) => (options.onWarning?.(joined(args)), logger),
    info: () => logger,
    debug: () => logger,
  };
  let view: vega.View | undefined;
  try {
    view = new vega.View(vega.parse(compile(spec, { logger: logger as never }).spec), { renderer: "none", logLevel: vega.Error });
    return await view.toSVG();
  } catch (error) {
    if (error instanceof SizingError) throw error;
    throw new SizingError("INVALID_ARGUMENT", `chart: the spec could not be rendered: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    view?.finalize();
  }
}

export async function throughputChartSvg(input: ThroughputChartInput, options?: RenderOptions): Promise<string> {
  return renderSvg(throughputChartSpec(input), options);
}

export async function latencyChartSvg(input: LatencyChartInput, options?: RenderOptions): Promise<string> {
  return renderSvg(latencyChartSpec(input), options);
}

export async function failoverChartSvg(input: FailoverChartInput, options?: RenderOptions): Promise<string> {
  return renderSvg(failoverChartSpec(input), options);
}

/** Writes a chart (or the HTML report) to a file, creating its folder. */
export function writeChart(path: string, content: string): void {
  if (typeof path !== "string" || path === "") fail("the chart's path", "a non-empty string", path);
  if (typeof content !== "string" || !/^\s*(<svg[\s>]|<!doctype html>)/i.test(content)) fail("the chart's content", "an SVG or an HTML document", content);
  mkdirSync(dirname(path), { recursive: true });
  // Never through a symlink: in a shared folder (/tmp/charts) another user's report.html → ~/.bashrc would be overwritten.
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SizingError("INVALID_ARGUMENT", `chart: cannot write ${path}${code === "ELOOP" ? " (a symlink: charts are not written through one)" : ` (${code ?? String(e)})`}`);
  }
  try {
    writeFileSync(fd, content);
  } finally {
    closeSync(fd);
  }
}
