// The sizing charts and the HTML report: each chart renders to well-formed SVG whose data marks
// are the data points (counted through the aria labels Vega emits), with its titles, axis titles
// and legend; hostile text comes out inert; bad data is refused with a typed error.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  failoverChartSpec, failoverChartSvg, failoverSeriesFromTimeline, latencyChartSvg, renderSvg, throughputChartSpec, throughputChartSvg, wrapText, writeChart,
  type FailoverChartInput, type LatencyChartInput, type ThroughputChartInput,
} from "../../src/sizing/charts.js";
import { SizingError } from "../../src/sizing/errors.js";
import { PUBLISHED, profileFor } from "../../src/sizing/profiles.js";
import { kneePerSec, latencyCurve, saturationPerSec } from "../../src/sizing/queueing.js";
import { escapeHtml, htmlReport, type ReportInput } from "../../src/sizing/report.js";

/** A small XML well-formedness check: balanced tags, quoted attributes, no stray '<' or bare '&'. */
function expectWellFormed(xml: string): void {
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    const textEnd = lt === -1 ? xml.length : lt;
    const between = xml.slice(i, textEnd);
    expect(between, `text before offset ${textEnd}`).not.toMatch(/[<>]|&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/);
    if (lt === -1) break;
    tag.lastIndex = lt;
    const m = tag.exec(xml);
    expect(m, `a tag at offset ${lt}: ${xml.slice(lt, lt + 80)}`).not.toBeNull();
    const [whole, closing, name, , selfClosing] = m!;
    if (closing) expect(stack.pop(), `closing </${name}> at ${lt}`).toBe(name);
    else if (!selfClosing) stack.push(name);
    i = lt + whole.length;
  }
  expect(stack).toEqual([]);
}

const count = (svg: string, pattern: RegExp): number => (svg.match(new RegExp(pattern.source, "g")) ?? []).length;
const ariaLabels = (svg: string, role: string): string[] =>
  [...svg.matchAll(new RegExp(`aria-label="([^"]*)" role="graphics-symbol" aria-roledescription="${role}"`, "g"))].map((m) => m[1]);
/** The translate(x,y) of each point mark, in document order. */
const pointPositions = (svg: string): { x: number; y: number }[] =>
  [...svg.matchAll(/aria-roledescription="point" transform="translate\(([-\d.e]+),([-\d.e]+)\)"/g)].map((m) => ({ x: Number(m[1]), y: Number(m[2]) }));

function collectWarnings(): { onWarning: (m: string) => void; warnings: string[] } {
  const warnings: string[] = [];
  return { onWarning: (m) => warnings.push(m), warnings };
}

const throughputInput = (): ThroughputChartInput => ({
  title: "EC P-256 sign, hsm2m.medium",
  operation: "ecdsa-p256-sign",
  series: [
    ...Array.from({ length: 12 }, (_, i) => ({ hsmCount: i + 1, opsPerSec: 1600 * (i + 1) / (1 + 0.08 * i), source: "model" as const })),
    { hsmCount: 2, opsPerSec: 3000, source: "published" },
    { hsmCount: 3, opsPerSec: 4500, source: "published" },
    { hsmCount: 6, opsPerSec: 7000, source: "published" },
    { hsmCount: 2, opsPerSec: 2950, source: "discrete-event" },
    { hsmCount: 6, opsPerSec: 6900, source: "measured", note: "time-dilated ×20" },
  ],
});

const latencyInput = (): LatencyChartInput => ({
  title: "Latency against load, 6 × hsm2m.medium",
  series: [
    ...[1000, 2000, 3000, 4000, 5000, 6000, 6800].map((r) => {
      const mean = 1.2 / (1 - r / 7000);
      return { offeredPerSec: r, p50Ms: 0.7 * mean, p95Ms: 3 * mean, p99Ms: 4.6 * mean, source: "model" as const };
    }),
    { offeredPerSec: 3000, p50Ms: 1.5, p95Ms: 6, p99Ms: 9, source: "discrete-event" },
    { offeredPerSec: 6000, p50Ms: 7, p95Ms: 28, p99Ms: 45, source: "measured" },
  ],
  kneePerSec: 5600,
  targetP99Ms: 50,
});

const failoverInput = (): FailoverChartInput => ({
  title: "One HSM killed at peak",
  series: Array.from({ length: 21 }, (_, s) => ({ atSec: s, opsPerSec: s < 10 ? 5000 : s < 13 ? 3000 : 4200, p99Ms: s === 10 ? null : s < 10 ? 20 : s < 13 ? 150 : 35 })),
  killAtSec: 10,
  recoveredAtSec: 13,
  source: "discrete-event",
});

describe("throughput chart", () => {
  it("renders well-formed SVG: one model line, a point per other measurement, titles, axes and legend", async () => {
    const { onWarning, warnings } = collectWarnings();
    const svg = await throughputChartSvg(throughputInput(), { onWarning });
    expect(warnings).toEqual([]);
    expect(svg.startsWith("<svg")).toBe(true);
    expectWellFormed(svg);
    expect(count(svg, /aria-roledescription="line mark"/)).toBe(1);
    // The model line passes through all 12 of its points: 1 move and 11 line segments.
    const line = svg.match(/aria-roledescription="line mark" d="([^"]*)"/)![1];
    expect(count(line, /M/)).toBe(1);
    expect(count(line, /L/)).toBe(11);
    const points = ariaLabels(svg, "point");
    expect(points).toHaveLength(5);
    expect(points).toContain("published (AWS): 6 HSMs, 7,000 ops/s");
    expect(points).toContain("measured (time-dilated ×20): 6 HSMs, 6,900 ops/s");
    expect(svg).toContain("Title text 'EC P-256 sign, hsm2m.medium'");
    expect(svg).toContain("X-axis titled 'HSMs in the cluster'");
    // Zero-based throughput: the y axis starts at 0 whatever the data's minimum.
    expect(svg).toMatch(/Y-axis titled 'ecdsa-p256-sign throughput \(ops\/s\)' for a linear scale with values from 0 to /);
    for (const label of ["published (AWS)", "queueing model", "discrete-event run", "measured (time-dilated ×20)"]) expect(svg).toContain(`>${label}</text>`);
    expect(svg).toContain('font-family="Helvetica, Arial, sans-serif"');
  });

  it("places points where the data says: more HSMs to the right, more throughput higher", async () => {
    const svg = await throughputChartSvg({ title: "t", operation: "rsa-2048-sign", series: [
      { hsmCount: 2, opsPerSec: 2000, source: "published" }, { hsmCount: 3, opsPerSec: 3000, source: "published" }, { hsmCount: 6, opsPerSec: 5000, source: "published" },
    ] });
    const [a, b, c] = pointPositions(svg);
    expect(a.x).toBeLessThan(b.x);
    expect(b.x).toBeLessThan(c.x);
    expect(a.y).toBeGreaterThan(b.y); // SVG y grows downwards
    expect(b.y).toBeGreaterThan(c.y);
    // Linear scales from 0: the 6-HSM point is at 6/6 of the width, the 3-HSM one at half of it.
    expect(b.x / c.x).toBeCloseTo(0.5, 5);
  });

  it("renders the same SVG for the same data (a committed chart only changes when its numbers do)", async () => {
    expect(await throughputChartSvg(throughputInput())).toBe(await throughputChartSvg(throughputInput()));
  });

  it("wraps a long title rather than widening the chart, and cuts an overlong legend label", async () => {
    const svg = await throughputChartSvg({ title: "A very long title ".repeat(11), operation: "aes-gcm-4k", series: [{ hsmCount: 1, opsPerSec: 10, source: "measured", note: "a long note ".repeat(16) }] });
    const width = Number(svg.match(/^<svg[^>]* width="(\d+)"/)![1]);
    expect(width).toBeLessThan(900);
    expect(count(svg, /role-title-text/)).toBe(1);
    expect(count(svg, /<tspan/)).toBeGreaterThanOrEqual(4); // the title's lines
    expect(svg).toContain("…</text>");
  });

  it("keeps hostile text inert in the SVG", async () => {
    const svg = await throughputChartSvg({ title: `<script>alert("t")</script>`, operation: `x"><script>alert(1)</script>`, series: [
      { hsmCount: 1, opsPerSec: 10, source: "measured", note: `</text><script>alert('n')</script>&` },
    ] });
    expectWellFormed(svg);
    expect(svg).not.toMatch(/<script/i);
    expect(svg).toContain("&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt;");
  });
});

describe("latency chart", () => {
  it("draws a line per percentile for the model, points for the others, the knee and the p99 target", async () => {
    const { onWarning, warnings } = collectWarnings();
    const svg = await latencyChartSvg(latencyInput(), { onWarning });
    expect(warnings).toEqual([]);
    expectWellFormed(svg);
    const lines = ariaLabels(svg, "line mark");
    expect(lines.sort()).toEqual(["queueing model: p50 latency against offered load", "queueing model: p95 latency against offered load", "queueing model: p99 latency against offered load"]);
    // 2 non-model measurements × 3 percentiles.
    const points = ariaLabels(svg, "point");
    expect(points).toHaveLength(6);
    expect(points).toContain("measured: p99 45 ms at 6,000 ops/s offered");
    expect(svg).toContain(">knee ≈ 5,600 ops/s</text>");
    expect(svg).toContain(">p99 target 50 ms</text>");
    expect(count(svg, /aria-roledescription="rule mark"/)).toBe(2);
    expect(svg).toContain("X-axis titled 'offered load (ops/s)' for a linear scale with values from 0 to");
    // Latency spans more than 50× here: a log axis, and its title says so.
    expect(svg).toContain("Y-axis titled 'latency (ms, log scale)' for a log scale");
    for (const label of [">p50<", ">p95<", ">p99<", ">queueing model<", ">discrete-event run<", ">measured<"]) expect(svg).toContain(label);
  });

  it("uses a zero-based linear axis when latencies stay within one order of magnitude, and no rules unless asked", async () => {
    const svg = await latencyChartSvg({ title: "flat", series: [
      { offeredPerSec: 100, p50Ms: 2, p95Ms: 4, p99Ms: 5, source: "measured" },
      { offeredPerSec: 200, p50Ms: 2.5, p95Ms: 5, p99Ms: 6, source: "measured" },
    ] });
    expect(svg).toMatch(/Y-axis titled 'latency \(ms\)' for a linear scale with values from 0 to/);
    expect(count(svg, /aria-roledescription="rule mark"/)).toBe(0);
    expect(count(svg, /aria-roledescription="line mark"/)).toBe(0);
    expect(ariaLabels(svg, "point")).toHaveLength(6);
  });
  it("draws one line per curve and percentile when model points are labelled (all up, one down), dashed apart", async () => {
    const { onWarning, warnings } = collectWarnings();
    const curve = (label: string, capacity: number) => [1000, 3000, 5000].map((r) => ({ offeredPerSec: r, p50Ms: 1 / (1 - r / capacity), p95Ms: 3 / (1 - r / capacity), p99Ms: 5 / (1 - r / capacity), source: "model" as const, label }));
    const svg = await latencyChartSvg({ title: "two curves", subtitle: "4 × hsm2m.medium, one down", series: [...curve("4 HSMs", 8000), ...curve("3 HSMs, one down", 6000)], kneePerSec: 100 }, { onWarning });
    expect(warnings).toEqual([]);
    expectWellFormed(svg);
    const lines = ariaLabels(svg, "line mark");
    expect(lines).toHaveLength(6);
    expect(lines).toContain("3 HSMs, one down: p99 latency against offered load");
    for (const line of [...svg.matchAll(/aria-roledescription="line mark" d="([^"]*)"/g)]) expect(count(line[1], /L/)).toBe(2); // 3 points each, not a zigzag through both curves
    expect(count(svg, /stroke-dasharray="8,4"/)).toBe(3 + 1); // the second curve's 3 lines and its legend symbol
    expect(svg).toContain("Subtitle text '4 × hsm2m.medium, one down'");
    // A knee near the origin is labelled to the right of its rule, inside the chart.
    expect(svg).toMatch(/<text [^>]*text-anchor="start"[^>]*>knee ≈ 100 ops\/s<\/text>/);
  });
});

describe("failover chart", () => {
  it("stacks throughput and p99 on one time axis, marks the kill and the recovery, breaks the p99 line where it has no value", async () => {
    const { onWarning, warnings } = collectWarnings();
    const svg = await failoverChartSvg(failoverInput(), { onWarning });
    expect(warnings).toEqual([]);
    expectWellFormed(svg);
    expect(svg).toContain("Y-axis titled 'throughput (ops/s)' for a linear scale with values from 0 to");
    expect(svg).toContain("Y-axis titled 'p99 latency (ms)' for a linear scale with values from 0 to");
    expect(svg).toContain("X-axis titled 'time (s)' for a linear scale with values from 0 to 20");
    expect(svg).toContain(">HSM killed at 10 s</text>");
    expect(svg).toContain(">recovered at 13 s</text>");
    expect(count(svg, /aria-roledescription="rule mark"/)).toBe(4); // kill and recovery, in each panel
    const throughput = svg.match(/aria-label="throughput over time \(discrete-event run\)" role="graphics-symbol" aria-roledescription="line mark" d="([^"]*)"/)![1];
    const p99 = svg.match(/aria-label="p99 latency over time \(discrete-event run\)" role="graphics-symbol" aria-roledescription="line mark" d="([^"]*)"/)![1];
    expect(count(throughput, /M/)).toBe(1);
    expect(count(p99, /M/)).toBe(2); // the interval with no completed request is a gap, not an interpolation
    const points = ariaLabels(svg, "point");
    expect(points).toHaveLength(20);
    expect(points).toContain("11 s: p99 150 ms");
    expect(svg).not.toContain("offered "); // no offered load given, no rule for it
    // Both panels share the x scale: the kill rule sits at the same x in each.
    const ruleXs = [...svg.matchAll(/aria-label="HSM killed at 10 s" role="graphics-symbol" aria-roledescription="rule mark" transform="translate\(([-\d.]+),/g)].map((m) => m[1]);
    expect(ruleXs).toHaveLength(2);
    expect(ruleXs[0]).toBe(ruleXs[1]);
  });

  it("draws the offered load as a rule in the throughput panel when given", async () => {
    const svg = await failoverChartSvg({ ...failoverInput(), offeredPerSec: 5000, subtitle: "3 × hsm2m.medium" });
    expect(svg).toContain(">offered 5,000 ops/s</text>");
    expect(count(svg, /aria-roledescription="rule mark"/)).toBe(5);
    expect(svg).toContain("Subtitle text '3 × hsm2m.medium'");
  });

  it("draws requests that failed after retries as bars under the throughput line, the worst labelled", async () => {
    const input = failoverInput();
    input.series[10].failedPerSec = 600;
    input.series[11].failedPerSec = 40;
    input.series[12].failedPerSec = 0;
    const svg = await failoverChartSvg(input);
    expectWellFormed(svg);
    expect(ariaLabels(svg, "bar")).toEqual(["10 s: 600 failed ops/s", "11 s: 40 failed ops/s"]);
    expect(svg).toContain(">600 failed/s</text>");
    expect(await failoverChartSvg(failoverInput())).not.toContain("failed");
  });

  it("turns a load run's timeline into the failover series: windows at their middle, failures per second", () => {
    const series = failoverSeriesFromTimeline([
      { startMs: 0, endMs: 500, opsPerSec: 4000, failed: 0, p99Ms: 20 },
      { startMs: 500, endMs: 1000, opsPerSec: 1000, failed: 30, p99Ms: null },
    ]);
    expect(series).toEqual([
      { atSec: 0.25, opsPerSec: 4000, p99Ms: 20, failedPerSec: 0 },
      { atSec: 0.75, opsPerSec: 1000, p99Ms: null, failedPerSec: 60 },
    ]);
    expect(() => failoverSeriesFromTimeline([{ startMs: 5, endMs: 5, opsPerSec: 1, failed: 0, p99Ms: 1 }])).toThrow(/timeline\[0\]\.endMs/);
    expect(() => failoverSeriesFromTimeline([])).toThrow(SizingError);
  });

  it("sorts the series by time (callers may pass intervals in any order)", () => {
    const input = failoverInput();
    input.series.reverse();
    const spec = failoverChartSpec(input) as unknown as { vconcat: { layer: { data: { values: { atSec: number }[] } }[] }[] };
    const times = spec.vconcat[0].layer.at(-1)!.data.values.map((r) => r.atSec);
    expect(times).toEqual([...times].sort((a, b) => a - b));
  });
});

describe("bad chart data", () => {
  const cases: [string, () => Promise<string>, string][] = [
    ["a NaN", () => throughputChartSvg({ ...throughputInput(), series: [{ hsmCount: 2, opsPerSec: NaN, source: "model" }] }), "series[0].opsPerSec"],
    ["an Infinity", () => latencyChartSvg({ ...latencyInput(), series: [{ offeredPerSec: 1, p50Ms: 1, p95Ms: Infinity, p99Ms: 2, source: "model" }] }), "series[0].p95Ms"],
    ["a negative rate", () => throughputChartSvg({ ...throughputInput(), series: [{ hsmCount: 2, opsPerSec: -1, source: "model" }] }), "series[0].opsPerSec"],
    ["a number as a string", () => throughputChartSvg({ ...throughputInput(), series: [{ hsmCount: 2, opsPerSec: "5" as never, source: "model" }] }), "series[0].opsPerSec"],
    ["a fractional HSM count", () => throughputChartSvg({ ...throughputInput(), series: [{ hsmCount: 2.5, opsPerSec: 1, source: "model" }] }), "series[0].hsmCount"],
    ["zero HSMs", () => throughputChartSvg({ ...throughputInput(), series: [{ hsmCount: 0, opsPerSec: 1, source: "model" }] }), "series[0].hsmCount"],
    ["an empty series", () => throughputChartSvg({ ...throughputInput(), series: [] }), "series"],
    ["a missing series", () => latencyChartSvg({ title: "t" } as never), "series"],
    ["an unknown source", () => throughputChartSvg({ ...throughputInput(), series: [{ hsmCount: 1, opsPerSec: 1, source: "guess" as never }] }), "series[0].source"],
    ["an unknown failover source", () => failoverChartSvg({ ...failoverInput(), source: "MODEL" as never }), "source"],
    ["an empty title", () => throughputChartSvg({ ...throughputInput(), title: "  " }), "title"],
    ["an overlong note", () => throughputChartSvg({ ...throughputInput(), series: [{ hsmCount: 1, opsPerSec: 1, source: "measured", note: "x".repeat(201) }] }), "series[0].note"],
    ["a null point", () => failoverChartSvg({ ...failoverInput(), series: [null as never] }), "series[0]"],
    ["a null input", () => failoverChartSvg(null as never), "failover chart's input"],
    ["a zero p99 target", () => latencyChartSvg({ ...latencyInput(), targetP99Ms: 0 }), "targetP99Ms"],
    ["an infinite knee (omit it instead)", () => latencyChartSvg({ ...latencyInput(), kneePerSec: Infinity }), "kneePerSec"],
    ["a negative failure rate", () => failoverChartSvg({ ...failoverInput(), series: [{ atSec: 0, opsPerSec: 1, p99Ms: 1, failedPerSec: -1 }] }), "series[0].failedPerSec"],
    ["a NaN offered load", () => failoverChartSvg({ ...failoverInput(), offeredPerSec: NaN }), "offeredPerSec"],
    ["an empty curve label", () => latencyChartSvg({ ...latencyInput(), series: [{ offeredPerSec: 1, p50Ms: 1, p95Ms: 2, p99Ms: 3, source: "model", label: "" }] }), "series[0].label"],
    ["a subtitle that is not a string", () => throughputChartSvg({ ...throughputInput(), subtitle: 5 as never }), "subtitle"],
    ["a NaN knee", () => latencyChartSvg({ ...latencyInput(), kneePerSec: NaN }), "kneePerSec"],
    ["a recovery before the kill", () => failoverChartSvg({ ...failoverInput(), recoveredAtSec: 5 }), "recoveredAtSec"],
    ["a NaN p99 (null is the way to say none)", () => failoverChartSvg({ ...failoverInput(), series: [{ atSec: 0, opsPerSec: 1, p99Ms: NaN }] }), "series[0].p99Ms"],
    ["too many points", () => throughputChartSvg({ ...throughputInput(), series: Array.from({ length: 10_001 }, () => ({ hsmCount: 1, opsPerSec: 1, source: "model" as const })) }), "series"],
  ];
  for (const [what, run, field] of cases) {
    it(`refuses ${what} with a SizingError naming ${field}`, async () => {
      const error = await run().then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(SizingError);
      expect(error).toMatchObject({ name: "SizingError", code: "INVALID_ARGUMENT" });
      expect((error as Error).message).toContain(field);
    });
  }

  it("turns a spec Vega-Lite cannot compile into a SizingError rather than a crash", async () => {
    await expect(renderSvg({ mark: "nonsense" } as never)).rejects.toMatchObject({ name: "SizingError", code: "INVALID_ARGUMENT" });
    await expect(renderSvg({ data: { values: [] }, mark: "point", encoding: { x: { field: "a", type: "nope" } } } as never)).rejects.toMatchObject({ name: "SizingError", code: "INVALID_ARGUMENT" });
  });

  it("the spec builders validate too (no spec is made from bad data)", () => {
    expect(() => throughputChartSpec({ ...throughputInput(), operation: "" })).toThrow(SizingError);
  });
});

describe("the charts take the model's outputs as they come", () => {
  it("draws AWS's table against the model's curve, and the model's latency curve with its knee", async () => {
    const profile = profileFor("hsm2m.medium");
    const published = PUBLISHED.filter((p) => p.type === "hsm2m.medium" && p.operation === "ecdsa-p256-sign");
    const model = Array.from({ length: 12 }, (_, i) => ({ hsmCount: i + 1, opsPerSec: saturationPerSec(profile, i + 1, "ecdsa-p256-sign"), source: "model" as const }));
    const { onWarning, warnings } = collectWarnings();
    const throughput = await throughputChartSvg({ title: "EC P-256 sign", operation: "ecdsa-p256-sign", series: [...model, ...published.map((p) => ({ ...p, source: "published" as const }))] }, { onWarning });
    expect(ariaLabels(throughput, "point")).toHaveLength(3);
    const input = { profile, hsmCount: 3, load: [{ operation: "ecdsa-p256-sign", opClass: "ecdsa-p256-sign" as const, inputBytes: 0, ratePerSec: 1000 }] };
    const curve = latencyCurve(input, { points: 20 });
    const latency = await latencyChartSvg({ title: "3 HSMs", series: curve.map((p) => ({ ...p, source: "model" as const })), kneePerSec: kneePerSec(input), targetP99Ms: 50 }, { onWarning });
    expect(ariaLabels(latency, "line mark")).toHaveLength(3);
    expect(latency).toMatch(/>knee ≈ [\d,]+ ops\/s<\/text>/);
    expect(warnings).toEqual([]);
  });
});

describe("wrapText", () => {
  it("breaks at spaces within the width, splits a word longer than the width, drops extra spaces", () => {
    expect(wrapText("one two three four", 9)).toEqual(["one two", "three", "four"]);
    expect(wrapText("abcdefghij kl", 4)).toEqual(["abcd", "efgh", "ij", "kl"]);
    expect(wrapText("  a   b  ", 10)).toEqual(["a b"]);
    expect(wrapText("", 10)).toEqual([]);
    for (const line of wrapText("The quick brown fox jumps over the lazy dog ".repeat(5), 12)) expect(line.length).toBeLessThanOrEqual(12);
  });
});

describe("writeChart", () => {
  const dir = mkdtempSync(join(tmpdir(), "hsmsim-charts-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("writes an SVG into a new folder, and refuses what is not an SVG or HTML document", async () => {
    const svg = await throughputChartSvg(throughputInput());
    const path = join(dir, "a", "b", "throughput.svg");
    writeChart(path, svg);
    expect(readFileSync(path, "utf8")).toBe(svg);
    expect(() => writeChart(join(dir, "x.svg"), "not a chart")).toThrow(SizingError);
    expect(() => writeChart("", svg)).toThrow(SizingError);
  });
});

describe("HTML report", () => {
  const hostile = `<script>alert("x")</script><img src=x onerror='alert(1)'>`;
  let charts: { title: string; svg: string }[] = [];
  const report = (over: Partial<ReportInput> = {}): string => htmlReport({
    title: "Sizing: ecdsa-p256-sign 5,000/s",
    generatedAt: "2026-12-02T01:00:00Z",
    inputs: [{ label: "ecdsa-p256-sign", value: "5,000 ops/s" }, { label: "p99 target", value: "50 ms" }],
    answer: [{ label: "HSMs needed", value: 4 }, { label: "utilisation", value: "62 %" }],
    notes: ["measured rates are time-dilated ×20"],
    charts,
    ...over,
  });

  it("holds every chart inline with the inputs and the answer, and nothing that fetches or runs", async () => {
    charts = [
      { title: "Throughput", svg: await throughputChartSvg(throughputInput()) },
      { title: "Latency", svg: await latencyChartSvg(latencyInput()) },
      { title: "Failover", svg: await failoverChartSvg(failoverInput()) },
    ];
    const html = report();
    expect(html.startsWith("<!doctype html>\n")).toBe(true);
    expect(count(html, /<svg[\s>]/)).toBe(3);
    expect(count(html, /<figure>/)).toBe(3);
    expect(html).toContain("<th scope=\"row\">HSMs needed</th><td>4</td>");
    expect(html).toContain("<li>measured rates are time-dilated ×20</li>");
    expect(html).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
    expect(html).toContain("@media print");
    expect(html).not.toMatch(/<script|<link|<img|<iframe|\ssrc=|href=|https?:\/\/|url\((?!#)/i);
    // The body (after the head's meta and style) is well-formed markup.
    expectWellFormed(html.slice(html.indexOf("<body>"), html.indexOf("</html>")));
  });

  it("renders the same bytes for the same input (no clock read inside)", () => {
    expect(report()).toBe(report());
    expect(report()).toContain('<time datetime="2026-12-02T01:00:00Z">');
  });

  it("escapes every text: title, labels, values, notes and chart titles come out inert", () => {
    const html = report({
      title: hostile,
      inputs: [{ label: hostile, value: hostile }],
      answer: [{ label: `"quoted" & 'single'`, value: 3 }],
      notes: [hostile],
      charts: [{ title: hostile, svg: charts[0].svg }],
    });
    expect(html).not.toMatch(/<script|<img/i); // "onerror=" remains, as text inside an escaped string
    expect(count(html, new RegExp(escapeHtml(hostile).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))).toBe(6); // <title>, <h1>, input label and value, note, caption
    expect(html).toContain("&quot;quoted&quot; &amp; &#39;single&#39;");
  });

  it("makes ids unique per chart so two charts' references cannot cross", () => {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><defs><clipPath id="clip1"><rect width="5" height="5"/></clipPath></defs><g clip-path="url(#clip1)"></g></svg>';
    const html = report({ charts: [{ title: "a", svg }, { title: "b", svg }] });
    expect(html).toContain('id="chart0-clip1"');
    expect(html).toContain('id="chart1-clip1"');
    expect(html).toContain('clip-path="url(#chart1-clip1)"');
    expect(html).not.toContain('id="clip1"');
    expect(html).not.toContain("xmlns");
  });

  const badSvgs: [string, string][] = [
    ["a script", '<svg><script>alert(1)</script></svg>'],
    ["an event handler", '<svg onload="alert(1)"></svg>'],
    ["a link", '<svg><a href="https://example.com"><text>x</text></a></svg>'],
    ["an external image", '<svg><image href="https://example.com/x.png"/></svg>'],
    ["an external url()", '<svg><rect fill="url(https://example.com/x#p)"/></svg>'],
    ["a foreignObject", '<svg><foreignObject><div>x</div></foreignObject></svg>'],
    ["two SVGs", '<svg></svg><svg></svg>'],
    ["text after the SVG", '<svg></svg><p>x</p>'],
    ["not an SVG", "<div>chart</div>"],
    ["a number", 42 as never],
  ];
  for (const [what, svg] of badSvgs) {
    it(`refuses a chart with ${what}`, () => {
      expect(() => report({ charts: [{ title: "t", svg }] })).toThrow(expect.objectContaining({ name: "SizingError", code: "INVALID_ARGUMENT", message: expect.stringContaining("charts[0].svg") }));
    });
  }

  it("refuses a bad date, a NaN value and a missing title with a SizingError", () => {
    for (const over of [{ generatedAt: "yesterday" }, { generatedAt: "2026-13-45T99:00:00Z" }, { answer: [{ label: "x", value: NaN }] }, { title: "" }, { inputs: "x" as never }, { notes: [1 as never] }]) {
      expect(() => report(over)).toThrow(SizingError);
    }
    expect(() => htmlReport(null as never)).toThrow(SizingError);
  });
});
