// Binding of slots, tokens, sessions, login, random numbers and objects.
#include "chip.h"

namespace hsm {

namespace {
auto noResult = [](Napi::Env env, const Outcome&) -> Napi::Value { return env.Undefined(); };
auto firstResult = [](Napi::Env env, const Outcome& o) -> Napi::Value {
  return Napi::Number::New(env, static_cast<double>(o.first));
};
auto lengthResult = [](Napi::Env env, const Outcome& o) -> Napi::Value {
  return Napi::Number::New(env, static_cast<double>(o.length));
};

Template templateArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Template t;
  if (decodeTemplate(bytesArg(info, index, name), t) != CKR_OK)
    throwType(info.Env(), std::string(name) + " is not an encoded template");
  return t;
}

Napi::Object configFrom(const Napi::CallbackInfo& info, ModuleConfig& config) {
  Napi::Object options = info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(info.Env());
  auto number = [&](const char* key, double fallback) {
    Napi::Value v = options.Get(key);
    return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
  };
  config.fixedSlotCount = static_cast<size_t>(number("slotCount", 0));
  config.maxPinFailures = static_cast<CK_ULONG>(number("maxPinFailures", 5));
  config.pinHashIterations = static_cast<unsigned>(number("pinHashIterations", 4096));
  Napi::Value seed = options.Get("seed");
  if (seed.IsBuffer()) {
    auto b = seed.As<Napi::Buffer<uint8_t>>();
    config.deterministic = true;
    config.seed = toBytes(b.Data(), b.Length());
  }
  if (config.fixedSlotCount > 64 || config.maxPinFailures < 1 || config.maxPinFailures > 1000 ||
      config.pinHashIterations < 1 || config.pinHashIterations > 10000000)
    throwType(info.Env(), "chip options out of range");
  return options;
}
}  // namespace

Chip::Chip(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Chip>(info) {
  ModuleConfig config;
  configFrom(info, config);
  module_ = std::make_unique<Module>(std::move(config));
}

Napi::Value Chip::GetSlotList(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> guard(module_->lock());
  return ulongArray(info.Env(), module_->slotList(true));
}

Napi::Value Chip::GetTokenInfo(const Napi::CallbackInfo& info) {
  CK_ULONG slot = ulongArg(info, 0, "slot");
  TokenInfo t;
  CK_RV rv;
  {
    std::lock_guard<std::mutex> guard(module_->lock());
    rv = module_->tokenInfo(slot, t);
  }
  if (rv != CKR_OK) throwPkcs11(info.Env(), rv, "C_GetTokenInfo");
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("label", t.label);
  o.Set("serialNumber", t.serial);
  o.Set("flags", static_cast<double>(t.flags));
  o.Set("sessionCount", static_cast<double>(t.sessionCount));
  o.Set("rwSessionCount", static_cast<double>(t.rwSessionCount));
  o.Set("minPinLen", static_cast<double>(t.minPinLength));
  o.Set("maxPinLen", static_cast<double>(t.maxPinLength));
  o.Set("totalMemory", static_cast<double>(t.totalMemory));
  o.Set("freeMemory", static_cast<double>(t.freeMemory));
  return o;
}

Napi::Value Chip::GetMechanismList(const Napi::CallbackInfo& info) {
  CK_ULONG slot = ulongArg(info, 0, "slot");
  std::vector<CK_ULONG> list;
  std::lock_guard<std::mutex> guard(module_->lock());
  CK_RV rv = module_->mechanismList(slot, list);
  if (rv != CKR_OK) throwPkcs11(info.Env(), rv, "C_GetMechanismList");
  return ulongArray(info.Env(), list);
}

Napi::Value Chip::GetMechanismInfo(const Napi::CallbackInfo& info) {
  CK_ULONG slot = ulongArg(info, 0, "slot"), type = ulongArg(info, 1, "mechanism");
  MechanismInfo m;
  std::lock_guard<std::mutex> guard(module_->lock());
  CK_RV rv = module_->mechanismInfo(slot, type, m);
  if (rv != CKR_OK) throwPkcs11(info.Env(), rv, "C_GetMechanismInfo");
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("minKeySize", static_cast<double>(m.minKeySize));
  o.Set("maxKeySize", static_cast<double>(m.maxKeySize));
  o.Set("flags", static_cast<double>(m.flags));
  return o;
}

Napi::Value Chip::InitToken(const Napi::CallbackInfo& info) {
  CK_ULONG slot = ulongArg(info, 0, "slot");
  ByteView pin = bytesArg(info, 1, "pin"), label = bytesArg(info, 2, "label");
  return run(info, kSyncOnly, 0, "C_InitToken", [&](Outcome&) { return module_->initToken(slot, pin, label); }, noResult);
}

Napi::Value Chip::OpenSession(const Napi::CallbackInfo& info) {
  CK_ULONG slot = ulongArg(info, 0, "slot"), flags = ulongArg(info, 1, "flags");
  return run(info, kSyncOnly, 0, "C_OpenSession",
             [&](Outcome& o) { return module_->openSession(slot, flags, o.first); }, firstResult);
}

Napi::Value Chip::CloseSession(const Napi::CallbackInfo& info) {
  CK_ULONG s = ulongArg(info, 0, "session");
  return run(info, kSyncOnly, 0, "C_CloseSession", [&](Outcome&) { return module_->closeSession(s); }, noResult);
}

Napi::Value Chip::CloseAllSessions(const Napi::CallbackInfo& info) {
  CK_ULONG slot = ulongArg(info, 0, "slot");
  return run(info, kSyncOnly, 0, "C_CloseAllSessions", [&](Outcome&) { return module_->closeAllSessions(slot); }, noResult);
}

Napi::Value Chip::GetSessionInfo(const Napi::CallbackInfo& info) {
  CK_ULONG s = ulongArg(info, 0, "session");
  SessionInfo si;
  CK_RV rv;
  {
    std::lock_guard<std::mutex> guard(module_->lock());
    rv = module_->sessionInfo(s, si);
  }
  if (rv != CKR_OK) throwPkcs11(info.Env(), rv, "C_GetSessionInfo");
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("slotID", static_cast<double>(si.slotId));
  o.Set("state", static_cast<double>(si.state));
  o.Set("flags", static_cast<double>(si.flags));
  o.Set("deviceError", 0);
  return o;
}

Napi::Value Chip::Login(const Napi::CallbackInfo& info) {
  CK_ULONG s = ulongArg(info, 0, "session"), userType = ulongArg(info, 1, "userType");
  ByteView pin = bytesArg(info, 2, "pin");
  return run(info, kSyncOnly, 0, "C_Login", [&](Outcome&) { return module_->login(s, userType, pin); }, noResult);
}

Napi::Value Chip::Logout(const Napi::CallbackInfo& info) {
  CK_ULONG s = ulongArg(info, 0, "session");
  return run(info, kSyncOnly, 0, "C_Logout", [&](Outcome&) { return module_->logout(s); }, noResult);
}

Napi::Value Chip::InitPin(const Napi::CallbackInfo& info) {
  CK_ULONG s = ulongArg(info, 0, "session");
  ByteView pin = bytesArg(info, 1, "pin");
  return run(info, kSyncOnly, 0, "C_InitPIN", [&](Outcome&) { return module_->initPin(s, pin); }, noResult);
}

Napi::Value Chip::SetPin(const Napi::CallbackInfo& info) {
  CK_ULONG s = ulongArg(info, 0, "session");
  ByteView oldPin = bytesArg(info, 1, "oldPin"), newPin = bytesArg(info, 2, "newPin");
  return run(info, kSyncOnly, 0, "C_SetPIN", [&](Outcome&) { return module_->setPin(s, oldPin, newPin); }, noResult);
}

Napi::Value Chip::SeedRandom(const Napi::CallbackInfo& info) {
  CK_ULONG s = ulongArg(info, 0, "session");
  ByteView seed = bytesArg(info, 1, "seed");
  return run(info, kSyncOnly, 0, "C_SeedRandom", [&](Outcome&) { return module_->seedRandom(s, seed); }, noResult);
}

Napi::Value Chip::GenerateRandom(const Napi::CallbackInfo& info) {
  CK_ULONG s = ulongArg(info, 0, "session");
  MutableView out = outArg(info, 1, "randomData");
  return run(info, kSyncOnly, 0, "C_GenerateRandom", [&](Outcome&) { return module_->generateRandom(s, out.data, out.size); },
             noResult);
}

Napi::Value Chip::CreateObject(const Napi::CallbackInfo& info) {
  CK_ULONG s = ulongArg(info, 0, "session");
  Template t = templateArg(info, 1, "template");
  return run(info, kSyncOnly, 0, "C_CreateObject", [&](Outcome& o) { return module_->createObject(s, t, o.first); },
             firstResult);
}

Napi::Value Chip::CopyObject(const Napi::CallbackInfo& info) {
  CK_ULONG s = ulongArg(info, 0, "session"), object = ulongArg(info, 1, "object");
  Template t = templateArg(info, 2, "template");
  return run(info, kSyncOnly, 0, "C_CopyObject", [&](Outcome& o) { return module_->copyObject(s, object, t, o.first); },
             firstResult);
}

Napi::Value Chip::DestroyObject(const Napi::CallbackInfo& info) {
  CK_ULONG s = ulongArg(info, 0, "session"), object = ulongArg(info, 1, "object");
  return run(info, kSyncOnly, 0, "C_DestroyObject", [&](Outcome&) { return module_->destroyObject(s, object); }, noResult);
}

Napi::Value Chip::GetObjectSize(const Napi::CallbackInfo& info) {
  CK_ULONG s = ulongArg(info, 0, "session"), object = ulongArg(info, 1, "object");
  return run(info, kSyncOnly, 0, "C_GetObjectSize", [&](Outcome& o) { return module_->objectSize(s, object, o.first); },
             firstResult);
}

// Returns { rv, values }: every attribute is processed; unavailable ones are null.
Napi::Value Chip::GetAttributeValue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CK_ULONG s = ulongArg(info, 0, "session"), object = ulongArg(info, 1, "object");
  if (!info[2].IsArray()) throwType(env, "template must be an array");
  Napi::Array types = info[2].As<Napi::Array>();
  std::vector<AttributeQuery> queries(types.Length());
  for (uint32_t i = 0; i < types.Length(); ++i) {
    Napi::Value t = types.Get(i);
    if (!t.IsNumber()) throwType(env, "template[" + std::to_string(i) + "].type must be a number");
    queries[i].type = static_cast<CK_ULONG>(t.As<Napi::Number>().DoubleValue());
  }
  CK_RV rv;
  {
    std::lock_guard<std::mutex> guard(module_->lock());
    rv = module_->getAttributes(s, object, queries);
  }
  if (rv != CKR_OK && rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_ATTRIBUTE_TYPE_INVALID)
    throwPkcs11(env, rv, "C_GetAttributeValue");
  Napi::Array values = Napi::Array::New(env, queries.size());
  for (size_t i = 0; i < queries.size(); ++i) {
    const AttributeQuery& q = queries[i];
    if (q.length == CK_UNAVAILABLE_INFORMATION) {
      values.Set(static_cast<uint32_t>(i), env.Null());
    } else {
      values.Set(static_cast<uint32_t>(i), Napi::Buffer<uint8_t>::Copy(env, q.value.data(), q.value.size()));
    }
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("rv", static_cast<double>(rv));
  result.Set("values", values);
  return result;
}

Napi::Value Chip::SetAttributeValue(const Napi::CallbackInfo& info) {
  CK_ULONG s = ulongArg(info, 0, "session"), object = ulongArg(info, 1, "object");
  Template t = templateArg(info, 2, "template");
  return run(info, kSyncOnly, 0, "C_SetAttributeValue", [&](Outcome&) { return module_->setAttributes(s, object, t); },
             noResult);
}

Napi::Value Chip::FindObjectsInit(const Napi::CallbackInfo& info) {
  CK_ULONG s = ulongArg(info, 0, "session");
  Template t = templateArg(info, 1, "template");
  return run(info, kSyncOnly, 0, "C_FindObjectsInit", [&](Outcome&) { return module_->findInit(s, t); }, noResult);
}

Napi::Value Chip::FindObjects(const Napi::CallbackInfo& info) {
  CK_ULONG s = ulongArg(info, 0, "session"), max = ulongArg(info, 1, "maxObjectCount");
  std::vector<CK_ULONG> found;
  CK_RV rv;
  {
    std::lock_guard<std::mutex> guard(module_->lock());
    rv = module_->find(s, max, found);
  }
  if (rv != CKR_OK) throwPkcs11(info.Env(), rv, "C_FindObjects");
  return ulongArray(info.Env(), found);
}

Napi::Value Chip::FindObjectsFinal(const Napi::CallbackInfo& info) {
  CK_ULONG s = ulongArg(info, 0, "session");
  return run(info, kSyncOnly, 0, "C_FindObjectsFinal", [&](Outcome&) { return module_->findFinal(s); }, noResult);
}

Napi::Value Chip::ExportMasked(const Napi::CallbackInfo& info) {
  CK_ULONG slot = ulongArg(info, 0, "slot"), object = ulongArg(info, 1, "object");
  CK_ULONG algorithm = ulongArg(info, 2, "algorithm");
  Bytes record;
  CK_RV rv;
  {
    std::lock_guard<std::mutex> guard(module_->lock());
    rv = module_->exportMasked(slot, object, static_cast<int>(algorithm), record);
  }
  if (rv != CKR_OK) throwPkcs11(info.Env(), rv, "exportMasked");
  return Napi::Buffer<uint8_t>::Copy(info.Env(), record.data(), record.size());
}

Napi::Value Chip::ImportMasked(const Napi::CallbackInfo& info) {
  CK_ULONG slot = ulongArg(info, 0, "slot");
  ByteView record = bytesArg(info, 1, "record");
  return run(info, kSyncOnly, 0, "importMasked", [&](Outcome& o) { return module_->importMasked(slot, record, o.first); },
             firstResult);
}

Napi::Value Chip::ShareMaskingKey(const Napi::CallbackInfo& info) {
  CK_ULONG slot = ulongArg(info, 0, "slot");
  if (!isChip(info.Env(), info[1]))
    throwType(info.Env(), "target must be a Chip");
  Chip* target = Chip::Unwrap(info[1].As<Napi::Object>());
  CK_ULONG targetSlot = ulongArg(info, 2, "targetSlot");
  if (target == this) return info.Env().Undefined();
  // Lock both modules in a fixed order so two opposite shares cannot deadlock.
  std::mutex& a = module_->lock();
  std::mutex& b = target->module().lock();
  std::scoped_lock guard(a, b);
  CK_RV rv = module_->shareMaskingKey(slot, target->module(), targetSlot);
  if (rv != CKR_OK) throwPkcs11(info.Env(), rv, "shareMaskingKey");
  return info.Env().Undefined();
}

}  // namespace hsm
