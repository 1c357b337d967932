// Shared by the file: target tests: a child pkcs11js-style program (file-token-child.ts) run to
// completion or left hanging for a SIGKILL, and folders under one temporary root per test file.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { afterAll } from "vitest";

import * as P from "../src/pkcs11/index.js";

const CHILD = join(dirname(fileURLToPath(import.meta.url)), "file-token-child.ts");
export const IMPORTED_KEY = Buffer.from("9f1c2a7e5b3d4c6f8a0e1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a", "hex");
/** A temporary root for this test file, removed after it; newFolder() names a fresh folder in it. */
export function tokenRoot(): { root: string; newFolder: () => string } {
  const root = mkdtempSync(join(tmpdir(), "hsmsim-file-token-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  let folders = 0;
  return { root, newFolder: () => join(root, `f${++folders}`) };
}

export type Line = Record<string, unknown>;

/** Runs the child to completion; its last JSON line. */
export function run(...args: string[]): Line {
  const child = spawnSync(process.execPath, ["--import", "tsx", CHILD, ...args], { encoding: "utf8", timeout: 120_000 });
  const last = child.stdout.trim().split("\n").pop() ?? "";
  if (child.status !== 0 || last === "") throw new Error(`child ${args.join(" ")} failed (${child.status} ${child.signal}): ${child.stderr}`);
  return JSON.parse(last) as Line;
}

/** Starts the child with `hang`; resolves with its first JSON line once printed (the acknowledgement). */
export function start(...args: string[]): Promise<{ child: ChildProcess; line: Line }> {
  const child = spawn(process.execPath, ["--import", "tsx", CHILD, ...args, "hang"], { stdio: ["ignore", "pipe", "pipe"] });
  return new Promise((resolve, reject) => {
    let out = "", err = "";
    const timer = setTimeout(() => { child.kill("SIGKILL"); reject(new Error(`child ${args.join(" ")} printed nothing in 120 s: ${err}`)); }, 120_000);
    child.stderr!.on("data", (d) => (err += d));
    child.stdout!.on("data", (d) => {
      out += d;
      const end = out.indexOf("\n");
      if (end < 0) return;
      clearTimeout(timer);
      resolve({ child, line: JSON.parse(out.slice(0, end)) as Line });
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`child ${args.join(" ")} exited (${code}) before answering: ${err}`)); });
  });
}

export function kill9(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.removeAllListeners("exit");
    child.on("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

/** Loads `folder` in this process; the caller must close it. */
export function open(folder: string): P.PKCS11 {
  const pkcs11 = new P.PKCS11(`file:${folder}?pinHashIterations=64`);
  pkcs11.C_Initialize();
  return pkcs11;
}

export function loadError(folder: string): unknown {
  try {
    open(folder).close();
  } catch (e) {
    return e;
  }
  return undefined;
}

export function tokenFiles(folder: string): string[] {
  return readdirSync(folder).filter((n) => n.endsWith(".token")).map((n) => join(folder, n));
}
