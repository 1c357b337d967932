// Addon entry: exports the Chip class and the hook that registers Pkcs11Error.
#include <napi.h>

#include "../crypto/raw_loop.h"
#include "args.h"
#include "chip.h"

namespace hsm {

Napi::Function Chip::Define(Napi::Env env) {
  return DefineClass(env, "Chip", {
      InstanceMethod("getSlotList", &Chip::GetSlotList),
      InstanceMethod("getTokenInfo", &Chip::GetTokenInfo),
      InstanceMethod("getMechanismList", &Chip::GetMechanismList),
      InstanceMethod("getMechanismInfo", &Chip::GetMechanismInfo),
      InstanceMethod("initToken", &Chip::InitToken),
      InstanceMethod("openSession", &Chip::OpenSession),
      InstanceMethod("closeSession", &Chip::CloseSession),
      InstanceMethod("closeAllSessions", &Chip::CloseAllSessions),
      InstanceMethod("getSessionInfo", &Chip::GetSessionInfo),
      InstanceMethod("login", &Chip::Login),
      InstanceMethod("logout", &Chip::Logout),
      InstanceMethod("initPin", &Chip::InitPin),
      InstanceMethod("setPin", &Chip::SetPin),
      InstanceMethod("seedRandom", &Chip::SeedRandom),
      InstanceMethod("generateRandom", &Chip::GenerateRandom),
      InstanceMethod("createObject", &Chip::CreateObject),
      InstanceMethod("copyObject", &Chip::CopyObject),
      InstanceMethod("destroyObject", &Chip::DestroyObject),
      InstanceMethod("getObjectSize", &Chip::GetObjectSize),
      InstanceMethod("getAttributeValue", &Chip::GetAttributeValue),
      InstanceMethod("setAttributeValue", &Chip::SetAttributeValue),
      InstanceMethod("findObjectsInit", &Chip::FindObjectsInit),
      InstanceMethod("findObjects", &Chip::FindObjects),
      InstanceMethod("findObjectsFinal", &Chip::FindObjectsFinal),
      InstanceMethod("exportMasked", &Chip::ExportMasked),
      InstanceMethod("importMasked", &Chip::ImportMasked),
      InstanceMethod("shareMaskingKey", &Chip::ShareMaskingKey),
      InstanceMethod("encryptInit", &Chip::EncryptInit),
      InstanceMethod("encrypt", &Chip::Encrypt),
      InstanceMethod("encryptUpdate", &Chip::EncryptUpdate),
      InstanceMethod("encryptFinal", &Chip::EncryptFinal),
      InstanceMethod("decryptInit", &Chip::DecryptInit),
      InstanceMethod("decrypt", &Chip::Decrypt),
      InstanceMethod("decryptUpdate", &Chip::DecryptUpdate),
      InstanceMethod("decryptFinal", &Chip::DecryptFinal),
      InstanceMethod("digestInit", &Chip::DigestInit),
      InstanceMethod("digest", &Chip::Digest),
      InstanceMethod("digestUpdate", &Chip::DigestUpdate),
      InstanceMethod("digestKey", &Chip::DigestKey),
      InstanceMethod("digestFinal", &Chip::DigestFinal),
      InstanceMethod("signInit", &Chip::SignInit),
      InstanceMethod("sign", &Chip::Sign),
      InstanceMethod("signUpdate", &Chip::SignUpdate),
      InstanceMethod("signFinal", &Chip::SignFinal),
      InstanceMethod("verifyInit", &Chip::VerifyInit),
      InstanceMethod("verify", &Chip::Verify),
      InstanceMethod("verifyUpdate", &Chip::VerifyUpdate),
      InstanceMethod("verifyFinal", &Chip::VerifyFinal),
      InstanceMethod("generateKey", &Chip::GenerateKey),
      InstanceMethod("generateKeyPair", &Chip::GenerateKeyPair),
      InstanceMethod("wrapKey", &Chip::WrapKey),
      InstanceMethod("unwrapKey", &Chip::UnwrapKey),
      InstanceMethod("deriveKey", &Chip::DeriveKey),
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function chip = Chip::Define(env);
  setChipClass(env, chip);
  exports.Set("Chip", chip);
  // Benchmark reference only: rawGcmEncryptLoop(key, iv, in, out, iterations).
  exports.Set("rawGcmEncryptLoop", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    ByteView key = bytesArg(info, 0, "key"), iv = bytesArg(info, 1, "iv"), in = bytesArg(info, 2, "input");
    MutableView out = outArg(info, 3, "output");
    CK_ULONG iterations = ulongArg(info, 4, "iterations");
    if (out.size < in.size + 16) throwType(info.Env(), "output must hold input plus a 16-byte tag");
    bool ok = rawGcmEncryptLoop(key, iv, in, out.data, out.data + in.size, static_cast<unsigned>(iterations));
    return Napi::Boolean::New(info.Env(), ok);
  }));
  exports.Set("setErrorClass", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    if (!info[0].IsFunction()) throwType(info.Env(), "constructor must be a function");
    setErrorClass(info.Env(), info[0].As<Napi::Function>());
    return info.Env().Undefined();
  }));
  return exports;
}

}  // namespace hsm

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return hsm::Init(env, exports); }

NODE_API_MODULE(hsmsim, InitAddon)
