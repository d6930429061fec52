// convert(kind, src, dst)                -> undefined       (blocks; uses the thread pool)
// convertAsync(kind, src, dst, cancel?)  -> Promise<void>   (AsyncWorker)
// kind: "f16_to_f32" | "bf16_to_f32" (Uint16Array -> Float32Array)
//       "f32_to_f16" | "f32_to_bf16" (Float32Array -> Uint16Array)
// dst is caller-allocated (no external buffers), same length as src, not overlapping it.
#include <cstring>

#include "../core/convert.h"
#include "addon.h"
#include "args.h"
#include "promise_worker.h"

namespace qlb {

namespace {

struct ConvertArgs {
  ql::Conversion kind;
  const void* src;
  void* dst;
  size_t n;
  Napi::Object srcArray;
  Napi::Object dstArray;
};

ConvertArgs ParseConvertArgs(const Napi::CallbackInfo& info, const char* fn) {
  const std::string kind = StringArg(info, 0, fn, "kind");
  ConvertArgs a{};
  bool fromHalf;
  if (kind == "f16_to_f32") {
    a.kind = ql::Conversion::F16ToF32, fromHalf = true;
  } else if (kind == "bf16_to_f32") {
    a.kind = ql::Conversion::Bf16ToF32, fromHalf = true;
  } else if (kind == "f32_to_f16") {
    a.kind = ql::Conversion::F32ToF16, fromHalf = false;
  } else if (kind == "f32_to_bf16") {
    a.kind = ql::Conversion::F32ToBf16, fromHalf = false;
  } else {
    ThrowRangeError(info.Env(), fn, "kind",
                    "must be one of f16_to_f32, bf16_to_f32, f32_to_f16, f32_to_bf16, got '" + kind + "'");
  }
  size_t dstLength;
  if (fromHalf) {
    const ArrayArg<uint16_t> src = Uint16ArrayArg(info, 1, fn, "src");
    const ArrayArg<float> dst = Float32ArrayArg(info, 2, fn, "dst");
    a.src = src.data, a.n = src.length, a.srcArray = src.array;
    a.dst = dst.data, dstLength = dst.length, a.dstArray = dst.array;
  } else {
    const ArrayArg<float> src = Float32ArrayArg(info, 1, fn, "src");
    const ArrayArg<uint16_t> dst = Uint16ArrayArg(info, 2, fn, "dst");
    a.src = src.data, a.n = src.length, a.srcArray = src.array;
    a.dst = dst.data, dstLength = dst.length, a.dstArray = dst.array;
  }
  if (dstLength != a.n)
    ThrowRangeError(info.Env(), fn, "dst",
                    "has length " + std::to_string(dstLength) + ", src has " + std::to_string(a.n) + ": they must match");
  const ql::ConversionSizes sizes = ql::conversionSizes(a.kind);
  if (Overlaps(a.src, a.n * sizes.src, a.dst, a.n * sizes.dst))
    ThrowRangeError(info.Env(), fn, "dst", "overlaps src in memory: pass a separate array");
  return a;
}

class ConvertWorker : public PromiseWorker {
 public:
  ConvertWorker(Napi::Env env, const ConvertArgs& args, std::shared_ptr<ql::CancelFlag> cancel)
      : PromiseWorker(env, "quantlens:convert", std::move(cancel)),
        kind_(args.kind),
        src_(args.src),
        dst_(args.dst),
        n_(args.n) {
    Keep(args.srcArray);
    Keep(args.dstArray);
  }

 private:
  void Run(const ql::CancelFlag* cancel) override { ql::convert(kind_, src_, dst_, n_, cancel); }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

  ql::Conversion kind_;
  const void* src_;
  void* dst_;
  size_t n_;
};

Napi::Value Convert(const Napi::CallbackInfo& info) {
  const ConvertArgs a = ParseConvertArgs(info, "convert");
  ql::convert(a.kind, a.src, a.dst, a.n);
  return info.Env().Undefined();
}

Napi::Value ConvertAsync(const Napi::CallbackInfo& info) {
  const ConvertArgs a = ParseConvertArgs(info, "convertAsync");
  std::shared_ptr<ql::CancelFlag> cancel = CancelArg(info, 3, "convertAsync");
  return (new ConvertWorker(info.Env(), a, std::move(cancel)))->Start();
}

}  // namespace

void RegisterConvert(Napi::Env env, Napi::Object exports) {
  exports.Set("convert", Napi::Function::New(env, Convert, "convert"));
  exports.Set("convertAsync", Napi::Function::New(env, ConvertAsync, "convertAsync"));
}

}  // namespace qlb
