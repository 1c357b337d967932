// Binding of slots, tokens, sessions, login, random numbers and objects.
#include <cmath>

#include "chip.h"

namespace hsm {

namespace {

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
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
    // Checked before any cast: a NaN, negative or huge double has no integer value to cast to.
    if (!(d >= 0 && d <= 1e9) || d != static_cast<double>(static_cast<uint64_t>(d)))
      throwType(info.Env(), std::string("chip option ") + key + " must be a whole number from 0 to 1e9");
    return d;
  };
  config.fixedSlotCount = static_cast<size_t>(number("slotCount", 0));
  config.maxPinFailures = static_cast<CK_ULONG>(number("maxPinFailures", 5));
  config.pinHashIterations = static_cast<unsigned>(number("pinHashIterations", 4096));
  config.maxKeys = static_cast<size_t>(number("maxKeys", 0));
  config.maxAsymmetricKeys = static_cast<size_t>(number("maxAsymmetricKeys", 0));
  config.maxSessionsPerApplication = static_cast<size_t>(number("maxSessionsPerApplication", 1024));
  config.deviceProfile = options.Get("deviceProfile").ToBoolean().Value();
  Napi::Value seed = options.Get("seed");
  if (seed.IsBuffer()) {
    auto b = seed.As<Napi::Buffer<uint8_t>>();
    config.deterministic = true;
    config.seed = toBytes(b.Data(), b.Length());
  }
  if (config.fixedSlotCount > 64 || config.maxPinFailures < 1 || config.maxPinFailures > 1000 ||
      config.pinHashIterations < 1 || config.pinHashIterations > 10000000 || config.maxKeys > 10000000 ||
      config.maxAsymmetricKeys > 10000000 || config.maxSessionsPerApplication < 1 ||
      config.maxSessionsPerApplication > 1000000)
    throwType(info.Env(), "chip options out of range");
  return options;
}
}  // namespace

Chip::~Chip() { Napi::MemoryManagement::AdjustExternalMemory(Env(), -kExternalBytes); }

Chip::Chip(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Chip>(info) {
  ModuleConfig config;
  configFrom(info, config);
  module_ = std::make_shared<Module>(std::move(config));
  Napi::MemoryManagement::AdjustExternalMemory(info.Env(), kExternalBytes);
  // Every call becomes an own, read-only method of this object, acting as the device itself
  // (it reaches every application's sessions: loginPrincipal on an application's session).
  auto device = std::make_shared<Caller>();
  device->module = module_;
  attachCalls(info.Env(), info.This().As<Napi::Object>(), device,
              {&tokenCalls(), &chipTokenCalls(), &cryptoCalls(), &deviceCalls()});
}

static Napi::Value GetSlotList(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  std::vector<CK_ULONG> slots;
  {
    CallLock guard(info);
    slots = mod->slotList(true);
  }
  return ulongArray(info.Env(), slots);
}

static Napi::Value GetTokenInfo(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG slot = ulongArg(info, 0, "slot");
  TokenInfo t;
  CK_RV rv;
  {
    CallLock guard(info);
    rv = mod->tokenInfo(slot, t);
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

static Napi::Value GetMechanismList(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG slot = ulongArg(info, 0, "slot");
  std::vector<CK_ULONG> list;
  CK_RV rv;
  {
    CallLock guard(info);
    rv = mod->mechanismList(slot, list);
  }
  if (rv != CKR_OK) throwPkcs11(info.Env(), rv, "C_GetMechanismList");
  return ulongArray(info.Env(), list);
}

static Napi::Value GetMechanismInfo(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG slot = ulongArg(info, 0, "slot"), type = ulongArg(info, 1, "mechanism");
  MechanismInfo m;
  CK_RV rv;
  {
    CallLock guard(info);
    rv = mod->mechanismInfo(slot, type, m);
  }
  if (rv != CKR_OK) throwPkcs11(info.Env(), rv, "C_GetMechanismInfo");
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("minKeySize", static_cast<double>(m.minKeySize));
  o.Set("maxKeySize", static_cast<double>(m.maxKeySize));
  o.Set("flags", static_cast<double>(m.flags));
  return o;
}

static Napi::Value InitToken(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG slot = ulongArg(info, 0, "slot");
  ByteView pin = bytesArg(info, 1, "pin"), label = bytesArg(info, 2, "label");
  return run(info, kSyncOnly, 0, "C_InitToken", [&](Outcome&) { return mod->initToken(slot, pin, label); }, noResult);
}

static Napi::Value OpenSession(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG slot = ulongArg(info, 0, "slot"), flags = ulongArg(info, 1, "flags");
  // An application opens its own sessions; the device may name an application (0 by default).
  CK_ULONG application = applicationOf(info);
  if (application == Module::kAnyApplication) application = info[2].IsUndefined() ? 0 : ulongArg(info, 2, "application");
  return run(info, kSyncOnly, 0, "C_OpenSession",
             [&](Outcome& o) { return mod->openSession(slot, flags, o.first, application); }, handleResult);
}


static Napi::Value CloseSession(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session");
  return run(info, kSyncOnly, 0, "C_CloseSession", [&](Outcome&) { return mod->closeSession(s); }, noResult);
}

static Napi::Value CloseAllSessions(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG slot = ulongArg(info, 0, "slot");
  // An application closes only its own sessions.
  CK_ULONG application = applicationOf(info);
  if (application == Module::kAnyApplication) application = info[1].IsUndefined() ? 0 : ulongArg(info, 1, "application");
  return run(info, kSyncOnly, 0, "C_CloseAllSessions",
             [&](Outcome&) { return mod->closeAllSessions(slot, application); }, noResult);
}

static Napi::Value GetSessionInfo(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session");
  SessionInfo si;
  CK_RV rv;
  {
    CallLock guard(info);
    rv = mod->sessionInfo(s, si);
  }
  if (rv != CKR_OK) throwPkcs11(info.Env(), rv, "C_GetSessionInfo");
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("slotID", static_cast<double>(si.slotId));
  o.Set("state", static_cast<double>(si.state));
  o.Set("flags", static_cast<double>(si.flags));
  o.Set("deviceError", 0);
  return o;
}

static Napi::Value Login(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session"), userType = ulongArg(info, 1, "userType");
  ByteView pin = bytesArg(info, 2, "pin");
  return run(info, kSyncOnly, 0, "C_Login", [&](Outcome&) { return mod->login(s, userType, pin); }, noResult);
}

static Napi::Value Logout(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session");
  return run(info, kSyncOnly, 0, "C_Logout", [&](Outcome&) { return mod->logout(s); }, noResult);
}

static Napi::Value InitPin(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session");
  ByteView pin = bytesArg(info, 1, "pin");
  return run(info, kSyncOnly, 0, "C_InitPIN", [&](Outcome&) { return mod->initPin(s, pin); }, noResult);
}

static Napi::Value SetPin(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session");
  ByteView oldPin = bytesArg(info, 1, "oldPin"), newPin = bytesArg(info, 2, "newPin");
  return run(info, kSyncOnly, 0, "C_SetPIN", [&](Outcome&) { return mod->setPin(s, oldPin, newPin); }, noResult);
}

static Napi::Value SeedRandom(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session");
  ByteView seed = bytesArg(info, 1, "seed");
  return run(info, kSyncOnly, 0, "C_SeedRandom", [&](Outcome&) { return mod->seedRandom(s, seed); }, noResult);
}

static Napi::Value GenerateRandom(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session");
  MutableView out = outArg(info, 1, "randomData");
  return run(info, kSyncOnly, 0, "C_GenerateRandom", [&](Outcome&) { return mod->generateRandom(s, out.data, out.size); },
             noResult);
}

static Napi::Value CreateObject(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session");
  Template t = templateArg(info, 1, "template");
  return run(info, kSyncOnly, 0, "C_CreateObject", [&](Outcome& o) { return mod->createObject(s, t, o.first); },
             handleResult);
}

static Napi::Value CopyObject(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session"), object = ulongArg(info, 1, "object");
  Template t = templateArg(info, 2, "template");
  return run(info, kSyncOnly, 0, "C_CopyObject", [&](Outcome& o) { return mod->copyObject(s, object, t, o.first); },
             handleResult);
}

static Napi::Value DestroyObject(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session"), object = ulongArg(info, 1, "object");
  return run(info, kSyncOnly, 0, "C_DestroyObject", [&](Outcome&) { return mod->destroyObject(s, object); }, noResult);
}

static Napi::Value GetObjectSize(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session"), object = ulongArg(info, 1, "object");
  return run(info, kSyncOnly, 0, "C_GetObjectSize", [&](Outcome& o) { return mod->objectSize(s, object, o.first); },
             handleResult);
}

// Returns { rv, values }: every attribute is processed; unavailable ones are null.
static Napi::Value GetAttributeValue(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  Napi::Env env = info.Env();
  CK_ULONG s = ulongArg(info, 0, "session"), object = ulongArg(info, 1, "object");
  if (!info[2].IsArray()) throwType(env, "template must be an array");
  Napi::Array types = info[2].As<Napi::Array>();
  // The length comes from JavaScript (a sparse array may claim 2^32-1): bound it before sizing anything.
  uint32_t count = types.Length();
  if (count > hsm::kMaxTemplateAttributes) throwType(env, "template has more than 4096 attributes");
  std::vector<AttributeQuery> queries(count);
  for (uint32_t i = 0; i < count; ++i) {
    Napi::Value t = types.Get(i);
    if (!t.IsNumber()) throwType(env, "template[" + std::to_string(i) + "].type must be a number");
    double d = t.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d > 4294967295.0 || std::floor(d) != d)
      throwType(env, "template[" + std::to_string(i) + "].type must be an integer from 0 to 0xFFFFFFFF");
    queries[i].type = static_cast<CK_ULONG>(d);
  }
  CK_RV rv;
  {
    CallLock guard(info);
    rv = mod->getAttributes(s, object, queries);
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

static Napi::Value SetAttributeValue(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session"), object = ulongArg(info, 1, "object");
  Template t = templateArg(info, 2, "template");
  return run(info, kSyncOnly, 0, "C_SetAttributeValue", [&](Outcome&) { return mod->setAttributes(s, object, t); },
             noResult);
}

static Napi::Value FindObjectsInit(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session");
  Template t = templateArg(info, 1, "template");
  return run(info, kSyncOnly, 0, "C_FindObjectsInit", [&](Outcome&) { return mod->findInit(s, t); }, noResult);
}

static Napi::Value FindObjects(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session"), max = ulongArg(info, 1, "maxObjectCount");
  std::vector<CK_ULONG> found;
  CK_RV rv;
  {
    CallLock guard(info);
    rv = mod->find(s, max, found);
  }
  if (rv != CKR_OK) throwPkcs11(info.Env(), rv, "C_FindObjects");
  return ulongArray(info.Env(), found);
}

static Napi::Value FindObjectsFinal(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session");
  return run(info, kSyncOnly, 0, "C_FindObjectsFinal", [&](Outcome&) { return mod->findFinal(s); }, noResult);
}

static Napi::Value ExportMasked(const Napi::CallbackInfo& info) {
  CK_ULONG slot = ulongArg(info, 0, "slot"), object = ulongArg(info, 1, "object");
  CK_ULONG requested = ulongArg(info, 2, "algorithm");
  int algorithm = requested <= 2 ? static_cast<int>(requested) : 0;  // the token refuses anything but 1 and 2
  ByteView binding = bytesArg(info, 3, "binding", true);
  return bytesCall(info, "exportMasked",
                   [&](Module& m, Bytes& out) { return m.exportMasked(slot, object, algorithm, binding, out); });
}

static Napi::Value ImportMasked(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG slot = ulongArg(info, 0, "slot");
  ByteView record = bytesArg(info, 1, "record");
  ByteView binding = bytesArg(info, 2, "binding", true);
  return run(info, kSyncOnly, 0, "importMasked", [&](Outcome& o) { return mod->importMasked(slot, record, binding, o.first); },
             handleResult);
}

static Napi::Value ShareMaskingKey(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG slot = ulongArg(info, 0, "slot");
  if (!isChip(info.Env(), info[1]))
    throwType(info.Env(), "target must be a Chip");
  Chip* target = Chip::Unwrap(info[1].As<Napi::Object>());
  CK_ULONG targetSlot = ulongArg(info, 2, "targetSlot");
  if (&target->module() == mod) return info.Env().Undefined();
  // Lock both modules in a fixed order so two opposite shares cannot deadlock.
  CK_RV rv;
  {
    // Released before any JavaScript value is made: a collection may run finalizers that lock.
    std::scoped_lock guard(mod->lock(), target->module().lock());
    mod->setCaller(applicationOf(info));
    rv = mod->shareMaskingKey(slot, target->module(), targetSlot);
  }
  if (rv != CKR_OK) throwPkcs11(info.Env(), rv, "shareMaskingKey");
  return info.Env().Undefined();
}

const std::vector<CallEntry>& tokenCalls() {
  static const std::vector<CallEntry> calls = {
      {"getSlotList", GetSlotList},
      {"getTokenInfo", GetTokenInfo},
      {"getMechanismList", GetMechanismList},
      {"getMechanismInfo", GetMechanismInfo},
      {"initToken", InitToken},
      {"openSession", OpenSession},
      {"closeSession", CloseSession},
      {"closeAllSessions", CloseAllSessions},
      {"getSessionInfo", GetSessionInfo},
      {"login", Login},
      {"logout", Logout},
      {"initPin", InitPin},
      {"setPin", SetPin},
      {"seedRandom", SeedRandom},
      {"generateRandom", GenerateRandom},
      {"createObject", CreateObject},
      {"copyObject", CopyObject},
      {"destroyObject", DestroyObject},
      {"getObjectSize", GetObjectSize},
      {"getAttributeValue", GetAttributeValue},
      {"setAttributeValue", SetAttributeValue},
      {"findObjectsInit", FindObjectsInit},
      {"findObjects", FindObjects},
      {"findObjectsFinal", FindObjectsFinal},
  };
  return calls;
}

const std::vector<CallEntry>& chipTokenCalls() {
  static const std::vector<CallEntry> calls = {
      {"exportMasked", ExportMasked},
      {"importMasked", ImportMasked},
      {"shareMaskingKey", ShareMaskingKey},
      {"openApplication", OpenApplication},
  };
  return calls;
}

}  // namespace hsm
