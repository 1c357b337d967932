// Binding of the device profile's hooks: principals, ownership and sharing, and the
// masking key file (see token/principals.cc).
#include "chip.h"

namespace hsm {

namespace {

std::string pathArg(const Napi::CallbackInfo& info, size_t index) {
  if (!info[index].IsString()) throwType(info.Env(), "path must be a string");
  std::string path = info[index].As<Napi::String>().Utf8Value();
  if (path.empty() || path.find('\0') != std::string::npos) throwType(info.Env(), "path must be a file path");
  return path;
}
}  // namespace

static Napi::Value LoginPrincipal(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG s = ulongArg(info, 0, "session"), principal = ulongArg(info, 1, "principal");
  return run(info, kSyncOnly, 0, "C_Login", [&](Outcome&) { return mod->loginPrincipal(s, principal); }, noResult);
}

static Napi::Value ShareObject(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG slot = ulongArg(info, 0, "slot"), object = ulongArg(info, 1, "object");
  CK_ULONG acting = ulongArg(info, 2, "actingPrincipal"), principal = ulongArg(info, 3, "principal");
  bool share = info[4].ToBoolean().Value();
  return run(info, kSyncOnly, 0, "shareObject",
             [&](Outcome&) { return mod->shareObject(slot, object, acting, principal, share); }, noResult);
}

static Napi::Value Ownership(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG slot = ulongArg(info, 0, "slot"), object = ulongArg(info, 1, "object");
  CK_ULONG owner = 0;
  std::vector<CK_ULONG> shared;
  CK_RV rv;
  {
    std::lock_guard<std::mutex> guard(mod->lock());
    rv = mod->ownership(slot, object, owner, shared);
  }
  if (rv != CKR_OK) throwPkcs11(info.Env(), rv, "ownership");
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("owner", static_cast<double>(owner));
  result.Set("sharedWith", ulongArray(info.Env(), shared));
  return result;
}

static Napi::Value SetTrusted(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG slot = ulongArg(info, 0, "slot"), object = ulongArg(info, 1, "object");
  bool trusted = info[2].ToBoolean().Value();
  return run(info, kSyncOnly, 0, "setTrusted", [&](Outcome&) { return mod->setTrusted(slot, object, trusted); }, noResult);
}

static Napi::Value RemoveObject(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG slot = ulongArg(info, 0, "slot"), object = ulongArg(info, 1, "object");
  return run(info, kSyncOnly, 0, "removeObject", [&](Outcome&) { return mod->removeObject(slot, object); }, noResult);
}

static Napi::Value SaveMaskingKey(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG slot = ulongArg(info, 0, "slot");
  std::string path = pathArg(info, 1);
  return run(info, kSyncOnly, 0, "saveMaskingKey", [&](Outcome&) { return mod->saveMaskingKey(slot, path); }, noResult);
}

static Napi::Value LoadMaskingKey(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG slot = ulongArg(info, 0, "slot");
  std::string path = pathArg(info, 1);
  return run(info, kSyncOnly, 0, "loadMaskingKey", [&](Outcome&) { return mod->loadMaskingKey(slot, path); }, noResult);
}

static Napi::Value TransportPublicKey(const Napi::CallbackInfo& info) {
  CK_ULONG slot = ulongArg(info, 0, "slot");
  return bytesCall(info, "transportPublicKey", [&](Module& m, Bytes& out) { return m.transportPublicKey(slot, out); });
}

static Napi::Value ExportMaskingKeyFor(const Napi::CallbackInfo& info) {
  CK_ULONG slot = ulongArg(info, 0, "slot");
  ByteView recipient = bytesArg(info, 1, "recipientPublicKey");
  return bytesCall(info, "exportMaskingKeyFor",
                   [&](Module& m, Bytes& out) { return m.exportMaskingKeyFor(slot, recipient, out); });
}

static Napi::Value ImportMaskingKey(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG slot = ulongArg(info, 0, "slot");
  ByteView sealed = bytesArg(info, 1, "sealedMaskingKey");
  return run(info, kSyncOnly, 0, "importMaskingKey", [&](Outcome&) { return mod->importMaskingKey(slot, sealed); },
             noResult);
}

static Napi::Value RevokePrincipal(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG principal = ulongArg(info, 0, "principal");
  return run(info, kSyncOnly, 0, "revokePrincipal", [&](Outcome&) { return mod->revokePrincipal(principal); }, noResult);
}

static Napi::Value DeviceMac(const Napi::CallbackInfo& info) {
  CK_ULONG slot = ulongArg(info, 0, "slot"), purpose = ulongArg(info, 1, "purpose");
  ByteView data = bytesArg(info, 2, "data");
  return bytesCall(info, "deviceMac", [&](Module& m, Bytes& out) { return m.deviceMac(slot, purpose, data, out); });
}

static Napi::Value ExportToken(const Napi::CallbackInfo& info) {
  CK_ULONG slot = ulongArg(info, 0, "slot");
  ByteView binding = bytesArg(info, 1, "binding");
  return bytesCall(info, "exportToken", [&](Module& m, Bytes& out) { return m.exportToken(slot, binding, out); });
}

static Napi::Value ImportToken(const Napi::CallbackInfo& info) {
  Module* mod = &moduleOf(info);
  CK_ULONG slot = ulongArg(info, 0, "slot");
  ByteView record = bytesArg(info, 1, "record");
  ByteView binding = bytesArg(info, 2, "binding");
  return run(info, kSyncOnly, 0, "importToken", [&](Outcome&) { return mod->importToken(slot, record, binding); },
             noResult);
}

const std::vector<CallEntry>& deviceCalls() {
  static const std::vector<CallEntry> calls = {
      {"loginPrincipal", LoginPrincipal},
      {"shareObject", ShareObject},
      {"ownership", Ownership},
      {"setTrusted", SetTrusted},
      {"removeObject", RemoveObject},
      {"saveMaskingKey", SaveMaskingKey},
      {"loadMaskingKey", LoadMaskingKey},
      {"transportPublicKey", TransportPublicKey},
      {"exportMaskingKeyFor", ExportMaskingKeyFor},
      {"importMaskingKey", ImportMaskingKey},
      {"revokePrincipal", RevokePrincipal},
      {"deviceMac", DeviceMac},
      {"exportToken", ExportToken},
      {"importToken", ImportToken},
  };
  return calls;
}

}  // namespace hsm
