// Cholesky factorization, triangular inverse and GPTQ's "Cholesky of the inverse" factor, fp32.
//
// All matrices are row-major with row stride lda ≥ n. Blocked (cholesky.cpp): the flops are
// spent in sgemm/sgemmTriangle calls (multithreaded); the small diagonal blocks are factored
// with dot products accumulated in double, so accuracy is on par with LAPACK spotrf/strtri.
#pragma once

#include <cstddef>

#include "cancel.h"

namespace ql {

/**
 * In-place lower Cholesky A = L·Lᵀ (fp32, row-major, lda). Reads only the lower triangle
 * (j ≤ i). Returns -1 on success, else the index of the first non-positive (or NaN) pivot
 * (matrix not SPD; callers escalate damping).
 * On success the lower triangle holds L and the strict upper triangle is set to 0. On failure
 * the strict upper triangle is untouched and the lower one is partly factored.
 */
long cholesky_lower(float* A, size_t n, size_t lda, const CancelFlag* cancel = nullptr);

/**
 * Inverse of a lower-triangular L in place (reads the lower triangle, writes L⁻¹ there and 0 to
 * the strict upper triangle). A zero on the diagonal gives ±Inf/NaN (callers check first).
 */
void trtri_lower(float* L, size_t n, size_t lda, const CancelFlag* cancel = nullptr);

/**
 * GPTQ's factor: given SPD H (n×n), overwrite it with the UPPER Cholesky factor U of H⁻¹
 * (H⁻¹ = Uᵀ·U, diag(U) > 0, zeros below the diagonal), i.e.
 * torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True).
 *
 * Computed without forming H⁻¹: with J the reversal permutation, factor J·H·J = L̃·L̃ᵀ; then
 * H = V·Vᵀ with V = J·L̃·J upper triangular, so H⁻¹ = V⁻ᵀ·V⁻¹ and, the Cholesky factor being
 * unique, U = V⁻¹ = J·L̃⁻¹·J. One Cholesky + one triangular inverse (2n³/3 flops instead of
 * torch's 4n³/3), and no rounding from an explicit H⁻¹ that is then factored again.
 *
 * H must be symmetric (the triangle read is H's upper one). Returns -1 on success, or the index
 * (in H's numbering) of the first non-positive pivot; the elimination runs from the last index
 * down, so this is the largest i for which H[i:, i:] is found not positive definite. On failure H
 * is restored to its input (exactly, for a symmetric H), ready for more damping.
 */
long gptq_inverse_cholesky_upper(float* H, size_t n, size_t lda, const CancelFlag* cancel = nullptr);

/**
 * Unblocked, one thread, dot products in double: the C++ yardstick for tests (same contract as
 * cholesky_lower).
 */
long choleskyLowerNaive(float* A, size_t n, size_t lda);

/** Unblocked, one thread, double accumulation: the yardstick for trtri_lower. */
void trtriLowerNaive(float* L, size_t n, size_t lda);

}  // namespace ql
