// One self-contained HTML page holding a sizing answer: the inputs, the answer, notes and the
// charts as inline SVG. No script, no external URL, nothing fetched when it is opened: it can be
// mailed, attached to a ticket or printed. Every text is escaped; a chart's SVG is markup and is
// checked instead (it must be an SVG with nothing active in it, as the chart functions make).
import { SizingError } from "./errors.js";

export interface ReportRow {
  label: string;
  value: string | number;
}

export interface ReportInput {
  title: string;
  /** When the report was made, an ISO 8601 string: passed in, so a report replays byte for byte. */
  generatedAt: string;
  inputs: ReportRow[];
  answer: ReportRow[];
  notes?: string[];
  charts: { title: string; svg: string }[];
}

const MAX_TEXT = 2_000;
const MAX_ROWS = 500;
const MAX_SVG_CHARS = 20_000_000;

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

function fail(field: string, rule: string): never {
  throw new SizingError("INVALID_ARGUMENT", `report: ${field} must be ${rule}`);
}

/** Escapes text for an HTML element's content or a quoted attribute. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

function text(value: unknown, field: string): string {
  if (typeof value !== "string" || value.length > MAX_TEXT) fail(field, `a string of at most ${MAX_TEXT} characters`);
  return value;
}

function rows(value: unknown, field: string): ReportRow[] {
  if (!Array.isArray(value) || value.length > MAX_ROWS) fail(field, `an array of at most ${MAX_ROWS} rows`);
  return value.map((row, i) => {
    if (row === null || typeof row !== "object") fail(`${field}[${i}]`, "an object { label, value }");
    const { label, value: v } = row as Record<string, unknown>;
    if (typeof v === "number" && !Number.isFinite(v)) fail(`${field}[${i}].value`, "a finite number or a string");
    return { label: text(label, `${field}[${i}].label`), value: typeof v === "number" ? v : text(v, `${field}[${i}].value`) };
  });
}

// Anything that could run, navigate or fetch when the page opens. The chart functions never
// emit these; an SVG from elsewhere that does is refused rather than cleaned.
const ACTIVE_SVG = [
  /<script/i, /<foreignobject/i, /<iframe/i, /<object/i, /<embed/i, /<image/i, /<use[\s>]/i, /<a[\s>]/i, /<style/i,
  /\son[a-z]+\s*=/i, /javascript:/i, /href\s*=/i, /url\(\s*(?!['"]?#)/i, /@import/i, /<!doctype/i, /<!entity/i, /<\?/,
];

/** SVG elements that draw and nothing else (Vega's SVG renderer uses a subset of them). */
const PASSIVE_SVG_ELEMENTS = new Set([
  "svg", "g", "path", "rect", "line", "circle", "ellipse", "polyline", "polygon", "text", "tspan", "title", "desc", "defs",
  "clipPath", "linearGradient", "radialGradient", "stop", "mask", "pattern", "marker", "symbol",
]);

/** An SVG made inline: its namespace declarations dropped (HTML needs none) and its ids made unique to the chart. */
function inlineSvg(svg: unknown, index: number): string {
  const field = `charts[${index}].svg`;
  if (typeof svg !== "string" || svg.length > MAX_SVG_CHARS) fail(field, "an SVG string");
  const trimmed = svg.trim();
  if (!/^<svg[\s>]/.test(trimmed) || !trimmed.endsWith("</svg>") || trimmed.indexOf("<svg", 1) !== -1) fail(field, "one <svg> element");
  for (const pattern of ACTIVE_SVG) if (pattern.test(trimmed)) fail(field, `an SVG with no script, event handler, link or external reference (found ${pattern.source})`);
  // Allowed, not only refused: an element outside SVG's passive drawing set (an HTML <meta>
  // refresh or <form> breaks out of the <svg> and navigates, which the CSP does not govern), a
  // comment or a declaration is refused, as is a handler attribute after a '/' (<rect/onclick=…>).
  for (const [, name] of trimmed.matchAll(/<\/?([^\s/>]*)/g)) {
    if (!PASSIVE_SVG_ELEMENTS.has(name)) fail(field, `an SVG made of drawing elements only (found <${name.slice(0, 40)}>)`);
  }
  if (/[^\w-]on[a-z]+\s*=/i.test(trimmed)) fail(field, "an SVG with no event handler");
  if (trimmed.indexOf("</svg>") !== trimmed.length - "</svg>".length) fail(field, "one <svg> element");
  // Vega numbers its clip paths per process: two charts in one page could both say id="clip1".
  const prefix = `chart${index}-`;
  return trimmed
    .replace(/\sxmlns(:\w+)?="[^"]*"/g, "")
    .replace(/\sid="([^"]*)"/g, (_, id: string) => ` id="${prefix}${id}"`)
    .replace(/url\(\s*(['"]?)#/g, (_, quote: string) => `url(${quote}#${prefix}`)
    .replace(/^<svg/, `<svg aria-labelledby="${prefix}title"`);
}

const STYLE = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 62rem; padding: 1.25rem; font: 16px/1.5 Helvetica, Arial, sans-serif; color: #1a1a1a; background: #fff; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; line-height: 1.25; overflow-wrap: anywhere; }
h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; border-bottom: 1px solid #ddd; padding-bottom: .25rem; }
.generated { color: #555; margin: 0 0 1rem; font-size: .9rem; }
.columns { display: grid; grid-template-columns: repeat(auto-fit, minmax(18rem, 1fr)); gap: 0 2rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .35rem .5rem; border-bottom: 1px solid #eee; overflow-wrap: anywhere; }
th { font-weight: normal; color: #444; width: 45%; }
td { font-variant-numeric: tabular-nums; }
.answer td { font-weight: bold; }
ul.notes { padding-left: 1.25rem; color: #333; }
ul.notes li { overflow-wrap: anywhere; }
figure { margin: 1.5rem 0; }
/* A chart scales down with the page, but not below where its text stays legible: a phone scrolls it sideways. */
.chart { overflow-x: auto; -webkit-overflow-scrolling: touch; }
.chart svg { display: block; max-width: 100%; min-width: 32rem; height: auto; }
figcaption { color: #444; font-size: .95rem; margin-top: .25rem; overflow-wrap: anywhere; }
@media (max-width: 30rem) { body { padding: .75rem; font-size: 15px; } th { width: 50%; } }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  h2 { break-after: avoid; }
  figure, table, tr { break-inside: avoid; }
  .chart { overflow: visible; }
  .chart svg { min-width: 0; }
}
`;

function table(rowsIn: ReportRow[], className: string): string {
  if (rowsIn.length === 0) return `<p class="${className}">—</p>`;
  const body = rowsIn.map((r) => `<tr><th scope="row">${escapeHtml(r.label)}</th><td>${escapeHtml(String(r.value))}</td></tr>`).join("\n");
  return `<table class="${className}">\n<tbody>\n${body}\n</tbody>\n</table>`;
}

/** The report as one HTML string: inputs, answer, notes and charts, readable on a phone and printable. */
export function htmlReport(input: ReportInput): string {
  if (input === null || typeof input !== "object") fail("the report's input", "an object");
  const title = text(input.title, "title");
  if (title.trim() === "") fail("title", "a non-empty string");
  const generatedAt = text(input.generatedAt, "generatedAt");
  if (!ISO_TIME.test(generatedAt) || Number.isNaN(Date.parse(generatedAt))) fail("generatedAt", "an ISO 8601 date and time, e.g. 2026-12-02T01:00:00Z");
  const inputs = rows(input.inputs, "inputs");
  const answer = rows(input.answer, "answer");
  const notesIn = input.notes ?? [];
  if (!Array.isArray(notesIn) || notesIn.length > MAX_ROWS) fail("notes", `an array of at most ${MAX_ROWS} strings`);
  const notes = notesIn.map((n, i) => text(n, `notes[${i}]`));
  if (!Array.isArray(input.charts) || input.charts.length > 50) fail("charts", "an array of at most 50 charts");
  const figures = input.charts.map((chart, i) => {
    if (chart === null || typeof chart !== "object") fail(`charts[${i}]`, "an object { title, svg }");
    const caption = text(chart.title, `charts[${i}].title`);
    return `<figure>\n<div class="chart">${inlineSvg(chart.svg, i)}</div>\n<figcaption id="chart${i}-title">${escapeHtml(caption)}</figcaption>\n</figure>`;
  });
  return [
    "<!doctype html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    // Belt and braces: even a browser given a hostile SVG would load and run nothing.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline';">`,
    `<title>${escapeHtml(title)}</title>`,
    `<style>${STYLE}</style>`,
    "</head>",
    "<body>",
    `<h1>${escapeHtml(title)}</h1>`,
    `<p class="generated">Generated <time datetime="${escapeHtml(generatedAt)}">${escapeHtml(generatedAt)}</time> by hsmsim</p>`,
    '<div class="columns">',
    `<section>\n<h2>Inputs</h2>\n${table(inputs, "inputs")}\n</section>`,
    `<section>\n<h2>Answer</h2>\n${table(answer, "answer")}\n</section>`,
    "</div>",
    notes.length === 0 ? "" : `<section>\n<h2>Notes</h2>\n<ul class="notes">\n${notes.map((n) => `<li>${escapeHtml(n)}</li>`).join("\n")}\n</ul>\n</section>`,
    figures.length === 0 ? "" : `<section>\n<h2>Charts</h2>\n${figures.join("\n")}\n</section>`,
    "</body>",
    "</html>",
    "",
  ].filter((line) => line !== "").join("\n");
}
