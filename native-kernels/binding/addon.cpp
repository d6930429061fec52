// Module registration only; each kernel family registers its functions from its own file.
#include "addon.h"

namespace qlb {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  exports.Set("abiVersion", Napi::Number::New(env, kAbiVersion));
  RegisterCancelToken(env, exports);
  RegisterSystem(env, exports);
  RegisterMoments(env, exports);
  RegisterConvert(env, exports);
  RegisterEigen(env, exports);
  RegisterLinalg(env, exports);
  RegisterQuant(env, exports);
  RegisterTransform(env, exports);
  RegisterChannelStats(env, exports);
  RegisterGptq(env, exports);
  return exports;
}

}  // namespace qlb

namespace {
Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return qlb::Init(env, exports); }
}  // namespace

NODE_API_MODULE(quantlens_kernels, InitModule)
