// gptqQuantize(w, h, rows, cols, options, codes, scales, zeros, perm, groupIndex, cancel?, rowShrink?, rowLoss?)
//   -> Promise<{damp, percdamp, dampRetries, deadColumns, proxyLoss, proxyLossRtn, weightEnergy}>
//
//   w: Float32Array [rows·cols]   W: [out, in] row-major          (read only)
//   h: Float32Array [cols·cols]   H: [in, in], symmetric           (read only)
//   options: {bits, symmetric, group, blockSize, percdamp, actOrder, staticGroups, batchStartGroups,
//             maxDampRetries, losses}   (all present; kernels/gptq.ts fills the defaults)
//   codes: Uint8Array [rows·cols], scales/zeros: Float32Array [rows·ngroups],
//   perm/groupIndex: Int32Array [cols]   caller-allocated outputs (core/gptq.h has the layout)
//   rowShrink: Float32Array [rows] in (0, 1], or undefined/null   per-row clipping (GptqOptions)
//   rowLoss: Float64Array [rows], or undefined/null   out: GPTQ's accumulated loss per row (GptqOutputs)
//
// Always an AsyncWorker: even a small layer costs a cols³ factorization. A NaN/±Inf in w or h
// rejects with a RangeError, code ERR_QUANTLENS_NON_FINITE, naming the argument, row and column
// (before any output is written).
#include <cmath>
#include <string>

#include "../core/gptq.h"
#include "addon.h"
#include "args.h"
#include "promise_worker.h"

namespace qlb {

namespace {

constexpr const char* kFn = "gptqQuantize";
constexpr int64_t kMaxDim = int64_t{1} << 31;
constexpr int64_t kMaxDampRetries = 30;

Napi::Value OptionField(Napi::Env env, const Napi::Object& options, const char* key) {
  const Napi::Value v = options.Get(key);
  if (v.IsUndefined()) ThrowTypeError(env, kFn, "options", std::string("needs the field '") + key + "'");
  return v;
}

bool BoolOption(Napi::Env env, const Napi::Object& options, const char* key) {
  const Napi::Value v = OptionField(env, options, key);
  if (!v.IsBoolean()) ThrowTypeError(env, kFn, "options", std::string("field '") + key + "' must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

double NumberOption(Napi::Env env, const Napi::Object& options, const char* key) {
  const Napi::Value v = OptionField(env, options, key);
  if (!v.IsNumber()) ThrowTypeError(env, kFn, "options", std::string("field '") + key + "' must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t IntegerOption(Napi::Env env, const Napi::Object& options, const char* key, int64_t min, int64_t max) {
  const double d = NumberOption(env, options, key);
  if (!(d >= static_cast<double>(min) && d <= static_cast<double>(max)) || std::floor(d) != d)
    ThrowRangeError(env, kFn, "options", std::string("field '") + key + "' must be an integer in [" +
                                             std::to_string(min) + ", " + std::to_string(max) + "]");
  return static_cast<int64_t>(d);
}

struct GptqArgs {
  ArrayArg<float> w, h, scales, zeros;
  ArrayArg<uint8_t> codes;
  ArrayArg<int32_t> perm, groupIndex;
  ArrayArg<float> rowShrink;  // data nullptr when absent
  ArrayArg<double> rowLoss;   // data nullptr when absent
  size_t rows = 0, cols = 0;
  ql::GptqOptions options;
};

void ExpectLength(Napi::Env env, const char* name, size_t actual, size_t expected, const std::string& what) {
  if (actual != expected)
    ThrowRangeError(env, kFn, name,
                    "has length " + std::to_string(actual) + ", expected " + std::to_string(expected) + " (" + what + ")");
}

GptqArgs ParseGptqArgs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  GptqArgs a;
  a.w = Float32ArrayArg(info, 0, kFn, "w");
  a.h = Float32ArrayArg(info, 1, kFn, "h");
  a.rows = static_cast<size_t>(IntegerArg(info, 2, kFn, "rows", 1, kMaxDim));
  a.cols = static_cast<size_t>(IntegerArg(info, 3, kFn, "cols", 1, kMaxDim));
  if (!info[4].IsObject()) ThrowTypeError(env, kFn, "options", "must be an object");
  const Napi::Object o = info[4].As<Napi::Object>();
  ql::GptqOptions& opt = a.options;
  opt.spec.bits = static_cast<int>(IntegerOption(env, o, "bits", 2, 8));
  if (!ql::rtn_bits_supported(opt.spec.bits)) ThrowRangeError(env, kFn, "options", "field 'bits' must be 2, 3, 4 or 8");
  opt.spec.symmetric = BoolOption(env, o, "symmetric");
  opt.group = static_cast<size_t>(IntegerOption(env, o, "group", 0, kMaxDim));
  opt.blockSize = static_cast<size_t>(IntegerOption(env, o, "blockSize", 1, kMaxDim));
  opt.percdamp = NumberOption(env, o, "percdamp");
  if (!(opt.percdamp >= 0) || !std::isfinite(opt.percdamp))
    ThrowRangeError(env, kFn, "options", "field 'percdamp' must be finite and >= 0");
  opt.actOrder = BoolOption(env, o, "actOrder");
  opt.staticGroups = BoolOption(env, o, "staticGroups");
  opt.batchStartGroups = BoolOption(env, o, "batchStartGroups");
  opt.maxDampRetries = static_cast<int>(IntegerOption(env, o, "maxDampRetries", 0, kMaxDampRetries));
  opt.losses = BoolOption(env, o, "losses");

  a.codes = Uint8ArrayArg(info, 5, kFn, "codes");
  a.scales = Float32ArrayArg(info, 6, kFn, "scales");
  a.zeros = Float32ArrayArg(info, 7, kFn, "zeros");
  a.perm = Int32ArrayArg(info, 8, kFn, "perm");
  a.groupIndex = Int32ArrayArg(info, 9, kFn, "groupIndex");

  const size_t rows = a.rows, cols = a.cols;
  if (info.Length() > 11 && !info[11].IsUndefined() && !info[11].IsNull()) {
    a.rowShrink = Float32ArrayArg(info, 11, kFn, "rowShrink");
    ExpectLength(env, "rowShrink", a.rowShrink.length, rows, "rows");
    for (size_t r = 0; r < rows; r++) {
      const float p = a.rowShrink.data[r];
      if (!(p > 0.0f && p <= 1.0f))
        ThrowRangeError(env, kFn, "rowShrink", "[" + std::to_string(r) + "] must be in (0, 1], got " + std::to_string(p));
    }
    opt.rowShrink = a.rowShrink.data;
  }
  if (info.Length() > 12 && !info[12].IsUndefined() && !info[12].IsNull()) {
    a.rowLoss = Float64ArrayArg(info, 12, kFn, "rowLoss");
    ExpectLength(env, "rowLoss", a.rowLoss.length, rows, "rows");
  }
  const size_t ng = ql::gptqGroupCount(cols, opt.group);
  ExpectLength(env, "w", a.w.length, rows * cols, "rows·cols");
  ExpectLength(env, "h", a.h.length, cols * cols, "cols·cols");
  ExpectLength(env, "codes", a.codes.length, rows * cols, "rows·cols");
  ExpectLength(env, "scales", a.scales.length, rows * ng, "rows·ngroups");
  ExpectLength(env, "zeros", a.zeros.length, rows * ng, "rows·ngroups");
  ExpectLength(env, "perm", a.perm.length, cols, "cols");
  ExpectLength(env, "groupIndex", a.groupIndex.length, cols, "cols");

  // Outputs are written while the inputs are read: no two of them may share memory.
  struct Span {
    const char* name;
    const void* p;
    size_t bytes;
  };
  const Span spans[] = {{"w", a.w.data, a.w.length * 4},
                        {"h", a.h.data, a.h.length * 4},
                        {"codes", a.codes.data, a.codes.length},
                        {"scales", a.scales.data, a.scales.length * 4},
                        {"zeros", a.zeros.data, a.zeros.length * 4},
                        {"perm", a.perm.data, a.perm.length * 4},
                        {"groupIndex", a.groupIndex.data, a.groupIndex.length * 4},
                        {"rowShrink", a.rowShrink.data, a.rowShrink.length * 4},
                        {"rowLoss", a.rowLoss.data, a.rowLoss.length * 8}};
  for (size_t i = 2; i < sizeof(spans) / sizeof(spans[0]); i++) {
    for (size_t j = 0; j < i; j++) {
      if (Overlaps(spans[i].p, spans[i].bytes, spans[j].p, spans[j].bytes))
        ThrowRangeError(env, kFn, spans[i].name, std::string("overlaps ") + spans[j].name + " in memory");
    }
  }
  return a;
}

class GptqWorker : public PromiseWorker {
 public:
  GptqWorker(Napi::Env env, const GptqArgs& a, std::shared_ptr<ql::CancelFlag> cancel)
      : PromiseWorker(env, "quantlens:gptq", std::move(cancel)), a_(a) {
    for (const Napi::Object& array : {a.w.array, a.h.array, a.codes.array, a.scales.array, a.zeros.array,
                                      a.perm.array, a.groupIndex.array})
      Keep(array);
    if (a.rowShrink.data) Keep(a.rowShrink.array);
    if (a.rowLoss.data) Keep(a.rowLoss.array);
  }

 private:
  void Run(const ql::CancelFlag* cancel) override {
    const ql::GptqOutputs out{a_.codes.data, a_.scales.data, a_.zeros.data, a_.perm.data, a_.groupIndex.data,
                              a_.rowLoss.data};
    try {
      stats_ = ql::gptqQuantize(a_.w.data, a_.rows, a_.cols, a_.h.data, a_.options, out, cancel);
    } catch (const ql::GptqNonFinite& e) {
      nonFinite_ = true;
      badArg_ = e.arg[0] == 'W' ? "w" : "h";
      badRow_ = e.row;
      badCol_ = e.col;
    }
  }

  Napi::Value Result(Napi::Env env) override {
    if (nonFinite_) {
      // As linalg_binding.cpp: a RangeError with code ERR_QUANTLENS_NON_FINITE.
      Napi::Error e = Napi::RangeError::New(
          env, std::string("quantlens_kernels.") + kFn + "(): argument '" + badArg_ +
                   "' holds a non-finite value (NaN or ±Inf) at row " + std::to_string(badRow_) + ", column " +
                   std::to_string(badCol_) + "; GPTQ needs finite weights and Hessian");
      e.Set("code", Napi::String::New(env, "ERR_QUANTLENS_NON_FINITE"));
      throw e;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("damp", stats_.damp);
    o.Set("percdamp", stats_.percdamp);
    o.Set("dampRetries", stats_.dampRetries);
    o.Set("deadColumns", static_cast<double>(stats_.deadColumns));
    o.Set("proxyLoss", stats_.proxyLoss);
    o.Set("proxyLossRtn", stats_.proxyLossRtn);
    o.Set("weightEnergy", stats_.weightEnergy);
    return o;
  }

  GptqArgs a_;
  ql::GptqStats stats_;
  bool nonFinite_ = false;
  const char* badArg_ = "";
  size_t badRow_ = 0, badCol_ = 0;
};

Napi::Value GptqQuantize(const Napi::CallbackInfo& info) {
  const GptqArgs args = ParseGptqArgs(info);
  std::shared_ptr<ql::CancelFlag> cancel = CancelArg(info, 10, kFn);
  return (new GptqWorker(info.Env(), args, std::move(cancel)))->Start();
}

}  // namespace

void RegisterGptq(Napi::Env env, Napi::Object exports) {
  exports.Set("gptqQuantize", Napi::Function::New(env, GptqQuantize, kFn));
}

}  // namespace qlb
