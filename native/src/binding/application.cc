// Applications: the object an application holds is a frozen bag of the PKCS#11 calls bound to
// its own application number (kept here, in native memory). Its calls reach only the sessions
// it opened; nothing of the device (principals, masked records, the masking key) is on it.
// Also the worker-owned buffers of asynchronous calls.
#include "chip.h"

namespace hsm {

ApplicationLease::~ApplicationLease() {
  // The application's object is gone: nobody can use its sessions any more, so close them.
  CallLock guard(*module, application);
  module->closeApplication(application);
}

void attachCalls(Napi::Env env, Napi::Object target, const CallerRef& caller,
                 std::initializer_list<const std::vector<CallEntry>*> tables) {
  for (const auto* table : tables) {
    for (const CallEntry& call : *table) {
      auto* ref = new CallerRef(caller);
      Napi::Function fn = Napi::Function::New(env, call.function, call.name, ref);
      fn.AddFinalizer([](Napi::Env, CallerRef* r) { delete r; }, ref);
      target.DefineProperty(Napi::PropertyDescriptor::Value(call.name, fn, napi_default));
    }
  }
}

Napi::Value OpenApplication(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ModuleRef& module = moduleRefOf(info);
  CK_ULONG id;
  {
    CallLock guard(info);
    id = module->newApplication();
  }
  auto caller = std::make_shared<Caller>();
  caller->module = module;
  caller->application = id;
  caller->lease = std::make_shared<ApplicationLease>(module, id);
  Napi::Object application = Napi::Object::New(env);
  attachCalls(env, application, caller, {&tokenCalls(), &cryptoCalls()});
  application.Freeze();
  return application;
}

AsyncIoRef asyncIo(const Napi::CallbackInfo& info, size_t cbIndex, std::initializer_list<ByteView*> inputs,
                   Mechanism* mechanism, MutableView* out, size_t outIndex) {
  if (!isAsyncCall(info, cbIndex)) return nullptr;
  auto io = std::make_shared<AsyncIo>();
  io->held.reserve(inputs.size() + 2);
  for (ByteView* view : inputs) *view = io->hold(*view);
  if (mechanism != nullptr) {
    mechanism->bytesA = io->hold(mechanism->bytesA);
    mechanism->bytesB = io->hold(mechanism->bytesB);
  }
  if (out != nullptr) {
    // One byte at least, so that an empty output is still a (too small) buffer, never a length query.
    io->output.assign(out->size ? out->size : 1, 0);
    io->outputSize = out->size;
    io->hasOutput = true;
    io->outputIndex = outIndex;
    out->data = io->output.data();
  }
  return io;
}

}  // namespace hsm
