// Symmetric eigendecomposition (core/eigen.h):
//
//   symmetricEigen(a, n, values, vectors, cancel?) -> Promise<void>   (AsyncWorker)
//     a:       Float32Array | Float64Array, n·n elements, row-major; only the lower triangle
//              (a[i·n + j], j ≤ i) is read
//     values:  Float64Array, n elements: the eigenvalues, ascending
//     vectors: Float64Array | Float32Array of n·n elements (column j = the unit eigenvector of
//              values[j]), or null for eigenvalues only
//
// A NaN or ±Inf in the lower triangle rejects with a RangeError, code ERR_QUANTLENS_NON_FINITE,
// naming the element (found off the JS thread, before anything is written).
#include <string>

#include "../core/eigen.h"
#include "addon.h"
#include "args.h"
#include "promise_worker.h"

namespace qlb {

namespace {

constexpr const char* kFn = "symmetricEigen";
/** n·n must stay a safe typed-array length; the TypeScript layer sets the practical limits. */
constexpr int64_t kMaxN = 1 << 20;

/** A Float32Array or a Float64Array: one of the two pointers is set. */
struct RealArray {
  float* f32 = nullptr;
  double* f64 = nullptr;
  size_t length = 0;
  size_t bytes = 0;
  Napi::Object array;
};

RealArray RealArrayArg(const Napi::CallbackInfo& info, size_t index, const char* name, bool float64Only) {
  const Napi::Value v = info[index];
  const napi_typedarray_type type =
      v.IsTypedArray() ? v.As<Napi::TypedArray>().TypedArrayType() : napi_int8_array;
  RealArray r;
  if (v.IsTypedArray() && type == napi_float64_array) {
    Napi::Float64Array array = v.As<Napi::Float64Array>();
    r.f64 = array.Data();
    r.length = array.ElementLength();
    r.bytes = r.length * sizeof(double);
    r.array = array;
  } else if (v.IsTypedArray() && type == napi_float32_array && !float64Only) {
    Napi::Float32Array array = v.As<Napi::Float32Array>();
    r.f32 = array.Data();
    r.length = array.ElementLength();
    r.bytes = r.length * sizeof(float);
    r.array = array;
  } else {
    ThrowTypeError(info.Env(), kFn, name, float64Only ? "must be a Float64Array" : "must be a Float32Array or a Float64Array");
  }
  return r;
}

const void* DataOf(const RealArray& r) {
  return r.f64 ? static_cast<const void*>(r.f64) : static_cast<const void*>(r.f32);
}

class EigenWorker : public PromiseWorker {
 public:
  EigenWorker(Napi::Env env, const RealArray& a, size_t n, const RealArray& values, const RealArray* vectors,
              std::shared_ptr<ql::CancelFlag> cancel)
      : PromiseWorker(env, "quantlens:symmetricEigen", std::move(cancel)), a_(a), n_(n) {
    Keep(a.array);
    Keep(values.array);
    out_.values = values.f64;
    if (vectors) {
      Keep(vectors->array);
      out_.vectors64 = vectors->f64;
      out_.vectors32 = vectors->f32;
    }
  }

 private:
  void Run(const ql::CancelFlag* cancel) override {
    try {
      if (a_.f64)
        ql::symmetricEigen(a_.f64, n_, out_, cancel);
      else
        ql::symmetricEigen(a_.f32, n_, out_, cancel);
    } catch (const ql::EigenNonFinite& e) {
      badRow_ = e.row;
      badCol_ = e.col;
      bad_ = true;
    }
  }

  Napi::Value Result(Napi::Env env) override {
    if (bad_) {
      Napi::Error e = Napi::RangeError::New(
          env, std::string("quantlens_kernels.") + kFn + "(): argument 'a' holds a non-finite value (NaN or ±Inf) at row " +
                   std::to_string(badRow_) + ", column " + std::to_string(badCol_) +
                   " (its lower triangle must be finite)");
      e.Set("code", Napi::String::New(env, "ERR_QUANTLENS_NON_FINITE"));
      throw e;
    }
    return env.Undefined();
  }

  RealArray a_;
  size_t n_;
  ql::EigenOutput out_;
  bool bad_ = false;
  size_t badRow_ = 0, badCol_ = 0;
};

Napi::Value SymmetricEigen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const RealArray a = RealArrayArg(info, 0, "a", false);
  const size_t n = static_cast<size_t>(IntegerArg(info, 1, kFn, "n", 0, kMaxN));
  if (a.length != n * n)
    ThrowRangeError(env, kFn, "a", "has " + std::to_string(a.length) + " elements; an n × n matrix with n = " +
                                       std::to_string(n) + " needs " + std::to_string(n * n));
  const RealArray values = RealArrayArg(info, 2, "values", true);
  if (values.length != n)
    ThrowRangeError(env, kFn, "values", "has " + std::to_string(values.length) + " elements, expected n = " + std::to_string(n));
  if (Overlaps(values.f64, values.bytes, DataOf(a), a.bytes))
    ThrowRangeError(env, kFn, "values", "overlaps 'a' in memory");
  RealArray vectors;
  const bool wantVectors = !info[3].IsUndefined() && !info[3].IsNull();
  if (wantVectors) {
    vectors = RealArrayArg(info, 3, "vectors", false);
    if (vectors.length != n * n)
      ThrowRangeError(env, kFn, "vectors", "has " + std::to_string(vectors.length) + " elements, expected n · n = " +
                                                std::to_string(n * n));
    if (Overlaps(DataOf(vectors), vectors.bytes, DataOf(a), a.bytes))
      ThrowRangeError(env, kFn, "vectors", "overlaps 'a' in memory");
    if (Overlaps(DataOf(vectors), vectors.bytes, values.f64, values.bytes))
      ThrowRangeError(env, kFn, "vectors", "overlaps 'values' in memory");
  }
  std::shared_ptr<ql::CancelFlag> cancel = CancelArg(info, 4, kFn);
  return (new EigenWorker(env, a, n, values, wantVectors ? &vectors : nullptr, std::move(cancel)))->Start();
}

}  // namespace

void RegisterEigen(Napi::Env env, Napi::Object exports) {
  exports.Set("symmetricEigen", Napi::Function::New(env, SymmetricEigen, "symmetricEigen"));
}

}  // namespace qlb
