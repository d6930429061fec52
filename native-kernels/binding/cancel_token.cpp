#include "cancel_token.h"

#include "addon.h"
#include "args.h"

namespace qlb {

namespace {

// Marks objects made by this class, so FlagOf never unwraps a look-alike (napi type tags).
constexpr napi_type_tag kCancelTokenTag = {0x7a1c0e5b3d9f4a21ULL, 0x9c4e2f8a6b1d7e35ULL};

}  // namespace

Napi::Function CancelToken::DefineClass(Napi::Env env) {
  return ObjectWrap<CancelToken>::DefineClass(
      env, "CancelToken",
      {InstanceMethod<&CancelToken::Cancel>("cancel"), InstanceAccessor<&CancelToken::IsCancelled>("cancelled")});
}

CancelToken::CancelToken(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<CancelToken>(info), flag_(std::make_shared<ql::CancelFlag>(false)) {
  info.This().As<Napi::Object>().TypeTag(&kCancelTokenTag);
}

Napi::Value CancelToken::Cancel(const Napi::CallbackInfo& info) {
  flag_->store(true, std::memory_order_relaxed);
  return info.Env().Undefined();
}

Napi::Value CancelToken::IsCancelled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), flag_->load(std::memory_order_relaxed));
}

std::shared_ptr<ql::CancelFlag> CancelToken::FlagOf(Napi::Value value) {
  if (!value.IsObject()) return nullptr;
  Napi::Object obj = value.As<Napi::Object>();
  if (!obj.CheckTypeTag(&kCancelTokenTag)) return nullptr;
  return Unwrap(obj)->flag_;
}

std::shared_ptr<ql::CancelFlag> CancelArg(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  const Napi::Value v = info[index];
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  std::shared_ptr<ql::CancelFlag> flag = CancelToken::FlagOf(v);
  if (!flag) ThrowTypeError(info.Env(), fn, "cancel", "must be a CancelToken made by this addon, or undefined");
  return flag;
}

void RegisterCancelToken(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = CancelToken::DefineClass(env);
  env.GetInstanceData<AddonData>()->cancelTokenClass = Napi::Persistent(cls);
  exports.Set("CancelToken", cls);
}

}  // namespace qlb
