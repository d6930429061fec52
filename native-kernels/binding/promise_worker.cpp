#include "promise_worker.h"

#include <new>

namespace qlb {

PromiseWorker::PromiseWorker(Napi::Env env, const char* name, std::shared_ptr<ql::CancelFlag> cancel)
    : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), cancel_(std::move(cancel)) {}

Napi::Promise PromiseWorker::Start() {
  Napi::Promise promise = deferred_.Promise();
  Queue();
  return promise;
}

void PromiseWorker::Keep(const Napi::Object& object) { kept_.push_back(Napi::Persistent(object)); }

void PromiseWorker::Execute() {
  try {
    Run(cancel_.get());
  } catch (const ql::Cancelled&) {
    cancelled_ = true;
    SetError("cancelled");
  } catch (const std::bad_alloc&) {
    SetError("out of memory");
  } catch (const std::exception& e) {
    SetError(e.what()[0] ? e.what() : "native kernel failed");
  }
}

void PromiseWorker::OnOK() {
  try {
    deferred_.Resolve(Result(Env()));
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  }
}

void PromiseWorker::OnError(const Napi::Error& error) {
  Napi::Error e = Napi::Error::New(Env(), error.Message());
  e.Set("code", Napi::String::New(Env(), cancelled_ ? "ERR_QUANTLENS_CANCELLED" : "ERR_QUANTLENS_NATIVE"));
  deferred_.Reject(e.Value());
}

}  // namespace qlb
