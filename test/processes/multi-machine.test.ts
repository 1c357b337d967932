// HSMs on several machines form one cluster from the cluster folder: the cluster is created
// once with each HSM's own address (--addresses), the folder is copied to each machine, and each
// machine's supervisor runs its own HSMs (--only). Here the two "machines" are two copies of the
// folder and two supervisors on distinct loopback addresses; the HSMs replicate to each other
// over TLS across the supervisors, and a client sees one cluster.
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, describe, expect, it } from "vitest";

import { ALICE, CO, type TestClient, activate, startClient } from "../net/fixture.js";
import { type Status, cli, createKey, status, trustAnchorOf, until } from "./helpers.js";

const root = mkdtempSync(join(tmpdir(), "hsmsim-multi-"));
const machineA = join(root, "machine-a");
const machineB = join(root, "machine-b");
const octet = () => 100 + Math.floor(Math.random() * 150);
const addressA = `127.${octet()}.${octet()}.2:${20_000 + Math.floor(Math.random() * 20_000)}`;
const addressB = `127.${octet()}.${octet()}.3:${40_000 + Math.floor(Math.random() * 20_000)}`;

describe("one cluster over two supervisors (machines) from a copied cluster folder", () => {
  let c: TestClient | undefined;
  afterAll(async () => {
    c?.close();
    await cli("down", "--data", machineA);
    await cli("down", "--data", machineB);
    rmSync(root, { recursive: true, force: true });
  }, 120_000);

  it("each machine runs its own HSM; a key made through one reaches the other", async () => {
    // Create on machine A (up creates and starts; down leaves the folder ready to copy).
    const created = await cli("up", "--data", machineA, "--addresses", `${addressA},${addressB}`, "--password-cost", "4", "--json");
    expect(created.code, created.stderr).toBe(0);
    const [hsmA, hsmB] = (JSON.parse(created.stdout) as Status).hsms;
    expect([hsmA.address, hsmB.address]).toEqual([addressA, addressB]);
    expect((await cli("down", "--data", machineA)).code).toBe(0);
    cpSync(machineA, machineB, { recursive: true });

    const upA = await cli("up", "--data", machineA, "--only", hsmA.hsmId, "--json");
    expect(upA.code, upA.stderr).toBe(0);
    const upB = await cli("up", "--data", machineB, "--only", hsmB.hsmId, "--json");
    expect(upB.code, upB.stderr).toBe(0);
    const a = await status(machineA), b = await status(machineB);
    expect(a.supervisorPid).not.toBe(b.supervisorPid);
    expect(a.hsms.find((h) => h.hsmId === hsmB.hsmId)!.remote).toBe(true);
    expect(b.hsms.find((h) => h.hsmId === hsmA.hsmId)!.remote).toBe(true);
    expect(a.hsms.find((h) => h.hsmId === hsmA.hsmId)!.pid).not.toBeNull();
    expect(b.hsms.find((h) => h.hsmId === hsmB.hsmId)!.pid).not.toBeNull();

    // A client bootstraps from machine A's HSM and learns machine B's from it.
    c = await startClient(addressA, trustAnchorOf(machineA));
    expect(c.client.isMember(addressB)).toBe(true);
    await activate(c); // key availability 2: the CU exists only once the other machine's HSM holds it too
    await createKey(c);
    const local = (x: Status, id: string) => x.hsms.find((h) => h.hsmId === id)!;
    await until(machineA, (x) => local(x, hsmA.hsmId).keyCount === 1, "machine A's HSM holding the key");
    await until(machineB, (x) => local(x, hsmB.hsmId).keyCount === 1 && local(x, hsmB.hsmId).userCount === 2, "machine B's HSM holding the key and the users");
    const users = (await c.send({ kind: "manage", method: "listUsers", username: CO.username, password: CO.password, args: [] }, { pinned: addressB, rule: "repeat" })) as { username: string }[];
    expect(users.map((u) => u.username)).toContain(ALICE.username);
    // Membership changes need the whole cluster on one supervisor.
    const add = await cli("hsm", "add", "--data", machineA);
    expect(add.code).toBe(1);
    expect(add.stderr).toMatch(/--only/);
  }, 300_000);
});
