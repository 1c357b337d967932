// The cluster part of `hsmsim demo`: a 3-HSM cluster over three availability zones on the
// simulated network, activated once, a client that learns every HSM from one address, an
// HSM failing mid-workload while the client carries on, an HSM added by cloning, the failed
// one replaced, a client behind NAT that cannot fail over, and one seeded fault run with its
// invariants.
import { Pkcs11Error } from "../pkcs11/errors.js";
import { Gateway } from "../sim/gateway.js";
import { runSimulation } from "../sim/run.js";
import { World } from "../sim/world.js";
import type { Output } from "./format.js";
import { internalsOf } from "../hsm/internals.js";

const ms = (us: number) => `${(us / 1000).toFixed(1)} ms`;

export function runClusterDemo(out: Output): void {
  const world = new World({ seed: "demo", faults: { latencyUs: 300, jitterUs: 200 }, cluster: { hsmCount: 3 } });
  try {
    const { cluster, clock } = world;
    out.step("Create a cluster of 3 HSMs over three availability zones (simulated network, virtual clock)");
    out.table(["HSM", "zone", "address", "state"], cluster.describe().map((h) => [h.hsmId, h.availabilityZone, h.address, h.state]));
    out.line(`cluster ${cluster.clusterId}: ${cluster.state}; all three share one masking key (each is a clone of the first)`);

    out.step("Initialize, then activate once for the whole cluster (PRECO → first CO)");
    cluster.initialize();
    const client = world.connect("app");
    client.console("admin", "password").changePassword("admin", "officer-pass-1");
    const co = client.console("admin", "officer-pass-1");
    co.createUser("alice", "CU", "alice-pass-1");
    world.run(500_000);
    out.line(`cluster ${cluster.state}; every HSM activated: ${cluster.liveNodes().every((n) => n.hsm.activated)}`);
    const users = co.listUsers();
    out.line(`user list on ${users.byHsm.length} HSMs: ${users.users.map((u) => `${u.username} (${u.role})`).join(", ")}; consistent: ${users.consistent}`);

    out.step(`The client bootstrapped from ${cluster.addresses()[0]} and learned every HSM`);
    out.table(["HSM", "address", "zone", "status"], client.health().members.map((m) => [m.hsmId, m.address, m.availabilityZone, m.status]));

    out.step("alice creates a token key: at least 2 HSMs (keyAvailabilityMin) hold it durably before the call returns");
    const alice = client.login("alice", "alice-pass-1");
    const key = alice.generateAesKey({ label: "orders" });
    const holders = () => cluster.liveNodes().filter((n) => internalsOf(n.hsm).state.hasKey(key.id)).length;
    out.line(`key ${key.id} (made by the HSM with ordinal ${Math.floor(key.id / 2 ** 32)}): on ${holders()} of 3 HSMs at return; ` +
      `the same id names it on every HSM`);

    out.step("A workload of 300 encryptions; an HSM fails after 100 of them");
    const victim = cluster.describe()[1];
    let ok = 0;
    const started = clock.nowUs();
    for (let i = 0; i < 300; i++) {
      if (i === 100) {
        cluster.crashHsm(victim.hsmId);
        out.line(`op ${i}: ${victim.hsmId} (${victim.address}) crashed`);
      }
      const message = Buffer.from(`order ${i}`);
      if (alice.decrypt(key, alice.encrypt(key, message)).equals(message)) ok++;
    }
    const stats = client.client.stats;
    out.line(`${ok}/300 round trips correct in ${ms(clock.nowUs() - started)} simulated; client: ${stats.requests} requests, ` +
      `${stats.timeouts} timeouts, ${stats.failovers} failovers, ${stats.retries} retries`);
    world.run(6_000_000);
    out.line(`control plane: ${victim.hsmId} ${cluster.describe()[1].state}, cluster ${cluster.state}`);

    out.step("Add an HSM by cloning a live one, then replace the failed one");
    const added = cluster.addHsm("az-b");
    out.line(`${added.hsmId} joined at ${added.address}: holds key ${key.id} at once: ${internalsOf(cluster.node(added.hsmId)!.hsm).state.hasKey(key.id)}`);
    const replacement = cluster.replaceHsm(victim.hsmId);
    out.line(`${victim.hsmId} replaced by ${replacement.hsmId} (new id, new address ${replacement.address}, new audit stream)`);
    world.run(2_000_000);
    out.table(["HSM", "zone", "address", "state"], cluster.describe().map((h) => [h.hsmId, h.availabilityZone, h.address, h.state]));
    out.line(`cluster ${cluster.state}; the client now knows ${client.health().members.length} HSMs; alice's key still works: ` +
      `${alice.decrypt(key, alice.encrypt(key, Buffer.from("after"))).toString() === "after"}`);
    out.line(`backups: ${cluster.backups().map((b) => b.trigger).join(", ")} (encrypted under the cluster's lineage)`);

    out.step("A client that reaches the cluster only through NAT: it works, warns, and cannot fail over");
    const [behind] = cluster.describe().filter((h) => h.state === "ACTIVE");
    const gateway = new Gateway(world.network, "203.0.113.10", behind.address);
    for (const address of cluster.addresses()) world.network.blockLink("client-nat", address);
    const natClient = world.connect("nat", { bootstrap: gateway.address });
    const natAlice = natClient.login("alice", "alice-pass-1");
    out.line(`through ${gateway.address} → ${behind.address}: ${natAlice.random(8).length} random bytes`);
    world.run(3_000_000);
    out.line(`health: ${natClient.health().warnings[0]}`);
    cluster.crashHsm(behind.hsmId);
    try {
      natAlice.random(8);
      out.line("unexpected: the call succeeded");
    } catch (e) {
      out.line(`${behind.hsmId} crashed → ${e instanceof Pkcs11Error ? `${e.message}: ${(e.detail ?? "").slice(0, 120)}…` : String(e)}`);
    }
    out.line(`the directly connected client carries on: ${alice.random(8).length} random bytes`);
    gateway.close();
  } finally {
    world.dispose();
  }

  out.step("One deterministic fault run (replay it with: hsmsim sim --seed 1)");
  const report = runSimulation(1);
  out.line(`${report.profile.hsmCount} HSMs; ${report.faults.crashes} crashes, ${report.faults.partitions} partitions, ` +
    `${(report.profile.network.lossRate * 100).toFixed(0)}% loss; ${report.counts.attempted} operations, ${report.counts.acknowledged} acknowledged`);
  out.line(`${report.ok ? "every invariant holds" : `${report.violations.length} violations`}; converged ${ms(report.convergenceUs)} after the faults stopped; ` +
    `${(report.simulatedUs / 1e6).toFixed(0)} s simulated in ${report.wallMs.toFixed(0)} ms`);
}
