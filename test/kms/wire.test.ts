// The endpoint's wire with the real @aws-sdk/client-kms against a stub handler: the SDK sees
// AWS's exception classes and messages, blobs round-trip, bad signatures are refused, the SDK
// corrects its clock from our Date header, and the AWS CLI works with --endpoint-url.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import {
  DecryptCommand,
  DescribeKeyCommand,
  DisabledException,
  EncryptCommand,
  GenerateDataKeyCommand,
  GenerateRandomCommand,
  KMSInternalException,
  KMSInvalidStateException,
  KMSServiceException,
  ListKeysCommand,
  NotFoundException,
} from "@aws-sdk/client-kms";
import { afterEach, describe, expect, it } from "vitest";
import { KmsError } from "../../src/kms/errors.js";
import { ALICE, REGION, SAAS, type Stub, startStub } from "./wire-fixture.js";

let stub: Stub | undefined;
afterEach(async () => {
  await stub?.close();
  stub = undefined;
});

/** What `promise` rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<KMSServiceException> {
  try {
    await promise;
  } catch (error) {
    return error as KMSServiceException;
  }
  throw new Error("expected a rejection");
}

describe("KMS wire with the AWS SDK", () => {
  it("round-trips blobs and hands the handler validated input and the caller", async () => {
    stub = await startStub();
    const plaintext = Buffer.from([0, 1, 2, 250, 251, 252, 255]);
    const out = await stub.client().send(new EncryptCommand({ KeyId: "alias/app", Plaintext: plaintext, EncryptionContext: { Purpose: "test" } }));
    expect(Buffer.from(out.CiphertextBlob!)).toEqual(Buffer.from(plaintext).reverse());
    expect(out.KeyId).toBe(`arn:aws:kms:${REGION}:111122223333:key/alias/app`);
    const [call] = stub.calls;
    expect(call.operation).toBe("Encrypt");
    expect(Buffer.isBuffer(call.input.Plaintext)).toBe(true);
    expect(call.input.Plaintext).toEqual(plaintext);
    expect(call.input.EncryptionContext).toEqual({ Purpose: "test" });
    expect(call.context.caller).toMatchObject({ accountId: "111122223333", arn: ALICE.arn, accessKeyId: ALICE.accessKeyId, userName: "alice", sourceIp: "127.0.0.1" });
    expect(call.context.caller.userAgent).toMatch(/aws-sdk-js/);
    expect(call.context.region).toBe(REGION);
    expect(out.$metadata.requestId).toBe(call.context.requestId);

    const random = await stub.client(SAAS).send(new GenerateRandomCommand({ NumberOfBytes: 32 }));
    expect(Buffer.from(random.Plaintext!)).toEqual(Buffer.alloc(32, 0x2a));
    expect(stub.calls[1].context.caller).toMatchObject({ accountId: "444455556666", userName: null });
  });

  it("encodes Dates as epoch seconds the SDK reads back as Dates", async () => {
    const created = new Date("2026-03-04T05:06:07.000Z");
    stub = await startStub(async () => ({ KeyMetadata: { KeyId: "k", CreationDate: created, DeletionDate: undefined, Enabled: true } }));
    const out = await stub.client().send(new DescribeKeyCommand({ KeyId: "k" }));
    expect(out.KeyMetadata?.CreationDate).toEqual(created);
    expect(out.KeyMetadata && "DeletionDate" in out.KeyMetadata ? out.KeyMetadata.DeletionDate : undefined).toBeUndefined();
  });

  it("raises the named exception classes with the handler's message", async () => {
    const errors: Record<string, KmsError> = {
      "k-notfound": new KmsError("NotFoundException", "Key 'arn:aws:kms:us-east-1:111122223333:key/k-notfound' does not exist"),
      "k-disabled": new KmsError("DisabledException", "arn:aws:kms:us-east-1:111122223333:key/k-disabled is disabled."),
      "k-pending": new KmsError("KMSInvalidStateException", "arn:aws:kms:us-east-1:111122223333:key/k-pending is pending deletion."),
      "k-denied": new KmsError("AccessDeniedException", "User: arn:aws:iam::444455556666:root is not authorized to perform: kms:Decrypt"),
    };
    stub = await startStub(async (_op, input) => {
      throw errors[input.KeyId as string];
    });
    const client = stub.client();
    const notFound = await rejection(client.send(new DescribeKeyCommand({ KeyId: "k-notfound" })));
    expect(notFound).toBeInstanceOf(NotFoundException);
    expect(notFound.message).toBe(errors["k-notfound"].message);
    expect(notFound.$metadata.httpStatusCode).toBe(400);
    expect(await rejection(client.send(new DescribeKeyCommand({ KeyId: "k-disabled" })))).toBeInstanceOf(DisabledException);
    expect(await rejection(client.send(new DescribeKeyCommand({ KeyId: "k-pending" })))).toBeInstanceOf(KMSInvalidStateException);
    // Not modelled by the SDK's KMS client: it raises the service exception under AWS's name.
    const denied = await rejection(client.send(new DescribeKeyCommand({ KeyId: "k-denied" })));
    expect(denied.name).toBe("AccessDeniedException");
    expect(denied.message).toBe(errors["k-denied"].message);
    // Every answer carried the request id header the SDK reports.
    expect(notFound.$metadata.requestId).toBe(stub.finished[0].requestId);
    expect(stub.finished.map((f) => f.error?.code)).toEqual(["NotFoundException", "DisabledException", "KMSInvalidStateException", "AccessDeniedException"]);
  });

  it("answers any other throw as KMSInternalException (500) without its detail", async () => {
    stub = await startStub(async () => {
      throw new TypeError("secret detail: cannot read properties of undefined");
    });
    const error = await rejection(stub.client().send(new ListKeysCommand({})));
    expect(error).toBeInstanceOf(KMSInternalException);
    expect(error.$metadata.httpStatusCode).toBe(500);
    expect(error.message).not.toMatch(/secret detail/);
  });

  it("refuses invalid input with AWS's ValidationException message before the handler runs", async () => {
    stub = await startStub();
    const client = stub.client();
    const tooMany = await rejection(client.send(new GenerateRandomCommand({ NumberOfBytes: 2000 })));
    expect(tooMany.name).toBe("ValidationException");
    expect(tooMany.message).toBe("1 validation error detected: Value at 'numberOfBytes' failed to satisfy constraint: Member must have value less than or equal to 1024");
    const big = await rejection(client.send(new EncryptCommand({ KeyId: "k", Plaintext: Buffer.alloc(4097) })));
    expect(big.message).toBe("1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096");
    const both = await rejection(client.send(new GenerateDataKeyCommand({ KeyId: "k", KeySpec: "AES_256", NumberOfBytes: 32 })));
    expect(both.name).toBe("ValidationException");
    const missing = await rejection(client.send(new DecryptCommand({} as never)));
    expect(missing.message).toBe("1 validation error detected: Value at 'ciphertextBlob' failed to satisfy constraint: Member must not be null");
    expect(stub.calls).toEqual([]);
  });

  it("refuses an unknown access key, a wrong secret and a wrong region with AWS's exceptions", async () => {
    stub = await startStub();
    const unknown = await rejection(stub.client({ ...ALICE, accessKeyId: "AKIANOBODY0000000000" }).send(new ListKeysCommand({})));
    expect(unknown.name).toBe("UnrecognizedClientException");
    const wrongSecret = await rejection(stub.client({ ...ALICE, secretAccessKey: SAAS.secretAccessKey }).send(new ListKeysCommand({})));
    expect(wrongSecret.name).toBe("InvalidSignatureException");
    expect(wrongSecret.message).not.toContain(ALICE.secretAccessKey);
    expect(wrongSecret.message).not.toContain(SAAS.secretAccessKey);
    const wrongRegion = await rejection(stub.client(ALICE, { region: "eu-west-1" }).send(new ListKeysCommand({})));
    expect(wrongRegion.name).toBe("InvalidSignatureException");
    expect(wrongRegion.message).toMatch(/region/);
    expect(stub.calls).toEqual([]);
    expect(stub.finished.every((f) => f.caller === null && f.input === null)).toBe(true);
  });

  it("lets the SDK correct its clock from the Date header (systemClockOffset)", async () => {
    stub = await startStub();
    const aheadMs = 20 * 60 * 1000;
    stub.clock.nowMs = Date.now() + aheadMs;
    // Without a retry the skewed signature is refused as expired...
    const once = await rejection(stub.client().send(new ListKeysCommand({})));
    expect(once.name).toBe("InvalidSignatureException");
    expect(once.message).toMatch(/^Signature expired: /);
    // ...with the SDK's default retries it reads our Date header, shifts its clock and succeeds.
    const client = stub.client(ALICE, { maxAttempts: 3 });
    await client.send(new ListKeysCommand({}));
    const offsetMs = client.config.systemClockOffset;
    expect(Math.abs(offsetMs - aheadMs)).toBeLessThan(60_000);
    expect(stub.finished.filter((f) => f.error?.code === "InvalidSignatureException").length).toBe(2);
    expect(stub.calls.length).toBe(1);
  });

  it("calls onFinished exactly once per request, with its operation, input and caller", async () => {
    stub = await startStub();
    const client = stub.client();
    await client.send(new GenerateRandomCommand({ NumberOfBytes: 8 }));
    await rejection(client.send(new GenerateRandomCommand({ NumberOfBytes: 0 })));
    expect(stub.finished).toHaveLength(2);
    expect(stub.finished[0]).toMatchObject({ operation: "GenerateRandom", input: { NumberOfBytes: 8 }, error: null, caller: { arn: ALICE.arn } });
    expect(stub.finished[0].context?.requestId).toBe(stub.finished[0].requestId);
    expect(stub.finished[1]).toMatchObject({ operation: "GenerateRandom", input: null, caller: { arn: ALICE.arn } });
    expect(stub.finished[1].error?.code).toBe("ValidationException");
    expect(new Set(stub.finished.map((f) => f.requestId)).size).toBe(2);
  });
});

describe("KMS wire with the AWS CLI", () => {
  it("aws kms generate-random --endpoint-url works against the endpoint", async (ctx) => {
    const run = promisify(execFile);
    const env = {
      ...process.env,
      AWS_ACCESS_KEY_ID: ALICE.accessKeyId,
      AWS_SECRET_ACCESS_KEY: ALICE.secretAccessKey,
      AWS_DEFAULT_REGION: REGION,
      AWS_CONFIG_FILE: "/dev/null",
      AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
      AWS_PAGER: "",
    };
    try {
      await run("aws", ["--version"], { env, timeout: 30_000 });
    } catch {
      ctx.skip(true, "the AWS CLI (`aws`) is not installed or does not run here; CI installs awscli");
      return;
    }
    stub = await startStub();
    const { stdout } = await run("aws", ["kms", "generate-random", "--endpoint-url", stub.server.url, "--number-of-bytes", "16", "--output", "json"], { env, timeout: 60_000 });
    expect(Buffer.from(JSON.parse(stdout).Plaintext, "base64")).toEqual(Buffer.alloc(16, 0x2a));
    expect(stub.calls[0].context.caller.userAgent).toMatch(/aws-cli/);
  });
});
