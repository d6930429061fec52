// Symmetric eigendecomposition A = V·diag(λ)·Vᵀ in double precision: Hessian spectra, condition
// numbers and the incoherence μ_H = max|V_ij|·√n of QuIP.
//
//   A: [n, n] row-major, float or double. Only the lower triangle (j ≤ i, a[i·n + j]) is read;
//      the upper one is ignored and may hold anything.
//   values: n doubles, ascending.
//   vectors (optional): [n, n] row-major, column j (v[i·n + j], i = 0..n−1) the unit eigenvector
//      of values[j]; orthonormal columns.
//
// Algorithm (LAPACK dsyevd's, and dsyevd_2stage's for values alone):
//   - with vectors: blocked Householder tridiagonalization A = Q·T·Qᵀ (4/3·n³ flops, half of them
//     memory-bound matrix-vector products), divide and conquer T = Z·Λ·Zᵀ (≤ 4/3·n³ in dgemm,
//     much less with deflation), back-transformation V = Q·Z (2·n³ in dgemm);
//   - values alone, n ≥ 2048: dense → band (4/3·n³, all dgemm) → tridiagonal (bulge chasing,
//     O(n²·b)), then implicit QL (O(n²)); below 2048 the one-stage reduction, then QL.
// Accuracy: |λ̂ − λ| ≲ p(n)·ε·‖A‖₂ and ‖V̂ᵀV̂ − I‖ ≲ p(n)·ε. Results do not depend on the thread
// count (fixed blocking, fixed summation orders, a pipeline that keeps the sequential order).
#pragma once

#include <cstddef>
#include <stdexcept>

#include "cancel.h"

namespace ql {

struct EigenOutput {
  /** n eigenvalues, ascending. Required. */
  double* values = nullptr;
  /** [n, n] eigenvectors in columns, in double... */
  double* vectors64 = nullptr;
  /** ...or in float (computed in double, rounded at the end). At most one of the two. */
  float* vectors32 = nullptr;
};

/** The lower triangle of the input holds NaN or ±Inf at (row, col); nothing was written. */
struct EigenNonFinite : std::invalid_argument {
  EigenNonFinite(size_t row, size_t col);
  size_t row, col;
};

/**
 * Eigenvalues (and, when out asks for them, eigenvectors) of the symmetric a: [n, n].
 * Throws EigenNonFinite before writing anything when the lower triangle holds NaN or ±Inf,
 * Cancelled when `cancel` is set (polled between Householder rows, blocks and merges).
 */
void symmetricEigen(const float* a, size_t n, const EigenOutput& out, const CancelFlag* cancel = nullptr);
void symmetricEigen(const double* a, size_t n, const EigenOutput& out, const CancelFlag* cancel = nullptr);

}  // namespace ql
