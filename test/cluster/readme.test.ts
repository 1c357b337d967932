// The README's cluster example, as written there, keeps working.
import { expect, it } from "vitest";

import { World } from "../../src/index.js";

it("runs the README's cluster example", () => {
  const world = new World({ seed: 42, cluster: { hsmCount: 3 } });
  try {
    world.cluster.initialize();
    const app = world.connect("app");
    app.console("admin", "password").changePassword("admin", "officer-pass-1");
    app.console("admin", "officer-pass-1").createUser("alice", "CU", "alice-pass-1");
    const alice = app.login("alice", "alice-pass-1");
    const key = alice.generateAesKey({ label: "orders" });
    const sealed = alice.encrypt(key, Buffer.from("hello"));
    world.cluster.crashHsm(world.cluster.describe()[0].hsmId);
    expect(alice.decrypt(key, sealed).toString()).toBe("hello");
    expect(app.pkcs11().C_GetSlotList(true)).toHaveLength(1);
  } finally {
    world.dispose();
  }
});
