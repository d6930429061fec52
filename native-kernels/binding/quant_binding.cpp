// RTN quantization and packing (core/rtn.h, core/pack.h). Shapes are validated in TypeScript
// (kernels/quant.ts) first; the checks here keep a direct caller from reading out of bounds.
//
// rtnQuantize(W, rows, cols, group, bits, symmetric, clip, codes, scales, zeros, cancel?) -> Promise<void>
// rtnQuantizeSync(W, rows, cols, group, bits, symmetric, clip, codes, scales, zeros)     -> undefined
//   clip: null, or {grid, maxShrink, norm}; W Float32Array [rows·cols]; codes Uint8Array
//   [rows·cols]; scales, zeros Float32Array [rows·ngroups].
// rtnDequantize(codes, scales, zeros, rows, cols, group, out, cancel?) -> Promise<void>
// rtnDequantizeSync(codes, scales, zeros, rows, cols, group, out)      -> undefined
// rtnParams(w, bits, symmetric, clip) -> {scale, zero}                   (one group, blocks)
// packCodes(format, src, N, K, bits, blockSize, offset, dst, cancel?) -> Promise<void>
//   format "nbits" | "unnbits" | "int4t" | "unint4t" | "int8t" (see core/pack.h)
// packZeroPoints(zeros, N, nBlocks, bits, dst) / unpackZeroPoints(zp, N, nBlocks, bits, zeros)
#include <functional>

#include "../core/pack.h"
#include "../core/rtn.h"
#include "addon.h"
#include "args.h"
#include "promise_worker.h"

namespace qlb {

namespace {

constexpr int64_t kMaxDim = int64_t{1} << 40;

/** A PromiseWorker running one closure over plain pointers, keeping the arrays alive. */
class TaskWorker : public PromiseWorker {
 public:
  TaskWorker(Napi::Env env, const char* name, std::shared_ptr<ql::CancelFlag> cancel,
             std::function<void(const ql::CancelFlag*)> task, std::initializer_list<Napi::Object> keep)
      : PromiseWorker(env, name, std::move(cancel)), task_(std::move(task)) {
    for (const Napi::Object& o : keep) Keep(o);
  }

 private:
  void Run(const ql::CancelFlag* cancel) override { task_(cancel); }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }
  std::function<void(const ql::CancelFlag*)> task_;
};

bool BoolArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name) {
  if (!info[index].IsBoolean()) ThrowTypeError(info.Env(), fn, name, "must be a boolean");
  return info[index].As<Napi::Boolean>().Value();
}

template <typename T>
void ExpectLength(Napi::Env env, const char* fn, const char* name, const ArrayArg<T>& a, size_t want) {
  if (a.length != want)
    ThrowRangeError(env, fn, name, "has length " + std::to_string(a.length) + ", expected " + std::to_string(want));
}

ql::ClipSearch ClipArg(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  ql::ClipSearch clip;
  const Napi::Value v = info[index];
  if (v.IsNull() || v.IsUndefined()) return clip;
  if (!v.IsObject()) ThrowTypeError(info.Env(), fn, "clip", "must be null or {grid, maxShrink, norm}");
  const Napi::Object o = v.As<Napi::Object>();
  const Napi::Value grid = o.Get("grid"), shrink = o.Get("maxShrink"), norm = o.Get("norm");
  if (!grid.IsNumber() || !shrink.IsNumber() || !norm.IsNumber())
    ThrowTypeError(info.Env(), fn, "clip", "needs numbers grid, maxShrink, norm");
  const double g = grid.As<Napi::Number>().DoubleValue();
  clip.grid = static_cast<int>(g);
  clip.maxShrink = shrink.As<Napi::Number>().DoubleValue();
  clip.norm = norm.As<Napi::Number>().DoubleValue();
  if (!(g >= 1 && g <= 100000) || clip.grid != g || !(clip.maxShrink > 0 && clip.maxShrink < 1) ||
      !(clip.norm > 0 && clip.norm <= 16))
    ThrowRangeError(info.Env(), fn, "clip", "needs integer grid in [1, 100000], 0 < maxShrink < 1, 0 < norm <= 16");
  return clip;
}

ql::QuantSpec SpecArgs(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  const int bits = static_cast<int>(IntegerArg(info, index, fn, "bits", 2, 8));
  if (!ql::rtn_bits_supported(bits)) ThrowRangeError(info.Env(), fn, "bits", "must be 2, 3, 4 or 8");
  return ql::QuantSpec{bits, BoolArg(info, index + 1, fn, "symmetric")};
}

struct RtnArgs {
  ArrayArg<float> W;
  size_t rows, cols, group;
  ql::QuantSpec spec;
  ql::ClipSearch clip;
  ArrayArg<uint8_t> codes;
  ArrayArg<float> scales, zeros;
};

RtnArgs ParseRtn(const Napi::CallbackInfo& info, const char* fn) {
  Napi::Env env = info.Env();
  RtnArgs a{Float32ArrayArg(info, 0, fn, "W"),
            static_cast<size_t>(IntegerArg(info, 1, fn, "rows", 0, kMaxDim)),
            static_cast<size_t>(IntegerArg(info, 2, fn, "cols", 0, kMaxDim)),
            static_cast<size_t>(IntegerArg(info, 3, fn, "group", 0, kMaxDim)),
            SpecArgs(info, 4, fn),
            ClipArg(info, 6, fn),
            Uint8ArrayArg(info, 7, fn, "codes"),
            Float32ArrayArg(info, 8, fn, "scales"),
            Float32ArrayArg(info, 9, fn, "zeros")};
  const size_t count = a.rows * a.cols, params = a.rows * ql::rtn_groups(a.cols, a.group);
  ExpectLength(env, fn, "W", a.W, count);
  ExpectLength(env, fn, "codes", a.codes, count);
  ExpectLength(env, fn, "scales", a.scales, params);
  ExpectLength(env, fn, "zeros", a.zeros, params);
  if (Overlaps(a.scales.data, params * 4, a.zeros.data, params * 4) ||
      Overlaps(a.W.data, count * 4, a.scales.data, params * 4) || Overlaps(a.W.data, count * 4, a.zeros.data, params * 4) ||
      Overlaps(a.W.data, count * 4, a.codes.data, count))
    ThrowRangeError(env, fn, "codes", "outputs must not overlap W or each other");
  return a;
}

Napi::Value RtnQuantize(const Napi::CallbackInfo& info) {
  const RtnArgs a = ParseRtn(info, "rtnQuantize");
  std::shared_ptr<ql::CancelFlag> cancel = CancelArg(info, 10, "rtnQuantize");
  auto task = [a](const ql::CancelFlag* c) {
    ql::rtn_quantize(a.W.data, a.rows, a.cols, a.group, a.spec, a.codes.data, a.scales.data, a.zeros.data, c, a.clip);
  };
  return (new TaskWorker(info.Env(), "quantlens:rtnQuantize", std::move(cancel), task,
                         {a.W.array, a.codes.array, a.scales.array, a.zeros.array}))
      ->Start();
}

Napi::Value RtnQuantizeSync(const Napi::CallbackInfo& info) {
  const RtnArgs a = ParseRtn(info, "rtnQuantizeSync");
  ql::rtn_quantize(a.W.data, a.rows, a.cols, a.group, a.spec, a.codes.data, a.scales.data, a.zeros.data, nullptr,
                   a.clip);
  return info.Env().Undefined();
}

struct DequantArgs {
  ArrayArg<uint8_t> codes;
  ArrayArg<float> scales, zeros;
  size_t rows, cols, group;
  ArrayArg<float> out;
};

DequantArgs ParseDequant(const Napi::CallbackInfo& info, const char* fn) {
  DequantArgs a{Uint8ArrayArg(info, 0, fn, "codes"),
                Float32ArrayArg(info, 1, fn, "scales"),
                Float32ArrayArg(info, 2, fn, "zeros"),
                static_cast<size_t>(IntegerArg(info, 3, fn, "rows", 0, kMaxDim)),
                static_cast<size_t>(IntegerArg(info, 4, fn, "cols", 0, kMaxDim)),
                static_cast<size_t>(IntegerArg(info, 5, fn, "group", 0, kMaxDim)),
                Float32ArrayArg(info, 6, fn, "out")};
  const size_t count = a.rows * a.cols, params = a.rows * ql::rtn_groups(a.cols, a.group);
  ExpectLength(info.Env(), fn, "codes", a.codes, count);
  ExpectLength(info.Env(), fn, "scales", a.scales, params);
  ExpectLength(info.Env(), fn, "zeros", a.zeros, params);
  ExpectLength(info.Env(), fn, "out", a.out, count);
  return a;
}

Napi::Value RtnDequantize(const Napi::CallbackInfo& info) {
  const DequantArgs a = ParseDequant(info, "rtnDequantize");
  std::shared_ptr<ql::CancelFlag> cancel = CancelArg(info, 7, "rtnDequantize");
  auto task = [a](const ql::CancelFlag* c) {
    ql::rtn_dequantize(a.codes.data, a.scales.data, a.zeros.data, a.rows, a.cols, a.group, a.out.data, c);
  };
  return (new TaskWorker(info.Env(), "quantlens:rtnDequantize", std::move(cancel), task,
                         {a.codes.array, a.scales.array, a.zeros.array, a.out.array}))
      ->Start();
}

Napi::Value RtnDequantizeSync(const Napi::CallbackInfo& info) {
  const DequantArgs a = ParseDequant(info, "rtnDequantizeSync");
  ql::rtn_dequantize(a.codes.data, a.scales.data, a.zeros.data, a.rows, a.cols, a.group, a.out.data);
  return info.Env().Undefined();
}

Napi::Value RtnParams(const Napi::CallbackInfo& info) {
  const ArrayArg<float> w = Float32ArrayArg(info, 0, "rtnParams", "w");
  const ql::QuantSpec spec = SpecArgs(info, 1, "rtnParams");
  const ql::ClipSearch clip = ClipArg(info, 3, "rtnParams");
  float scale = 0, zero = 0;
  ql::rtn_params(w.data, w.length, 1, spec, clip, &scale, &zero);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("scale", scale);
  o.Set("zero", zero);
  return o;
}

Napi::Value PackCodes(const Napi::CallbackInfo& info) {
  const char* fn = "packCodes";
  Napi::Env env = info.Env();
  const std::string format = StringArg(info, 0, fn, "format");
  const ArrayArg<uint8_t> src = Uint8ArrayArg(info, 1, fn, "src");
  const size_t N = static_cast<size_t>(IntegerArg(info, 2, fn, "N", 0, kMaxDim));
  const size_t K = static_cast<size_t>(IntegerArg(info, 3, fn, "K", 0, kMaxDim));
  const int bits = static_cast<int>(IntegerArg(info, 4, fn, "bits", 1, 8));
  const size_t blockSize = static_cast<size_t>(IntegerArg(info, 5, fn, "blockSize", 0, kMaxDim));
  const int offset = static_cast<int>(IntegerArg(info, 6, fn, "offset", 0, 255));
  const ArrayArg<uint8_t> dst = Uint8ArrayArg(info, 7, fn, "dst");
  std::shared_ptr<ql::CancelFlag> cancel = CancelArg(info, 8, fn);
  const size_t count = N * K;
  std::function<void(const ql::CancelFlag*)> task;
  if (format == "nbits" || format == "unnbits") {
    if (blockSize == 0 || (blockSize * bits) % 8 != 0)
      ThrowRangeError(env, fn, "blockSize", "block_size · bits must be a positive multiple of 8");
    const ql::NBitsShape s = ql::nbitsShape(K, bits, blockSize);
    const size_t packed = N * s.nBlocks * s.blobSize;
    const bool pack = format == "nbits";
    ExpectLength(env, fn, "src", src, pack ? count : packed);
    ExpectLength(env, fn, "dst", dst, pack ? packed : count);
    task = [=](const ql::CancelFlag* c) {
      if (pack)
        ql::packMatMulNBits(src.data, N, K, bits, blockSize, dst.data, c);
      else
        ql::unpackMatMulNBits(src.data, N, K, bits, blockSize, dst.data, c);
    };
  } else if (format == "int4t" || format == "unint4t") {
    const bool pack = format == "int4t";
    const size_t packed = (count + 1) / 2;
    ExpectLength(env, fn, "src", src, pack ? count : packed);
    ExpectLength(env, fn, "dst", dst, pack ? packed : count);
    task = [=](const ql::CancelFlag* c) {
      if (pack)
        ql::packInt4Transposed(src.data, N, K, offset, dst.data, c);
      else
        ql::unpackInt4Transposed(src.data, N, K, offset, dst.data, c);
    };
  } else if (format == "int8t") {
    ExpectLength(env, fn, "src", src, count);
    ExpectLength(env, fn, "dst", dst, count);
    task = [=](const ql::CancelFlag* c) { ql::packInt8Transposed(src.data, N, K, offset, dst.data, c); };
  } else {
    ThrowRangeError(env, fn, "format", "must be nbits, unnbits, int4t, unint4t or int8t, got '" + format + "'");
  }
  if (Overlaps(src.data, src.length, dst.data, dst.length))
    ThrowRangeError(env, fn, "dst", "overlaps src in memory: pass a separate array");
  return (new TaskWorker(env, "quantlens:packCodes", std::move(cancel), task, {src.array, dst.array}))->Start();
}

Napi::Value PackZeroPoints(const Napi::CallbackInfo& info) {
  const char* fn = "packZeroPoints";
  const ArrayArg<float> zeros = Float32ArrayArg(info, 0, fn, "zeros");
  const size_t N = static_cast<size_t>(IntegerArg(info, 1, fn, "N", 0, kMaxDim));
  const size_t nBlocks = static_cast<size_t>(IntegerArg(info, 2, fn, "nBlocks", 0, kMaxDim));
  const int bits = static_cast<int>(IntegerArg(info, 3, fn, "bits", 1, 8));
  const ArrayArg<uint8_t> dst = Uint8ArrayArg(info, 4, fn, "dst");
  ExpectLength(info.Env(), fn, "zeros", zeros, N * nBlocks);
  ExpectLength(info.Env(), fn, "dst", dst, N * ((nBlocks * bits + 7) / 8));
  ql::packNBitsZeroPoints(zeros.data, N, nBlocks, bits, dst.data);
  return info.Env().Undefined();
}

Napi::Value UnpackZeroPoints(const Napi::CallbackInfo& info) {
  const char* fn = "unpackZeroPoints";
  const ArrayArg<uint8_t> zp = Uint8ArrayArg(info, 0, fn, "zp");
  const size_t N = static_cast<size_t>(IntegerArg(info, 1, fn, "N", 0, kMaxDim));
  const size_t nBlocks = static_cast<size_t>(IntegerArg(info, 2, fn, "nBlocks", 0, kMaxDim));
  const int bits = static_cast<int>(IntegerArg(info, 3, fn, "bits", 1, 8));
  const ArrayArg<float> zeros = Float32ArrayArg(info, 4, fn, "zeros");
  ExpectLength(info.Env(), fn, "zp", zp, N * ((nBlocks * bits + 7) / 8));
  ExpectLength(info.Env(), fn, "zeros", zeros, N * nBlocks);
  ql::unpackNBitsZeroPoints(zp.data, N, nBlocks, bits, zeros.data);
  return info.Env().Undefined();
}

}  // namespace

void RegisterQuant(Napi::Env env, Napi::Object exports) {
  exports.Set("rtnQuantize", Napi::Function::New(env, RtnQuantize, "rtnQuantize"));
  exports.Set("rtnQuantizeSync", Napi::Function::New(env, RtnQuantizeSync, "rtnQuantizeSync"));
  exports.Set("rtnDequantize", Napi::Function::New(env, RtnDequantize, "rtnDequantize"));
  exports.Set("rtnDequantizeSync", Napi::Function::New(env, RtnDequantizeSync, "rtnDequantizeSync"));
  exports.Set("rtnParams", Napi::Function::New(env, RtnParams, "rtnParams"));
  exports.Set("packCodes", Napi::Function::New(env, PackCodes, "packCodes"));
  exports.Set("packZeroPoints", Napi::Function::New(env, PackZeroPoints, "packZeroPoints"));
  exports.Set("unpackZeroPoints", Napi::Function::New(env, UnpackZeroPoints, "unpackZeroPoints"));
}

}  // namespace qlb
