// channelBatchStats(x, rows, C, out: {mean, m2, m3, m4, absSum: Float64Array[C], absmax: Float32Array[C],
//   hist: Float64Array[bins], rowNorm: Float32Array[rows], rowPeak: Float32Array[rows],
//   rowPeakChannel: Int32Array[rows]}, cancel?) -> Promise<number of non-finite values>
#include "../core/channel_stats.h"
#include "addon.h"
#include "args.h"
#include "promise_worker.h"

namespace qlb {

namespace {

template <typename T, napi_typedarray_type kType>
T* TypedField(const Napi::CallbackInfo& info, const Napi::Object& o, const char* field, size_t length) {
  Napi::Value v = o.Get(field);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != kType) {
    ThrowTypeError(info.Env(), "channelBatchStats", field, "has the wrong typed-array type");
  }
  Napi::TypedArray a = v.As<Napi::TypedArray>();
  if (a.ElementLength() != length) {
    ThrowRangeError(info.Env(), "channelBatchStats", field, "has " + std::to_string(a.ElementLength()) + " elements, expected " + std::to_string(length));
  }
  return reinterpret_cast<T*>(static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset());
}

class ChannelStatsWorker : public PromiseWorker {
 public:
  ChannelStatsWorker(Napi::Env env, const ArrayArg<float>& x, size_t rows, size_t C, const ql::ChannelBatchOut& out,
                     const Napi::Object& outObj, std::shared_ptr<ql::CancelFlag> cancel)
      : PromiseWorker(env, "quantlens:channelBatchStats", std::move(cancel)), x_(x.data), rows_(rows), c_(C), out_(out) {
    Keep(x.array);
    Keep(outObj);
    for (const char* f : {"mean", "m2", "m3", "m4", "absmax", "absSum", "hist", "rowNorm", "rowPeak", "rowPeakChannel"}) {
      Keep(outObj.Get(f).As<Napi::Object>());
    }
  }

 private:
  void Run(const ql::CancelFlag* cancel) override { bad_ = ql::channel_batch_stats(x_, rows_, c_, out_, cancel); }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, static_cast<double>(bad_)); }

  const float* x_;
  size_t rows_, c_;
  ql::ChannelBatchOut out_;
  int64_t bad_ = 0;
};

Napi::Value ChannelBatchStats(const Napi::CallbackInfo& info) {
  const ArrayArg<float> x = Float32ArrayArg(info, 0, "channelBatchStats", "x");
  const size_t rows = static_cast<size_t>(IntegerArg(info, 1, "channelBatchStats", "rows", 0, INT32_MAX));
  const size_t C = static_cast<size_t>(IntegerArg(info, 2, "channelBatchStats", "channels", 1, INT32_MAX));
  if (rows * C != x.length) ThrowRangeError(info.Env(), "channelBatchStats", "x", "length is not rows × channels");
  if (!info[3].IsObject()) ThrowTypeError(info.Env(), "channelBatchStats", "out", "must be an object of typed arrays");
  Napi::Object o = info[3].As<Napi::Object>();
  ql::ChannelBatchOut out{};
  out.mean = TypedField<double, napi_float64_array>(info, o, "mean", C);
  out.m2 = TypedField<double, napi_float64_array>(info, o, "m2", C);
  out.m3 = TypedField<double, napi_float64_array>(info, o, "m3", C);
  out.m4 = TypedField<double, napi_float64_array>(info, o, "m4", C);
  out.absmax = TypedField<float, napi_float32_array>(info, o, "absmax", C);
  out.absSum = TypedField<double, napi_float64_array>(info, o, "absSum", C);
  out.hist = TypedField<double, napi_float64_array>(info, o, "hist", ql::kHistBins);
  out.rowNorm = TypedField<float, napi_float32_array>(info, o, "rowNorm", rows);
  out.rowPeak = TypedField<float, napi_float32_array>(info, o, "rowPeak", rows);
  out.rowPeakChannel = TypedField<int32_t, napi_int32_array>(info, o, "rowPeakChannel", rows);
  std::shared_ptr<ql::CancelFlag> cancel = CancelArg(info, 4, "channelBatchStats");
  return (new ChannelStatsWorker(info.Env(), x, rows, C, out, o, std::move(cancel)))->Start();
}

}  // namespace

void RegisterChannelStats(Napi::Env env, Napi::Object exports) {
  exports.Set("channelBatchStats", Napi::Function::New(env, ChannelBatchStats, "channelBatchStats"));
  exports.Set("histBins", Napi::Number::New(env, static_cast<double>(ql::kHistBins)));
}

}  // namespace qlb
