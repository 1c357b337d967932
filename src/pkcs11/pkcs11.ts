// The pkcs11js-compatible facade: same method names, argument order, handles as 8-byte
// Buffers, output-buffer convention and errors, over a backend (the chip here; the
// CloudHSM device and the network client implement the same interface later).
import { Buffer } from "node:buffer";

import type { NativeChip } from "./addon.js";
import * as C from "./constants.js";
import { Pkcs11Error } from "./errors.js";
import { type Handle, handleToNumber as h, numberToHandle } from "./handles.js";
import { type Mechanism, MechanismEncoder } from "./mechanism.js";
import type { CallLogOptions } from "./call-log.js";
import { LoadedModule } from "./loaded-module.js";
import { type Template, type TemplateResult, checkAttributeType, checkTemplateLength, encodeTemplate } from "./template.js";
import * as info from "./info.js";
import { freezeClass } from "../primordials.js";
import { type Callback, buf, callback, num, pin, promise, relay } from "./facade-args.js";
import { type InOutMethod, type OutMethod, answerNotSupported, callInOut, callOut } from "./facade-io.js";

export class PKCS11 {
  libPath = "";
  // #private: an application must not reach its backend, swap it, or call past the state checks.
  readonly #module = new LoadedModule(this, PKCS11.prototype);
  readonly #mechanism = new MechanismEncoder();

  /** `options`: as load()'s (call logging); HSMSIM_PKCS11_LOG applies to every form, a backend given directly too. */
  constructor(target?: string | NativeChip, options?: CallLogOptions) {
    if (typeof target === "string") this.load(target, options);
    else if (target !== undefined) this.#module.adopt(target, options);
  }

  /**
   * Loads a target: 'memory:', or 'file:DIR' for tokens kept in a folder (see the README for options).
   * `options.log` logs every PKCS#11 call of this module ("stderr", a file path or a function; never
   * secrets), as HSMSIM_PKCS11_LOG does.
   */
  load(target: string, options?: CallLogOptions): void {
    this.#module.load(target, options);
    this.libPath = target;
  }

  /**
   * Unloads the module, as pkcs11js's `close()`: later calls fail as before `load()`, a
   * second close does nothing, and `load()` may follow. The normal path is C_Finalize then
   * close(); closing while still initialized first closes this application's sessions, as
   * unloading a real library would end them.
   */
  close(): void {
    if (this.#module.close()) this.libPath = "";
  }

  /** The backend, once C_Initialize has run; `method` names the call in the error. */
  #use(method: string): NativeChip {
    return this.#module.use(method);
  }

  // ---- General ----
  C_Initialize(options?: { libraryParameters?: string; flags?: number }): void {
    this.#module.requireLoaded("C_Initialize");
    if (options !== undefined && options !== null && typeof options !== "object") throw new TypeError("options must be an object");
    this.#module.initialize();
  }
  C_Finalize(): void {
    this.#module.finalize();
  }
  C_GetInfo(): info.ModuleInfo {
    void this.#use("C_GetInfo");
    return info.moduleInfo();
  }
  C_GetSlotList(tokenPresent?: boolean): Handle[] {
    if (tokenPresent !== undefined && typeof tokenPresent !== "boolean") throw new TypeError("tokenPresent must be a boolean");
    return this.#use("C_GetSlotList").getSlotList().map(numberToHandle);
  }
  C_GetSlotInfo(slot: Handle): info.SlotInfo {
    const id = h(slot, "slot");
    this.#use("C_GetSlotInfo").getTokenInfo(id); // validates the slot id
    return info.slotInfo(id);
  }
  C_GetTokenInfo(slot: Handle): info.TokenInfo {
    return info.tokenInfo(this.#use("C_GetTokenInfo").getTokenInfo(h(slot, "slot")));
  }
  C_GetMechanismList(slot: Handle): number[] {
    return this.#use("C_GetMechanismList").getMechanismList(h(slot, "slot"));
  }
  C_GetMechanismInfo(slot: Handle, mech: number): info.MechanismInfo {
    return this.#use("C_GetMechanismInfo").getMechanismInfo(h(slot, "slot"), num(mech, "mech"));
  }
  C_InitToken(slot: Handle, soPin?: string, label?: string): string {
    if (label !== undefined && typeof label !== "string") throw new TypeError("label must be a string");
    const padded = (label ?? "").padEnd(32).slice(0, 32);
    this.#use("C_InitToken").initToken(h(slot, "slot"), pin(soPin, "pin"), Buffer.from(padded, "utf8"));
    return padded;
  }
  C_InitPIN(session: Handle, userPin?: string): void {
    this.#use("C_InitPIN").initPin(h(session, "session"), pin(userPin, "pin"));
  }
  C_SetPIN(session: Handle, oldPin: string, newPin: string): void {
    this.#use("C_SetPIN").setPin(h(session, "session"), pin(oldPin, "oldPin"), pin(newPin, "newPin"));
  }
  C_WaitForSlotEvent(flags: number): Handle | null {
    num(flags, "flags");
    this.#use("C_WaitForSlotEvent");
    throw new Pkcs11Error(C.CKR_FUNCTION_NOT_SUPPORTED, "C_WaitForSlotEvent");
  }

  // ---- Sessions ----
  C_OpenSession(slot: Handle, flags: number): Handle {
    return numberToHandle(this.#use("C_OpenSession").openSession(h(slot, "slot"), num(flags, "flags")));
  }
  C_CloseSession(session: Handle): void {
    this.#use("C_CloseSession").closeSession(h(session, "session"));
  }
  C_CloseAllSessions(slot: Handle): void {
    this.#use("C_CloseAllSessions").closeAllSessions(h(slot, "slot"));
  }
  C_GetSessionInfo(session: Handle): info.SessionInfo {
    const s = this.#use("C_GetSessionInfo").getSessionInfo(h(session, "session"));
    return { slotID: numberToHandle(s.slotID), state: s.state, flags: s.flags, deviceError: s.deviceError };
  }
  C_Login(session: Handle, userType: number, userPin?: string): void {
    this.#use("C_Login").login(h(session, "session"), num(userType, "userType"), pin(userPin, "pin"));
  }
  C_Logout(session: Handle): void {
    this.#use("C_Logout").logout(h(session, "session"));
  }

  // ---- Objects ----
  C_CreateObject(session: Handle, template: Template): Handle {
    return numberToHandle(this.#use("C_CreateObject").createObject(h(session, "session"), encodeTemplate(template, "template", "C_CreateObject")));
  }
  C_CopyObject(session: Handle, object: Handle, template: Template): Handle {
    const t = encodeTemplate(template, "template", "C_CopyObject");
    return numberToHandle(this.#use("C_CopyObject").copyObject(h(session, "session"), h(object, "object"), t));
  }
  C_DestroyObject(session: Handle, object: Handle): void {
    this.#use("C_DestroyObject").destroyObject(h(session, "session"), h(object, "object"));
  }
  C_GetObjectSize(session: Handle, object: Handle): number {
    return this.#use("C_GetObjectSize").getObjectSize(h(session, "session"), h(object, "object"));
  }
  C_GetAttributeValue(session: Handle, object: Handle, template: Template): TemplateResult {
    const result = this.getAttributeValues(session, object, template);
    if (result.rv !== C.CKR_OK) throw new Pkcs11Error(result.rv, "C_GetAttributeValue");
    return result.attributes.map((a) => ({ type: a.type, value: a.value as Buffer }));
  }
  /**
   * hsmsim extension: C_GetAttributeValue without throwing, as the C function answers:
   * every attribute is processed; sensitive or unknown ones come back with value null.
   */
  getAttributeValues(session: Handle, object: Handle, template: Template): { rv: number; attributes: { type: number; value: Buffer | null }[] } {
    if (!Array.isArray(template)) throw new TypeError("template must be an array of { type }");
    checkTemplateLength(template, "template");
    const types = template.map((a, i) => checkAttributeType((a as { type: unknown } | null)?.type, `template[${i}]`));
    const { rv, values } = this.#use("C_GetAttributeValue").getAttributeValue(h(session, "session"), h(object, "object"), types);
    return { rv, attributes: types.map((type, i) => ({ type, value: values[i] })) };
  }
  C_SetAttributeValue(session: Handle, object: Handle, template: Template): void {
    const t = encodeTemplate(template, "template", "C_SetAttributeValue");
    this.#use("C_SetAttributeValue").setAttributeValue(h(session, "session"), h(object, "object"), t);
  }
  C_FindObjectsInit(session: Handle, template: Template): void {
    this.#use("C_FindObjectsInit").findObjectsInit(h(session, "session"), encodeTemplate(template, "template", "C_FindObjectsInit", "search"));
  }
  C_FindObjects(session: Handle): Handle | null;
  C_FindObjects(session: Handle, maxObjectCount: number): Handle[];
  C_FindObjects(session: Handle, maxObjectCount?: number): Handle | Handle[] | null {
    if (maxObjectCount === undefined) {
      const found = this.#use("C_FindObjects").findObjects(h(session, "session"), 1);
      return found.length ? numberToHandle(found[0]) : null;
    }
    return this.#use("C_FindObjects").findObjects(h(session, "session"), num(maxObjectCount, "maxObjectCount")).map(numberToHandle);
  }
  C_FindObjectsFinal(session: Handle): void {
    this.#use("C_FindObjectsFinal").findObjectsFinal(h(session, "session"));
  }

  // ---- Encryption and decryption ----
  C_EncryptInit(session: Handle, mechanism: Mechanism, key: Handle): void {
    const m = this.#mechanism.encode(mechanism, "C_EncryptInit");
    this.#use("C_EncryptInit").encryptInit(h(session, "session"), h(key, "key"), m.numbers, m.bytesA, m.bytesB);
  }
  C_Encrypt(session: Handle, inData: Buffer, outData: Buffer): Buffer;
  C_Encrypt(session: Handle, inData: Buffer, outData: Buffer, cb: Callback<Buffer>): void;
  C_Encrypt(session: Handle, inData: Buffer, outData: Buffer, cb?: Callback<Buffer>): Buffer | void {
    return this.#inOut("C_Encrypt", session, inData, outData, cb);
  }
  C_EncryptAsync(session: Handle, inData: Buffer, outData: Buffer): Promise<Buffer> {
    return promise((cb) => this.C_Encrypt(session, inData, outData, cb));
  }
  C_EncryptUpdate(session: Handle, inData: Buffer, outData: Buffer): Buffer {
    return this.#inOut("C_EncryptUpdate", session, inData, outData) as Buffer;
  }
  C_EncryptFinal(session: Handle, outData: Buffer): Buffer;
  C_EncryptFinal(session: Handle, outData: Buffer, cb: Callback<Buffer>): void;
  C_EncryptFinal(session: Handle, outData: Buffer, cb?: Callback<Buffer>): Buffer | void {
    return this.#out("C_EncryptFinal", session, outData, cb);
  }
  C_EncryptFinalAsync(session: Handle, outData: Buffer): Promise<Buffer> {
    return promise((cb) => this.C_EncryptFinal(session, outData, cb));
  }
  /**
   * hsmsim extension: C_EncryptInit answered through a promise. Over a real-time cluster the Init
   * is a round trip to an HSM and this never blocks the caller's thread (the synchronous form
   * does); on the chip the Init is local and done at once.
   */
  C_EncryptInitAsync(session: Handle, mechanism: Mechanism, key: Handle): Promise<void> {
    return this.#initAsync("C_EncryptInit", "encryptInit", session, mechanism, key);
  }
  /** hsmsim extension: C_DecryptInit answered through a promise (see C_EncryptInitAsync). */
  C_DecryptInitAsync(session: Handle, mechanism: Mechanism, key: Handle): Promise<void> {
    return this.#initAsync("C_DecryptInit", "decryptInit", session, mechanism, key);
  }
  #initAsync(name: string, method: "encryptInit" | "decryptInit", session: Handle, mechanism: Mechanism, key: Handle): Promise<void> {
    return promise<void>((cb) => {
      const m = this.#mechanism.encode(mechanism, name);
      const backend = this.#use(name);
      const s = h(session, "session");
      const k = h(key, "key");
      if (backend.asyncInits !== true) {
        backend[method](s, k, m.numbers, m.bytesA, m.bytesB);
        return cb(null);
      }
      (backend[method] as (...args: unknown[]) => void)(s, k, m.numbers, m.bytesA, m.bytesB, (error: Error | null) => cb(error));
    });
  }
  C_DecryptInit(session: Handle, mechanism: Mechanism, key: Handle): void {
    const m = this.#mechanism.encode(mechanism, "C_DecryptInit");
    this.#use("C_DecryptInit").decryptInit(h(session, "session"), h(key, "key"), m.numbers, m.bytesA, m.bytesB);
  }
  C_Decrypt(session: Handle, inData: Buffer, outData: Buffer): Buffer;
  C_Decrypt(session: Handle, inData: Buffer, outData: Buffer, cb: Callback<Buffer>): void;
  C_Decrypt(session: Handle, inData: Buffer, outData: Buffer, cb?: Callback<Buffer>): Buffer | void {
    return this.#inOut("C_Decrypt", session, inData, outData, cb);
  }
  C_DecryptAsync(session: Handle, inData: Buffer, outData: Buffer): Promise<Buffer> {
    return promise((cb) => this.C_Decrypt(session, inData, outData, cb));
  }
  C_DecryptUpdate(session: Handle, inData: Buffer, outData: Buffer): Buffer {
    return this.#inOut("C_DecryptUpdate", session, inData, outData) as Buffer;
  }
  C_DecryptFinal(session: Handle, outData: Buffer): Buffer;
  C_DecryptFinal(session: Handle, outData: Buffer, cb: Callback<Buffer>): void;
  C_DecryptFinal(session: Handle, outData: Buffer, cb?: Callback<Buffer>): Buffer | void {
    return this.#out("C_DecryptFinal", session, outData, cb);
  }
  C_DecryptFinalAsync(session: Handle, outData: Buffer): Promise<Buffer> {
    return promise((cb) => this.C_DecryptFinal(session, outData, cb));
  }

  // ---- Digests ----
  C_DigestInit(session: Handle, mechanism: Mechanism): void {
    const m = this.#mechanism.encode(mechanism, "C_DigestInit");
    this.#use("C_DigestInit").digestInit(h(session, "session"), m.numbers, m.bytesA, m.bytesB);
  }
  C_Digest(session: Handle, inData: Buffer, outData: Buffer): Buffer;
  C_Digest(session: Handle, inData: Buffer, outData: Buffer, cb: Callback<Buffer>): void;
  C_Digest(session: Handle, inData: Buffer, outData: Buffer, cb?: Callback<Buffer>): Buffer | void {
    return this.#inOut("C_Digest", session, inData, outData, cb);
  }
  C_DigestAsync(session: Handle, inData: Buffer, outData: Buffer): Promise<Buffer> {
    return promise((cb) => this.C_Digest(session, inData, outData, cb));
  }
  C_DigestUpdate(session: Handle, inData: Buffer): void {
    this.#use("C_DigestUpdate").digestUpdate(h(session, "session"), buf(inData, "inData"));
  }
  C_DigestKey(session: Handle, key: Handle): void {
    this.#use("C_DigestKey").digestKey(h(session, "session"), h(key, "key"));
  }
  C_DigestFinal(session: Handle, outData: Buffer): Buffer;
  C_DigestFinal(session: Handle, outData: Buffer, cb: Callback<Buffer>): void;
  C_DigestFinal(session: Handle, outData: Buffer, cb?: Callback<Buffer>): Buffer | void {
    return this.#out("C_DigestFinal", session, outData, cb);
  }
  C_DigestFinalAsync(session: Handle, outData: Buffer): Promise<Buffer> {
    return promise((cb) => this.C_DigestFinal(session, outData, cb));
  }

  // ---- Signatures and MACs ----
  C_SignInit(session: Handle, mechanism: Mechanism, key: Handle): void {
    const m = this.#mechanism.encode(mechanism, "C_SignInit");
    this.#use("C_SignInit").signInit(h(session, "session"), h(key, "key"), m.numbers, m.bytesA, m.bytesB);
  }
  C_Sign(session: Handle, inData: Buffer, outData: Buffer): Buffer;
  C_Sign(session: Handle, inData: Buffer, outData: Buffer, cb: Callback<Buffer>): void;
  C_Sign(session: Handle, inData: Buffer, outData: Buffer, cb?: Callback<Buffer>): Buffer | void {
    return this.#inOut("C_Sign", session, inData, outData, cb);
  }
  C_SignAsync(session: Handle, inData: Buffer, outData: Buffer): Promise<Buffer> {
    return promise((cb) => this.C_Sign(session, inData, outData, cb));
  }
  C_SignUpdate(session: Handle, inData: Buffer): void {
    this.#use("C_SignUpdate").signUpdate(h(session, "session"), buf(inData, "inData"));
  }
  C_SignFinal(session: Handle, outData: Buffer): Buffer;
  C_SignFinal(session: Handle, outData: Buffer, cb: Callback<Buffer>): void;
  C_SignFinal(session: Handle, outData: Buffer, cb?: Callback<Buffer>): Buffer | void {
    return this.#out("C_SignFinal", session, outData, cb);
  }
  C_SignFinalAsync(session: Handle, outData: Buffer): Promise<Buffer> {
    return promise((cb) => this.C_SignFinal(session, outData, cb));
  }
  C_VerifyInit(session: Handle, mechanism: Mechanism, key: Handle): void {
    const m = this.#mechanism.encode(mechanism, "C_VerifyInit");
    this.#use("C_VerifyInit").verifyInit(h(session, "session"), h(key, "key"), m.numbers, m.bytesA, m.bytesB);
  }
  C_Verify(session: Handle, inData: Buffer, signature: Buffer): boolean;
  C_Verify(session: Handle, inData: Buffer, signature: Buffer, cb: Callback<boolean>): void;
  C_Verify(session: Handle, inData: Buffer, signature: Buffer, cb?: Callback<boolean>): boolean | void {
    const s = h(session, "session");
    const input = buf(inData, "inData");
    const sig = buf(signature, "signature");
    const done = callback<boolean>(cb);
    if (done) return void this.#use("C_Verify").verify(s, input, sig, relay(done, (ok: boolean) => ok));
    return this.#use("C_Verify").verify(s, input, sig);
  }
  C_VerifyAsync(session: Handle, inData: Buffer, signature: Buffer): Promise<boolean> {
    return promise((cb) => this.C_Verify(session, inData, signature, cb));
  }
  C_VerifyUpdate(session: Handle, inData: Buffer): void {
    this.#use("C_VerifyUpdate").verifyUpdate(h(session, "session"), buf(inData, "inData"));
  }
  C_VerifyFinal(session: Handle, signature: Buffer): boolean;
  C_VerifyFinal(session: Handle, signature: Buffer, cb: Callback<boolean>): void;
  C_VerifyFinal(session: Handle, signature: Buffer, cb?: Callback<boolean>): boolean | void {
    const s = h(session, "session");
    const sig = buf(signature, "signature");
    const done = callback<boolean>(cb);
    if (done) return void this.#use("C_VerifyFinal").verifyFinal(s, sig, relay(done, (ok: boolean) => ok));
    return this.#use("C_VerifyFinal").verifyFinal(s, sig);
  }
  C_VerifyFinalAsync(session: Handle, signature: Buffer): Promise<boolean> {
    return promise((cb) => this.C_VerifyFinal(session, signature, cb));
  }

  // ---- Keys ----
  C_GenerateKey(session: Handle, mechanism: Mechanism, template: Template): Handle;
  C_GenerateKey(session: Handle, mechanism: Mechanism, template: Template, cb: Callback<Handle>): void;
  C_GenerateKey(session: Handle, mechanism: Mechanism, template: Template, cb?: Callback<Handle>): Handle | void {
    const s = h(session, "session");
    const m = this.#mechanism.encode(mechanism, "C_GenerateKey");
    const t = encodeTemplate(template, "template", "C_GenerateKey");
    const done = callback<Handle>(cb);
    if (done) return void this.#use("C_GenerateKey").generateKey(s, t, m.numbers, m.bytesA, m.bytesB, relay(done, numberToHandle));
    return numberToHandle(this.#use("C_GenerateKey").generateKey(s, t, m.numbers, m.bytesA, m.bytesB));
  }
  C_GenerateKeyAsync(session: Handle, mechanism: Mechanism, template: Template): Promise<Handle> {
    return promise((cb) => this.C_GenerateKey(session, mechanism, template, cb));
  }
  C_GenerateKeyPair(session: Handle, mechanism: Mechanism, publicKeyTemplate: Template, privateKeyTemplate: Template): info.KeyPair;
  C_GenerateKeyPair(session: Handle, mechanism: Mechanism, publicKeyTemplate: Template, privateKeyTemplate: Template, cb: Callback<info.KeyPair>): void;
  C_GenerateKeyPair(session: Handle, mechanism: Mechanism, publicKeyTemplate: Template, privateKeyTemplate: Template, cb?: Callback<info.KeyPair>): info.KeyPair | void {
    const s = h(session, "session");
    const m = this.#mechanism.encode(mechanism, "C_GenerateKeyPair");
    const pub = encodeTemplate(publicKeyTemplate, "publicKeyTemplate", "C_GenerateKeyPair");
    const priv = encodeTemplate(privateKeyTemplate, "privateKeyTemplate", "C_GenerateKeyPair");
    const pair = ([publicKey, privateKey]: [number, number]): info.KeyPair => ({
      publicKey: numberToHandle(publicKey),
      privateKey: numberToHandle(privateKey),
    });
    const done = callback<info.KeyPair>(cb);
    if (done) return void this.#use("C_GenerateKeyPair").generateKeyPair(s, pub, priv, m.numbers, m.bytesA, m.bytesB, relay(done, pair));
    return pair(this.#use("C_GenerateKeyPair").generateKeyPair(s, pub, priv, m.numbers, m.bytesA, m.bytesB));
  }
  C_GenerateKeyPairAsync(session: Handle, mechanism: Mechanism, publicKeyTemplate: Template, privateKeyTemplate: Template): Promise<info.KeyPair> {
    return promise((cb) => this.C_GenerateKeyPair(session, mechanism, publicKeyTemplate, privateKeyTemplate, cb));
  }
  C_WrapKey(session: Handle, mechanism: Mechanism, wrappingKey: Handle, key: Handle, wrappedKey: Buffer): Buffer;
  C_WrapKey(session: Handle, mechanism: Mechanism, wrappingKey: Handle, key: Handle, wrappedKey: Buffer, cb: Callback<Buffer>): void;
  C_WrapKey(session: Handle, mechanism: Mechanism, wrappingKey: Handle, key: Handle, wrappedKey: Buffer, cb?: Callback<Buffer>): Buffer | void {
    const s = h(session, "session");
    const m = this.#mechanism.encode(mechanism, "C_WrapKey");
    const wk = h(wrappingKey, "wrappingKey");
    const k = h(key, "key");
    const out = buf(wrappedKey, "wrappedKey");
    const done = callback<Buffer>(cb);
    if (done) return void this.#use("C_WrapKey").wrapKey(s, wk, k, out, m.numbers, m.bytesA, m.bytesB, relay(done, (n: number) => out.subarray(0, n)));
    return out.subarray(0, this.#use("C_WrapKey").wrapKey(s, wk, k, out, m.numbers, m.bytesA, m.bytesB));
  }
  C_WrapKeyAsync(session: Handle, mechanism: Mechanism, wrappingKey: Handle, key: Handle, wrappedKey: Buffer): Promise<Buffer> {
    return promise((cb) => this.C_WrapKey(session, mechanism, wrappingKey, key, wrappedKey, cb));
  }
  C_UnwrapKey(session: Handle, mechanism: Mechanism, unwrappingKey: Handle, wrappedKey: Buffer, template: Template): Handle;
  C_UnwrapKey(session: Handle, mechanism: Mechanism, unwrappingKey: Handle, wrappedKey: Buffer, template: Template, cb: Callback<Handle>): void;
  C_UnwrapKey(session: Handle, mechanism: Mechanism, unwrappingKey: Handle, wrappedKey: Buffer, template: Template, cb?: Callback<Handle>): Handle | void {
    const s = h(session, "session");
    const m = this.#mechanism.encode(mechanism, "C_UnwrapKey");
    const uk = h(unwrappingKey, "unwrappingKey");
    const wrapped = buf(wrappedKey, "wrappedKey");
    const t = encodeTemplate(template, "template", "C_UnwrapKey");
    const done = callback<Handle>(cb);
    if (done) return void this.#use("C_UnwrapKey").unwrapKey(s, uk, wrapped, t, m.numbers, m.bytesA, m.bytesB, relay(done, numberToHandle));
    return numberToHandle(this.#use("C_UnwrapKey").unwrapKey(s, uk, wrapped, t, m.numbers, m.bytesA, m.bytesB));
  }
  C_UnwrapKeyAsync(session: Handle, mechanism: Mechanism, unwrappingKey: Handle, wrappedKey: Buffer, template: Template): Promise<Handle> {
    return promise((cb) => this.C_UnwrapKey(session, mechanism, unwrappingKey, wrappedKey, template, cb));
  }
  C_DeriveKey(session: Handle, mechanism: Mechanism, key: Handle, template: Template): Handle;
  C_DeriveKey(session: Handle, mechanism: Mechanism, key: Handle, template: Template, cb: Callback<Handle>): void;
  C_DeriveKey(session: Handle, mechanism: Mechanism, key: Handle, template: Template, cb?: Callback<Handle>): Handle | void {
    const s = h(session, "session");
    const m = this.#mechanism.encode(mechanism, "C_DeriveKey");
    const base = h(key, "key");
    const t = encodeTemplate(template, "template", "C_DeriveKey");
    const done = callback<Handle>(cb);
    if (done) return void this.#use("C_DeriveKey").deriveKey(s, base, t, m.numbers, m.bytesA, m.bytesB, relay(done, numberToHandle));
    return numberToHandle(this.#use("C_DeriveKey").deriveKey(s, base, t, m.numbers, m.bytesA, m.bytesB));
  }
  C_DeriveKeyAsync(session: Handle, mechanism: Mechanism, key: Handle, template: Template): Promise<Handle> {
    return promise((cb) => this.C_DeriveKey(session, mechanism, key, template, cb));
  }

  // ---- Random numbers ----
  C_SeedRandom(session: Handle, seed: Buffer): void {
    this.#use("C_SeedRandom").seedRandom(h(session, "session"), buf(seed, "buf"));
  }
  C_GenerateRandom(session: Handle, out: Buffer): Buffer {
    this.#use("C_GenerateRandom").generateRandom(h(session, "session"), buf(out, "buf"));
    return out;
  }

  // ---- Not offered (answer as SoftHSMv2 does) ----
  C_SignRecoverInit(session: Handle, mechanism: Mechanism, key: Handle): void {
    this.#notSupported("C_SignRecoverInit", session, mechanism, key);
  }
  C_SignRecover(session: Handle, inData: Buffer, outData: Buffer): Buffer {
    return this.#notSupported("C_SignRecover", session, inData, outData);
  }
  C_VerifyRecoverInit(session: Handle, mechanism: Mechanism, key: Handle): void {
    this.#notSupported("C_VerifyRecoverInit", session, mechanism, key);
  }
  C_VerifyRecover(session: Handle, signature: Buffer, outData: Buffer): Buffer {
    return this.#notSupported("C_VerifyRecover", session, signature, outData);
  }
  // The dual-function calls: pkcs11js declares a callback form and an …Async form of each.
  C_DigestEncryptUpdate(session: Handle, inData: Buffer, outData: Buffer): Buffer;
  C_DigestEncryptUpdate(session: Handle, inData: Buffer, outData: Buffer, cb: Callback<Buffer>): void;
  C_DigestEncryptUpdate(session: Handle, inData: Buffer, outData: Buffer, cb?: Callback<Buffer>): Buffer | void {
    return this.#notSupportedDual("C_DigestEncryptUpdate", session, inData, outData, cb);
  }
  C_DigestEncryptUpdateAsync(session: Handle, inData: Buffer, outData: Buffer): Promise<Buffer> {
    return promise((cb) => this.C_DigestEncryptUpdate(session, inData, outData, cb));
  }
  C_DecryptDigestUpdate(session: Handle, inData: Buffer, outData: Buffer): Buffer;
  C_DecryptDigestUpdate(session: Handle, inData: Buffer, outData: Buffer, cb: Callback<Buffer>): void;
  C_DecryptDigestUpdate(session: Handle, inData: Buffer, outData: Buffer, cb?: Callback<Buffer>): Buffer | void {
    return this.#notSupportedDual("C_DecryptDigestUpdate", session, inData, outData, cb);
  }
  C_DecryptDigestUpdateAsync(session: Handle, inData: Buffer, outData: Buffer): Promise<Buffer> {
    return promise((cb) => this.C_DecryptDigestUpdate(session, inData, outData, cb));
  }
  C_SignEncryptUpdate(session: Handle, inData: Buffer, outData: Buffer): Buffer;
  C_SignEncryptUpdate(session: Handle, inData: Buffer, outData: Buffer, cb: Callback<Buffer>): void;
  C_SignEncryptUpdate(session: Handle, inData: Buffer, outData: Buffer, cb?: Callback<Buffer>): Buffer | void {
    return this.#notSupportedDual("C_SignEncryptUpdate", session, inData, outData, cb);
  }
  C_SignEncryptUpdateAsync(session: Handle, inData: Buffer, outData: Buffer): Promise<Buffer> {
    return promise((cb) => this.C_SignEncryptUpdate(session, inData, outData, cb));
  }
  C_DecryptVerifyUpdate(session: Handle, inData: Buffer, outData: Buffer): Buffer;
  C_DecryptVerifyUpdate(session: Handle, inData: Buffer, outData: Buffer, cb: Callback<Buffer>): void;
  C_DecryptVerifyUpdate(session: Handle, inData: Buffer, outData: Buffer, cb?: Callback<Buffer>): Buffer | void {
    return this.#notSupportedDual("C_DecryptVerifyUpdate", session, inData, outData, cb);
  }
  C_DecryptVerifyUpdateAsync(session: Handle, inData: Buffer, outData: Buffer): Promise<Buffer> {
    return promise((cb) => this.C_DecryptVerifyUpdate(session, inData, outData, cb));
  }

  // ---- Shared plumbing ----
  // Arguments are checked before the module's state, as pkcs11js does; facade-io.ts makes the call.
  #inOut(method: InOutMethod, session: Handle, inData: Buffer, outData: Buffer, cb?: Callback<Buffer>): Buffer | void {
    const s = h(session, "session");
    if (!Buffer.isBuffer(inData)) throw new TypeError("inData must be a Buffer");
    if (!Buffer.isBuffer(outData)) throw new TypeError("outData must be a Buffer");
    return callInOut(this.#use(method), method, s, inData, outData, cb);
  }

  #out(method: OutMethod, session: Handle, outData: Buffer, cb?: Callback<Buffer>): Buffer | void {
    const s = h(session, "session");
    if (!Buffer.isBuffer(outData)) throw new TypeError("outData must be a Buffer");
    return callOut(this.#use(method), method, s, outData, cb);
  }

  #notSupported(method: string, session: Handle, ..._args: unknown[]): never {
    h(session, "session");
    this.#use(method);
    throw new Pkcs11Error(C.CKR_FUNCTION_NOT_SUPPORTED, method);
  }

  /** As notSupported; with a callback the token's answer arrives through it, as pkcs11js's does. */
  #notSupportedDual(method: string, session: Handle, inData: Buffer, outData: Buffer, cb?: Callback<Buffer>): Buffer | void {
    h(session, "session");
    buf(inData, "inData");
    buf(outData, "outData");
    const done = callback<Buffer>(cb);
    this.#use(method);
    return answerNotSupported(method, done);
  }
}

// Shared by every application: no one patches a method (C_Login would see every PIN).
freezeClass(PKCS11);
