// The double-precision building blocks of the symmetric eigensolver (eigen.h): a packed,
// strided dgemm and the symmetric matrix-vector product of the Householder reduction.
//
// Both are deterministic: every output element is summed in an order fixed by the problem size
// alone, so results do not depend on the thread count (the pool only decides who computes which
// block). The AVX2+FMA micro-kernels (eigen_x86.cpp) round differently from the scalar ones.
#pragma once

#include <cstddef>
#include <vector>

#include "cancel.h"

namespace ql {
namespace eig {

/** dgemm register tile: 6 rows × 8 columns (12 AVX2 accumulators of 4 doubles). */
constexpr size_t kGemmMr = 6;
constexpr size_t kGemmNr = 8;

/** Which part of C a dgemm writes. */
enum class Part {
  All,
  /**
   * The lower triangle (j ≤ i) of a square C. Register tiles that straddle the diagonal are
   * computed whole, so some entries just above it are written too; tiles wholly above it are
   * skipped (half the flops of All).
   */
  Lower,
};

/**
 * C = alpha·A·B + beta·C with any strides (so any transposes and row/column-major mixes):
 *   A: [m, k], element (i, l) at a[i·rsa + l·csa];  B: [k, n] at b[l·rsb + j·csb];
 *   C: [m, n] at c[i·rsc + j·csc]. beta = 0 never reads C (it may hold NaN).
 * Blocked and packed like BLIS (kc × nc panels of B, mc × kc blocks of A, 6 × 8 register tiles),
 * spread over the pool when large (unless mayUsePool is false: callers that are pool tasks
 * themselves). Each C element sums its k products in index order.
 */
void dgemm(size_t m, size_t n, size_t k, double alpha, const double* a, ptrdiff_t rsa, ptrdiff_t csa,
           const double* b, ptrdiff_t rsb, ptrdiff_t csb, double beta, double* c, ptrdiff_t rsc, ptrdiff_t csc,
           Part part = Part::All, bool mayUsePool = true);

/** Scalar register tile: c[0..mr)×[0..nr) = alpha·Σ_l a[l·6+i]·b[l·8+j] + beta·c (beta = 0: c not read). */
void dgemmTileScalar(size_t kc, const double* a, const double* b, double* c, ptrdiff_t rsc, ptrdiff_t csc, size_t mr,
                     size_t nr, double alpha, double beta);

/** As dgemmTileScalar with A read in place: element (i, l) at a[i·rsa + l·csa] (rows < mr only). */
void dgemmTileUnpackedScalar(size_t kc, const double* a, ptrdiff_t rsa, ptrdiff_t csa, const double* b, double* c,
                             ptrdiff_t rsc, ptrdiff_t csc, size_t mr, size_t nr, double alpha, double beta);

/**
 * y = A·x for the symmetric A: [n, n] of which only the lower triangle (j ≤ i) of the row-major
 * storage `a` (leading dimension lda) is read. Rows are cut into parts of equal area whose count
 * depends only on n; each part accumulates into its own slice of `work` (at least
 * symvWorkSize(n) doubles), and the parts are summed in a fixed order.
 */
void symvLower(size_t n, const double* a, size_t lda, const double* x, double* y, double* work);
size_t symvWorkSize(size_t n);

/**
 * The row kernel of symvLower: for rows i in [r0, r1) (r0 a multiple of 4), y[i] += Σ_{j≤i} a_ij·x_j
 * and y[j] += a_ij·x_i for j < i. y is the part's accumulator, length ≥ r1.
 */
void symvRowsScalar(const double* a, size_t lda, size_t r0, size_t r1, const double* x, double* y);

/** Σ x_i·y_i (AVX2 when available; lanes summed in a fixed order). */
double dot(const double* x, const double* y, size_t n);
/** y += alpha·x. */
void axpy(double alpha, const double* x, double* y, size_t n);

}  // namespace eig
}  // namespace ql
