// PromiseWorker: the one way a kernel runs off the JS thread.
//
//   JS thread:    parse args -> new XWorker(env, args...) -> worker->Start() returns a Promise
//   libuv thread: Run(cancel)            plain C++ (core/), no napi, no JS
//   JS thread:    Result(env) -> resolve, or reject: Error("cancelled") with
//                 code ERR_QUANTLENS_CANCELLED, or the kernel's message with ERR_QUANTLENS_NATIVE
//
// Every JS object the kernel reads or writes is passed to Keep() so it stays alive (and its
// memory stays put) until the promise settles. New kernels subclass this and add a Register*
// function; nothing else changes.
#pragma once

#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "../core/cancel.h"

namespace qlb {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  /** Queue the work; the worker deletes itself after settling the returned promise. */
  Napi::Promise Start();

 protected:
  PromiseWorker(Napi::Env env, const char* name, std::shared_ptr<ql::CancelFlag> cancel);

  void Keep(const Napi::Object& object);
  /** On a libuv thread: the kernel call. Throw ql::Cancelled (the kernels do) or std::exception. */
  virtual void Run(const ql::CancelFlag* cancel) = 0;
  /** On the JS thread, after Run() returned: the value the promise resolves to. */
  virtual Napi::Value Result(Napi::Env env) = 0;

 private:
  void Execute() final;
  void OnOK() final;
  void OnError(const Napi::Error& error) final;

  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> kept_;
  std::shared_ptr<ql::CancelFlag> cancel_;
  bool cancelled_ = false;
};

}  // namespace qlb
