#include "args.h"

#include <cmath>

namespace hsm {

namespace {
struct AddonData {
  Napi::FunctionReference errorClass;
  Napi::FunctionReference chipClass;
};
}  // namespace

void throwType(Napi::Env env, const std::string& message) { throw Napi::TypeError::New(env, message); }

CK_ULONG ulongArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value v = info[index];
  if (!v.IsNumber()) throwType(info.Env(), std::string(name) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || std::floor(d) != d)
    throwType(info.Env(), std::string(name) + " must be a non-negative integer");
  return static_cast<CK_ULONG>(d);
}

ByteView bytesArg(const Napi::CallbackInfo& info, size_t index, const char* name, bool optional) {
  Napi::Value v = info[index];
  if (optional && (v.IsUndefined() || v.IsNull())) return ByteView();
  if (!v.IsBuffer()) throwType(info.Env(), std::string(name) + " must be a Buffer");
  auto b = v.As<Napi::Buffer<uint8_t>>();
  return ByteView(b.Data(), b.Length());
}

MutableView outArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value v = info[index];
  if (!v.IsBuffer()) throwType(info.Env(), std::string(name) + " must be a Buffer");
  auto b = v.As<Napi::Buffer<uint8_t>>();
  return MutableView{b.Data(), b.Length()};
}

Mechanism mechanismArgs(const Napi::CallbackInfo& info, size_t index) {
  Mechanism m;
  m.type = ulongArg(info, index, "mechanism.mechanism");
  m.hasParameter = info[index + 1].ToBoolean().Value();
  m.bytesA = bytesArg(info, index + 2, "mechanism parameter", true);
  m.bytesB = bytesArg(info, index + 3, "mechanism parameter", true);
  m.numberA = ulongArg(info, index + 4, "mechanism parameter");
  m.numberB = ulongArg(info, index + 5, "mechanism parameter");
  m.numberC = ulongArg(info, index + 6, "mechanism parameter");
  return m;
}

static AddonData& addonData(Napi::Env env) {
  AddonData* data = env.GetInstanceData<AddonData>();
  if (data == nullptr) {
    data = new AddonData();
    env.SetInstanceData(data);
  }
  return *data;
}

void setErrorClass(Napi::Env env, Napi::Function constructor) { addonData(env).errorClass = Napi::Persistent(constructor); }

void setChipClass(Napi::Env env, Napi::Function constructor) { addonData(env).chipClass = Napi::Persistent(constructor); }

bool isChip(Napi::Env env, Napi::Value value) {
  AddonData& data = addonData(env);
  return value.IsObject() && !data.chipClass.IsEmpty() && value.As<Napi::Object>().InstanceOf(data.chipClass.Value());
}

Napi::Value makePkcs11Error(Napi::Env env, CK_RV rv, const char* method) {
  AddonData* data = env.GetInstanceData<AddonData>();
  if (data == nullptr || data->errorClass.IsEmpty()) {
    Napi::Error e = Napi::Error::New(env, "PKCS#11 error " + std::to_string(rv) + " in " + method);
    e.Set("code", Napi::Number::New(env, static_cast<double>(rv)));
    e.Set("method", Napi::String::New(env, method));
    return e.Value();
  }
  return data->errorClass.New({Napi::Number::New(env, static_cast<double>(rv)), Napi::String::New(env, method)});
}

void throwPkcs11(Napi::Env env, CK_RV rv, const char* method) {
  throw Napi::Error(env, makePkcs11Error(env, rv, method));
}

Napi::Array ulongArray(Napi::Env env, const std::vector<CK_ULONG>& values) {
  Napi::Array out = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); ++i) out.Set(static_cast<uint32_t>(i), static_cast<double>(values[i]));
  return out;
}

}  // namespace hsm
