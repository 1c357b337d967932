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

using ModuleRef = std::shared_ptr<Module>;

// The module a call serves: each C_ call is a plain function created per chip with the
// module as its data, so a call needs no ObjectWrap unwrap (a private-symbol lookup).
inline Module& moduleOf(const Napi::CallbackInfo& info) { return **static_cast<ModuleRef*>(info.Data()); }
inline const ModuleRef& moduleRefOf(const Napi::CallbackInfo& info) { return *static_cast<ModuleRef*>(info.Data()); }

using CallFunction = Napi::Value (*)(const Napi::CallbackInfo&);
struct CallEntry {
  const char* name;
  CallFunction function;
};
const std::vector<CallEntry>& tokenCalls();   // chip_token.cc: slots, sessions, login, objects
const std::vector<CallEntry>& cryptoCalls();  // chip_crypto.cc: operations and keys
const std::vector<CallEntry>& deviceCalls();  // chip_device.cc: principals, sharing, masking key file

// How a call's Outcome becomes its JavaScript result (shared by every binding file).
inline Napi::Value noResult(Napi::Env env, const Outcome&) { return env.Undefined(); }
inline Napi::Value handleResult(Napi::Env env, const Outcome& o) { return Napi::Number::New(env, static_cast<double>(o.first)); }
inline Napi::Value lengthResult(Napi::Env env, const Outcome& o) { return Napi::Number::New(env, static_cast<double>(o.length)); }

class Chip : public Napi::ObjectWrap<Chip> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Chip(const Napi::CallbackInfo& info);
  ~Chip() override;
  Module& module() { return *module_; }
  // What a chip holds outside the JavaScript heap (tokens, DRBG and cipher contexts), told to V8
  // so a process that makes many chips (the cluster simulator) collects old ones in time.
  static constexpr int64_t kExternalBytes = 1 << 20;

 private:
  ModuleRef module_;
};

// A synchronous call that produces bytes: lock, call, throw on failure, return them in a Buffer.
template <typename Call>
Napi::Value bytesCall(const Napi::CallbackInfo& info, const char* method, Call call) {
  Module& module = moduleOf(info);
  Bytes out;
  CK_RV rv;
  {
    std::lock_guard<std::mutex> guard(module.lock());
    rv = call(module, out);
  }
  if (rv != CKR_OK) throwPkcs11(info.Env(), rv, method);
  return Napi::Buffer<uint8_t>::Copy(info.Env(), out.data(), out.size());
}

template <typename Work, typename Result>
class CallWorker : public Napi::AsyncWorker {
 public:
  CallWorker(Napi::Function callback, ModuleRef module, CK_ULONG session, const char* method, Work work, Result result)
      : Napi::AsyncWorker(callback), module_(std::move(module)), session_(session), method_(method),
        work_(std::move(work)), result_(std::move(result)) {}
  void keep(Napi::Value v) { keep_.push_back(Napi::Persistent(v)); }
  void Execute() override {
    std::lock_guard<std::mutex> guard(module_->lock());
    module_->beginAsync(session_);
    rv_ = work_(outcome_);
    module_->endAsync();
  }
  void OnOK() override {
    Napi::Env env = Env();
    {
      std::lock_guard<std::mutex> guard(module_->lock());
      module_->clearBusy(session_);
    }
    if (rv_ != CKR_OK) {
      Callback().Call({makePkcs11Error(env, rv_, method_)});
    } else {
      Callback().Call({env.Null(), result_(env, outcome_)});
    }
  }

 private:
  ModuleRef module_;  // keeps the module alive until the callback has run
  CK_ULONG session_;
  const char* method_;
  Work work_;
  Result result_;
  Outcome outcome_;
  CK_RV rv_ = CKR_OK;
  std::vector<Napi::Reference<Napi::Value>> keep_;
};

// Sync: lock, work, throw on failure. Async (a Function at cbIndex): mark the session busy,
// keep the argument objects alive, run the work on the libuv pool, call back.
template <typename Work, typename Result>
Napi::Value run(const Napi::CallbackInfo& info, size_t cbIndex, CK_ULONG session, const char* method, Work work,
                Result result) {
  Napi::Env env = info.Env();
  const ModuleRef& module = moduleRefOf(info);
  if (info.Length() > cbIndex && info[cbIndex].IsFunction()) {
    Napi::Function callback = info[cbIndex].As<Napi::Function>();
    CK_RV rv;
    {
      std::lock_guard<std::mutex> guard(module->lock());
      rv = module->markBusy(session);
    }
    if (rv != CKR_OK) {
      // Still asynchronous: the callback never runs inside the caller's stack frame.
      auto failed = [rv](Outcome&) { return rv; };
      auto* worker = new CallWorker<decltype(failed), Result>(callback, module, 0, method, failed, result);
      worker->Queue();
      return env.Undefined();
    }
    auto* worker = new CallWorker<Work, Result>(callback, module, session, method, std::move(work), std::move(result));
    for (size_t i = 0; i < cbIndex; ++i)
      if (info[i].IsObject()) worker->keep(info[i]);
    worker->Queue();
    return env.Undefined();
  }
  Outcome outcome;
  CK_RV rv;
  {
    std::lock_guard<std::mutex> guard(module->lock());
    rv = work(outcome);
  }
  if (rv != CKR_OK) throwPkcs11(env, rv, method);
  return result(env, outcome);
}

}  // namespace hsm
