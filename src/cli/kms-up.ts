// The KMS part of `hsmsim up --kms` and `hsmsim status`: check the port before anything starts,
// write or read the endpoint's credentials, wait until the KMS process listens, probe whether it
// answers, and print the endpoint with the environment the AWS CLI and SDKs read.
import { existsSync } from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";

import { loadOrCreateCredentials, readCredentials, CREDENTIALS_FILE } from "../kms/credentials-file.js";
import type { KmsCredential } from "../kms/types.js";
import type { ClusterFolder } from "../net/cluster-folder.js";
import { ProcessError } from "../net/process-errors.js";
import type { ClusterView } from "../net/supervisor.js";
import type { KmsView } from "../net/supervisor-kms.js";
import { type TextStream, UsageError } from "./command.js";

export const DEFAULT_KMS_PORT = 4599;
export const KMS_HOST = "127.0.0.1";
export const KMS_REGION = "us-east-1";

export const kmsDirOf = (folder: ClusterFolder) => join(folder.dir, "kms");

/** Refuses a port another program holds, before the cluster starts (the supervisor, which binds it and keeps it until down, would only fail and retry). */
export async function checkKmsPort(port: number): Promise<void> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once("error", (e: NodeJS.ErrnoException) => {
      reject(e.code === "EADDRINUSE"
        ? new UsageError(`port ${port} on ${KMS_HOST} is in use (another hsmsim up --kms, or another program): choose another with --kms-port`)
        : new UsageError(`cannot listen on ${KMS_HOST}:${port} for the KMS endpoint: ${e.message}`));
    });
    probe.listen(port, KMS_HOST, () => probe.close(() => resolve()));
  });
}

/** Writes <data>/kms/credentials.json at the first start (0600, O_EXCL); reads it later. */
export function prepareKmsCredentials(folder: ClusterFolder): KmsCredential[] {
  return loadOrCreateCredentials(kmsDirOf(folder)).credentials;
}

/** Waits (bounded) until the supervisor's KMS process listens; fails with its reason when it cannot. */
export async function waitForKms(status: () => Promise<ClusterView>, timeoutMs: number): Promise<ClusterView> {
  const started = Date.now();
  for (;;) {
    const v = await status();
    if (!v.kms) throw new ProcessError("INVALID_STATE", "the supervisor runs no KMS endpoint");
    if (v.kms.state === "running") return v;
    // A start that failed for a reason a restart will not cure (its port taken, or failing again and
    // again: its folder held or damaged): say so now, not at the timeout. The supervisor keeps retrying.
    if (v.kms.lastError !== null && (/in use/.test(v.kms.lastError) || v.kms.restarts >= 2)) throw new ProcessError("CHILD_FAILED", `${v.kms.lastError} (the HSMs are up and the supervisor keeps retrying the KMS; hsmsim down stops everything; see logs/kms.stderr)`);
    if (Date.now() - started > timeoutMs) {
      throw new ProcessError("TIMEOUT", `the KMS endpoint did not start within ${timeoutMs} ms${v.kms.lastError ? ` (${v.kms.lastError})` : ""}; see logs/kms.stderr`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Whether the endpoint at `url` accepts a connection. A TCP connect, not an HTTP request: every
 * request the endpoint reads becomes a trail record, and a status probe is not a KMS call. (The
 * supervisor's "running" already says the process listened and is alive.)
 */
export function kmsAnswers(url: string, timeoutMs = 2_000): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port), timeout: timeoutMs });
    const done = (answered: boolean) => {
      socket.destroy();
      resolve(answered);
    };
    socket.once("connect", () => done(true));
    socket.once("timeout", () => done(false));
    socket.once("error", () => done(false));
  });
}

export type KmsStatus = KmsView & { answering: boolean; region: string; credentialsFile: string };

/** The view with whether the endpoint answers now (for status and up, text and JSON alike). */
export async function withKmsProbe(v: ClusterView, folder: ClusterFolder): Promise<ClusterView> {
  if (!v.kms) return v;
  const kms: KmsStatus = { ...v.kms, answering: v.kms.state === "running" && await kmsAnswers(v.kms.url), region: KMS_REGION,
    credentialsFile: join(kmsDirOf(folder), CREDENTIALS_FILE) };
  return { ...v, kms };
}

/** One line for status (a stopped cluster that has run one: where its state is). */
export function printKmsLine(v: ClusterView, folder: ClusterFolder, out: TextStream): void {
  const kms = v.kms as KmsStatus | undefined;
  if (!kms) {
    if (!v.running && existsSync(kmsDirOf(folder))) out.write(`kms down (its state is in ${kmsDirOf(folder)}; hsmsim up --kms starts it)\n`);
    return;
  }
  out.write(`kms ${kms.url} ${kms.state}${kms.pid === null ? "" : ` (pid ${kms.pid})`}, ${kms.answering ? "answering" : "NOT answering"}` +
    `${kms.restarts ? `, ${kms.restarts} restart(s)` : ""}${kms.lastError && kms.state !== "running" ? `: ${kms.lastError}` : ""}\n`);
}

/**
 * How to point the AWS CLI and SDKs at the endpoint. The secret is printed only to a terminal (as
 * `aws configure` shows it only while it is typed): piped or logged output names the file instead.
 */
export function printKmsHowTo(v: ClusterView, folder: ClusterFolder, out: TextStream): void {
  const kms = v.kms as KmsStatus | undefined;
  if (!kms) return;
  let credentials: KmsCredential[] = [];
  try {
    credentials = readCredentials(kms.credentialsFile);
  } catch (e) {
    out.write(`kms credentials: ${(e as Error).message}\n`);
    return;
  }
  const chosen = credentials.find((c) => c.accountId === "111122223333" && c.arn.includes(":user/")) ?? credentials[0]!;
  const secret = out.isTTY ? chosen.secretAccessKey : `(in ${kms.credentialsFile}: shown only on a terminal)`;
  out.write(`\nKMS endpoint ${kms.url} (region ${kms.region}), as ${chosen.arn}:\n`);
  // AWS_DEFAULT_REGION for the AWS CLI v1; AWS_ENDPOINT_URL_KMS is read by CLI 1.29+/2.13+ and SDKs of 2023 on.
  out.write(`  export AWS_ENDPOINT_URL_KMS=${kms.url}\n  export AWS_ACCESS_KEY_ID=${chosen.accessKeyId}\n  export AWS_SECRET_ACCESS_KEY=${secret}\n  export AWS_REGION=${kms.region} AWS_DEFAULT_REGION=${kms.region}\n`);
  out.write(`  aws kms list-keys        (an older AWS CLI: aws --endpoint-url ${kms.url} kms list-keys;\n` +
    `                            the SDK: new KMSClient({ endpoint: "${kms.url}", region: "${kms.region}", credentials }))\n`);
  const others = credentials.filter((c) => c !== chosen);
  if (others.length > 0) out.write(`other principals in ${join(kmsDirOf(folder), CREDENTIALS_FILE)}: ${others.map((c) => `${c.arn} (${c.accessKeyId})`).join(", ")}\n`);
}
