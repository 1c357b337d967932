// `hsmsim size`: how many HSMs a peak load needs, from the analytical model (src/sizing/).
import { SizingError } from "../sizing/errors.js";
import { SIZE_EXAMPLES, parseOperation } from "../sizing/operations.js";
import { PROFILE_TYPES } from "../sizing/profiles.js";
import { type SizeAnswer, DEFAULT_NETWORK_RTT_US, size } from "../sizing/size.js";
import { type ValueParser, UsageError, decimalNumber, defineCommand, oneOf, shared, wholeNumber } from "./command.js";
import { textOutput } from "./format.js";

export interface OpRate {
  operation: string;
  ratePerSec: number;
}

/** `NAME=RATE`: a known operation and a peak rate in ops/s (a number > 0). */
const opRate: ValueParser<OpRate> = (value, name) => {
  const at = value.lastIndexOf("=");
  if (at <= 0) throw new UsageError(`${name} takes NAME=RATE such as ecdsa-p256-sign=5000 or aes-gcm-4k=20000, not '${value}'`);
  const operation = value.slice(0, at);
  const rateText = value.slice(at + 1);
  try {
    parseOperation(operation);
  } catch (error) {
    if (error instanceof SizingError) throw new UsageError(`${name}: ${error.message}`);
    throw error;
  }
  const ratePerSec = Number(rateText);
  if (!/^\d+(\.\d+)?$/.test(rateText) || !(ratePerSec > 0) || ratePerSec > 1e9)
    throw new UsageError(`${name} ${operation}: the rate must be a number of ops/s above 0 and at most 1000000000, not '${rateText}'`);
  return { operation, ratePerSec };
};

const positiveMs: ValueParser<number> = (value, name) => {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0) || n > 3_600_000) throw new UsageError(`${name} takes a number of ms above 0 (at most 3600000), not '${value}'`);
  return n;
};

const profileType = oneOf(PROFILE_TYPES);
const spreading = oneOf(["pooled", "independent"] as const);

export const sizeCommand = defineCommand({
  name: "size",
  summary: "how many HSMs a peak load needs: utilisation, p50/p95/p99, one HSM down, headroom, monthly cost",
  description: `From the analytical queueing model of the type's profile (calibrated to AWS's published table; operations
without a published figure are marked as estimates). Finds the fewest HSMs (2 to 28) that serve the peak with --spare
HSMs down, every operation's p99 within --p99-ms (when given). Operations: rsa-2048-sign, ecdsa-p256-sign, their verify,
rsa-2048-encrypt/decrypt, ecdh-p256-derive, aes-wrap, the key generations, key-write, login, manage, and the bulk ones
with a size: aes-gcm-4k, aes-cbc-1k, hmac-64b, digest-1m, random-64b (sizes such as ${SIZE_EXAMPLES.join(", ")}).`,
  options: {
    ...shared.json,
    op: { type: "string", valueName: "NAME=RATE", multiple: true, parse: opRate, description: "an operation and its peak rate in ops/s (repeat for a mix)" },
    "p99-ms": { type: "string", valueName: "MS", parse: positiveMs, description: "p99 latency target for every operation (default: none, only stability)" },
    spare: { type: "string", valueName: "N", parse: wholeNumber(0, 27), description: "HSMs that may be down at peak (default 1, AWS's guidance)" },
    type: { type: "string", valueName: "TYPE", parse: profileType, description: `HSM type: ${PROFILE_TYPES.join(", ")} (default hsm2m.medium)` },
    "price-per-hour": { type: "string", valueName: "USD", parse: decimalNumber(0, 1_000_000), description: "price of one HSM-hour (default: the type's, see the output)" },
    "network-rtt-us": { type: "string", valueName: "US", parse: wholeNumber(0, 60_000_000), description: `client-HSM round trip in µs (default ${DEFAULT_NETWORK_RTT_US}); an operation makes 2` },
    spreading: { type: "string", valueName: "HOW", parse: spreading, description: "model of the client's load spreading: pooled (default) or independent" },
    report: { type: "string", valueName: "FILE.html", description: "also write one self-contained HTML report (inputs, answer, charts)" },
    charts: { type: "string", valueName: "DIR", description: "also write the charts as SVG files in DIR (throughput.svg, latency.svg)" },
  },
  examples: [
    "hsmsim size --op ecdsa-p256-sign=5000 --op aes-gcm-4k=20000 --p99-ms 50 --spare 1 --type hsm2m.medium",
    "hsmsim size --op rsa-2048-sign=3000 --json",
  ],
  async run({ values, io }) {
    const ops = values.op ?? [];
    if (ops.length === 0) throw new UsageError("give at least one --op NAME=RATE (e.g. --op ecdsa-p256-sign=5000)");
    const answer = size({
      ops, p99Ms: values["p99-ms"], spare: values.spare, type: values.type, pricePerHour: values["price-per-hour"],
      networkRttUs: values["network-rtt-us"], spreading: values.spreading,
    });
    const written: string[] = [];
    if (values.report !== undefined || values.charts !== undefined) {
      // Charts load vega (about a second): only when asked for, so the rest of the CLI starts fast.
      const { sizeCharts, sizeReportHtml, writeOutput, writeSizeCharts } = await import("../sizing/size-report.js");
      const charts = await sizeCharts(answer);
      if (values.charts !== undefined) written.push(...writeSizeCharts(values.charts, charts));
      if (values.report !== undefined) {
        writeOutput(values.report, await sizeReportHtml(answer, new Date().toISOString(), charts));
        written.push(values.report);
      }
    }
    if (values.json) io.stdout.write(`${JSON.stringify(answer, jsonNumbers, 2)}\n`);
    else {
      printAnswer(answer, (t) => io.stdout.write(t));
      for (const path of written) io.stdout.write(`   wrote ${path}\n`);
    }
    return 0;
  },
});

/** JSON has no Infinity: an unbounded capacity is written as null. */
function jsonNumbers(_key: string, value: unknown): unknown {
  return typeof value === "number" && !Number.isFinite(value) ? null : value;
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const ms = (x: number | undefined) => (x === undefined ? "—" : x < 10 ? x.toFixed(2) : x.toFixed(1));
const rate = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "unbounded");
const usd = (x: number) => `$${x.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;

export function printAnswer(a: SizeAnswer, write: (text: string) => void): void {
  const out = textOutput(write);
  const target = a.p99TargetMs === null ? "no p99 target (stability only)" : `p99 ≤ ${a.p99TargetMs} ms for every operation`;
  const down = (n: number) => (n === 1 ? "1 HSM down" : `${n} HSMs down`);
  write(`${a.type}: ${a.hsmCount} HSMs for ${rate(a.offeredPerSec)} ops/s at peak, ${target}, with ${down(a.spare)}\n`);
  const state = (label: string, s: SizeAnswer["allUp"]) => [label, s.liveHsms, s.stable ? pct(s.utilisation) : `${pct(s.utilisation)} (saturated)`,
    ms(s.latency?.p50Ms), ms(s.latency?.p95Ms), ms(s.latency?.p99Ms)];
  out.table(["cluster", "HSMs up", "utilisation", "p50 ms", "p95 ms", "p99 ms"], [
    state(a.spare === 0 ? "all up (sized for)" : "all up", a.allUp),
    ...(a.spare === 0 ? [] : [state(`${down(a.spare)} (sized for)`, a.withSpareDown)]),
    ...(a.spare === 1 ? [] : [state("1 HSM down at peak", a.oneDown)]),
  ]);
  const estimateMark = (o: SizeAnswer["operations"][number]) => (o.estimate ? `${o.operation} *` : o.operation);
  const sized = a.spare === 0 ? "all up" : `${a.spare} down`;
  const capacityDown = a.spare === 0 ? [] : [`capacity/s ${sized}`];
  out.table(["operation", "rate/s", "service ms", "capacity/s all up", ...capacityDown, `p99 ms ${sized}`],
    a.operations.map((o) => [estimateMark(o), rate(o.ratePerSec), ms(o.serviceMs), rate(o.capacityAllUpPerSec),
      ...(a.spare === 0 ? [] : [rate(o.capacityWithSpareDownPerSec)]), ms(o.p99WithSpareDownMs ?? undefined)]));
  write(`   headroom: +${a.headroom.percent.toFixed(1)}% (${rate(a.headroom.opsPerSec)} ops/s more) before the target breaks with ${down(a.spare)}\n`);
  write(`   knee: ${rate(a.kneePerSec)} ops/s of this mix, all up (the p99 at the HSMs doubles there)\n`);
  write(`   latency includes 2 network round trips of ${a.networkRttUs} µs per operation\n`);
  write(`   monthly cost: ${usd(a.cost.monthlyUsd)} (${a.cost.hoursPerMonth} h × ${a.hsmCount} HSMs × ${usd(a.cost.usdPerHour)}/h; ${a.cost.confirmed ? a.cost.source : `price ${a.cost.source}`})\n`);
  for (const o of a.operations.filter((x) => x.estimate)) write(`   * ${o.operation}: ESTIMATE, no published figure: ${o.reasoning}\n`);
}
