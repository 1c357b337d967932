// The KMS trail: one CloudTrail-style JSON record per request (who, which account, which key,
// the operation, the encryption context, the result), appended to kms/trail.jsonl. Records are
// hash-chained (SHA-256 of the previous record); digests of the chain are signed by the fleet's
// trail key (ECDSA P-256) every second and at close, as CloudTrail's digest files, so a
// verifier needs only the public key (kms/trail-public.pem).
//
// Appends are buffered and written together once the current turn of the event loop is over (one
// write for every record of that turn, off the request's path; CloudTrail itself delivers minutes
// after the call). A process crash (kill -9) loses only the records of the turn it interrupts;
// the page cache keeps the rest (no fsync per record: an OS crash may lose more). Nothing ever
// breaks the chain: a partial last line is cut off at the next open, before anything is appended.
import { createHash, createPublicKey, verify } from "node:crypto";
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";

import { openDataFile, readDataFileText } from "./data-file.js";
import { KmsError } from "./errors.js";
import type { Fleet } from "./fleet.js";
import type { FinishedRequest } from "./server.js";
import { TRAIL_DIGESTS_FILE, TRAIL_PUBLIC_KEY_FILE, digestPayload, forEachLine, sha256Hex } from "./trail-files.js";

export { TRAIL_DIGESTS_FILE, TRAIL_FILE, TRAIL_PUBLIC_KEY_FILE, readTrail } from "./trail-files.js";
export { type TrailVerdict, verifyTrail } from "./trail-verify.js";

export interface TrailOptions {
  /** The trail file, or null to keep records in memory only. Its folder gets the digests and the public key. */
  path: string | null;
  /** Only the trail's signing key is used (a test may pass a stand-in with these two methods). */
  fleet: Pick<Fleet, "signTrail" | "trailPublicKeyPem">;
  region: string;
  nowMs: () => number;
  newEventId: () => string;
  /** A backstop: buffered records are written at least this often (default 100 ms); normally at the end of the event loop's turn. */
  flushIntervalMs?: number;
  /** How often a digest of new records is signed (default 1,000 ms). */
  digestIntervalMs?: number;
  /** Without a file: the newest records kept (default 50,000; a long benchmark must not fill the heap). The chain goes on regardless. */
  memoryRecordsMax?: number;
  /** Told of each digest once written (the endpoint anchors the trail's length outside its files). */
  onDigest?: (lastSeq: number) => void;
}

/** One record, CloudTrail's field names (eventVersion, userIdentity, eventTime, eventSource, eventName, …). */
export type TrailRecord = Record<string, unknown> & { requestID: string; eventName: string };

/** The record's version of CloudTrail's format (the KMS examples in AWS's developer guide carry 1.11). */
export const EVENT_VERSION = "1.11";
const GENESIS = "0".repeat(64);
/** Input members that never enter a record: secrets and data (CloudTrail logs none of them). */
const NEVER_RECORDED = new Set(["Plaintext", "CiphertextBlob", "KeyStorePassword", "Message", "Mac", "Signature", "PublicKey", "Recipient",
  // A grant token is a bearer credential for its grant: CloudTrail records the grant id, never the token.
  "GrantToken", "GrantTokens"]);
/** Operations CloudTrail marks readOnly (they change no state). */
const READ_ONLY = /^(Describe|List|Get|Encrypt$|Decrypt$|ReEncrypt$|GenerateDataKey|GenerateRandom$|GenerateMac$|VerifyMac$|Sign$|Verify$)/;
const MAX_BUFFERED_BYTES = 1 << 20;

export class KmsTrail {
  readonly #options: TrailOptions;
  readonly #fd: number | null;
  readonly #digestsFd: number | null;
  /** Lines not yet written; in memory-only mode, every line. */
  #pending: string[] = [];
  #pendingBytes = 0;
  /** Bytes a failed write left over (they go first at the next flush). */
  #unwritten: Buffer | null = null;
  readonly #memory: string[] = [];
  #seq: number;
  #prevHash: string;
  /** The last record a digest covers. */
  #digestedSeq: number;
  #writtenSeq: number;
  readonly #timers: NodeJS.Timeout[] = [];
  #closed = false;
  #flushScheduled = false;

  private constructor(options: TrailOptions, fd: number | null, digestsFd: number | null, seq: number, prevHash: string, digestedSeq: number) {
    this.#options = options;
    this.#fd = fd;
    this.#digestsFd = digestsFd;
    this.#seq = seq;
    this.#prevHash = prevHash;
    this.#digestedSeq = digestedSeq;
    this.#writtenSeq = seq;
  }

  static open(options: TrailOptions): KmsTrail {
    try {
      return KmsTrail.#open(options);
    } catch (e) {
      if (e instanceof KmsError) throw e;
      // A planted symlink (ELOOP, EEXIST), a file that is not ours (EACCES), a missing folder: named, never followed.
      throw new KmsError("KMSInternalException", `the trail in ${options.path} cannot be opened (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
  }

  static #open(options: TrailOptions): KmsTrail {
    let trail: KmsTrail;
    if (options.path === null) {
      trail = new KmsTrail(options, null, null, 0, GENESIS, 0);
    } else {
      const dir = join(options.path, "..");
      const pemPath = join(dir, TRAIL_PUBLIC_KEY_FILE);
      const pem = options.fleet.trailPublicKeyPem();
      // Every file of the folder: never through a symlink, never blocked on a planted FIFO, a regular file or refused.
      const found = readDataFileText(pemPath, { code: "KMSInternalException", ifExists: true, maxBytes: 64 << 10 });
      if (found !== null) {
        // A trail signed by another key would verify with nothing: refuse rather than fork it.
        if (found.trim() !== pem.trim()) {
          throw new KmsError("KMSInternalException", `${pemPath} is not the public key of this KMS's trail key: the trail folder was edited or belongs to another KMS`);
        }
      } else {
        const fd = openDataFile(pemPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, { code: "KMSInternalException", mode: 0o644 });
        try { writeSync(fd, pem.endsWith("\n") ? pem : `${pem}\n`); } finally { closeSync(fd); }
      }
      const flags = constants.O_RDWR | constants.O_CREAT | constants.O_APPEND;
      const opened = { code: "KMSInternalException", mode: 0o600 } as const;
      const fds: number[] = [];
      try {
        const fd = openDataFile(options.path, flags, opened);
        fds.push(fd);
        const head = recoverHead(fd, options.path);
        const digestsFd = openDataFile(join(dir, TRAIL_DIGESTS_FILE), flags, opened);
        fds.push(digestsFd);
        cutPartialLine(digestsFd); // a digest half written by a crash signs nothing: dropped
        const digestedSeq = lastDigestedSeq(join(dir, TRAIL_DIGESTS_FILE), pem);
        trail = new KmsTrail(options, fd, digestsFd, head.seq, head.hash, digestedSeq);
        // Records a crash left unsigned could have been edited since (the chain is a plain hash): they
        // are signed now, but as found at this start, so a verifier can say they were never vouched for.
        if (head.seq > digestedSeq) trail.#writeDigest(digestedSeq + 1);
      } catch (e) {
        for (const fd of fds) closeSync(fd);
        throw e;
      }
    }
    trail.#every(options.flushIntervalMs ?? 100, () => trail.#flush());
    trail.#every(options.digestIntervalMs ?? 1_000, () => trail.#digest());
    return trail;
  }

  /** Appends the record of a finished request; returns it. */
  record(request: FinishedRequest): TrailRecord {
    if (this.#closed) throw new KmsError("KMSInternalException", "the trail is closed");
    const record = this.#build(request);
    const line = JSON.stringify(record);
    this.#seq++;
    this.#prevHash = sha256Hex(line);
    if (this.#fd === null) {
      this.#memory.push(line);
      const max = this.#options.memoryRecordsMax ?? 50_000;
      if (this.#memory.length >= 2 * max) this.#memory.splice(0, this.#memory.length - max);
    } else {
      this.#pending.push(line);
      this.#pendingBytes += line.length;
      if (this.#pendingBytes > MAX_BUFFERED_BYTES) this.#flush();
      else if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => {
          this.#flushScheduled = false;
          if (this.#closed) return;
          // A full disk or a removed folder must not crash the endpoint: retried at the next flush.
          try { this.#flush(); } catch { /* kept in #unwritten */ }
        });
      }
    }
    return record;
  }

  /** Records so far (this process's and the file's; without a file, the newest memoryRecordsMax to 2× that), oldest first. */
  records(): TrailRecord[] {
    if (this.#fd === null) return this.#memory.map((l) => JSON.parse(l) as TrailRecord);
    this.#flush();
    const out: TrailRecord[] = [];
    forEachLine(this.#options.path!, (line) => void out.push(JSON.parse(line) as TrailRecord));
    return out;
  }

  /** Writes what is buffered and signs a digest of it (the close path; also for tests and `hsmsim down`). */
  sync(): void {
    this.#flush();
    this.#digest();
  }

  close(): void {
    if (this.#closed) return;
    this.sync();
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    if (this.#fd !== null) closeSync(this.#fd);
    if (this.#digestsFd !== null) closeSync(this.#digestsFd);
  }

  #build(request: FinishedRequest): TrailRecord {
    const { caller, context, error, input } = request;
    const o = this.#options;
    const record: TrailRecord = {
      eventVersion: EVENT_VERSION,
      userIdentity: caller === null ? { type: "Unknown" } : {
        type: caller.userName === null ? "Root" : "IAMUser",
        principalId: caller.userName === null ? caller.accountId : principalIdOf(caller.arn),
        arn: caller.arn,
        accountId: caller.accountId,
        accessKeyId: caller.accessKeyId,
        ...(caller.userName === null ? {} : { userName: caller.userName }),
      },
      eventTime: new Date(request.startMs).toISOString().replace(/\.\d{3}Z$/, "Z"),
      eventSource: "kms.amazonaws.com",
      eventName: request.operation,
      awsRegion: o.region,
      sourceIPAddress: caller?.sourceIp ?? null,
      userAgent: caller?.userAgent ?? null,
      ...(error ? { errorCode: error.code, errorMessage: error.message } : {}),
      requestParameters: input === null ? null : requestParameters(input),
      responseElements: null,
      ...(context && Object.keys(context.notes.additionalEventData).length > 0 ? { additionalEventData: { ...context.notes.additionalEventData } } : {}),
      requestID: request.requestId,
      eventID: o.newEventId(),
      readOnly: READ_ONLY.test(request.operation),
      ...(context && context.notes.resources.length > 0 ? { resources: context.notes.resources.map((r) => ({ ...r })) } : {}),
      eventType: "AwsApiCall",
      managementEvent: true,
      recipientAccountId: caller?.accountId ?? null,
      eventCategory: "Management",
      // Ours: when the request ran (ms; eventTime has seconds only), to find the HSM audit entries it caused.
      hsmsimTiming: { startMs: request.startMs, endMs: request.endMs },
      hsmsimSeq: this.#seq + 1,
      hsmsimPrevHash: this.#prevHash,
    };
    return record;
  }

  #flush(): void {
    if (this.#fd === null || (this.#pending.length === 0 && this.#unwritten === null)) return;
    const lines = this.#pending.length === 0 ? Buffer.alloc(0) : Buffer.from(`${this.#pending.join("\n")}\n`, "utf8");
    const data = this.#unwritten === null ? lines : Buffer.concat([this.#unwritten, lines]);
    const upTo = this.#seq;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#unwritten = data;
    // Whole lines in one write; a crash may leave one partial last line, which the next open cuts off.
    // A failed write (a full disk) keeps the rest for the next flush: records wait, the chain stays whole.
    let offset = 0;
    while (offset < data.length) {
      offset += writeSync(this.#fd, data, offset);
      this.#unwritten = data.subarray(offset);
    }
    this.#unwritten = null;
    this.#writtenSeq = upTo;
  }

  #digest(): void {
    if (this.#digestsFd === null) return;
    this.#flush();
    if (this.#writtenSeq === this.#digestedSeq || this.#unwritten !== null) return;
    this.#writeDigest();
  }

  #writeDigest(unvouchedFrom?: number): void {
    const lastSeq = this.#writtenSeq;
    const lastHash = this.#prevHash;
    const time = new Date(this.#options.nowMs()).toISOString();
    const signature = this.#options.fleet.signTrail(digestPayload(lastSeq, lastHash, time, unvouchedFrom)).toString("base64");
    writeSync(this.#digestsFd!, `${JSON.stringify({ lastSeq, lastHash, time, ...(unvouchedFrom === undefined ? {} : { unvouchedFrom }), signature })}\n`);
    this.#digestedSeq = lastSeq;
    if (this.#options.onDigest !== undefined) {
      // Whoever anchors this length must find it on disk after a power loss: the records and the digest first.
      if (this.#fd !== null) fsyncSync(this.#fd);
      fsyncSync(this.#digestsFd!);
      this.#options.onDigest(lastSeq);
    }
  }

  /** How many records the trail holds (its last sequence number). */
  get lastSeq(): number {
    return this.#seq;
  }

  #every(intervalMs: number, fn: () => void): void {
    const timer = setInterval(() => {
      // A full disk or a removed folder must not crash the endpoint: the verifier will show the gap.
      try { fn(); } catch { /* retried at the next tick */ }
    }, intervalMs);
    timer.unref();
    this.#timers.push(timer);
  }
}

const principalIds = new Map<string, string>();
/** A stable, IAM-like unique id for a user ARN (AWS's are AIDA + 17 characters); remembered (a few principals make every request). */
function principalIdOf(arn: string): string {
  let id = principalIds.get(arn);
  if (id === undefined) {
    id = `AIDA${createHash("sha256").update(arn).digest("hex").slice(0, 17).toUpperCase()}`;
    if (principalIds.size < 10_000) principalIds.set(arn, id);
  }
  return id;
}

/** CloudTrail's requestParameters: the input's members in camelCase, less secrets and binary data. */
function requestParameters(input: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(input)) {
    if (NEVER_RECORDED.has(name) || value === undefined || Buffer.isBuffer(value) || value instanceof Uint8Array) continue;
    out[name.charAt(0).toLowerCase() + name.slice(1)] = value;
  }
  return out;
}

/**
 * The last whole record's sequence number and hash. A partial last line (a crash in the middle of
 * a write) is cut off: those records were lost with the crash, and the chain goes on from the last
 * whole one.
 */
function recoverHead(fd: number, path: string): { seq: number; hash: string } {
  cutPartialLine(fd);
  const size = fstatSync(fd).size;
  if (size === 0) return { seq: 0, hash: GENESIS };
  const start = lastNewlineBefore(fd, size - 1) + 1;
  const bytes = Buffer.alloc(size - 1 - start);
  readSync(fd, bytes, 0, bytes.length, start);
  const line = bytes.toString("utf8");
  let seq: unknown;
  try {
    seq = (JSON.parse(line) as { hsmsimSeq?: unknown }).hsmsimSeq;
  } catch {
    seq = undefined;
  }
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) {
    throw new KmsError("KMSInternalException", `the last record of ${path} is not a trail record: the file was edited (hsmsim audit --kms shows where)`);
  }
  return { seq, hash: sha256Hex(line) };
}

function cutPartialLine(fd: number): void {
  const size = fstatSync(fd).size;
  if (size > 0) {
    const lastNewline = lastNewlineBefore(fd, size);
    if (lastNewline !== size - 1) ftruncateSync(fd, lastNewline + 1);
  }
}

/** The offset of the last newline before `end`, or -1. */
function lastNewlineBefore(fd: number, end: number): number {
  const chunk = Buffer.alloc(65_536);
  for (let to = end; to > 0;) {
    const from = Math.max(0, to - chunk.length);
    readSync(fd, chunk, 0, to - from, from);
    const at = chunk.subarray(0, to - from).lastIndexOf(0x0a);
    if (at >= 0) return from + at;
    to = from;
  }
  return -1;
}

/** The last record a good digest (one this trail key signed) covers: a planted digest moves nothing. */
function lastDigestedSeq(path: string, publicKeyPem: string): number {
  const digests: { lastSeq: number; lastHash: string; time: string; signature: string; unvouchedFrom?: number }[] = [];
  forEachLine(path, (line, _n, partial) => {
    if (partial) return;
    try {
      const d = JSON.parse(line) as (typeof digests)[number];
      if (typeof d.lastSeq === "number" && typeof d.lastHash === "string" && typeof d.time === "string" && typeof d.signature === "string") digests.push(d);
    } catch { /* the verifier reports it */ }
  });
  const key = createPublicKey(publicKeyPem);
  for (let i = digests.length - 1; i >= 0; i--) {
    const d = digests[i]!;
    try {
      if (verify("sha256", digestPayload(d.lastSeq, d.lastHash, d.time, d.unvouchedFrom), { key, dsaEncoding: "der" }, Buffer.from(d.signature, "base64"))) return d.lastSeq;
    } catch { /* not a signature */ }
  }
  return 0;
}
