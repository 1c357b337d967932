// Durability under SIGKILL: a child changes the HSM under load and is killed at random
// moments, at least 50 times; after each kill every acknowledged change is present,
// nothing is half-applied, and the audit chain verifies.
import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

import { prng } from "../fuzz/fuzzer.js";
import { FAST, H, tempDir } from "./fixture.js";
import { internalsOf } from "../../src/hsm/internals.js";

const CHILD = join(dirname(fileURLToPath(import.meta.url)), "crash-child.ts");
const KILLS = 50;

interface Line { ready?: boolean; intent?: string; ack?: string; name?: string; password?: string; id?: number }

function runUntilKilled(dir: string, seed: number, passwords: Map<string, string>, delayMs: number): Promise<Line[]> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", CHILD, dir, String(seed), JSON.stringify([...passwords])],
      { stdio: ["ignore", "pipe", "pipe"] });
    const lines: Line[] = [];
    let buffered = "", errors = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split("\n");
      buffered = parts.pop()!;
      for (const part of parts) {
        const line = JSON.parse(part) as Line;
        lines.push(line);
        if (line.ready) setTimeout(() => child.kill("SIGKILL"), delayMs);
      }
    });
    child.stderr!.on("data", (chunk: Buffer) => (errors += chunk.toString()));
    child.on("exit", (_code, signal) => (signal === "SIGKILL" ? resolve(lines) : reject(new Error(`child ended without being killed: ${errors}`))));
  });
}

describe("crash safety", () => {
  it(`every acknowledged change survives ${KILLS} SIGKILLs under load, and the audit chain verifies`, async () => {
    const seed = Date.now() % 100000;
    const random = prng(seed);
    const dir = tempDir();
    const setup = H.Hsm.create(dir.path, FAST);
    setup.changePassword(setup.login("admin", "password"), "admin", "co-password-1");
    const co = setup.login("admin", "co-password-1");
    setup.createUser(co, "alice", "CU", "alice-password");
    setup.createUser(co, "bob", "CU", "bob-password");
    setup.close();
    // What must be there: acknowledged changes; what may be there: a change in flight at the kill.
    const passwords = new Map([["admin", "co-password-1"], ["alice", "alice-password"], ["bob", "bob-password"]]);
    const users = new Set<string>(), keys = new Set<number>(), deleted = new Set<number>(), shared = new Set<number>();
    let acks = 0;
    try {
      for (let kill = 0; kill < KILLS; kill++) {
        const lines = await runUntilKilled(dir.path, seed + kill, passwords, 20 + Math.floor(random() * 250));
        let pendingPassword: { name: string; password: string } | undefined;
        let pendingDelete: number | undefined;
        for (const line of lines) {
          if (line.intent === "password") pendingPassword = { name: line.name!, password: line.password! };
          if (line.intent === "delete") pendingDelete = line.id!;
          if (!line.ack) continue;
          if (line.ack === "delete") pendingDelete = undefined;
          acks++;
          if (line.ack === "user") users.add(line.name!);
          if (line.ack === "password") {
            passwords.set(line.name!, line.password!);
            pendingPassword = undefined;
          }
          if (line.ack === "key") keys.add(line.id!);
          if (line.ack === "delete") {
            keys.delete(line.id!);
            deleted.add(line.id!);
          }
          if (line.ack === "share") shared.add(line.id!);
        }
        const hsm = H.Hsm.open(dir.path, FAST);
        try {
          expect(hsm.verifyAudit(), `seed ${seed}, kill ${kill}`).toMatchObject({ ok: true });
          // A password change in flight may have committed: then the new one is the password.
          if (pendingPassword) {
            try {
              hsm.login(pendingPassword.name, pendingPassword.password);
              passwords.set(pendingPassword.name, pendingPassword.password);
            } catch {
              // it did not commit: the acknowledged password still holds (checked below)
            }
          }
          const admin = hsm.login("admin", passwords.get("admin")!);
          const names = new Set(hsm.listUsers(admin).map((u) => u.username));
          for (const name of users) expect(names.has(name), `seed ${seed}: user ${name}`).toBe(true);
          for (const name of ["alice", "bob"]) hsm.login(name, passwords.get(name)!);
          const stored = new Set(internalsOf(hsm).store.keys().map((k) => k.id));
          // A delete in flight may have committed too.
          if (pendingDelete !== undefined && !stored.has(pendingDelete)) {
            keys.delete(pendingDelete);
            deleted.add(pendingDelete);
          }
          for (const id of keys) expect(stored.has(id), `seed ${seed}: key ${id}`).toBe(true);
          for (const id of deleted) expect(stored.has(id), `seed ${seed}: deleted key ${id}`).toBe(false);
          const alice = hsm.login("alice", passwords.get("alice")!);
          for (const id of shared) if (stored.has(id)) expect(hsm.describeKey(alice, id).sharedWith).toContain("bob");
          // Nothing half-applied: every stored key has its creation in the audit log.
          const created = new Set(hsm.auditLog().filter((e) => e.operation === "GENERATE_KEY" && e.result === "OK").flatMap((e) => e.keys));
          for (const id of stored) expect(created.has(id), `seed ${seed}: key ${id} without its audit entry`).toBe(true);
        } finally {
          hsm.close();
        }
      }
      expect(acks).toBeGreaterThan(KILLS);
    } finally {
      dir.cleanup();
    }
  }, 300_000);
});
