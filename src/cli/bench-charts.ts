// The charts of one `hsmsim bench --against` run, drawn with src/sizing/charts.ts from what was
// measured (dilation corrected): latency percentiles at the offered load, throughput and p99
// over time (with the kill marked when --kill-at-s killed an HSM at peak), and one HTML report.
import { join } from "node:path";

import { failoverChartSvg, failoverSeriesFromTimeline, latencyChartSvg, writeChart } from "../sizing/charts.js";
import type { LoadMode } from "../sizing/load.js";
import { htmlReport } from "../sizing/report.js";
import type { RemoteBenchResult } from "./bench-against.js";

export interface BenchChartContext {
  operations: string[];
  mode: LoadMode;
  /** Seconds into the run (warm-up included, profile time) when an HSM was killed. */
  killAtSec?: number;
}

/** Writes the SVG charts and report.html into `dir`; returns the paths written. */
export async function benchChartFiles(r: RemoteBenchResult, dir: string, context: BenchChartContext): Promise<string[]> {
  const k = r.timeDilation;
  const dilation = k === 1 ? "" : ` (time-dilated ×${k}, corrected)`;
  const written: string[] = [];
  const charts: { title: string; svg: string }[] = [];
  const l = r.dilated.latency;
  if (l !== null) {
    const title = `Latency at ${Math.round(r.dilated.offeredPerSec)} ops/s offered${dilation}`;
    const svg = await latencyChartSvg({
      title, series: [{ offeredPerSec: r.dilated.offeredPerSec, p50Ms: l.p50Ms, p95Ms: l.p95Ms, p99Ms: l.p99Ms, source: "measured" }],
    });
    const path = join(dir, "latency.svg");
    writeChart(path, svg);
    written.push(path);
    charts.push({ title, svg });
  }
  // Profile time: the timeline's windows are already divided by K.
  const timeline = failoverSeriesFromTimeline(r.dilated.timeline);
  if (timeline.length > 0) {
    const title = context.killAtSec === undefined ? `Throughput and p99 over time${dilation}` : `An HSM killed at peak${dilation}`;
    // The failover chart marks a kill; without one, its marker sits at the start of the measured window.
    const killAtSec = context.killAtSec ?? r.measured.warmUpMs / 1000 / k;
    const svg = await failoverChartSvg({
      title, series: timeline, killAtSec: Math.min(killAtSec, timeline[timeline.length - 1].atSec), source: "measured",
      offeredPerSec: context.mode.kind === "open" ? r.dilated.offeredPerSec : undefined,
      subtitle: context.killAtSec === undefined ? "no HSM killed: the marker is the start of the measured window" : undefined,
    });
    const path = join(dir, context.killAtSec === undefined ? "timeline.svg" : "failover.svg");
    writeChart(path, svg);
    written.push(path);
    charts.push({ title, svg });
  }
  const m = r.measured;
  const html = htmlReport({
    title: `hsmsim bench --against ${r.against}`,
    generatedAt: new Date().toISOString(),
    inputs: [
      { label: "cluster", value: r.against },
      { label: "operations", value: context.operations.join(", ") },
      { label: "load", value: context.mode.kind === "open" ? `open loop, ${Math.round(context.mode.ratePerSec * k)} ops/s offered` : `closed loop, ${context.mode.concurrency} in flight` },
      { label: "measured", value: `${m.measuredMs / 1000} s after ${m.warmUpMs / 1000} s warm-up (wall clock)` },
      { label: "time dilation", value: k === 1 ? "none" : `×${k}: rates × ${k}, latencies ÷ ${k}` },
      { label: "connections", value: r.connections },
    ],
    answer: [
      { label: `throughput (ops/s)${dilation}`, value: Math.round(r.dilated.throughputPerSec) },
      { label: `p50 / p95 / p99 (ms)${dilation}`, value: l === null ? "-" : `${l.p50Ms.toFixed(2)} / ${l.p95Ms.toFixed(2)} / ${l.p99Ms.toFixed(2)}` },
      { label: "completed / failed", value: `${m.completed} / ${m.failed}` },
      { label: "failures by reason", value: Object.entries(m.failedByReason).map(([why, n]) => `${why} ×${n}`).join(", ") || "none" },
      { label: "client CPU (% of one core)", value: r.clientCpuPercent },
    ],
    notes: k === 1 ? [] : [`The cluster ran every service time ×${k}; the figures are corrected (rates × ${k}, latencies ÷ ${k}, the network's share of a latency included).`],
    charts,
  });
  const report = join(dir, "report.html");
  writeChart(report, html);
  written.push(report);
  return written;
}
