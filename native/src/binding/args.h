// Argument conversion for the binding: the TypeScript layer validates first with precise
// messages; these checks run again so that no JavaScript value can crash the process.
#pragma once
#include <napi.h>

#include "../token/module.h"

namespace hsm {

struct MutableView {
  uint8_t* data = nullptr;
  size_t size = 0;
};

CK_ULONG ulongArg(const Napi::CallbackInfo& info, size_t index, const char* name);
ByteView bytesArg(const Napi::CallbackInfo& info, size_t index, const char* name, bool optional = false);
MutableView outArg(const Napi::CallbackInfo& info, size_t index, const char* name);
// Mechanism from 3 arguments starting at `index`: a Float64Array [type, hasParameter,
// numberA, numberB, numberC], then bytesA and bytesB (Buffer or null).
Mechanism mechanismArgs(const Napi::CallbackInfo& info, size_t index);
constexpr size_t kMechanismArgCount = 3;

// The Pkcs11Error class of the TypeScript layer, registered once per addon instance.
void setErrorClass(Napi::Env env, Napi::Function constructor);
// The Chip class, to recognise Chip objects passed back in.
void setChipClass(Napi::Env env, Napi::Function constructor);
bool isChip(Napi::Env env, Napi::Value value);
[[noreturn]] void throwPkcs11(Napi::Env env, CK_RV rv, const char* method);
Napi::Value makePkcs11Error(Napi::Env env, CK_RV rv, const char* method);
[[noreturn]] void throwType(Napi::Env env, const std::string& message);

Napi::Array ulongArray(Napi::Env env, const std::vector<CK_ULONG>& values);

}  // namespace hsm
