// Plain-text output helpers for the command line: headed steps and aligned tables.
export interface Output {
  step(title: string): void;
  line(text: string): void;
  table(headers: string[], rows: (string | number)[][]): void;
}

export function textOutput(write: (text: string) => void = (t) => process.stdout.write(t)): Output {
  let count = 0;
  return {
    step(title) {
      count++;
      write(`\n${count}. ${title}\n`);
    },
    line(text) {
      write(`   ${text}\n`);
    },
    table(headers, rows) {
      const cells = [headers, ...rows.map((r) => r.map((c) => (typeof c === "number" ? c.toLocaleString("en-US") : c)))];
      const widths = headers.map((_, i) => Math.max(...cells.map((r) => String(r[i]).length)));
      // Numbers line up on the right, words on the left.
      const numeric = (c: string | number) => /^-?[\d,.]+$/.test(String(c));
      const render = (r: (string | number)[]) =>
        r.map((c, i) => (numeric(c) && i > 0 ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i]))).join("  ").trimEnd();
      write(`   ${render(cells[0])}\n   ${widths.map((w) => "-".repeat(w)).join("  ")}\n`);
      for (const r of cells.slice(1)) write(`   ${render(r)}\n`);
    },
  };
}

export const hexPreview = (b: Buffer, max = 24) =>
  b.length <= max ? b.toString("hex") : `${b.subarray(0, max).toString("hex")}… (${b.length} bytes)`;
