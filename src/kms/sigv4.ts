// SigV4 verification of incoming requests with the AWS SDK's own signer (@smithy/signature-v4):
// the request is re-signed with the stored secret over the headers it says it signed, and the
// two signatures are compared in constant time. Nothing here logs or echoes a secret; messages
// name only what the caller sent.
import { createHash, timingSafeEqual } from "node:crypto";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { KmsError } from "./errors.js";
import type { CredentialSet } from "./identity.js";
import type { KmsCredential } from "./types.js";

/** An incoming HTTP request as the server read it. */
export interface SignedRequest {
  method: string;
  /** The path with its query string, as sent. */
  path: string;
  /** Header names lower-case; repeated headers joined with ",". */
  headers: Record<string, string>;
  body: Buffer;
}

/** How far a request's X-Amz-Date may be from the server's clock, either way (AWS: 5 minutes). */
export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

const ALGORITHM = "AWS4-HMAC-SHA256";
const SERVICE = "kms";
const TERMINATOR = "aws4_request";
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const SIGNATURE_HEX = /^[0-9a-f]{64}$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
const BAD_SIGNATURE =
  "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

const incomplete = (message: string) => new KmsError("IncompleteSignatureException", message);
const invalid = (message: string) => new KmsError("InvalidSignatureException", message);

interface Authorization {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  terminator: string;
  signedHeaders: string[];
  signature: string;
}

/** The Authorization header's parts; IncompleteSignatureException when one is missing or malformed. */
function parseAuthorization(value: string): Authorization {
  const space = value.indexOf(" ");
  const algorithm = space < 0 ? value : value.slice(0, space);
  if (algorithm !== ALGORITHM) throw incomplete(`Unsupported AWS 'algorithm': the Authorization header must start with '${ALGORITHM}'.`);
  const parts = new Map<string, string>();
  for (const part of value.slice(space + 1).split(",")) {
    const trimmed = part.trim();
    const equals = trimmed.indexOf("=");
    if (equals <= 0) throw incomplete(`Authorization header has a malformed part; it needs 'Credential', 'SignedHeaders' and 'Signature'.`);
    const name = trimmed.slice(0, equals);
    if (parts.has(name)) throw incomplete(`Authorization header has '${name}' twice.`);
    parts.set(name, trimmed.slice(equals + 1));
  }
  const missing = ["Credential", "SignedHeaders", "Signature"].filter((name) => !parts.get(name));
  if (missing.length > 0) throw incomplete(missing.map((name) => `Authorization header requires '${name}' parameter.`).join(" "));
  const scope = parts.get("Credential")!.split("/");
  if (scope.length !== 5 || scope.some((s) => s === "")) {
    throw incomplete("Credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request.");
  }
  const signedHeaders = parts.get("SignedHeaders")!.split(";");
  if (signedHeaders.some((name) => !HEADER_NAME.test(name))) throw incomplete("SignedHeaders must be lower-case header names separated by ';'.");
  const [accessKeyId, date, region, service, terminator] = scope;
  return { accessKeyId, date, region, service, terminator, signedHeaders, signature: parts.get("Signature")! };
}

/** X-Amz-Date (ISO 8601 basic) as ms since the epoch, or NaN. */
function parseAmzDate(value: string): number {
  const m = AMZ_DATE.exec(value);
  if (!m) return NaN;
  const ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
  // Date.UTC rolls 20260231 over into March: refuse what does not read back the same.
  return new Date(ms).toISOString().replace(/[-:]|\.\d{3}/g, "") === value ? ms : NaN;
}

const basicIso = (ms: number) => new Date(ms).toISOString().replace(/[-:]|\.\d{3}/g, "");

/** The path (percent-decoded, as the SDK signed it before escaping) and its query as the signer wants them. */
function splitPath(raw: string): { path: string; query: Record<string, string | string[]> } {
  const mark = raw.indexOf("?");
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw invalid("The request path is not valid percent-encoding.");
    }
  };
  const path = decode(mark < 0 ? raw : raw.slice(0, mark));
  const query: Record<string, string | string[]> = Object.create(null);
  if (mark >= 0) {
    for (const pair of raw.slice(mark + 1).split("&")) {
      if (pair === "") continue;
      const equals = pair.indexOf("=");
      const name = decode(equals < 0 ? pair : pair.slice(0, equals));
      const value = equals < 0 ? "" : decode(pair.slice(equals + 1));
      const prior = query[name];
      query[name] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value];
    }
  }
  return { path, query };
}

// One signer per credential and region, made on first use (the credential objects of a
// CredentialSet are frozen and live as long as it does).
const signers = new WeakMap<KmsCredential, { region: string; signer: SignatureV4 }>();

function signerFor(credential: KmsCredential, region: string): SignatureV4 {
  const cached = signers.get(credential);
  if (cached?.region === region) return cached.signer;
  const signer = new SignatureV4({
    credentials: { accessKeyId: credential.accessKeyId, secretAccessKey: credential.secretAccessKey },
    region,
    service: SERVICE,
    sha256: Hash.bind(null, "sha256"),
    applyChecksum: false,
  });
  signers.set(credential, { region, signer });
  return signer;
}

/**
 * The credential whose secret signed `request`, or a KmsError: MissingAuthenticationTokenException
 * (no Authorization), IncompleteSignatureException (malformed), UnrecognizedClientException
 * (unknown access key), InvalidSignatureException (wrong signature, wrong region or service in
 * the scope, or X-Amz-Date more than 5 minutes from `nowMs`: "Signature expired").
 */
export async function verifyRequest(request: SignedRequest, credentials: CredentialSet, region: string, nowMs: number): Promise<KmsCredential> {
  // Own string members only: a header named "constructor" must not find Object.prototype's.
  const headers: Record<string, string> = Object.create(null);
  for (const name of Object.keys(request.headers)) {
    const value = request.headers[name];
    if (typeof value === "string") headers[name.toLowerCase()] = value;
  }
  const authorization = headers["authorization"];
  if (authorization === undefined || authorization === "") throw new KmsError("MissingAuthenticationTokenException", "Missing Authentication Token");
  const auth = parseAuthorization(authorization);

  const amzDate = headers["x-amz-date"];
  if (amzDate === undefined) throw incomplete("Authorization header requires existence of a 'X-Amz-Date' header.");
  const signed = new Set(auth.signedHeaders);
  // Unsigned, these could be swapped on a captured request: the host (another endpoint), the
  // date (a fresh replay window), the operation (the same body run as another operation).
  for (const name of ["host", "x-amz-date", "x-amz-target"]) {
    if (headers[name] !== undefined && !signed.has(name)) throw incomplete(`'${name}' must be a signed header (SignedHeaders).`);
  }
  if (!signed.has("host")) throw incomplete("'host' must be a signed header (SignedHeaders).");
  for (const name of signed) {
    if (headers[name] === undefined) throw invalid(`The signed header '${name}' is not in the request.`);
  }

  if (auth.terminator !== TERMINATOR) throw invalid(`Credential should be scoped with a valid terminator: '${TERMINATOR}'.`);
  if (auth.service !== SERVICE) throw invalid(`Credential should be scoped to correct service: '${SERVICE}'.`);
  if (auth.region !== region) throw invalid("Credential should be scoped to a valid region.");

  const signedAtMs = parseAmzDate(amzDate);
  if (Number.isNaN(signedAtMs)) throw incomplete("X-Amz-Date must be an ISO 8601 basic date and time (YYYYMMDDTHHMMSSZ).");
  if (auth.date !== amzDate.slice(0, 8)) throw invalid("Date in Credential scope does not match YYYYMMDD from X-Amz-Date.");
  if (signedAtMs < nowMs - MAX_CLOCK_SKEW_MS) {
    throw invalid(`Signature expired: ${amzDate} is now earlier than ${basicIso(nowMs - MAX_CLOCK_SKEW_MS)} (${basicIso(nowMs)} - 5 min.)`);
  }
  if (signedAtMs > nowMs + MAX_CLOCK_SKEW_MS) {
    throw invalid(`Signature not yet current: ${amzDate} is still later than ${basicIso(nowMs + MAX_CLOCK_SKEW_MS)} (${basicIso(nowMs)} + 5 min.)`);
  }

  const credential = credentials.find(auth.accessKeyId);
  if (!credential) throw new KmsError("UnrecognizedClientException", "The security token included in the request is invalid.");
  if (headers["x-amz-security-token"] !== undefined) {
    if (!signed.has("x-amz-security-token")) throw incomplete("'x-amz-security-token' must be a signed header (SignedHeaders).");
    // No STS here: no session token is ever valid.
    throw new KmsError("UnrecognizedClientException", "The security token included in the request is invalid.");
  }
  if (signed.has("x-amz-content-sha256")) {
    // The signer takes this header's word for the body's hash: check that word first.
    const claimed = headers["x-amz-content-sha256"];
    if (claimed !== createHash("sha256").update(request.body).digest("hex")) {
      throw invalid("The provided 'x-amz-content-sha256' header does not match what was computed.");
    }
  }
  if (!SIGNATURE_HEX.test(auth.signature)) throw invalid(BAD_SIGNATURE);

  // Re-sign exactly the headers the request says it signed, at its own X-Amz-Date.
  const signedOnly: Record<string, string> = {};
  for (const name of signed) signedOnly[name] = headers[name];
  const { path, query } = splitPath(request.path);
  const hostHeader = headers["host"];
  const resigned = await signerFor(credential, region).sign(
    new HttpRequest({ method: request.method, protocol: "http:", hostname: hostHeader.replace(/:\d+$/, ""), path, query, headers: signedOnly, body: request.body }),
    { signingDate: new Date(signedAtMs), signableHeaders: signed, signingRegion: region, signingService: SERVICE },
  );
  const expected = /Signature=([0-9a-f]{64})$/.exec(String(resigned.headers["authorization"]))?.[1];
  const listed = /SignedHeaders=([^,]*),/.exec(String(resigned.headers["authorization"]))?.[1];
  // The signer signs what it was given; if it signed another list (e.g. a listed header it
  // never signs), the request's claim about what it signed is not what was checked.
  if (expected === undefined || listed !== auth.signedHeaders.join(";")) throw invalid(BAD_SIGNATURE);
  if (!timingSafeEqual(Buffer.from(expected, "latin1"), Buffer.from(auth.signature, "latin1"))) throw invalid(BAD_SIGNATURE);
  return credential;
}
