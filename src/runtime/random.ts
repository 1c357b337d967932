// What the cluster and the client know of randomness. The simulator's seeded streams
// (src/sim/random.ts) implement it so a seed replays a run; src/net/ draws from the OS.

export interface Random {
  /** An integer in [0, n). */
  int(n: number): number;
  bytes(length: number): Buffer;
  /** An independent stream for `label` (a component's own, so one component's draws never shift another's). */
  fork(label: string): Random;
}
