// Orthogonal transforms (core/hadamard.h, core/orthogonal.h). Arguments are validated in
// TypeScript (kernels/transforms.ts) first; the checks here keep a direct caller safe.
//
// fwht(x, rows, n, cancel?)  -> Promise<void>       x Float32Array [rows·n], in place
// fwhtSync(x, rows, n)       -> undefined
// orthoApply(x, rows, n, seed, kind, inverse, cancel?) -> Promise<void>   kind "hadamard"|"kron"|"auto"
// orthoApplySync(x, rows, n, seed, kind, inverse)      -> undefined
// orthoFactors(n, seed, kind) -> [{kind: "hadamard", size, signs: Float32Array}
//                                | {kind: "dense", size, reflectors: Float64Array, d: Float64Array}]
#include <memory>

#include "../core/hadamard.h"
#include "../core/orthogonal.h"
#include "addon.h"
#include "args.h"
#include "promise_worker.h"

namespace qlb {

namespace {

constexpr int64_t kMaxDim = int64_t{1} << 40;
constexpr int64_t kMaxN = int64_t{1} << 31;

struct XArgs {
  ArrayArg<float> x;
  size_t rows, n;
};

XArgs ParseX(const Napi::CallbackInfo& info, const char* fn) {
  XArgs a{Float32ArrayArg(info, 0, fn, "x"), static_cast<size_t>(IntegerArg(info, 1, fn, "rows", 0, kMaxDim)),
          static_cast<size_t>(IntegerArg(info, 2, fn, "n", 1, kMaxN))};
  if (a.x.length != a.rows * a.n)
    ThrowRangeError(info.Env(), fn, "x",
                    "has length " + std::to_string(a.x.length) + ", expected rows·n = " + std::to_string(a.rows * a.n));
  return a;
}

ql::OrthoKind KindArg(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  const std::string kind = StringArg(info, index, fn, "kind");
  if (kind == "hadamard") return ql::OrthoKind::Hadamard;
  if (kind == "kron") return ql::OrthoKind::Kron;
  if (kind == "auto") return ql::OrthoKind::Auto;
  ThrowRangeError(info.Env(), fn, "kind", "must be hadamard, kron or auto, got '" + kind + "'");
}

class FwhtWorker : public PromiseWorker {
 public:
  FwhtWorker(Napi::Env env, const XArgs& a, std::shared_ptr<ql::CancelFlag> cancel)
      : PromiseWorker(env, "quantlens:fwht", std::move(cancel)), x_(a.x.data), rows_(a.rows), n_(a.n) {
    Keep(a.x.array);
  }

 private:
  void Run(const ql::CancelFlag* cancel) override { ql::fwht(x_, rows_, n_, cancel); }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }
  float* x_;
  size_t rows_, n_;
};

class OrthoWorker : public PromiseWorker {
 public:
  OrthoWorker(Napi::Env env, const XArgs& a, uint32_t seed, ql::OrthoKind kind, bool inverse,
              std::shared_ptr<ql::CancelFlag> cancel)
      : PromiseWorker(env, "quantlens:orthoApply", std::move(cancel)),
        x_(a.x.data),
        rows_(a.rows),
        n_(a.n),
        seed_(seed),
        kind_(kind),
        inverse_(inverse) {
    Keep(a.x.array);
  }

 private:
  void Run(const ql::CancelFlag* cancel) override {
    const ql::OrthoTransform t = ql::makeOrthoTransform(n_, seed_, kind_);
    ql::applyOrtho(t, x_, rows_, inverse_, cancel);
  }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }
  float* x_;
  size_t rows_, n_;
  uint32_t seed_;
  ql::OrthoKind kind_;
  bool inverse_;
};

Napi::Value Fwht(const Napi::CallbackInfo& info) {
  const XArgs a = ParseX(info, "fwht");
  if (!ql::isPowerOfTwo(a.n)) ThrowRangeError(info.Env(), "fwht", "n", "must be a power of two");
  return (new FwhtWorker(info.Env(), a, CancelArg(info, 3, "fwht")))->Start();
}

Napi::Value FwhtSync(const Napi::CallbackInfo& info) {
  const XArgs a = ParseX(info, "fwhtSync");
  if (!ql::isPowerOfTwo(a.n)) ThrowRangeError(info.Env(), "fwhtSync", "n", "must be a power of two");
  ql::fwht(a.x.data, a.rows, a.n);
  return info.Env().Undefined();
}

struct OrthoArgs {
  XArgs x;
  uint32_t seed;
  ql::OrthoKind kind;
  bool inverse;
};

OrthoArgs ParseOrtho(const Napi::CallbackInfo& info, const char* fn) {
  OrthoArgs a{ParseX(info, fn), static_cast<uint32_t>(IntegerArg(info, 3, fn, "seed", 0, 0xFFFFFFFFll)),
              KindArg(info, 4, fn), false};
  if (!info[5].IsBoolean()) ThrowTypeError(info.Env(), fn, "inverse", "must be a boolean");
  a.inverse = info[5].As<Napi::Boolean>().Value();
  ql::orthoPlan(a.x.n, a.kind);  // unsupported n: throw here, synchronously
  return a;
}

Napi::Value OrthoApply(const Napi::CallbackInfo& info) {
  const OrthoArgs a = ParseOrtho(info, "orthoApply");
  return (new OrthoWorker(info.Env(), a.x, a.seed, a.kind, a.inverse, CancelArg(info, 6, "orthoApply")))->Start();
}

Napi::Value OrthoApplySync(const Napi::CallbackInfo& info) {
  const OrthoArgs a = ParseOrtho(info, "orthoApplySync");
  const ql::OrthoTransform t = ql::makeOrthoTransform(a.x.n, a.seed, a.kind);
  ql::applyOrtho(t, a.x.x.data, a.x.rows, a.inverse);
  return info.Env().Undefined();
}

Napi::Value OrthoFactors(const Napi::CallbackInfo& info) {
  const char* fn = "orthoFactors";
  Napi::Env env = info.Env();
  const size_t n = static_cast<size_t>(IntegerArg(info, 0, fn, "n", 1, kMaxN));
  const uint32_t seed = static_cast<uint32_t>(IntegerArg(info, 1, fn, "seed", 0, 0xFFFFFFFFll));
  const ql::OrthoTransform t = ql::makeOrthoTransform(n, seed, KindArg(info, 2, fn));
  Napi::Array out = Napi::Array::New(env, t.factors.size());
  for (size_t i = 0; i < t.factors.size(); i++) {
    const ql::OrthoFactor& f = t.factors[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("size", static_cast<double>(f.size));
    if (f.type == ql::OrthoFactor::Type::Hadamard) {
      o.Set("kind", "hadamard");
      Napi::Float32Array signs = Napi::Float32Array::New(env, f.signs.size());
      std::copy(f.signs.begin(), f.signs.end(), signs.Data());
      o.Set("signs", signs);
    } else {
      o.Set("kind", "dense");
      Napi::Float64Array v = Napi::Float64Array::New(env, f.reflectors.size());
      std::copy(f.reflectors.begin(), f.reflectors.end(), v.Data());
      Napi::Float64Array d = Napi::Float64Array::New(env, f.d.size());
      std::copy(f.d.begin(), f.d.end(), d.Data());
      o.Set("reflectors", v);
      o.Set("d", d);
    }
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

}  // namespace

void RegisterTransform(Napi::Env env, Napi::Object exports) {
  exports.Set("fwht", Napi::Function::New(env, Fwht, "fwht"));
  exports.Set("fwhtSync", Napi::Function::New(env, FwhtSync, "fwhtSync"));
  exports.Set("orthoApply", Napi::Function::New(env, OrthoApply, "orthoApply"));
  exports.Set("orthoApplySync", Napi::Function::New(env, OrthoApplySync, "orthoApplySync"));
  exports.Set("orthoFactors", Napi::Function::New(env, OrthoFactors, "orthoFactors"));
}

}  // namespace qlb
