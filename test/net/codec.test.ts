// The payload codec against hostile MessagePack, and the message shapes each side accepts.
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";

import { decodePayload, encodePayload, MAX_DEPTH } from "../../src/net/codec.js";
import { FrameError } from "../../src/net/frame.js";
import { checkHello, checkMessage } from "../../src/net/messages.js";

const codeOf = (fn: () => unknown): string => {
  try {
    fn();
    return "accepted";
  } catch (e) {
    expect(e).toBeInstanceOf(FrameError);
    return (e as FrameError).code;
  }
};
const hostile = new Packr({ structuredClone: true, moreTypes: true, useRecords: true });

describe("codec", () => {
  it("round-trips protocol values: Buffers stay Buffers, large safe integers stay numbers", () => {
    const envelope = { t: "peer", cluster: "c", from: "127.0.0.2:2223", to: "127.0.0.3:2223", body: "{}", mac: Buffer.from([1, 2, 3]) };
    const request = { t: "req", id: 7, conn: "x", after: [[1, 2]], op: { kind: "call", method: "encrypt", args: [2 ** 52 + 5, Buffer.alloc(4096, 9), 4112] } };
    for (const value of [envelope, request]) {
      const back = decodePayload(encodePayload(value));
      expect(back).toEqual(value);
    }
    const back = decodePayload(encodePayload(envelope)) as { mac: Buffer };
    expect(Buffer.isBuffer(back.mac)).toBe(true);
  });

  it("a call's mechanism (a Float64Array) arrives as a Float64Array; a Uint8Array as a Uint8Array", () => {
    const op = { kind: "call", method: "digestInit", args: [1, new Float64Array([0x250, 0, 0, 0, 0]), null, null] };
    const back = decodePayload(encodePayload(op)) as typeof op;
    expect(back.args[1]).toBeInstanceOf(Float64Array);
    expect([...(back.args[1] as Float64Array)]).toEqual([0x250, 0, 0, 0, 0]);
    const bytes = decodePayload(encodePayload({ u: new Uint8Array([1, 2]) })) as { u: Uint8Array };
    expect(bytes.u).toBeInstanceOf(Uint8Array);
    expect([...bytes.u]).toEqual([1, 2]);
  });

  it("a decoded Buffer is a copy, not a view into the frame", () => {
    const payload = encodePayload({ b: Buffer.from("abc") });
    const value = decodePayload(payload) as { b: Buffer };
    payload.fill(0);
    expect(value.b.toString()).toBe("abc");
    expect(value.b.buffer.byteLength).toBeLessThan(4096);
  });

  it("a __proto__ key sets no prototype, a constructor key is plain data", () => {
    // {"__proto__": {"polluted": true}, "constructor": {"prototype": {"x": 1}}} written by hand.
    const bytes = Buffer.from(hostile.pack({ a: 1 })); // keep a valid packr around; the map below is raw
    expect(bytes.length).toBeGreaterThan(0);
    const key = (s: string) => [0xa0 + s.length, ...Buffer.from(s)];
    const raw = Buffer.from([0x82, ...key("__proto__"), 0x81, ...key("polluted"), 0xc3, ...key("constructor"), 0x81, ...key("prototype"), 0x81, ...key("x"), 1]);
    const value = decodePayload(raw) as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect((value as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as { x?: unknown }).x).toBeUndefined();
  });

  it("refuses values that are no plain data: Date, Set, Map, RegExp, Error, typed arrays, BigInt, structured-clone references", () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    for (const value of [new Date(), new Set([1]), /a+$/, new Error("x"), new Int32Array([1]), new Float32Array([1]), new BigInt64Array([1n]), 2n ** 70n, { deep: { when: new Date() } }, cyclic]) {
      expect(codeOf(() => decodePayload(hostile.pack(value))), String(value)).toBe("BAD_PAYLOAD");
    }
    expect(codeOf(() => decodePayload(Buffer.from([0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])))).toBe("BAD_PAYLOAD");
  });

  it("refuses truncated and garbage MessagePack, and nesting beyond the limit, without overflowing the stack", () => {
    const good = encodePayload({ t: "req", id: 1, conn: "c", after: [], op: { kind: "hello" } });
    for (let n = 1; n < good.length; n++) expect(codeOf(() => decodePayload(good.subarray(0, n))), `cut at ${n}`).toBe("BAD_PAYLOAD");
    expect(codeOf(() => decodePayload(Buffer.from([0xc1])))).toBe("BAD_PAYLOAD");
    expect(codeOf(() => decodePayload(Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])))).toBe("BAD_PAYLOAD");
    let nested: unknown = 1;
    for (let i = 0; i < MAX_DEPTH + 1; i++) nested = [nested];
    expect(codeOf(() => decodePayload(encodePayload(nested)))).toBe("BAD_PAYLOAD");
    expect(codeOf(() => decodePayload(Buffer.alloc(1_000_000, 0x91)))).toBe("BAD_PAYLOAD");
  });
});

describe("message shapes", () => {
  const request = { t: "req", id: 1, conn: "c", after: [[1, 2]], op: { kind: "call", method: "sign", args: [], session: { id: 1, flags: 6, login: null, continuation: false } } };
  const response = { t: "res", id: 1, ok: false, hsmId: "hsm-1", spareCapacity: 3, membershipEpoch: 2, error: { kind: "pkcs11", code: 5, message: "x" } };
  const envelope = { t: "peer", cluster: "c", from: "a", to: "b", body: "{}", mac: Buffer.alloc(32) };

  it("accepts each message on its own side only", () => {
    expect(codeOf(() => checkMessage(request, "req"))).toBe("accepted");
    expect(codeOf(() => checkMessage(response, "res"))).toBe("accepted");
    expect(codeOf(() => checkMessage(envelope, "peer"))).toBe("accepted");
    expect(codeOf(() => checkMessage(envelope, "req"))).toBe("WRONG_DIRECTION");
    expect(codeOf(() => checkMessage(request, "peer"))).toBe("WRONG_DIRECTION");
    expect(codeOf(() => checkMessage(request, "res"))).toBe("WRONG_DIRECTION");
  });

  it("refuses broken shapes", () => {
    const broken: [unknown, "req" | "res" | "peer"][] = [
      [null, "req"], [[], "req"], [Buffer.alloc(1), "req"], [{ t: "push" }, "req"], [{ ...request, id: "1" }, "req"], [{ ...request, id: 1.5 }, "req"],
      [{ ...request, conn: "" }, "req"], [{ ...request, conn: "x".repeat(300) }, "req"], [{ ...request, after: [[1]] }, "req"], [{ ...request, after: {} }, "req"],
      [{ ...request, op: { kind: "rm -rf" } }, "req"], [{ ...request, op: { kind: "call", method: 5, args: [] } }, "req"],
      [{ ...request, op: { kind: "call", method: "sign", args: new Array(65).fill(0) } }, "req"],
      [{ ...request, op: { ...request.op, session: { id: -1, flags: 0, login: null, continuation: false } } }, "req"],
      [{ ...response, ok: "yes" }, "res"], [{ ...response, error: { kind: "boom", message: "x" } }, "res"], [{ ...response, error: { kind: "pkcs11", code: "5", message: "x" } }, "res"],
      [{ ...response, wrote: { origin: 1 } }, "res"], [{ ...envelope, mac: "00" }, "peer"], [{ ...envelope, from: 7 }, "peer"],
    ];
    for (const [value, side] of broken) expect(codeOf(() => checkMessage(value, side)), JSON.stringify(value)?.slice(0, 80)).toBe("BAD_MESSAGE");
  });

  it("hellos: a client, or an HSM with an address", () => {
    expect(checkHello({ role: "client", extra: 1 })).toEqual({ role: "client" });
    expect(checkHello({ role: "hsm", address: "127.0.0.2:2223" })).toEqual({ role: "hsm", address: "127.0.0.2:2223" });
    for (const h of [null, {}, { role: "hsm" }, { role: "hsm", address: "" }, { role: "hsm", address: "a b" }, { role: "admin" }]) expect(codeOf(() => checkHello(h))).toBe("BAD_MESSAGE");
  });
});
