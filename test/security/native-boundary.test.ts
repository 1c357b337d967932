// No JavaScript value may crash the process (issue 8, "The native boundary"). Each case runs in a
// child process (`node --expose-gc`), because the failure it guards against is a crash: an
// asynchronous call whose input or output ArrayBuffer is transferred away and collected while
// its worker runs (a use after free before), and a sparse array whose length sizes a native
// vector (std::bad_alloc, an abort, before).
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

const CHILD = join(dirname(fileURLToPath(import.meta.url)), "native-boundary-child.ts");

function runChild(mode: string): { status: number | null; signal: string | null; output: unknown; stderr: string } {
  const child = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", CHILD, mode], { encoding: "utf8", timeout: 120_000 });
  const last = child.stdout.trim().split("\n").pop() ?? "";
  let output: unknown = null;
  try {
    output = JSON.parse(last);
  } catch {
    // no summary: the child died
  }
  return { status: child.status, signal: child.signal, output, stderr: child.stderr };
}

describe("the native boundary survives hostile values", () => {
  it("async calls whose buffers are transferred away and collected mid-flight complete, with a clear error where the output is gone", () => {
    const { status, signal, output, stderr } = runChild("async");
    expect({ status, signal, stderr: status === 0 ? "" : stderr }).toEqual({ status: 0, signal: null, stderr: "" });
    type Outcome = { ok: number; failed: Record<string, number> };
    const results = output as Record<string, Outcome>;
    // Every callback ran, once.
    const total = (o: Outcome) => o.ok + Object.values(o.failed).reduce((a, b) => a + b, 0);
    expect(Object.fromEntries(Object.entries(results).map(([k, o]) => [k, total(o)]))).toEqual({
      "encrypt in+out": 128, "encrypt input only": 64, digest: 64, "sign+verify": 64, wrapKey: 64, unwrapKey: 64, C_EncryptAsync: 12,
    });
    // Input copied when the call began: the call succeeds although the caller's input is gone.
    expect(results["encrypt input only"]).toEqual({ ok: 64, failed: {} });
    // Output gone: a TypeError through the callback, never a write into freed memory.
    expect(results["encrypt in+out"].failed).toEqual({ "TypeError:C_Encrypt": 128 });
    expect(results.wrapKey.failed).toEqual({ "TypeError:C_WrapKey": 64 });
    expect(results.C_EncryptAsync.failed).toEqual({ "TypeError:C_Encrypt": 12 });
    // Inputs that vanished were read from the copies taken at the call: the verification ran (this signature is simply wrong).
    expect(results["sign+verify"].failed).toEqual({ "Pkcs11Error:CKR_SIGNATURE_INVALID": 64 });
  });

  it("a sparse attribute array of length 2^32-1 is a TypeError, not an abort", () => {
    const { status, signal, output, stderr } = runChild("sparse");
    expect({ status, signal, stderr: status === 0 ? "" : stderr }).toEqual({ status: 0, signal: null, stderr: "" });
    expect(output).toBe("TypeError,TypeError,TypeError");
  });
});
