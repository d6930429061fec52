// Single-precision GEMM: the BLAS-3 core every quantization pass runs on (GPTQ block updates,
// Hessian accumulation, Cholesky trailing updates, rotations).
//
//   C[m×n] = alpha·op(A)·op(B) + beta·C,  op(X) = X or Xᵀ
//   A: [m×k] (or [k×m] stored when transA), B: [k×n] (or [n×k] stored when transB), row-major;
//   lda/ldb/ldc are the row strides of the matrices as stored (≥ their stored column counts).
//
// Algorithm (gemm.cpp): GotoBLAS/BLIS blocking. B is packed in KC×NC panels of NR-wide column
// strips, A in MC×KC blocks of MR-tall row strips (zero-padded at the edges), and an MR×NR
// register-tiled micro-kernel (AVX2/FMA 6×16 in gemm_x86.cpp, a portable one otherwise) runs
// over the packed data. MC blocks of one panel are spread over the shared pool; the split is
// fixed, so results do not depend on the thread count.
#pragma once

#include <cstddef>

#include "cancel.h"

namespace ql {

/**
 * C[m×n] = alpha·op(A)·op(B) + beta·C. Row-major; op(X) = X or Xᵀ; lda/ldb/ldc are row strides
 * of the matrices as stored. Multithreaded on the shared pool; polls `cancel` between blocks
 * (throws Cancelled; C is then partly updated).
 *
 * BLAS conventions: beta == 0 never reads C (C may hold NaN); alpha == 0 or k == 0 never reads
 * A or B (C = beta·C). Any m, n, k (0 included). NaN/Inf in A or B propagate as IEEE arithmetic
 * does (callers that need finite inputs check them first: findNonFinite below).
 * Products are summed in fp32 with FMA along k (blocked: KC-long FMA chains, added into C).
 */
void sgemm(bool transA, bool transB, size_t m, size_t n, size_t k, float alpha, const float* A, size_t lda,
           const float* B, size_t ldb, float beta, float* C, size_t ldc, const CancelFlag* cancel = nullptr);

/**
 * The part of C that a call computes. Lower: only C[i][j] with j ≤ i (m == n required; the
 * strict upper triangle is neither read nor written). This is SYRK/"GEMMT": the Cholesky
 * trailing update and the Hessian use it to do half the flops.
 */
enum class GemmTriangle { Full, Lower };

/** sgemm restricted to `tri` (sgemm itself is sgemmTriangle(..., GemmTriangle::Full, ...)). */
void sgemmTriangle(GemmTriangle tri, bool transA, bool transB, size_t m, size_t n, size_t k, float alpha,
                   const float* A, size_t lda, const float* B, size_t ldb, float beta, float* C, size_t ldc,
                   const CancelFlag* cancel = nullptr);

/**
 * The plain triple loop (float accumulation, k innermost, no blocking, one thread): the C++
 * yardstick the blocked kernel is tested against. Same conventions as sgemm.
 */
void sgemmNaive(bool transA, bool transB, size_t m, size_t n, size_t k, float alpha, const float* A,
                size_t lda, const float* B, size_t ldb, float beta, float* C, size_t ldc);

/** Where a non-finite value is in a rows×cols row-major matrix. */
struct NonFinite {
  bool found = false;
  size_t row = 0;
  size_t col = 0;
};

/**
 * The first NaN/±Inf in row order of X[rows×cols] (row stride ld), read over the pool.
 * `lowerOnly`: look only at X[i][j] with j ≤ i (what a lower-triangular routine reads).
 */
NonFinite findNonFinite(const float* X, size_t rows, size_t cols, size_t ld, bool lowerOnly = false);

}  // namespace ql
