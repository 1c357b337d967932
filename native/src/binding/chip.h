// The JavaScript face of one Module: a thin ObjectWrap whose methods mirror the C_
// functions with numeric handles. Calls that pkcs11js offers asynchronously take an
// optional trailing callback and then run on the libuv pool.
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "../token/module.h"
#include "args.h"

namespace hsm {

// What a call produces, filled by the work and turned into a JavaScript value after.
constexpr size_t kSyncOnly = static_cast<size_t>(-1);

struct Outcome {
  size_t length = 0;
  CK_ULONG first = 0, second = 0;
};

class Chip : public Napi::ObjectWrap<Chip> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Chip(const Napi::CallbackInfo& info);
  Module& module() { return *module_; }

 private:
  // Sync: lock, work, throw on failure. Async (a Function at cbIndex): mark the session
  // busy, keep the argument objects alive, run the work on the pool, call back.
  template <typename Work, typename Result>
  Napi::Value run(const Napi::CallbackInfo& info, size_t cbIndex, CK_ULONG session, const char* method, Work work,
                  Result result);

  // Slots, tokens, sessions, login (chip_token.cc)
  Napi::Value GetSlotList(const Napi::CallbackInfo& info);
  Napi::Value GetTokenInfo(const Napi::CallbackInfo& info);
  Napi::Value GetMechanismList(const Napi::CallbackInfo& info);
  Napi::Value GetMechanismInfo(const Napi::CallbackInfo& info);
  Napi::Value InitToken(const Napi::CallbackInfo& info);
  Napi::Value OpenSession(const Napi::CallbackInfo& info);
  Napi::Value CloseSession(const Napi::CallbackInfo& info);
  Napi::Value CloseAllSessions(const Napi::CallbackInfo& info);
  Napi::Value GetSessionInfo(const Napi::CallbackInfo& info);
  Napi::Value Login(const Napi::CallbackInfo& info);
  Napi::Value Logout(const Napi::CallbackInfo& info);
  Napi::Value InitPin(const Napi::CallbackInfo& info);
  Napi::Value SetPin(const Napi::CallbackInfo& info);
  Napi::Value SeedRandom(const Napi::CallbackInfo& info);
  Napi::Value GenerateRandom(const Napi::CallbackInfo& info);
  // Objects (chip_token.cc)
  Napi::Value CreateObject(const Napi::CallbackInfo& info);
  Napi::Value CopyObject(const Napi::CallbackInfo& info);
  Napi::Value DestroyObject(const Napi::CallbackInfo& info);
  Napi::Value GetObjectSize(const Napi::CallbackInfo& info);
  Napi::Value GetAttributeValue(const Napi::CallbackInfo& info);
  Napi::Value SetAttributeValue(const Napi::CallbackInfo& info);
  Napi::Value FindObjectsInit(const Napi::CallbackInfo& info);
  Napi::Value FindObjects(const Napi::CallbackInfo& info);
  Napi::Value FindObjectsFinal(const Napi::CallbackInfo& info);
  Napi::Value ExportMasked(const Napi::CallbackInfo& info);
  Napi::Value ImportMasked(const Napi::CallbackInfo& info);
  Napi::Value ShareMaskingKey(const Napi::CallbackInfo& info);
  // Crypto (chip_crypto.cc)
  Napi::Value EncryptInit(const Napi::CallbackInfo& info);
  Napi::Value Encrypt(const Napi::CallbackInfo& info);
  Napi::Value EncryptUpdate(const Napi::CallbackInfo& info);
  Napi::Value EncryptFinal(const Napi::CallbackInfo& info);
  Napi::Value DecryptInit(const Napi::CallbackInfo& info);
  Napi::Value Decrypt(const Napi::CallbackInfo& info);
  Napi::Value DecryptUpdate(const Napi::CallbackInfo& info);
  Napi::Value DecryptFinal(const Napi::CallbackInfo& info);
  Napi::Value DigestInit(const Napi::CallbackInfo& info);
  Napi::Value Digest(const Napi::CallbackInfo& info);
  Napi::Value DigestUpdate(const Napi::CallbackInfo& info);
  Napi::Value DigestKey(const Napi::CallbackInfo& info);
  Napi::Value DigestFinal(const Napi::CallbackInfo& info);
  Napi::Value SignInit(const Napi::CallbackInfo& info);
  Napi::Value Sign(const Napi::CallbackInfo& info);
  Napi::Value SignUpdate(const Napi::CallbackInfo& info);
  Napi::Value SignFinal(const Napi::CallbackInfo& info);
  Napi::Value VerifyInit(const Napi::CallbackInfo& info);
  Napi::Value Verify(const Napi::CallbackInfo& info);
  Napi::Value VerifyUpdate(const Napi::CallbackInfo& info);
  Napi::Value VerifyFinal(const Napi::CallbackInfo& info);
  Napi::Value GenerateKey(const Napi::CallbackInfo& info);
  Napi::Value GenerateKeyPair(const Napi::CallbackInfo& info);
  Napi::Value WrapKey(const Napi::CallbackInfo& info);
  Napi::Value UnwrapKey(const Napi::CallbackInfo& info);
  Napi::Value DeriveKey(const Napi::CallbackInfo& info);

  std::unique_ptr<Module> module_;
};

template <typename Work, typename Result>
class CallWorker : public Napi::AsyncWorker {
 public:
  CallWorker(Napi::Function callback, Chip& chip, Napi::Object chipObject, CK_ULONG session, const char* method,
             Work work, Result result)
      : Napi::AsyncWorker(callback), chip_(chip), session_(session), method_(method), work_(std::move(work)),
        result_(std::move(result)) {
    keep_.push_back(Napi::Persistent(Napi::Value(chipObject)));
  }
  void keep(Napi::Value v) { keep_.push_back(Napi::Persistent(v)); }
  void Execute() override {
    std::lock_guard<std::mutex> guard(chip_.module().lock());
    chip_.module().beginAsync(session_);
    rv_ = work_(outcome_);
    chip_.module().endAsync();
  }
  void OnOK() override {
    Napi::Env env = Env();
    {
      std::lock_guard<std::mutex> guard(chip_.module().lock());
      chip_.module().clearBusy(session_);
    }
    if (rv_ != CKR_OK) {
      Callback().Call({makePkcs11Error(env, rv_, method_)});
    } else {
      Callback().Call({env.Null(), result_(env, outcome_)});
    }
  }

 private:
  Chip& chip_;
  CK_ULONG session_;
  const char* method_;
  Work work_;
  Result result_;
  Outcome outcome_;
  CK_RV rv_ = CKR_OK;
  std::vector<Napi::Reference<Napi::Value>> keep_;
};

template <typename Work, typename Result>
Napi::Value Chip::run(const Napi::CallbackInfo& info, size_t cbIndex, CK_ULONG session, const char* method, Work work,
                      Result result) {
  Napi::Env env = info.Env();
  if (info.Length() > cbIndex && info[cbIndex].IsFunction()) {
    Napi::Function callback = info[cbIndex].As<Napi::Function>();
    CK_RV rv;
    {
      std::lock_guard<std::mutex> guard(module_->lock());
      rv = module_->markBusy(session);
    }
    if (rv != CKR_OK) {
      // Still asynchronous: the callback never runs inside the caller's stack frame.
      auto failed = [rv](Outcome&) { return rv; };
      auto* worker = new CallWorker<decltype(failed), Result>(callback, *this, Value(), 0, method, failed, result);
      worker->Queue();
      return env.Undefined();
    }
    auto* worker = new CallWorker<Work, Result>(callback, *this, Value(), session, method, std::move(work),
                                                std::move(result));
    for (size_t i = 0; i < cbIndex; ++i)
      if (info[i].IsObject()) worker->keep(info[i]);
    worker->Queue();
    return env.Undefined();
  }
  Outcome outcome;
  CK_RV rv;
  {
    std::lock_guard<std::mutex> guard(module_->lock());
    rv = work(outcome);
  }
  if (rv != CKR_OK) throwPkcs11(env, rv, method);
  return result(env, outcome);
}

}  // namespace hsm
