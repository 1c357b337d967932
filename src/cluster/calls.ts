// Which chip calls a client may send to an HSM, and where handles and output buffers sit in
// their arguments and results. Token keys cross the wire by their cluster-wide key id (the
// same on every HSM); session objects by SESSION_OBJECT_BASE + the HSM's own handle, since
// they live on one HSM only.

/** Wire handles at or above this are session objects of one HSM. Key ids stay below it (origin ≤ 4095). */
export const SESSION_OBJECT_BASE = 2 ** 52;

/** Calls whose first argument is a slot, not a session. */
export const SLOT_CALLS = new Set(["getSlotList", "getTokenInfo", "getMechanismList", "getMechanismInfo", "openSession", "closeAllSessions"]);

/** Argument positions holding object handles. */
export const OBJECT_ARGS: Record<string, readonly number[]> = {
  copyObject: [1], destroyObject: [1], getObjectSize: [1], getAttributeValue: [1], setAttributeValue: [1],
  encryptInit: [1], decryptInit: [1], signInit: [1], verifyInit: [1], digestKey: [1],
  wrapKey: [1, 2], unwrapKey: [1], deriveKey: [1],
};

/** Calls that use a key (as opposed to reading or managing it): the key availability check applies to them. */
export const KEY_USING_CALLS = new Set(["encryptInit", "decryptInit", "signInit", "verifyInit", "digestKey", "wrapKey", "unwrapKey",
  "deriveKey", "copyObject"]);

/** Results that are object handles: one, a key pair, or a list. */
export const HANDLE_RESULTS: Record<string, "one" | "pair" | "list"> = {
  createObject: "one", copyObject: "one", generateKey: "one", unwrapKey: "one", deriveKey: "one", generateKeyPair: "pair", findObjects: "list",
};

/** Argument positions of output buffers: the HSM fills its own and sends the bytes back. */
export const OUTPUT_ARGS: Record<string, number> = {
  encrypt: 2, encryptUpdate: 2, encryptFinal: 1, decrypt: 2, decryptUpdate: 2, decryptFinal: 1,
  digest: 2, digestFinal: 1, sign: 2, signFinal: 1, generateRandom: 1, wrapKey: 3,
};

/** Calls that take a session and may go to an HSM. */
export const SESSION_CALLS = new Set([
  "closeSession", "getSessionInfo", "login", "logout", "setPin", "seedRandom", "generateRandom",
  "createObject", "copyObject", "destroyObject", "getObjectSize", "getAttributeValue", "setAttributeValue",
  "findObjectsInit", "findObjects", "findObjectsFinal",
  "encryptInit", "encrypt", "encryptUpdate", "encryptFinal", "decryptInit", "decrypt", "decryptUpdate", "decryptFinal",
  "digestInit", "digest", "digestUpdate", "digestKey", "digestFinal",
  "signInit", "sign", "signUpdate", "signFinal", "verifyInit", "verify", "verifyUpdate", "verifyFinal",
  "generateKey", "generateKeyPair", "wrapKey", "unwrapKey", "deriveKey",
]);

/** Calls that change token state (they may write the journal and then wait for the quorum). */
export const WRITING_CALLS = new Set(["createObject", "copyObject", "destroyObject", "setAttributeValue", "generateKey", "generateKeyPair",
  "unwrapKey", "deriveKey", "setPin"]);

/** Calls that create objects: a token key they create that misses the quorum is deleted again. */
export const CREATING_CALLS = new Set(["createObject", "copyObject", "generateKey", "generateKeyPair", "unwrapKey", "deriveKey"]);

/** Calls that start a multi-call operation on a session, and the calls that end it. */
export const OPERATION_INIT = new Set(["findObjectsInit", "encryptInit", "decryptInit", "digestInit", "signInit", "verifyInit"]);
export const OPERATION_END: Record<string, readonly string[]> = {
  findObjectsInit: ["findObjectsFinal"],
  encryptInit: ["encrypt", "encryptFinal"], decryptInit: ["decrypt", "decryptFinal"], digestInit: ["digest", "digestFinal"],
  signInit: ["sign", "signFinal"], verifyInit: ["verify", "verifyFinal"],
};

/** The operation family of every call that starts or continues one: encryptUpdate → "encrypt", findObjects → "findObjects". */
export const OPERATION_FAMILY: Record<string, string> = Object.fromEntries([...OPERATION_INIT].flatMap((init) => {
  const family = init.replace(/Init$/, "");
  const members = [...SESSION_CALLS].filter((m) => m.startsWith(family));
  return members.map((m) => [m, family]);
}));

/** Deep-copies a message value: Buffers and typed arrays are copied, so neither side shares memory with the other. */
export function copyValue<T>(value: T): T {
  if (Buffer.isBuffer(value)) return Buffer.from(value) as T;
  if (ArrayBuffer.isView(value)) return (value as unknown as { slice(): unknown }).slice() as T;
  if (Array.isArray(value)) return value.map(copyValue) as T;
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = copyValue(v);
    return out as T;
  }
  return value;
}
