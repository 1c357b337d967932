// How a synchronous call waits in the simulator: it runs the simulation one event at a time
// until its callback has run (the callback may come from deep inside those events).

/** Runs the simulation one event forward; false when nothing is left to run. */
export interface Driver {
  step(): boolean;
}

/** Starts an asynchronous call and runs `driver` until it finishes; rethrows its error. */
export function waitFor<T>(driver: Driver, start: (done: (error: Error | null, value?: unknown) => void) => void, stalled: () => Error): T {
  let finished = false;
  let error: Error | null = null;
  let value: unknown;
  start((e, v) => {
    finished = true;
    error = e;
    value = v;
  });
  while (!finished) if (!driver.step()) throw stalled();
  if (error) throw error;
  return value as T;
}
