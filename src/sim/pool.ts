// Many independent runs (a seed sweep, a sizing grid) spread over the machine's cores with a
// worker pool (piscina): each task runs in a worker thread, the results come back in task order,
// and a task that throws or a worker that dies fails the whole run with a PoolError naming the
// task — never a hang — after which every worker is ended.
//
// The worker-module contract (for any caller, e.g. the sizing grid):
// - `module` is the file URL of an ES module that exports `exportName`, a function
//   `(task) => result | Promise<result>`. Get it with `workerModuleUrl("./my-task", import.meta.url)`:
//   the sibling .ts file when running from source (tsx, vitest), the built .js from dist/.
//   A .ts module is loaded in each worker through tsx's loader; a .js one as it is.
// - Tasks and results cross threads by structured clone: plain data only (no class instances,
//   functions, native handles). An error a task throws arrives as its message and stack only
//   (structured clone drops other fields such as `code`): put what the caller needs in the message.
// - Each worker thread loads its own copy of the module (its own globals, native chips, temp
//   folders) and tasks land on any worker in any order: a task must depend on its data alone
//   (seeds in the task, not in module state), so that it replays wherever it runs.
// - A worker that exits (process.exit in it, out of memory) fails its task; a native crash ends
//   the whole process (threads share it), as it would in process. A task that never ends is the
//   module's to bound (the simulator's runs are bounded in virtual time).
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { Piscina } from "piscina";

import { CodedError } from "../coded-error.js";

export type PoolErrorCode = "INVALID_ARGUMENT" | "TASK_FAILED" | "WORKER_EXITED";

/** A pool run that could not complete: a bad argument, a task that threw, a worker that died. */
export class PoolError extends CodedError<PoolErrorCode> {
  /** The failing task's index in `tasks` (TASK_FAILED, WORKER_EXITED). */
  readonly taskIndex?: number;
  constructor(code: PoolErrorCode, message: string, taskIndex?: number, options?: { cause?: unknown }) {
    super("PoolError", code, message);
    if (taskIndex !== undefined) this.taskIndex = taskIndex;
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

export interface PoolOptions<Task, Result> {
  /** The worker module's file URL (see the contract above; `workerModuleUrl` builds it). */
  module: URL;
  /** The module's export that runs one task. */
  exportName: string;
  tasks: readonly Task[];
  /** Worker threads (default: the machine's available parallelism; never more than the tasks). */
  workers?: number;
  /** Called as each task completes (in completion order, not task order), with its index. */
  onResult?: (result: Result, index: number) => void;
  /** How a task is named in errors (default `task I`): e.g. `seed 42`. */
  describeTask?: (task: Task, index: number) => string;
  /** Keep every result for the returned list (default true); false returns [] and leaves them to onResult (huge sweeps). */
  keepResults?: boolean;
}

/** The default number of workers: every core this process may use. */
export function defaultWorkers(): number {
  return availableParallelism();
}

/**
 * The URL of the worker module `relative` (without extension, e.g. "./sweep-task") next to the
 * caller whose `import.meta.url` is `base`: .ts when the caller runs from source, .js when built.
 */
export function workerModuleUrl(relative: string, base: string | URL): URL {
  // A CommonJS bundle has no import.meta.url: its caller must name the module's file itself.
  if (base === undefined || base === null || base === "") throw new PoolError("INVALID_ARGUMENT", `no base URL to find the worker module ${relative} from`);
  const extension = /\.[cm]?ts$/.test(new URL(base).pathname) ? ".ts" : ".js";
  return new URL(`${relative}${extension}`, base);
}

const here = typeof __filename === "string" ? dirname(__filename) : dirname(fileURLToPath(import.meta.url));

/** Node flags that load a .ts worker module through tsx (as `npx tsx` does for the main thread). */
function tsxExecArgv(): string[] {
  const require = createRequire(join(here, "pool.ts"));
  const loader = join(dirname(require.resolve("tsx/package.json")), "dist", "loader.mjs");
  return ["--import", pathToFileURL(loader).href];
}

function checkOptions<Task, Result>(options: PoolOptions<Task, Result>): { file: string; workers: number } {
  const { module, exportName, tasks, workers } = options;
  if (!(module instanceof URL) || module.protocol !== "file:") throw new PoolError("INVALID_ARGUMENT", `module must be a file: URL, not ${String(module)}`);
  const file = fileURLToPath(module);
  if (!existsSync(file)) throw new PoolError("INVALID_ARGUMENT", `the worker module ${file} does not exist`);
  if (typeof exportName !== "string" || !/^[A-Za-z_$][\w$]*$/.test(exportName)) throw new PoolError("INVALID_ARGUMENT", `exportName must name an export, not '${String(exportName)}'`);
  if (!Array.isArray(tasks)) throw new PoolError("INVALID_ARGUMENT", "tasks must be a list");
  if (workers !== undefined && (!Number.isSafeInteger(workers) || workers < 1)) throw new PoolError("INVALID_ARGUMENT", `workers must be a whole number of at least 1, not ${workers}`);
  return { file, workers: Math.min(workers ?? defaultWorkers(), tasks.length) };
}

/** Why a task failed, said plainly: the worker died, or the task threw (its message and code). */
function taskFailure(error: unknown, name: string, index: number, file: string, exportName: string): PoolError {
  const message = error instanceof Error ? error.message : String(error);
  // piscina finds no such function export (in a .ts module its fallback import then fails on the extension).
  if (/No handler function exported/.test(message) || (error as { code?: string })?.code === "ERR_UNKNOWN_FILE_EXTENSION") {
    return new PoolError("INVALID_ARGUMENT", `${name} failed: ${file} has no function export '${exportName}' (${message})`, index, { cause: error });
  }
  // piscina rejects a task whose worker exited with "Terminating worker thread" or the exit code.
  if (/worker (thread )?exited|Terminating worker thread|ERR_WORKER_OUT_OF_MEMORY/i.test(message) || (error as { code?: string })?.code === "ERR_WORKER_OUT_OF_MEMORY") {
    return new PoolError("WORKER_EXITED", `${name}: its worker thread died (${message})`, index, { cause: error });
  }
  const code = (error as { code?: unknown })?.code;
  return new PoolError("TASK_FAILED", `${name} failed: ${message}${typeof code === "string" ? ` (${code})` : ""}`, index, { cause: error });
}

/**
 * Runs every task through the worker module's export on a pool of worker threads; resolves
 * with the results in task order. At most two tasks per worker are handed out at a time, so a
 * huge task list costs no memory up front. The first failure rejects with a PoolError naming
 * the task; the workers are ended in every case before this returns.
 */
export async function runInPool<Task, Result>(options: PoolOptions<Task, Result>): Promise<Result[]> {
  const { file, workers } = checkOptions(options);
  const { tasks, onResult, keepResults = true } = options;
  if (tasks.length === 0) return [];
  const name = (index: number) => options.describeTask?.(tasks[index], index) ?? `task ${index}`;
  const pool = new Piscina({
    filename: file,
    name: options.exportName,
    minThreads: workers,
    maxThreads: workers,
    // Never end an idle worker mid-run (it would reload the module); they all end with destroy().
    idleTimeout: Number.MAX_SAFE_INTEGER,
    ...(/\.[cm]?ts$/.test(file) ? { execArgv: tsxExecArgv() } : {}),
  });
  const results: Result[] = keepResults ? new Array<Result>(tasks.length) : [];
  try {
    await new Promise<void>((resolve, reject) => {
      let next = 0, done = 0, failed = false;
      const fail = (error: unknown) => {
        if (failed) return;
        failed = true;
        reject(error);
      };
      // A worker that fails outside any task (its module does not load, lacks the export) is an
      // 'error' event on the pool: without a listener it would crash the process.
      pool.on("error", (error: unknown) => {
        const message = error instanceof Error ? error.message : String(error);
        fail(new PoolError("WORKER_EXITED", `a worker could not run ${options.exportName} from ${file}: ${message}`, undefined, { cause: error }));
      });
      const dispatch = () => {
        while (!failed && next < tasks.length && next - done < workers * 2) {
          const index = next++;
          pool.run(tasks[index]).then((result: Result) => {
            if (failed) return;
            if (keepResults) results[index] = result;
            try {
              onResult?.(result, index);
            } catch (error) {
              fail(error);
              return;
            }
            done++;
            if (done === tasks.length) resolve();
            else dispatch();
          }, (error: unknown) => fail(taskFailure(error, name(index), index, file, options.exportName)));
        }
      };
      dispatch();
    });
  } finally {
    // Ends every worker; tasks still queued or running are abandoned (their rejections are ignored above).
    await pool.destroy();
  }
  return results;
}
