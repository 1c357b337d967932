// Seeded fuzzing of the wire's parsers: random JSON at every operation's members, and random
// Authorization headers and header sets at the SigV4 verifier. Only KmsErrors of the expected
// kinds may come out; never a TypeError, never a crash. A failure prints its seed.
import { describe, expect, it } from "vitest";
import { KmsError } from "../../src/kms/errors.js";
import { CredentialSet } from "../../src/kms/identity.js";
import { OPERATIONS, validateInput } from "../../src/kms/shapes.js";
import { verifyRequest } from "../../src/kms/sigv4.js";
import { prng } from "../fuzz/fuzzer.js";
import { ALICE, REGION } from "./wire-fixture.js";

const MEMBERS = [
  "KeyId", "Plaintext", "CiphertextBlob", "EncryptionContext", "GrantTokens", "NumberOfBytes", "KeySpec", "Description", "Policy",
  "AliasName", "TargetKeyId", "Limit", "Marker", "PendingWindowInDays", "Tags", "TagKeys", "Message", "Signature", "Mac",
  "MacAlgorithm", "SigningAlgorithm", "Operations", "Constraints", "GranteePrincipal", "RetiringPrincipal", "GrantId", "GrantToken",
  "CustomKeyStoreId", "CustomKeyStoreName", "KeyStorePassword", "CloudHsmClusterId", "TrustAnchorCertificate", "DryRun", "Origin",
  "KeyUsage", "DestinationKeyId", "SourceEncryptionContext", "BypassPolicyLockoutSafetyCheck", "__proto__", "constructor", "toString",
];

function randomJson(random: () => number, depth = 0): unknown {
  const pick = Math.floor(random() * (depth > 2 ? 7 : 10));
  switch (pick) {
    case 0: return null;
    case 1: return random() < 0.5;
    case 2: return [0, -1, 1, 7, 30, 1024, 1025, 1.5, 1e300, -0, Number.MAX_SAFE_INTEGER + 2][Math.floor(random() * 11)];
    case 3: return "";
    case 4: return ["AAAA", "AA==", "A", "====", "k", "alias/x", "SYMMETRIC_DEFAULT", "AES_256", "\u0000", "é", "x".repeat(9000)][Math.floor(random() * 11)];
    case 5: return Buffer.alloc(Math.floor(random() * 5000), 65).toString("base64");
    case 6: return String.fromCharCode(...Array.from({ length: Math.floor(random() * 20) }, () => Math.floor(random() * 0x3000)));
    case 7: return Array.from({ length: Math.floor(random() * 12) }, () => randomJson(random, depth + 1));
    default: {
      const out: Record<string, unknown> = {};
      for (let i = Math.floor(random() * 6); i > 0; i--) out[MEMBERS[Math.floor(random() * MEMBERS.length)]] = randomJson(random, depth + 1);
      return out;
    }
  }
}

describe("wire fuzz", () => {
  it("validateInput throws only SerializationException or ValidationException, for any JSON", () => {
    for (let seed = 1; seed <= 3000; seed++) {
      const random = prng(seed);
      const operation = OPERATIONS[Math.floor(random() * OPERATIONS.length)];
      const body: Record<string, unknown> = {};
      for (let i = 1 + Math.floor(random() * 6); i > 0; i--) body[MEMBERS[Math.floor(random() * MEMBERS.length)]] = randomJson(random);
      // Through JSON, as the server hands it over (own __proto__ keys included).
      const parsed = JSON.parse(JSON.stringify(body).replace(/"constructor"/g, '"__proto__"'));
      try {
        const input = validateInput(operation, parsed);
        expect(typeof input, `seed ${seed}`).toBe("object");
      } catch (error) {
        expect(error, `seed ${seed} ${operation}`).toBeInstanceOf(KmsError);
        expect(["SerializationException", "ValidationException"], `seed ${seed}`).toContain((error as KmsError).code);
        expect((error as KmsError).message.length).toBeLessThan(4096);
      }
    }
  });

  it("verifyRequest answers any Authorization header and header set with an AWS exception", async () => {
    const credentials = new CredentialSet([ALICE]);
    const nowMs = Date.UTC(2026, 0, 2, 3, 4, 5);
    const pieces = [
      "AWS4-HMAC-SHA256", " ", ",", "=", "/", ";", "Credential", "SignedHeaders", "Signature", ALICE.accessKeyId, "20260102",
      REGION, "kms", "aws4_request", "host", "x-amz-date", "x-amz-target", "constructor", "__proto__", "a".repeat(64), "0".repeat(64), "\u00ff", "",
    ];
    const allowed = new Set(["MissingAuthenticationTokenException", "IncompleteSignatureException", "InvalidSignatureException", "UnrecognizedClientException"]);
    for (let seed = 1; seed <= 2000; seed++) {
      const random = prng(seed);
      const word = () => pieces[Math.floor(random() * pieces.length)];
      let authorization = random() < 0.8 ? "AWS4-HMAC-SHA256 " : "";
      for (let i = Math.floor(random() * 30); i > 0; i--) authorization += word();
      const headers: Record<string, string> = { authorization };
      if (random() < 0.8) headers["x-amz-date"] = random() < 0.7 ? "20260102T030405Z" : word();
      if (random() < 0.8) headers["host"] = "127.0.0.1:1";
      if (random() < 0.3) headers[word() || "x"] = word();
      try {
        await verifyRequest({ method: "POST", path: random() < 0.9 ? "/" : "/%zz?a=%", headers, body: Buffer.from("{}") }, credentials, REGION, nowMs);
        throw new Error(`seed ${seed}: a random Authorization header verified`);
      } catch (error) {
        expect(error, `seed ${seed} ${authorization}`).toBeInstanceOf(KmsError);
        expect(allowed.has((error as KmsError).code), `seed ${seed}`).toBe(true);
      }
    }
  });
});
