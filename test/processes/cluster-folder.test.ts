// cluster.json: written atomically, read back strictly — a damaged or hand-broken file is a
// FOLDER_INVALID error naming the problem, never a silent default; HSM addresses follow the base.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, describe, expect, it } from "vitest";

import { CLUSTER_FILE_VERSION, type ClusterFile, ClusterFolder, isAddress, nthAddress } from "../../src/net/cluster-folder.js";
import { cli } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "hsmsim-folder-"));
const folder = new ClusterFolder(dir);

const good: ClusterFile = {
  version: CLUSTER_FILE_VERSION, clusterId: "cluster-0123456789ab", lineageId: "lineage-0123456789ab", state: "ACTIVE", hsmType: "hsm2m.medium",
  zones: ["az-a", "az-b"], nextOrigin: 3, baseAddress: "127.0.0.2", port: 2223, mtls: false,
  hsms: [
    { hsmId: "hsm-0123456789abcdef", origin: 1, address: "127.0.0.2:2223", availabilityZone: "az-a", state: "ACTIVE", folder: "hsms/1" },
    { hsmId: "hsm-fedcba9876543210", origin: 2, address: "127.0.0.3:2223", availabilityZone: "az-b", state: "DELETED", folder: "hsms/2" },
  ],
};

describe("cluster folder", () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("writes cluster.json atomically (no temp file left) and reads it back", () => {
    folder.makeTree();
    folder.write(good);
    expect(folder.read()).toEqual(good);
    expect(readdirSync(dir).filter((f) => f.includes(".tmp"))).toEqual([]);
  });

  it("refuses a damaged or hand-broken cluster.json with FOLDER_INVALID", () => {
    const broken: [string, unknown][] = [
      ["not JSON", "{"], ["another version", { ...good, version: 2 }], ["a bad state", { ...good, state: "ON_FIRE" }],
      ["an HSM folder outside hsms/", { ...good, hsms: [{ ...good.hsms[0], folder: "../../etc" }] }],
      ["a duplicate HSM", { ...good, hsms: [good.hsms[0], good.hsms[0]] }],
      ["an origin not yet given", { ...good, hsms: [{ ...good.hsms[0], origin: 9 }] }],
      ["a bad address", { ...good, hsms: [{ ...good.hsms[0], address: "127.0.0.999:2223" }] }],
      ["an unknown zone", { ...good, hsms: [{ ...good.hsms[0], availabilityZone: "mars" }] }],
      ["hsms not a list", { ...good, hsms: {} }], ["null", null],
    ];
    for (const [what, value] of broken) {
      writeFileSync(folder.clusterFile, typeof value === "string" ? value : JSON.stringify(value));
      expect(() => folder.read(), what).toThrow(expect.objectContaining({ code: "FOLDER_INVALID" }));
    }
  });

  it("status on a damaged folder says so (exit 1), on an empty one says there is no cluster", async () => {
    writeFileSync(folder.clusterFile, "{");
    const damaged = await cli("status", "--data", dir);
    expect(damaged.code).toBe(1);
    expect(damaged.stderr).toMatch(/not JSON/);
    const empty = await cli("status", "--data", join(dir, "nothing-here"));
    expect(empty.code).toBe(1);
    expect(empty.stderr).toMatch(/no cluster here/);
  });

  it("gives the n-th HSM the n-th address after the base, carrying into the next octet", () => {
    expect(nthAddress("127.0.0.2", 2223, 0)).toBe("127.0.0.2:2223");
    expect(nthAddress("127.0.0.254", 2223, 3)).toBe("127.0.1.1:2223");
    expect(() => nthAddress("255.255.255.255", 1, 1)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(isAddress("10.0.0.1:65535")).toBe(true);
    for (const bad of ["10.0.0.1", "10.0.0.1:0", "10.0.0.1:70000", "a.b.c.d:1", "10.0.0.256:1", 42]) expect(isAddress(bad)).toBe(false);
  });

  it("up refuses creation options on an existing cluster instead of ignoring them", async () => {
    folder.write(good);
    const ran = await cli("up", "--data", dir, "--hsms", "5");
    expect(ran.code).toBe(2);
    expect(ran.stderr).toMatch(/--hsms apply only when creating/);
  });
});
