// Hessian proxy accumulation for GPTQ/LDLQ/QuIP: H += Xᵀ·X over calibration tokens.
//
//   X: [rows × n] fp32 activations (one row per token, row stride ldx)
//   H: [n × n]    fp64, symmetric, row-major (the caller scales by 2/N at the end)
//
// A SYRK: for each chunk of kHessianChunkRows rows, the lower triangle of the chunk's Xcᵀ·Xc is
// formed in fp32 by the sgemm micro-kernel (FMA chains of ≤ 256 terms, on packed strips), and
// each output tile is added into double precision while it is still in cache. The fp32 error is
// bounded by the chunk length (≤ ~chunk·ε/2 relative to √(H_ii·H_jj), measured ≤ 3e-7), while the
// running sum over 10⁶ tokens is in double, so it does not grow with the token count.
#pragma once

#include <cstddef>

#include "cancel.h"

namespace ql {

/** Rows of X per fp32 product (the accuracy contract: fp32 sums are at most this long; = the GEMM KC). */
constexpr size_t kHessianChunkRows = 256;

/**
 * H[n×n] += Xᵀ·X for X [rows×n] fp32 row-major (ldx ≥ n), accumulated in double. Both triangles
 * of H are written (the lower one is computed, then mirrored), so H must hold a symmetric matrix
 * on entry (e.g. zeros, or an earlier result). Multithreaded; polls `cancel` between chunks and
 * tiles (on Cancelled, H holds a partial sum: discard it).
 * With `mirror` false (an accumulator that owns H) only the lower triangle, diagonal included, is
 * read and written and the strict upper one is left as it was; one hessian_symmetrize at the end
 * then replaces a mirror pass over all of H per update (n = 5440: 237 MB). The optional CUDA path
 * writes both triangles, which changes nothing.
 */
void hessian_update(double* H, size_t n, const float* X, size_t rows, size_t ldx, const CancelFlag* cancel = nullptr,
                    bool mirror = true);

/** H ← scale·H with the strict upper triangle copied from the lower one (multithreaded). */
void hessian_symmetrize(double* H, size_t n, double scale);

/** Plain loops in double (one thread): the yardstick for tests. Same contract as hessian_update. */
void hessianUpdateNaive(double* H, size_t n, const float* X, size_t rows, size_t ldx);

}  // namespace ql
