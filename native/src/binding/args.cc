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

// These run on every call: one raw Node-API call each where a status says what went wrong.
CK_ULONG ulongArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  double d = 0;
  if (napi_get_value_double(info.Env(), info[index], &d) != napi_ok)
    throwType(info.Env(), std::string(name) + " must be a number");
  if (!(d >= 0) || d > 9007199254740991.0 || std::floor(d) != d)
    throwType(info.Env(), std::string(name) + " must be a non-negative integer");
  return static_cast<CK_ULONG>(d);
}

// One Node-API call per Buffer: napi_get_typedarray_info refuses anything that is not a
// typed array with a status (never a crash), and a Buffer is a Uint8Array.
static bool bufferInfo(const Napi::CallbackInfo& info, size_t index, void** data, size_t* length) {
  napi_typedarray_type type;
  napi_value arraybuffer;
  size_t offset = 0;
  return napi_get_typedarray_info(info.Env(), info[index], &type, length, data, &arraybuffer, &offset) == napi_ok &&
         type == napi_uint8_array;
}

ByteView bytesArg(const Napi::CallbackInfo& info, size_t index, const char* name, bool optional) {
  void* data = nullptr;
  size_t length = 0;
  if (bufferInfo(info, index, &data, &length)) return ByteView(static_cast<const uint8_t*>(data), length);
  if (optional && (info[index].IsUndefined() || info[index].IsNull())) return ByteView();
  throwType(info.Env(), std::string(name) + " must be a Buffer");
}

MutableView outArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  void* data = nullptr;
  size_t length = 0;
  if (!bufferInfo(info, index, &data, &length)) throwType(info.Env(), std::string(name) + " must be a Buffer");
  return MutableView{static_cast<uint8_t*>(data), length};
}

Mechanism mechanismArgs(const Napi::CallbackInfo& info, size_t index) {
  // numbers: Float64Array [type, hasParameter, numberA, numberB, numberC], read in one call.
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  napi_value arraybuffer;
  size_t offset = 0;
  if (napi_get_typedarray_info(info.Env(), info[index], &type, &length, &data, &arraybuffer, &offset) != napi_ok ||
      type != napi_float64_array || length < 5)
    throwType(info.Env(), "mechanism numbers must be a Float64Array of 5");
  const double* n = static_cast<const double*>(data);
  CK_ULONG values[5];
  for (int i = 0; i < 5; ++i) {
    if (!(n[i] >= 0) || n[i] > 4294967295.0 || std::floor(n[i]) != n[i])
      throwType(info.Env(), "mechanism numbers must be integers from 0 to 0xFFFFFFFF");
    values[i] = static_cast<CK_ULONG>(n[i]);
  }
  Mechanism m;
  m.type = values[0];
  m.hasParameter = values[1] != 0;
  m.numberA = values[2];
  m.numberB = values[3];
  m.numberC = values[4];
  m.bytesA = bytesArg(info, index + 1, "mechanism parameter", true);
  m.bytesB = bytesArg(info, index + 2, "mechanism parameter", true);
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
