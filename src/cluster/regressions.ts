// Test-only switches that bring back bugs fixed in issue 8, so the simulator's availability
// checkers can be shown to catch them (test/sim/liveness.test.ts). The package does not export
// this module; every switch is off unless a test turns it on.
export const regressions = {
  /** HSMs run an operation's Init and steps with no ledger: a lost message leaves the operation open, and the session wedges. */
  wedgingOperations: false,
  /** Session objects go to whichever HSM serves the call, and searches show every application's. */
  strayFinds: false,
  /** A member below a peer's compacted journal gets no snapshot (and no entries past the gap, which it could not apply): it is left behind forever. */
  noSnapshotTransfer: false,
};
