// CancelToken: a JS object that owns a cancellation flag kernels poll between blocks.
//
//   const token = new addon.CancelToken();
//   const p = addon.moments(x, token);
//   token.cancel();            // p rejects with Error("cancelled"), code ERR_QUANTLENS_CANCELLED
//
// A worker holds the flag by shared_ptr, so the token may be garbage-collected mid-run.
#pragma once

#include <napi.h>

#include <memory>

#include "../core/cancel.h"

namespace qlb {

class CancelToken : public Napi::ObjectWrap<CancelToken> {
 public:
  static Napi::Function DefineClass(Napi::Env env);
  /** The flag of a CancelToken object, or nullptr when `value` is not one. */
  static std::shared_ptr<ql::CancelFlag> FlagOf(Napi::Value value);

  explicit CancelToken(const Napi::CallbackInfo& info);

 private:
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value IsCancelled(const Napi::CallbackInfo& info);

  std::shared_ptr<ql::CancelFlag> flag_;
};

}  // namespace qlb
