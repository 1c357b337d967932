// Addon entry: exports the Chip class and the hook that registers Pkcs11Error.
#include <napi.h>

#include "../crypto/raw_loop.h"
#include "args.h"
#include "chip.h"

namespace hsm {

Napi::Function Chip::Define(Napi::Env env) {
  // The calls are attached to each instance (see the constructor), not to the prototype.
  return DefineClass(env, "Chip", {});
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
