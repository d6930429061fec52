// AVX2/FMA kernels of the triangular-solve leaves in cholesky.cpp (defined in cholesky_x86.cpp).
// Guarded: they exist only where QL_X86_SIMD is 1 and are called only after useAvx2Fma().
#pragma once

#include <cstddef>

#include "simd_x86.h"

namespace ql {

/**
 * Right-hand sides a solve leaf works on at once. Each leaf unknown is a row of this many doubles
 * (x[c·kSolveLanes + r]): eight 4-wide FMA chains per row, enough to hide the FMA latency (the
 * recurrence along c is sequential).
 */
constexpr size_t kSolveLanes = 32;

#if QL_X86_SIMD
/**
 * In place on x [nb × kSolveLanes] (32-byte aligned), L lower [nb × nb] (ldl), nb ≤ 32:
 *   trans: x[c] = (x[c] − Σ_{q<c} L[c][q]·x[q]) / L[c][c], c ascending;
 *   else:  x[c] = (x[c] − Σ_{q>c} L[q][c]·x[q]) / L[c][c], c descending.
 * Double FMAs; the division is a multiplication by 1/L[c][c] (agrees with the portable loops to
 * rounding).
 */
void solveSlabAvx2(bool trans, const float* L, size_t ldl, size_t nb, double* x);

/** x[c][r] = B[r][c] for r < rows ≤ kSolveLanes, c < nb; x[c][r] = 0 for rows ≤ r < kSolveLanes. */
void loadTransposedAvx2(const float* B, size_t ldb, size_t rows, size_t nb, double* x);
/** B[r][c] = (float) x[c][r] for r < rows, c < nb (the inverse of loadTransposedAvx2). */
void storeTransposedAvx2(const double* x, size_t rows, size_t nb, float* B, size_t ldb);

/** x[i][j] = B[i][j] for i < rows, j < width ≤ kSolveLanes; x[i][j] = 0 for width ≤ j < kSolveLanes. */
void loadRowsAvx2(const float* B, size_t ldb, size_t rows, size_t width, double* x);
/** B[i][j] = (float) x[i][j] for i < rows, j < width. */
void storeRowsAvx2(const double* x, size_t rows, size_t width, float* B, size_t ldb);
#endif

}  // namespace ql
