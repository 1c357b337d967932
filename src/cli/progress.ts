// A live progress line for long work (seed sweeps, `hsmsim up` while HSMs start, backups):
//   "sim  120/1000 runs · 35.2 runs/s · 0 failed · 25 s left"
// redrawn in place on a terminal, at most every 100 ms. It writes nothing at all when the stream
// is not a TTY (piped, redirected, CI) or the command runs with --json: the results alone go out.
import type { TextStream } from "./command.js";

export interface ProgressOptions {
  /** The work's size, when known: shows done/total and the time left. */
  total?: number;
  /** What one unit is called: "runs", "HSMs", "MB". */
  unit: string;
  /** A short label before the numbers. */
  label?: string;
  /** Where the line goes (stderr, so stdout stays the command's results). Absent: no progress. */
  stream?: TextStream;
  /** --json or any other reason to stay silent. */
  quiet?: boolean;
  /** Milliseconds clock (tests pass their own). */
  nowMs?: () => number;
}

export interface Progress {
  /** Whether anything is drawn (a TTY, not quiet). */
  readonly live: boolean;
  /** `count` more units done; `ok: false` counts them as failures too. */
  tick(ok?: boolean, count?: number): void;
  /** A phase text after the numbers ("starting hsm-2 on 127.0.0.3:2223"). */
  status(text: string): void;
  /** Prints something permanent (a failing seed, a warning) without mangling the line. */
  interrupt(print: () => void): void;
  /** Clears the line; the command prints its own summary after. */
  finish(): void;
  readonly done: number;
  readonly failures: number;
}

const REDRAW_MS = 100;

function seconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${Math.ceil(s)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export function progressLine(options: ProgressOptions): Progress {
  const now = options.nowMs ?? (() => performance.now());
  const stream = options.stream;
  const live = !options.quiet && stream?.isTTY === true;
  const started = now();
  let done = 0, failures = 0, phase = "", drawnAt = -Infinity, shown = false, finished = false;

  const render = (): string => {
    const elapsedS = (now() - started) / 1000;
    const rate = elapsedS > 0 ? done / elapsedS : 0;
    const parts = [options.total !== undefined ? `${done}/${options.total} ${options.unit}` : `${done} ${options.unit}`];
    if (done > 0 && elapsedS > 0.2) parts.push(`${rate >= 100 ? Math.round(rate) : rate.toFixed(1)} ${options.unit}/s`);
    parts.push(`${failures} failed`);
    if (options.total !== undefined && done > 0 && done < options.total) parts.push(`${seconds((options.total - done) / rate)} left`);
    else parts.push(`${seconds(elapsedS)}`);
    if (phase) parts.push(phase);
    const line = `${options.label ? `${options.label}  ` : ""}${parts.join(" · ")}`;
    const width = stream?.columns ?? 0;
    return width > 1 && line.length >= width ? `${line.slice(0, width - 2)}…` : line;
  };
  const draw = (force: boolean) => {
    if (!live || finished) return;
    const t = now();
    if (!force && t - drawnAt < REDRAW_MS) return;
    drawnAt = t;
    stream!.write(`\r\x1b[2K${render()}`);
    shown = true;
  };
  const clear = () => {
    if (shown) stream!.write("\r\x1b[2K");
    shown = false;
  };
  // Keeps the elapsed time moving while nothing ticks (an HSM taking its time to start); unref'd.
  const timer = live ? setInterval(() => draw(true), 1000) : undefined;
  timer?.unref();
  draw(true);

  return {
    live,
    get done() {
      return done;
    },
    get failures() {
      return failures;
    },
    tick(ok = true, count = 1) {
      done += count;
      if (!ok) failures += count;
      draw(options.total !== undefined && done >= options.total);
    },
    status(text) {
      phase = text;
      draw(true);
    },
    interrupt(print) {
      clear();
      print();
      draw(true);
    },
    finish() {
      if (timer) clearInterval(timer);
      clear();
      finished = true;
    },
  };
}
