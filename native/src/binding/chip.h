// The JavaScript face of one Module: a thin ObjectWrap whose methods mirror the C_
// functions with numeric handles. Calls that pkcs11js offers asynchronously take an
// optional trailing callback and then run on the libuv pool.
#pragma once
#include <napi.h>

#include <cstring>
#include <initializer_list>
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

// An application's hold on its module: when the last call function (or worker) of the
// application goes, its sessions close.
struct ApplicationLease {
  ModuleRef module;
  CK_ULONG application;
  ApplicationLease(ModuleRef m, CK_ULONG a) : module(std::move(m)), application(a) {}
  ~ApplicationLease();
};

// Who a call acts for: the device (any session) or one application (its own sessions only).
// The application number lives here, in native memory, out of JavaScript's reach.
struct Caller {
  ModuleRef module;
  CK_ULONG application = Module::kAnyApplication;
  std::shared_ptr<ApplicationLease> lease;  // null for the device
};
using CallerRef = std::shared_ptr<Caller>;

// The module a call serves: each C_ call is a plain function created per chip (or per
// application) with its Caller as data, so a call needs no ObjectWrap unwrap.
inline const CallerRef& callerOf(const Napi::CallbackInfo& info) { return *static_cast<CallerRef*>(info.Data()); }
inline Module& moduleOf(const Napi::CallbackInfo& info) { return *callerOf(info)->module; }
inline const ModuleRef& moduleRefOf(const Napi::CallbackInfo& info) { return callerOf(info)->module; }
inline CK_ULONG applicationOf(const Napi::CallbackInfo& info) { return callerOf(info)->application; }

// Locks the module for one call and tells it who is calling.
class CallLock {
 public:
  CallLock(Module& module, CK_ULONG caller) : guard_(module.lock()) { module.setCaller(caller); }
  explicit CallLock(const Napi::CallbackInfo& info) : CallLock(moduleOf(info), applicationOf(info)) {}

 private:
  std::lock_guard<std::mutex> guard_;
};


// An asynchronous call's own copies of what it reads and writes: the caller's ArrayBuffers
// may be detached (transferred) and freed while the worker runs.
struct AsyncIo {
  std::vector<Bytes> held;
  Bytes output;
  size_t outputSize = 0;  // the caller's buffer length when the call began
  size_t outputIndex = 0;
  bool hasOutput = false;
  ByteView hold(ByteView v) {
    if (v.size == 0) return ByteView();
    held.emplace_back(v.data, v.data + v.size);
    return ByteView(held.back().data(), held.back().size());
  }
};
using AsyncIoRef = std::shared_ptr<AsyncIo>;
// Null for a synchronous call (a Function at cbIndex makes it asynchronous). Otherwise the views
// given are redirected to worker-owned copies, and `out` (if any, argument outIndex) to a
// worker-owned buffer copied back on completion.
AsyncIoRef asyncIo(const Napi::CallbackInfo& info, size_t cbIndex, std::initializer_list<ByteView*> inputs,
                   Mechanism* mechanism = nullptr, MutableView* out = nullptr, size_t outIndex = 0);
inline bool isAsyncCall(const Napi::CallbackInfo& info, size_t cbIndex) {
  return cbIndex != static_cast<size_t>(-1) && info.Length() > cbIndex && info[cbIndex].IsFunction();
}

using CallFunction = Napi::Value (*)(const Napi::CallbackInfo&);
struct CallEntry {
  const char* name;
  CallFunction function;
};
const std::vector<CallEntry>& tokenCalls();   // chip_token.cc: slots, sessions, login, objects
const std::vector<CallEntry>& chipTokenCalls();  // chip_token.cc: the device's own (masked records, applications)
const std::vector<CallEntry>& cryptoCalls();  // chip_crypto.cc: operations and keys
const std::vector<CallEntry>& deviceCalls();  // chip_device.cc: principals, sharing, masking key file
// application.cc: the device's openApplication() (a new application's PKCS#11 calls).
Napi::Value OpenApplication(const Napi::CallbackInfo& info);

// Attaches every call of `tables` to `target` as an own, read-only method acting for `caller`.
void attachCalls(Napi::Env env, Napi::Object target, const CallerRef& caller,
                 std::initializer_list<const std::vector<CallEntry>*> tables);

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
    CallLock guard(info);
    rv = call(module, out);
  }
  if (rv != CKR_OK) throwPkcs11(info.Env(), rv, method);
  return Napi::Buffer<uint8_t>::Copy(info.Env(), out.data(), out.size());
}

template <typename Work, typename Result>
class CallWorker : public Napi::AsyncWorker {
 public:
  CallWorker(Napi::Function callback, CallerRef caller, CK_ULONG session, const char* method, Work work, Result result,
             AsyncIoRef io)
      : Napi::AsyncWorker(callback), caller_(std::move(caller)), module_(caller_->module), session_(session),
        method_(method), work_(std::move(work)), result_(std::move(result)), io_(std::move(io)) {}
  void keep(Napi::Value v) { output_ = Napi::Persistent(v); }
  void Execute() override {
    CallLock guard(*module_, caller_->application);
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
      return;
    }
    if (io_ && io_->hasOutput && !copyOutputBack(env)) {
      Callback().Call({Napi::TypeError::New(env, std::string(method_) +
                                                     ": the output buffer was detached or shrunk before the call completed")
                           .Value()});
      return;
    }
    Callback().Call({env.Null(), result_(env, outcome_)});
  }

 private:
  // The caller's output buffer, looked up afresh: written only if still attached and big enough.
  bool copyOutputBack(Napi::Env env) {
    if (output_.IsEmpty()) return false;
    napi_typedarray_type type;
    napi_value arraybuffer;
    size_t length = 0, offset = 0;
    void* data = nullptr;
    if (napi_get_typedarray_info(env, output_.Value(), &type, &length, &data, &arraybuffer, &offset) != napi_ok)
      return false;
    bool detached = false;
    if (napi_is_detached_arraybuffer(env, arraybuffer, &detached) != napi_ok || detached) return false;
    size_t written = outcome_.length < io_->outputSize ? outcome_.length : io_->outputSize;
    if (data == nullptr || length < written) return written == 0;
    if (written) memcpy(data, io_->output.data(), written);
    return true;
  }

  CallerRef caller_;  // keeps the module (and the application's sessions) alive until the callback has run
  ModuleRef module_;
  CK_ULONG session_;
  const char* method_;
  Work work_;
  Result result_;
  AsyncIoRef io_;
  Outcome outcome_;
  CK_RV rv_ = CKR_OK;
  Napi::Reference<Napi::Value> output_;
};

// Sync: lock, work, throw on failure. Async (a Function at cbIndex): mark the session busy,
// keep the argument objects alive, run the work on the libuv pool, call back.
// An asynchronous call reads and writes only worker-owned memory (see AsyncIo): pass the io
// that asyncIo() made for it, before building `work` from the redirected views.
template <typename Work, typename Result>
Napi::Value run(const Napi::CallbackInfo& info, size_t cbIndex, CK_ULONG session, const char* method, Work work,
                Result result, AsyncIoRef io = nullptr) {
  Napi::Env env = info.Env();
  const CallerRef& caller = callerOf(info);
  Module& module = *caller->module;
  if (isAsyncCall(info, cbIndex)) {
    Napi::Function callback = info[cbIndex].As<Napi::Function>();
    CK_RV rv;
    {
      CallLock guard(module, caller->application);
      rv = module.markBusy(session);
    }
    if (rv != CKR_OK) {
      // Still asynchronous: the callback never runs inside the caller's stack frame.
      auto failed = [rv](Outcome&) { return rv; };
      auto* worker = new CallWorker<decltype(failed), Result>(callback, caller, 0, method, failed, result, nullptr);
      worker->Queue();
      return env.Undefined();
    }
    auto* worker =
        new CallWorker<Work, Result>(callback, caller, session, method, std::move(work), std::move(result), io);
    if (io && io->hasOutput) worker->keep(info[io->outputIndex]);
    worker->Queue();
    return env.Undefined();
  }
  Outcome outcome;
  CK_RV rv;
  {
    CallLock guard(module, caller->application);
    rv = work(outcome);
  }
  if (rv != CKR_OK) throwPkcs11(env, rv, method);
  return result(env, outcome);
}

}  // namespace hsm
