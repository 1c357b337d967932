// A simulated world with an activated cluster and a crypto user, for the cluster tests.
import { afterEach } from "vitest";

import { World, type WorldOptions } from "../../src/sim/world.js";
import { internalsOf } from "../../src/hsm/internals.js";

export const CO = { username: "admin", password: "officer-pass-1" };
export const ALICE = { username: "alice", password: "alice-pass-1" };
export const BOB = { username: "bob", password: "bob-pass-12" };

const worlds: World[] = [];
afterEach(() => {
  while (worlds.length) worlds.pop()!.dispose();
});

/** A world whose cluster is initialized and activated, with crypto users alice and bob. */
export function activeWorld(options: Partial<WorldOptions> = {}): World {
  const world = new World({ seed: "cluster-test", ...options });
  worlds.push(world);
  world.cluster.initialize();
  const setup = world.connect("setup");
  setup.console("admin", "password").changePassword("admin", CO.password);
  const co = setup.console(CO.username, CO.password);
  co.createUser(ALICE.username, "CU", ALICE.password);
  co.createUser(BOB.username, "CU", BOB.password);
  world.run(1_000_000);
  return world;
}

/** A bare world (cluster created, not initialized). */
export function bareWorld(options: Partial<WorldOptions> = {}): World {
  const world = new World({ seed: "cluster-test", ...options });
  worlds.push(world);
  return world;
}

/** How many live HSMs hold token key `keyId`. */
export function holders(world: World, keyId: number): number {
  return world.cluster.liveNodes().filter((n) => internalsOf(n.hsm).state.hasKey(keyId)).length;
}
