// Binding of encryption, decryption, digests, signatures and key management. Work
// lambdas capture by value: asynchronous calls run them after this frame is gone (the
// worker keeps the argument Buffers alive).
#include "chip.h"

namespace hsm {

namespace {
auto trueResult = [](Napi::Env env, const Outcome&) -> Napi::Value { return Napi::Boolean::New(env, true); };
auto pairResult = [](Napi::Env env, const Outcome& o) -> Napi::Value {
  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(0u, static_cast<double>(o.first));
  pair.Set(1u, static_cast<double>(o.second));
  return pair;
};

// Templates decoded for an asynchronous call must outlive the frame: share the vector. Its
// values point into the encoded bytes, so an asynchronous call decodes its own copy of them.
std::shared_ptr<Template> templateArg(const Napi::CallbackInfo& info, size_t index, const char* name,
                                      const AsyncIoRef& io) {
  auto t = std::make_shared<Template>();
  ByteView encoded = bytesArg(info, index, name);
  if (io) encoded = io->hold(encoded);
  if (decodeTemplate(encoded, *t) != CKR_OK)
    throwType(info.Env(), std::string(name) + " is not an encoded template");
  return t;
}
}  // namespace

// Init calls: (session, key, mechanism x3) or (session, mechanism x3) for digests.
#define INIT_METHOD(Name, call, method)                                                     \
  static Napi::Value Name(const Napi::CallbackInfo& info) {                                 \
    Module* mod = &moduleOf(info);                                                          \
    CK_ULONG s = ulongArg(info, 0, "session");                                              \
    CK_ULONG key = ulongArg(info, 1, "key");                                                \
    Mechanism m = mechanismArgs(info, 2);                                                   \
    return run(info, kSyncOnly, 0, method, [=](Outcome&) { return mod->call(s, m, key); }, noResult); \
  }
INIT_METHOD(EncryptInit, encryptInit, "C_EncryptInit")
INIT_METHOD(DecryptInit, decryptInit, "C_DecryptInit")
INIT_METHOD(SignInit, signInit, "C_SignInit")
INIT_METHOD(VerifyInit, verifyInit, "C_VerifyInit")

// (session, in, out[, cb]) -> bytes written
#define IN_OUT_METHOD(Name, call, method)                                                   \
  static Napi::Value Name(const Napi::CallbackInfo& info) {                                 \
    Module* mod = &moduleOf(info);                                                          \
    CK_ULONG s = ulongArg(info, 0, "session");                                              \
    ByteView in = bytesArg(info, 1, "inData");                                              \
    MutableView out = outArg(info, 2, "outData");                                           \
    AsyncIoRef io = asyncIo(info, 3, {&in}, nullptr, &out, 2);                              \
    return run(info, 3, s, method, [=](Outcome& o) {                                        \
      o.length = out.size;                                                                  \
      return mod->call(s, in, out.data, o.length);                                          \
    }, lengthResult, io);                                                                   \
  }
IN_OUT_METHOD(Encrypt, encrypt, "C_Encrypt")
IN_OUT_METHOD(EncryptUpdate, encryptUpdate, "C_EncryptUpdate")
IN_OUT_METHOD(Decrypt, decrypt, "C_Decrypt")
IN_OUT_METHOD(DecryptUpdate, decryptUpdate, "C_DecryptUpdate")
IN_OUT_METHOD(Digest, digest, "C_Digest")
IN_OUT_METHOD(Sign, sign, "C_Sign")

// (session, out[, cb]) -> bytes written
#define OUT_METHOD(Name, call, method)                                                      \
  static Napi::Value Name(const Napi::CallbackInfo& info) {                                 \
    Module* mod = &moduleOf(info);                                                          \
    CK_ULONG s = ulongArg(info, 0, "session");                                              \
    MutableView out = outArg(info, 1, "outData");                                           \
    AsyncIoRef io = asyncIo(info, 2, {}, nullptr, &out, 1);                                 \
    return run(info, 2, s, method, [=](Outcome& o) {                                        \
      o.length = out.size;                                                                  \
      return mod->call(s, out.data, o.length);                                              \
    }, lengthResult, io);                                                                   \
  }
OUT_METHOD(EncryptFinal, encryptFinal, "C_EncryptFinal")
OUT_METHOD(DecryptFinal, decryptFinal, "C_DecryptFinal")
OUT_METHOD(DigestFinal, digestFinal, "C_DigestFinal")
OUT_METHOD(SignFinal, signFinal, "C_SignFinal")

// (session, in[, cb])
#define IN_METHOD(Name, call, method, result)                                               \
  static Napi::Value Name(const Napi::CallbackInfo& info) {                                 \
    Module* mod = &moduleOf(info);                                                          \
    CK_ULONG s = ulongArg(info, 0, "session");                                              \
    ByteView in = bytesArg(info, 1, "inData");                                              \
    AsyncIoRef io = asyncIo(info, 2, {&in});                                                \
    return run(info, 2, s, method, [=](Outcome&) { return mod->call(s, in); }, result, io); \
  }
IN_METHOD(DigestUpdate, digestUpdate, "C_DigestUpdate", noResult)
IN_METHOD(SignUpdate, signUpdate, "C_SignUpdate", noResult)
IN_METHOD(VerifyUpdate, verifyUpdate, "C_VerifyUpdate", noResult)
IN_METHOD(VerifyFinal, verifyFinal, "C_VerifyFinal", trueResult)

static Napi::Value DigestInit(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session");
  Mechanism m = mechanismArgs(info, 1);
  return run(info, kSyncOnly, 0, "C_DigestInit", [=](Outcome&) { return mod->digestInit(s, m); }, noResult);
}

static Napi::Value DigestKey(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session"), key = ulongArg(info, 1, "key");
  return run(info, kSyncOnly, 0, "C_DigestKey", [=](Outcome&) { return mod->digestKey(s, key); }, noResult);
}

static Napi::Value Verify(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session");
  ByteView in = bytesArg(info, 1, "inData"), signature = bytesArg(info, 2, "signature");
  AsyncIoRef io = asyncIo(info, 3, {&in, &signature});
  return run(info, 3, s, "C_Verify", [=](Outcome&) { return mod->verify(s, in, signature); }, trueResult, io);
}

// (session, template, mechanism x3[, cb])
static Napi::Value GenerateKey(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session");
  Mechanism m = mechanismArgs(info, 2);
  AsyncIoRef io = asyncIo(info, 2 + kMechanismArgCount, {}, &m);
  auto t = templateArg(info, 1, "template", io);
  return run(info, 2 + kMechanismArgCount, s, "C_GenerateKey",
             [=](Outcome& o) { return mod->generateKey(s, m, *t, o.first); }, handleResult, io);
}

// (session, publicTemplate, privateTemplate, mechanism x3[, cb])
static Napi::Value GenerateKeyPair(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session");
  Mechanism m = mechanismArgs(info, 3);
  AsyncIoRef io = asyncIo(info, 3 + kMechanismArgCount, {}, &m);
  auto pub = templateArg(info, 1, "publicKeyTemplate", io);
  auto priv = templateArg(info, 2, "privateKeyTemplate", io);
  return run(info, 3 + kMechanismArgCount, s, "C_GenerateKeyPair",
             [=](Outcome& o) { return mod->generateKeyPair(s, m, *pub, *priv, o.first, o.second); }, pairResult, io);
}

// (session, wrappingKey, key, out, mechanism x3[, cb])
static Napi::Value WrapKey(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session");
  CK_ULONG wrapping = ulongArg(info, 1, "wrappingKey"), key = ulongArg(info, 2, "key");
  MutableView out = outArg(info, 3, "wrappedKey");
  Mechanism m = mechanismArgs(info, 4);
  AsyncIoRef io = asyncIo(info, 4 + kMechanismArgCount, {}, &m, &out, 3);
  return run(info, 4 + kMechanismArgCount, s, "C_WrapKey", [=](Outcome& o) {
    o.length = out.size;
    return mod->wrapKey(s, m, wrapping, key, out.data, o.length);
  }, lengthResult, io);
}

// (session, unwrappingKey, wrapped, template, mechanism x3[, cb])
static Napi::Value UnwrapKey(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session");
  CK_ULONG unwrapping = ulongArg(info, 1, "unwrappingKey");
  ByteView wrapped = bytesArg(info, 2, "wrappedKey");
  Mechanism m = mechanismArgs(info, 4);
  AsyncIoRef io = asyncIo(info, 4 + kMechanismArgCount, {&wrapped}, &m);
  auto t = templateArg(info, 3, "template", io);
  return run(info, 4 + kMechanismArgCount, s, "C_UnwrapKey",
             [=](Outcome& o) { return mod->unwrapKey(s, m, unwrapping, wrapped, *t, o.first); }, handleResult, io);
}

// (session, baseKey, template, mechanism x3[, cb])
static Napi::Value DeriveKey(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session"), base = ulongArg(info, 1, "baseKey");
  Mechanism m = mechanismArgs(info, 3);
  AsyncIoRef io = asyncIo(info, 3 + kMechanismArgCount, {}, &m);
  auto t = templateArg(info, 2, "template", io);
  return run(info, 3 + kMechanismArgCount, s, "C_DeriveKey",
             [=](Outcome& o) { return mod->deriveKey(s, m, base, *t, o.first); }, handleResult, io);
}

const std::vector<CallEntry>& cryptoCalls() {
  static const std::vector<CallEntry> calls = {
      {"encryptInit", EncryptInit},
      {"decryptInit", DecryptInit},
      {"signInit", SignInit},
      {"verifyInit", VerifyInit},
      {"encrypt", Encrypt},
      {"encryptUpdate", EncryptUpdate},
      {"decrypt", Decrypt},
      {"decryptUpdate", DecryptUpdate},
      {"digest", Digest},
      {"sign", Sign},
      {"encryptFinal", EncryptFinal},
      {"decryptFinal", DecryptFinal},
      {"digestFinal", DigestFinal},
      {"signFinal", SignFinal},
      {"digestUpdate", DigestUpdate},
      {"signUpdate", SignUpdate},
      {"verifyUpdate", VerifyUpdate},
      {"verifyFinal", VerifyFinal},
      {"digestInit", DigestInit},
      {"digestKey", DigestKey},
      {"verify", Verify},
      {"generateKey", GenerateKey},
      {"generateKeyPair", GenerateKeyPair},
      {"wrapKey", WrapKey},
      {"unwrapKey", UnwrapKey},
      {"deriveKey", DeriveKey},
  };
  return calls;
}

}  // namespace hsm
