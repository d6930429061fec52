// moments(x, cancel?) -> Promise<Moments>   (AsyncWorker; any size)
// momentsSync(x) -> Moments                  (blocks the JS thread; for small arrays)
#include "../core/moments.h"
#include "addon.h"
#include "args.h"
#include "promise_worker.h"

namespace qlb {

namespace {

Napi::Object MomentsToJs(Napi::Env env, const ql::Moments& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("n", m.n);
  o.Set("mean", m.mean);
  o.Set("m2", m.m2);
  o.Set("m3", m.m3);
  o.Set("m4", m.m4);
  o.Set("absmax", m.absmax);
  o.Set("min", m.min);
  o.Set("max", m.max);
  o.Set("nonFinite", m.nonFinite);
  return o;
}

class MomentsWorker : public PromiseWorker {
 public:
  MomentsWorker(Napi::Env env, const ArrayArg<float>& x, std::shared_ptr<ql::CancelFlag> cancel)
      : PromiseWorker(env, "quantlens:moments", std::move(cancel)), x_(x.data), n_(x.length) {
    Keep(x.array);
  }

 private:
  void Run(const ql::CancelFlag* cancel) override { result_ = ql::moments(x_, n_, cancel); }
  Napi::Value Result(Napi::Env env) override { return MomentsToJs(env, result_); }

  const float* x_;
  size_t n_;
  ql::Moments result_;
};

Napi::Value Moments(const Napi::CallbackInfo& info) {
  const ArrayArg<float> x = Float32ArrayArg(info, 0, "moments", "x");
  std::shared_ptr<ql::CancelFlag> cancel = CancelArg(info, 1, "moments");
  return (new MomentsWorker(info.Env(), x, std::move(cancel)))->Start();
}

Napi::Value MomentsSync(const Napi::CallbackInfo& info) {
  const ArrayArg<float> x = Float32ArrayArg(info, 0, "momentsSync", "x");
  return MomentsToJs(info.Env(), ql::moments(x.data, x.length));
}

}  // namespace

void RegisterMoments(Napi::Env env, Napi::Object exports) {
  exports.Set("moments", Napi::Function::New(env, Moments, "moments"));
  exports.Set("momentsSync", Napi::Function::New(env, MomentsSync, "momentsSync"));
  exports.Set("momentsBlock", Napi::Number::New(env, static_cast<double>(ql::kMomentsBlock)));
}

}  // namespace qlb
