// The application of the demo's real-time part, in its own process (live-demo.ts starts it with
// an IPC channel): connects to the cluster `hsmsim up` started, activates it (admin's first
// password makes the first CO), creates the crypto user alice, logs her in, generates a token
// AES key and encrypts and decrypts in a loop, reporting its progress. The parent kills an HSM
// meanwhile and tells it when; the app keeps going for a while, then reports what it saw: how
// many round trips succeeded before and after the kill, and every error.
import { setImmediate as turn } from "node:timers/promises";

import { connect } from "../client/remote/connect.js";
import type { AppConfig, AppMessage, ParentMessage } from "./live-demo.js";

const config = JSON.parse(process.argv[2] ?? "{}") as AppConfig;

function send(message: AppMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

const describe = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));

let killedAt: number | null = null;
let victim: string | null = null;
let stopAt = Number.POSITIVE_INFINITY;
process.on("message", (m: ParentMessage) => {
  if (m.kind === "killed") {
    killedAt = m.at;
    victim = m.address;
    stopAt = Date.now() + m.afterMs;
  } else if (m.kind === "stop") {
    stopAt = 0;
  }
});
let finished = false;
// The demo went away: so does its application.
process.on("disconnect", () => {
  if (!finished) process.exit(1);
});

async function main(): Promise<void> {
  const connection = connect({ address: config.address, trustAnchor: config.trustAnchor, callTimeoutMs: config.callTimeoutMs });
  try {
    connection.console("admin", "password").changePassword("admin", config.officerPassword);
    connection.console("admin", config.officerPassword).createUser("alice", "CU", config.alicePassword);
    const alice = connection.login("alice", config.alicePassword);
    const key = alice.generateAesKey({ label: "live demo" });
    await send({ kind: "ready", keyId: key.id });

    const done: { start: number; end: number }[] = [];
    const errors: { at: number; message: string }[] = [];
    const deadline = Date.now() + config.runLimitMs;
    for (let i = 0; Date.now() < stopAt && Date.now() < deadline; i++) {
      const start = Date.now();
      const message = Buffer.from(`order ${i}`);
      try {
        const back = alice.decrypt(key, alice.encrypt(key, message));
        if (back.equals(message)) done.push({ start, end: Date.now() });
        else errors.push({ at: Date.now(), message: "decrypted text differs from the original" });
      } catch (e) {
        errors.push({ at: Date.now(), message: describe(e) });
      }
      if (i % 25 === 24) await send({ kind: "progress", ok: done.length, errors: errors.length });
      await turn(); // lets the parent's messages in
    }
    const at = killedAt ?? Number.POSITIVE_INFINITY;
    const after = done.filter((c) => c.end > at);
    const seen = victim === null ? undefined : connection.health().members.find((m) => m.address === victim)?.status;
    await send({
      kind: "result",
      before: done.length - after.length,
      after: after.length,
      errorCount: errors.length,
      errors: [...new Set(errors.map((e) => `${e.at >= at ? "after" : "before"} the kill: ${e.message}`))].slice(0, 5),
      firstAfterMs: after.length > 0 ? after[0].end - at : null,
      slowestMs: after.length > 0 ? Math.max(...after.slice(0, 50).map((c) => c.end - c.start)) : null,
      victimStatus: seen ?? null,
      stoppedByDeadline: Date.now() >= deadline,
    });
  } finally {
    connection.close();
  }
}

main().then(
  () => {
    finished = true;
    process.disconnect?.();
  },
  async (e: unknown) => {
    await send({ kind: "failed", message: describe(e) });
    finished = true;
    process.exitCode = 1;
    process.disconnect?.();
  },
);
