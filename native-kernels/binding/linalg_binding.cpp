// The BLAS-3 family (core/gemm.h, core/hessian.h, core/cholesky.h):
//
//   sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, cancel?) -> Promise<void>
//   sgemmSync(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)      -> undefined
//       (blocks the JS thread; only for m·n·k ≤ sgemmSyncMaxMacs)
//   hessianUpdate(h: Float64Array, n, x: Float32Array, rows, cancel?, lowerOnly?) -> Promise<void>
//   hessianSymmetrize(h: Float64Array, n, scale)                           -> Promise<void>
//   choleskyLower(a, n, lda, cancel?)                -> Promise<number>  (-1, or the failing pivot)
//   trtriLower(l, n, lda, cancel?)                   -> Promise<void>
//   gptqInverseCholeskyUpper(h, n, lda, cancel?)     -> Promise<number>  (-1, or the failing pivot)
//
// Matrices are row-major Float32Arrays with row stride ld (≥ the stored column count); lengths
// must cover (rows − 1)·ld + cols. Inputs must be finite: the worker scans them (off the JS
// thread, before computing) and the promise rejects with a RangeError, code
// ERR_QUANTLENS_NON_FINITE, naming the function, the argument and the first bad element; the
// outputs are then untouched.
#include <cmath>
#include <string>

#include "../core/cholesky.h"
#include "../core/gemm.h"
#include "../core/hessian.h"
#include "addon.h"
#include "args.h"
#include "promise_worker.h"

namespace qlb {

namespace {

/** Dimensions are at most 2^31 − 1 (products of two stay far inside size_t). */
constexpr int64_t kMaxDim = 2147483647;
/** sgemmSync refuses more multiply-adds than this (≈ 0.1–1 ms): use the Promise form. */
constexpr double kSyncMaxMacs = 4194304;

bool BoolArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name) {
  const Napi::Value v = info[index];
  if (!v.IsBoolean()) ThrowTypeError(info.Env(), fn, name, "must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

float FiniteFloatArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name) {
  const Napi::Value v = info[index];
  if (!v.IsNumber()) ThrowTypeError(info.Env(), fn, name, "must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || !std::isfinite(static_cast<float>(d)))
    ThrowRangeError(info.Env(), fn, name, "must be a finite float32 value, got " + std::to_string(d));
  return static_cast<float>(d);
}

size_t DimArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* name) {
  return static_cast<size_t>(IntegerArg(info, index, fn, name, 0, kMaxDim));
}

/** Elements a rows×cols matrix with row stride ld spans. */
size_t Extent(size_t rows, size_t cols, size_t ld) { return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols; }

/** A matrix argument: stride ≥ columns, array long enough. */
void CheckMatrix(const Napi::CallbackInfo& info, const char* fn, const char* name, const char* ldName, size_t length,
                 size_t rows, size_t cols, size_t ld) {
  if (ld < cols)
    ThrowRangeError(info.Env(), fn, ldName,
                    "is " + std::to_string(ld) + ": it must be at least the " + std::to_string(cols) +
                        " columns of '" + name + "' as stored");
  const size_t need = Extent(rows, cols, ld);
  if (length < need)
    ThrowRangeError(info.Env(), fn, name,
                    "has " + std::to_string(length) + " elements; a " + std::to_string(rows) + "×" +
                        std::to_string(cols) + " matrix with row stride " + std::to_string(ld) + " needs " +
                        std::to_string(need));
}

/** The first non-finite input a worker found (reported on the JS thread as a RangeError). */
struct NonFiniteReport {
  const char* arg = nullptr;  // nullptr: none
  size_t row = 0, col = 0;

  bool Check(const char* name, const ql::NonFinite& hit) {
    if (!hit.found) return false;
    arg = name, row = hit.row, col = hit.col;
    return true;
  }
  [[noreturn]] void Throw(Napi::Env env, const char* fn) const {
    Napi::Error e = Napi::RangeError::New(
        env, std::string("quantlens_kernels.") + fn + "(): argument '" + arg +
                 "' holds a non-finite value (NaN or ±Inf) at row " + std::to_string(row) + ", column " +
                 std::to_string(col) + " (as stored); the kernels need finite inputs");
    e.Set("code", Napi::String::New(env, "ERR_QUANTLENS_NON_FINITE"));
    throw e;
  }
};

ql::NonFinite FindNonFiniteDouble(const double* x, size_t rows, size_t cols) {
  for (size_t i = 0; i < rows; i++)
    for (size_t j = 0; j < cols; j++)
      if (!std::isfinite(x[i * cols + j])) return ql::NonFinite{true, i, j};
  return ql::NonFinite{};
}

// ---- sgemm -----------------------------------------------------------------------------

struct SgemmArgs {
  bool transA, transB;
  size_t m, n, k, lda, ldb, ldc;
  float alpha, beta;
  ArrayArg<float> a, b, c;

  /** Stored shapes: A is [m×k] or [k×m], B is [k×n] or [n×k], C is [m×n]. */
  size_t aRows() const { return transA ? k : m; }
  size_t aCols() const { return transA ? m : k; }
  size_t bRows() const { return transB ? n : k; }
  size_t bCols() const { return transB ? k : n; }

  /** Scan the inputs; true when all are finite. */
  bool ScanInputs(NonFiniteReport& report) const {
    if (m == 0 || n == 0) return true;
    if (k > 0) {
      if (report.Check("a", ql::findNonFinite(a.data, aRows(), aCols(), lda))) return false;
      if (report.Check("b", ql::findNonFinite(b.data, bRows(), bCols(), ldb))) return false;
    }
    if (beta != 0 && report.Check("c", ql::findNonFinite(c.data, m, n, ldc))) return false;
    return true;
  }
  void Compute(const ql::CancelFlag* cancel) const {
    ql::sgemm(transA, transB, m, n, k, alpha, a.data, lda, b.data, ldb, beta, c.data, ldc, cancel);
  }
};

SgemmArgs ParseSgemm(const Napi::CallbackInfo& info, const char* fn) {
  SgemmArgs s;
  s.transA = BoolArg(info, 0, fn, "transA");
  s.transB = BoolArg(info, 1, fn, "transB");
  s.m = DimArg(info, 2, fn, "m");
  s.n = DimArg(info, 3, fn, "n");
  s.k = DimArg(info, 4, fn, "k");
  s.alpha = FiniteFloatArg(info, 5, fn, "alpha");
  s.a = Float32ArrayArg(info, 6, fn, "a");
  s.lda = DimArg(info, 7, fn, "lda");
  s.b = Float32ArrayArg(info, 8, fn, "b");
  s.ldb = DimArg(info, 9, fn, "ldb");
  s.beta = FiniteFloatArg(info, 10, fn, "beta");
  s.c = Float32ArrayArg(info, 11, fn, "c");
  s.ldc = DimArg(info, 12, fn, "ldc");
  CheckMatrix(info, fn, "a", "lda", s.a.length, s.aRows(), s.aCols(), s.lda);
  CheckMatrix(info, fn, "b", "ldb", s.b.length, s.bRows(), s.bCols(), s.ldb);
  CheckMatrix(info, fn, "c", "ldc", s.c.length, s.m, s.n, s.ldc);
  const size_t cBytes = Extent(s.m, s.n, s.ldc) * sizeof(float);
  if (Overlaps(s.c.data, cBytes, s.a.data, Extent(s.aRows(), s.aCols(), s.lda) * sizeof(float)))
    ThrowRangeError(info.Env(), fn, "c", "overlaps 'a' in memory: C is written while A is read");
  if (Overlaps(s.c.data, cBytes, s.b.data, Extent(s.bRows(), s.bCols(), s.ldb) * sizeof(float)))
    ThrowRangeError(info.Env(), fn, "c", "overlaps 'b' in memory: C is written while B is read");
  return s;
}

class SgemmWorker : public PromiseWorker {
 public:
  SgemmWorker(Napi::Env env, const SgemmArgs& args, std::shared_ptr<ql::CancelFlag> cancel)
      : PromiseWorker(env, "quantlens:sgemm", std::move(cancel)), args_(args) {
    Keep(args.a.array);
    Keep(args.b.array);
    Keep(args.c.array);
  }

 private:
  void Run(const ql::CancelFlag* cancel) override {
    if (args_.ScanInputs(bad_)) args_.Compute(cancel);
  }
  Napi::Value Result(Napi::Env env) override {
    if (bad_.arg) bad_.Throw(env, "sgemm");
    return env.Undefined();
  }

  SgemmArgs args_;
  NonFiniteReport bad_;
};

Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  const SgemmArgs args = ParseSgemm(info, "sgemm");
  std::shared_ptr<ql::CancelFlag> cancel = CancelArg(info, 13, "sgemm");
  return (new SgemmWorker(info.Env(), args, std::move(cancel)))->Start();
}

Napi::Value SgemmSync(const Napi::CallbackInfo& info) {
  const SgemmArgs args = ParseSgemm(info, "sgemmSync");
  if (static_cast<double>(args.m) * args.n * args.k > kSyncMaxMacs)
    ThrowRangeError(info.Env(), "sgemmSync", "m",
                    "· n · k is over " + std::to_string(static_cast<long>(kSyncMaxMacs)) +
                        " multiply-adds: use sgemm() (a Promise) so the event loop keeps turning");
  NonFiniteReport bad;
  if (!args.ScanInputs(bad)) bad.Throw(info.Env(), "sgemmSync");
  args.Compute(nullptr);
  return info.Env().Undefined();
}

// ---- hessianUpdate ---------------------------------------------------------------------

class HessianWorker : public PromiseWorker {
 public:
  HessianWorker(Napi::Env env, const ArrayArg<double>& h, size_t n, const ArrayArg<float>& x, size_t rows,
                std::shared_ptr<ql::CancelFlag> cancel, bool lowerOnly)
      : PromiseWorker(env, "quantlens:hessianUpdate", std::move(cancel)), h_(h.data), x_(x.data), n_(n), rows_(rows),
        lowerOnly_(lowerOnly) {
    Keep(h.array);
    Keep(x.array);
  }

 private:
  void Run(const ql::CancelFlag* cancel) override {
    // An accumulator's own H (lowerOnly) is finite by construction: scanning it every call would
    // be one more pass over all of H (237 MB at n = 5440).
    if (!lowerOnly_ && bad_.Check("h", FindNonFiniteDouble(h_, n_, n_))) return;
    if (bad_.Check("x", ql::findNonFinite(x_, rows_, n_, n_))) return;
    ql::hessian_update(h_, n_, x_, rows_, n_, cancel, !lowerOnly_);
  }
  Napi::Value Result(Napi::Env env) override {
    if (bad_.arg) bad_.Throw(env, "hessianUpdate");
    return env.Undefined();
  }

  double* h_;
  const float* x_;
  size_t n_, rows_;
  bool lowerOnly_;
  NonFiniteReport bad_;
};

class HessianSymmetrizeWorker : public PromiseWorker {
 public:
  HessianSymmetrizeWorker(Napi::Env env, const ArrayArg<double>& h, size_t n, double scale)
      : PromiseWorker(env, "quantlens:hessianSymmetrize", nullptr), h_(h.data), n_(n), scale_(scale) {
    Keep(h.array);
  }

 private:
  void Run(const ql::CancelFlag*) override { ql::hessian_symmetrize(h_, n_, scale_); }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

  double* h_;
  size_t n_;
  double scale_;
};

Napi::Value HessianUpdate(const Napi::CallbackInfo& info) {
  const char* fn = "hessianUpdate";
  const ArrayArg<double> h = Float64ArrayArg(info, 0, fn, "h");
  const size_t n = DimArg(info, 1, fn, "n");
  const ArrayArg<float> x = Float32ArrayArg(info, 2, fn, "x");
  const size_t rows = DimArg(info, 3, fn, "rows");
  std::shared_ptr<ql::CancelFlag> cancel = CancelArg(info, 4, fn);
  if (info.Length() > 5 && !info[5].IsUndefined() && !info[5].IsBoolean())
    ThrowTypeError(info.Env(), fn, "lowerOnly", "must be a boolean");
  const bool lowerOnly = info.Length() > 5 && info[5].IsBoolean() && info[5].As<Napi::Boolean>().Value();
  if (h.length != n * n)
    ThrowRangeError(info.Env(), fn, "h",
                    "has " + std::to_string(h.length) + " elements; an n×n matrix with n = " + std::to_string(n) +
                        " has " + std::to_string(n * n));
  if (x.length != rows * n)
    ThrowRangeError(info.Env(), fn, "x",
                    "has " + std::to_string(x.length) + " elements; rows×n = " + std::to_string(rows) + "×" +
                        std::to_string(n) + " needs " + std::to_string(rows * n));
  return (new HessianWorker(info.Env(), h, n, x, rows, std::move(cancel), lowerOnly))->Start();
}

Napi::Value HessianSymmetrize(const Napi::CallbackInfo& info) {
  const char* fn = "hessianSymmetrize";
  const ArrayArg<double> h = Float64ArrayArg(info, 0, fn, "h");
  const size_t n = DimArg(info, 1, fn, "n");
  if (!info[2].IsNumber() || !std::isfinite(info[2].As<Napi::Number>().DoubleValue()))
    ThrowTypeError(info.Env(), fn, "scale", "must be a finite number");
  if (h.length != n * n)
    ThrowRangeError(info.Env(), fn, "h",
                    "has " + std::to_string(h.length) + " elements; an n×n matrix with n = " + std::to_string(n) +
                        " has " + std::to_string(n * n));
  return (new HessianSymmetrizeWorker(info.Env(), h, n, info[2].As<Napi::Number>().DoubleValue()))->Start();
}

// ---- Cholesky family -------------------------------------------------------------------

enum class SquareOp { Cholesky, Trtri, GptqFactor };

class SquareWorker : public PromiseWorker {
 public:
  SquareWorker(Napi::Env env, const char* fn, SquareOp op, const ArrayArg<float>& a, size_t n, size_t lda,
               std::shared_ptr<ql::CancelFlag> cancel)
      : PromiseWorker(env, "quantlens:linalg", std::move(cancel)), fn_(fn), op_(op), a_(a.data), n_(n), lda_(lda) {
    Keep(a.array);
  }

 private:
  void Run(const ql::CancelFlag* cancel) override {
    // Cholesky and trtri read the lower triangle; the GPTQ factor reads (and may restore) all of H.
    const bool lower = op_ != SquareOp::GptqFactor;
    if (bad_.Check(argName(), ql::findNonFinite(a_, n_, n_, lda_, lower))) return;
    switch (op_) {
      case SquareOp::Cholesky:
        pivot_ = ql::cholesky_lower(a_, n_, lda_, cancel);
        break;
      case SquareOp::GptqFactor:
        pivot_ = ql::gptq_inverse_cholesky_upper(a_, n_, lda_, cancel);
        break;
      case SquareOp::Trtri:
        for (size_t i = 0; i < n_; i++) {
          if (a_[i * lda_ + i] == 0) {
            singular_ = static_cast<long>(i);
            return;
          }
        }
        ql::trtri_lower(a_, n_, lda_, cancel);
        break;
    }
  }
  Napi::Value Result(Napi::Env env) override {
    if (bad_.arg) bad_.Throw(env, fn_);
    if (singular_ >= 0) {
      Napi::Error e = Napi::RangeError::New(env, std::string("quantlens_kernels.") + fn_ + "(): argument 'l' is singular: l[" +
                                                     std::to_string(singular_) + "][" + std::to_string(singular_) +
                                                     "] is 0");
      e.Set("code", Napi::String::New(env, "ERR_QUANTLENS_SINGULAR"));
      throw e;
    }
    if (op_ == SquareOp::Trtri) return env.Undefined();
    return Napi::Number::New(env, static_cast<double>(pivot_));
  }
  const char* argName() const { return op_ == SquareOp::Trtri ? "l" : op_ == SquareOp::Cholesky ? "a" : "h"; }

  const char* fn_;
  SquareOp op_;
  float* a_;
  size_t n_, lda_;
  long pivot_ = -1;
  long singular_ = -1;
  NonFiniteReport bad_;
};

Napi::Value SquareCall(const Napi::CallbackInfo& info, const char* fn, const char* name, SquareOp op) {
  const ArrayArg<float> a = Float32ArrayArg(info, 0, fn, name);
  const size_t n = DimArg(info, 1, fn, "n");
  const size_t lda = DimArg(info, 2, fn, "lda");
  std::shared_ptr<ql::CancelFlag> cancel = CancelArg(info, 3, fn);
  CheckMatrix(info, fn, name, "lda", a.length, n, n, lda);
  return (new SquareWorker(info.Env(), fn, op, a, n, lda, std::move(cancel)))->Start();
}

Napi::Value CholeskyLower(const Napi::CallbackInfo& info) {
  return SquareCall(info, "choleskyLower", "a", SquareOp::Cholesky);
}
Napi::Value TrtriLower(const Napi::CallbackInfo& info) { return SquareCall(info, "trtriLower", "l", SquareOp::Trtri); }
Napi::Value GptqInverseCholeskyUpper(const Napi::CallbackInfo& info) {
  return SquareCall(info, "gptqInverseCholeskyUpper", "h", SquareOp::GptqFactor);
}

}  // namespace

void RegisterLinalg(Napi::Env env, Napi::Object exports) {
  exports.Set("sgemm", Napi::Function::New(env, Sgemm, "sgemm"));
  exports.Set("sgemmSync", Napi::Function::New(env, SgemmSync, "sgemmSync"));
  exports.Set("sgemmSyncMaxMacs", Napi::Number::New(env, kSyncMaxMacs));
  exports.Set("hessianUpdate", Napi::Function::New(env, HessianUpdate, "hessianUpdate"));
  exports.Set("hessianSymmetrize", Napi::Function::New(env, HessianSymmetrize, "hessianSymmetrize"));
  exports.Set("choleskyLower", Napi::Function::New(env, CholeskyLower, "choleskyLower"));
  exports.Set("trtriLower", Napi::Function::New(env, TrtriLower, "trtriLower"));
  exports.Set("gptqInverseCholeskyUpper", Napi::Function::New(env, GptqInverseCholeskyUpper, "gptqInverseCholeskyUpper"));
}

}  // namespace qlb
