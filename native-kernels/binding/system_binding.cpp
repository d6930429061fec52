// info() -> {threads, hardwareThreads, simd, cpu, compiler, cuda: {available, status, calls: {hessian, gptqLayers}}}
// setThreads(n) -> threads now (0 = hardware concurrency)
// setSimd("auto" | "scalar") -> the SIMD path now in use
// fmaPeak({seconds?, threads?}) -> Promise<{one, all, threads, simd}>   (AsyncWorker)
#include "../core/cpu.h"
#include "../core/cuda_backend.h"
#include "../core/fma_peak.h"
#include "../core/thread_pool.h"
#include "addon.h"
#include "args.h"
#include "promise_worker.h"

namespace qlb {

namespace {

constexpr int64_t kMaxThreads = 1024;

std::string CompilerName() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return "gcc " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
         std::to_string(__GNUC_PATCHLEVEL__);
#elif defined(_MSC_VER)
  return "msvc " + std::to_string(_MSC_VER);
#else
  return "unknown";
#endif
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ql::CpuFeatures& f = ql::cpuFeatures();
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("avx2", f.avx2);
  cpu.Set("fma", f.fma);
  cpu.Set("f16c", f.f16c);
  Napi::Object o = Napi::Object::New(env);
  o.Set("abiVersion", kAbiVersion);
  o.Set("threads", ql::pool().threads());
  o.Set("hardwareThreads", ql::ThreadPool::hardwareThreads());
  o.Set("simd", ql::simdName());
  o.Set("cpu", cpu);
  o.Set("compiler", CompilerName());
  // The optional CUDA backend (core/cuda_backend.h): the first info() loads it (dlopen + device count).
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("available", ql::cuda::available());
  cuda.Set("status", ql::cuda::status());
  const ql::cuda::DispatchCounts calls = ql::cuda::dispatchCounts();
  Napi::Object counts = Napi::Object::New(env);
  counts.Set("hessian", static_cast<double>(calls.hessian));
  counts.Set("gptqLayers", static_cast<double>(calls.gptqLayers));
  cuda.Set("calls", counts);
  o.Set("cuda", cuda);
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  const int64_t n = IntegerArg(info, 0, "setThreads", "n", 0, kMaxThreads);
  ql::pool().resize(static_cast<unsigned>(n));
  return Napi::Number::New(info.Env(), ql::pool().threads());
}

Napi::Value SetSimd(const Napi::CallbackInfo& info) {
  const std::string mode = StringArg(info, 0, "setSimd", "mode");
  if (mode == "auto")
    ql::setSimdMode(ql::SimdMode::Auto);
  else if (mode == "scalar")
    ql::setSimdMode(ql::SimdMode::Scalar);
  else
    ThrowRangeError(info.Env(), "setSimd", "mode", "must be 'auto' or 'scalar', got '" + mode + "'");
  return Napi::String::New(info.Env(), ql::simdName());
}

class FmaPeakWorker : public PromiseWorker {
 public:
  FmaPeakWorker(Napi::Env env, double seconds, unsigned threads)
      : PromiseWorker(env, "quantlens:fmaPeak", nullptr), seconds_(seconds), threads_(threads) {}

 private:
  void Run(const ql::CancelFlag*) override { result_ = ql::measureFmaPeak(seconds_, threads_); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("one", result_.one);
    o.Set("all", result_.all);
    o.Set("threads", result_.threads);
    o.Set("simd", result_.simd);
    return o;
  }

  double seconds_;
  unsigned threads_;
  ql::FmaPeak result_;
};

Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double seconds = 0.2;
  int64_t threads = 0;
  const Napi::Value opts = info[0];
  if (!opts.IsUndefined() && !opts.IsNull()) {
    if (!opts.IsObject()) ThrowTypeError(env, "fmaPeak", "options", "must be an object or undefined");
    const Napi::Object o = opts.As<Napi::Object>();
    const Napi::Value s = o.Get("seconds");
    if (!s.IsUndefined()) {
      if (!s.IsNumber() || !(s.As<Napi::Number>().DoubleValue() >= 0.01 && s.As<Napi::Number>().DoubleValue() <= 10))
        ThrowRangeError(env, "fmaPeak", "options.seconds", "must be a number in [0.01, 10]");
      seconds = s.As<Napi::Number>().DoubleValue();
    }
    const Napi::Value t = o.Get("threads");
    if (!t.IsUndefined()) {
      const double d = t.IsNumber() ? t.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 0 && d <= kMaxThreads && d == static_cast<double>(static_cast<int64_t>(d))))
        ThrowRangeError(env, "fmaPeak", "options.threads", "must be an integer in [0, 1024] (0 = pool size)");
      threads = static_cast<int64_t>(d);
    }
  }
  return (new FmaPeakWorker(env, seconds, static_cast<unsigned>(threads)))->Start();
}

}  // namespace

void RegisterSystem(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("setSimd", Napi::Function::New(env, SetSimd, "setSimd"));
  exports.Set("fmaPeak", Napi::Function::New(env, FmaPeak, "fmaPeak"));
}

}  // namespace qlb
