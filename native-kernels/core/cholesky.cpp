#include "cholesky.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cholesky_x86.h"
#include "cpu.h"
#include "gemm.h"
#include "thread_pool.h"

namespace ql {

// Recursive blocked algorithms (Gustavson / Toledo): split the matrix in two, recurse on the
// diagonal blocks and spend the off-diagonal work in sgemm/sgemmTriangle, which are blocked,
// vectorized and multithreaded. Below kLeaf the unblocked loops run with double accumulators.
// Every step writes only on or below the diagonal; the strict upper triangle is zeroed at the
// end (so cholesky_lower leaves it untouched when it fails).

namespace {

/** Diagonal blocks of at most this size are done by the unblocked loops. */
constexpr size_t kLeaf = 32;
/** Rows of B per task in the row-parallel triangular-solve leaves. */
constexpr size_t kSolveRows = 64;
/**
 * Right-hand sides handled together in a solve leaf (a slab of kLeaf × kLanes doubles in a local
 * buffer, so the inner loop runs across them).
 */
constexpr size_t kLanes = kSolveLanes;
static_assert(kSolveRows % kLanes == 0, "a task is whole slabs");

size_t splitPoint(size_t n) { return std::max<size_t>(16, n / 2 / 16 * 16); }

/** Unblocked lower Cholesky of A[n×n] (n ≤ kLeaf), dot products in double; lower triangle only. */
long cholLeaf(float* A, size_t n, size_t lda) {
  for (size_t j = 0; j < n; j++) {
    float* rowJ = A + j * lda;
    double d = rowJ[j];
    for (size_t p = 0; p < j; p++) d -= static_cast<double>(rowJ[p]) * rowJ[p];
    if (!(d > 0)) return static_cast<long>(j);
    const double ljj = std::sqrt(d);
    rowJ[j] = static_cast<float>(ljj);
    for (size_t i = j + 1; i < n; i++) {
      float* rowI = A + i * lda;
      double s = rowI[j];
      for (size_t p = 0; p < j; p++) s -= static_cast<double>(rowI[p]) * rowJ[p];
      rowI[j] = static_cast<float>(s / ljj);
    }
  }
  return -1;
}

/**
 * Solve X·op(L) = B for X in place of B [m×nb] (ldb), L [nb×nb] lower (ldl), nb ≤ kLeaf:
 *   trans: X·Lᵀ = B, x[c] = (b[c] − Σ_{q<c} x[q]·L[c][q]) / L[c][c], c ascending;
 *   else:  X·L  = B, x[c] = (b[c] − Σ_{q>c} x[q]·L[q][c]) / L[c][c], c descending.
 * Rows are independent: kLanes of them at a time are transposed into a double buffer so the
 * innermost loop runs across rows; row groups spread over the pool.
 */
void solveRightLeaf(bool trans, const float* L, size_t ldl, size_t nb, float* B, size_t ldb, size_t m) {
  const bool simd = useAvx2Fma();
  (void)simd;
  const auto rowGroup = [&](size_t t) {
    const size_t iEnd = std::min(m, (t + 1) * kSolveRows);
    for (size_t i0 = t * kSolveRows; i0 < iEnd; i0 += kLanes) {
      const size_t lanes = std::min(kLanes, iEnd - i0);
      alignas(64) double x[kLeaf][kLanes];
#if QL_X86_SIMD
      if (simd) {
        loadTransposedAvx2(B + i0 * ldb, ldb, lanes, nb, &x[0][0]);
        solveSlabAvx2(trans, L, ldl, nb, &x[0][0]);
        storeTransposedAvx2(&x[0][0], lanes, nb, B + i0 * ldb, ldb);
        continue;
      }
#endif
      for (size_t c = 0; c < nb; c++)
        for (size_t r = 0; r < kLanes; r++) x[c][r] = r < lanes ? B[(i0 + r) * ldb + c] : 0.0;
      if (trans) {
        for (size_t c = 0; c < nb; c++) {
          for (size_t q = 0; q < c; q++) {
            const double l = L[c * ldl + q];
            for (size_t r = 0; r < kLanes; r++) x[c][r] -= x[q][r] * l;
          }
          const double d = L[c * ldl + c];
          for (size_t r = 0; r < kLanes; r++) x[c][r] /= d;
        }
      } else {
        for (size_t c = nb; c-- > 0;) {
          for (size_t q = c + 1; q < nb; q++) {
            const double l = L[q * ldl + c];
            for (size_t r = 0; r < kLanes; r++) x[c][r] -= x[q][r] * l;
          }
          const double d = L[c * ldl + c];
          for (size_t r = 0; r < kLanes; r++) x[c][r] /= d;
        }
      }
      for (size_t r = 0; r < lanes; r++)
        for (size_t c = 0; c < nb; c++) B[(i0 + r) * ldb + c] = static_cast<float>(x[c][r]);
    }
  };
  const size_t tasks = (m + kSolveRows - 1) / kSolveRows;
  if (tasks > 1 && m * nb * nb >= (size_t{1} << 16)) {
    pool().parallelFor(tasks, rowGroup);
  } else {
    for (size_t t = 0; t < tasks; t++) rowGroup(t);
  }
}

/** Solve X·op(L) = B (see solveRightLeaf), recursively: halves of L, the coupling term by sgemm. */
void solveRight(bool trans, const float* L, size_t ldl, size_t nb, float* B, size_t ldb, size_t m,
                const CancelFlag* cancel) {
  if (m == 0 || nb == 0) return;
  if (nb <= kLeaf) {
    solveRightLeaf(trans, L, ldl, nb, B, ldb, m);
    return;
  }
  throwIfCancelled(cancel);
  const size_t n1 = splitPoint(nb), n2 = nb - n1;
  const float* L11 = L;
  const float* L21 = L + n1 * ldl;
  const float* L22 = L21 + n1;
  float* B1 = B;
  float* B2 = B + n1;
  if (trans) {
    // [X1 X2]·[L11ᵀ L21ᵀ; 0 L22ᵀ] = [B1 B2]: X1·L11ᵀ = B1, then X2·L22ᵀ = B2 − X1·L21ᵀ.
    solveRight(true, L11, ldl, n1, B1, ldb, m, cancel);
    sgemm(false, true, m, n2, n1, -1.0f, B1, ldb, L21, ldl, 1.0f, B2, ldb, cancel);
    solveRight(true, L22, ldl, n2, B2, ldb, m, cancel);
  } else {
    // [X1 X2]·[L11 0; L21 L22] = [B1 B2]: X2·L22 = B2, then X1·L11 = B1 − X2·L21.
    solveRight(false, L22, ldl, n2, B2, ldb, m, cancel);
    sgemm(false, false, m, n1, n2, -1.0f, B2, ldb, L21, ldl, 1.0f, B1, ldb, cancel);
    solveRight(false, L11, ldl, n1, B1, ldb, m, cancel);
  }
}

/** Solve L·X = B for X in place of B [m×nrhs] (ldb), L [m×m] lower (ldl). */
void solveLeft(const float* L, size_t ldl, size_t m, float* B, size_t ldb, size_t nrhs, const CancelFlag* cancel) {
  if (m == 0 || nrhs == 0) return;
  if (m <= kLeaf) {
    // Row by row: x[i][:] = (b[i][:] − Σ_{q<i} L[i][q]·x[q][:]) / L[i][i]; the column loop is contiguous.
    // Columns in groups (a double row buffer), spread over the pool when wide.
    constexpr size_t kCols = 256;
    const bool simd = useAvx2Fma();
    (void)simd;
    const auto columnGroup = [&](size_t t) {
      const size_t c0 = t * kCols, width = std::min(kCols, nrhs - c0);
#if QL_X86_SIMD
      if (simd) {
        // L·X = B column slab by column slab: x[i][:] is row i of the slab, the recurrence is
        // solveSlab's transposed one (x[i] = (b[i] − Σ_{q<i} L[i][q]·x[q]) / L[i][i]).
        alignas(64) double x[kLeaf * kLanes];
        for (size_t j0 = 0; j0 < width; j0 += kLanes) {
          const size_t w = std::min(kLanes, width - j0);
          loadRowsAvx2(B + c0 + j0, ldb, m, w, x);
          solveSlabAvx2(true, L, ldl, m, x);
          storeRowsAvx2(x, m, w, B + c0 + j0, ldb);
        }
        return;
      }
#endif
      double acc[kCols];
      for (size_t i = 0; i < m; i++) {
        float* bi = B + i * ldb + c0;
        for (size_t c = 0; c < width; c++) acc[c] = bi[c];
        for (size_t q = 0; q < i; q++) {
          const double l = L[i * ldl + q];
          const float* xq = B + q * ldb + c0;
          for (size_t c = 0; c < width; c++) acc[c] -= l * xq[c];
        }
        const double d = L[i * ldl + i];
        for (size_t c = 0; c < width; c++) bi[c] = static_cast<float>(acc[c] / d);
      }
    };
    const size_t tasks = (nrhs + kCols - 1) / kCols;
    if (tasks > 1 && m * m * nrhs >= (size_t{1} << 16)) {
      pool().parallelFor(tasks, columnGroup);
    } else {
      for (size_t t = 0; t < tasks; t++) columnGroup(t);
    }
    return;
  }
  throwIfCancelled(cancel);
  // [L11 0; L21 L22]·[X1; X2] = [B1; B2]: L11·X1 = B1, then L22·X2 = B2 − L21·X1.
  const size_t m1 = splitPoint(m), m2 = m - m1;
  solveLeft(L, ldl, m1, B, ldb, nrhs, cancel);
  sgemm(false, false, m2, nrhs, m1, -1.0f, L + m1 * ldl, ldl, B, ldb, 1.0f, B + m1 * ldb, ldb, cancel);
  solveLeft(L + m1 * ldl + m1, ldl, m2, B + m1 * ldb, ldb, nrhs, cancel);
}

long cholRecursive(float* A, size_t n, size_t lda, const CancelFlag* cancel) {
  if (n <= kLeaf) return cholLeaf(A, n, lda);
  throwIfCancelled(cancel);
  // [A11 ·; A21 A22] = [L11 0; L21 L22]·[L11ᵀ L21ᵀ; 0 L22ᵀ]:
  //   A11 = L11·L11ᵀ;  L21 = A21·L11⁻ᵀ;  A22 − L21·L21ᵀ = L22·L22ᵀ.
  const size_t n1 = splitPoint(n), n2 = n - n1;
  float* A21 = A + n1 * lda;
  float* A22 = A21 + n1;
  const long p1 = cholRecursive(A, n1, lda, cancel);
  if (p1 >= 0) return p1;
  solveRight(true, A, lda, n1, A21, lda, n2, cancel);
  sgemmTriangle(GemmTriangle::Lower, false, true, n2, n2, n1, -1.0f, A21, lda, A21, lda, 1.0f, A22, lda, cancel);
  const long p2 = cholRecursive(A22, n2, lda, cancel);
  return p2 >= 0 ? static_cast<long>(n1) + p2 : -1;
}

/** X ← −X for X [rows × cols] (row stride ld), row blocks over the pool when large. */
void negate(float* X, size_t rows, size_t cols, size_t ld) {
  constexpr size_t kRowsPerTask = 64;
  const auto negateRows = [&](size_t t) {
    const size_t end = std::min(rows, (t + 1) * kRowsPerTask);
    for (size_t i = t * kRowsPerTask; i < end; i++)
      for (size_t j = 0; j < cols; j++) X[i * ld + j] = -X[i * ld + j];
  };
  const size_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  if (rows * cols >= (size_t{1} << 18)) {
    pool().parallelFor(tasks, negateRows);
  } else {
    for (size_t t = 0; t < tasks; t++) negateRows(t);
  }
}

/** Unblocked in-place inverse of lower L (n ≤ kLeaf or the naive yardstick), double accumulators. */
void trtriLeaf(float* L, size_t n, size_t lda) {
  // LAPACK strti2 order: columns right to left; column j below the diagonal becomes
  // −L⁻¹[j+1:, j+1:]·L[j+1:, j] / L[j][j], using the already-inverted trailing block. Rows are
  // taken bottom-up so each L[p][j] (p ≤ i) is still the original when row i needs it.
  for (size_t jj = n; jj-- > 0;) {
    const double inv = 1.0 / static_cast<double>(L[jj * lda + jj]);
    L[jj * lda + jj] = static_cast<float>(inv);
    for (size_t i = n; i-- > jj + 1;) {
      double s = 0;
      for (size_t p = jj + 1; p <= i; p++) s += static_cast<double>(L[i * lda + p]) * L[p * lda + jj];
      L[i * lda + jj] = static_cast<float>(-s * inv);
    }
  }
}

void trtriRecursive(float* L, size_t n, size_t lda, const CancelFlag* cancel) {
  if (n <= kLeaf) {
    trtriLeaf(L, n, lda);
    return;
  }
  throwIfCancelled(cancel);
  // [L11 0; L21 L22]⁻¹ = [L11⁻¹ 0; −L22⁻¹·L21·L11⁻¹  L22⁻¹]. The off-diagonal block comes from two
  // triangular solves with the original diagonal blocks (as accurate as substitution), then the
  // diagonal blocks are inverted.
  const size_t n1 = splitPoint(n), n2 = n - n1;
  float* L21 = L + n1 * lda;
  float* L22 = L21 + n1;
  solveLeft(L22, lda, n2, L21, lda, n1, cancel);          // L21 ← L22⁻¹·L21
  solveRight(false, L, lda, n1, L21, lda, n2, cancel);   // L21 ← L21·L11⁻¹
  negate(L21, n2, n1, lda);
  trtriRecursive(L, n1, lda, cancel);
  trtriRecursive(L22, n2, lda, cancel);
}

void zeroStrictUpper(float* A, size_t n, size_t lda) {
  constexpr size_t kRowsPerTask = 64;
  const auto zeroRows = [&](size_t t) {
    const size_t end = std::min(n, (t + 1) * kRowsPerTask);
    for (size_t i = t * kRowsPerTask; i < end; i++) std::fill(A + i * lda + i + 1, A + i * lda + n, 0.0f);
  };
  const size_t tasks = (n + kRowsPerTask - 1) / kRowsPerTask;
  if (n >= 512) {
    pool().parallelFor(tasks, zeroRows);
  } else {
    for (size_t t = 0; t < tasks; t++) zeroRows(t);
  }
}

/** X ← J·X·J (J the reversal): element (i, j) swaps with (n−1−i, n−1−j). Row pairs over the pool. */
void reverseBoth(float* X, size_t n, size_t lda) {
  constexpr size_t kRowsPerTask = 32;
  const auto swapRows = [&](size_t t) {
    const size_t end = std::min(n / 2, (t + 1) * kRowsPerTask);
    for (size_t i = t * kRowsPerTask; i < end; i++) {
      float* top = X + i * lda;
      float* bottom = X + (n - 1 - i) * lda;
      for (size_t j = 0; j < n; j++) std::swap(top[j], bottom[n - 1 - j]);
    }
  };
  const size_t tasks = (n / 2 + kRowsPerTask - 1) / kRowsPerTask;
  if (n >= 512) {
    pool().parallelFor(tasks, swapRows);
  } else {
    for (size_t t = 0; t < tasks; t++) swapRows(t);
  }
  if (n % 2 == 1) {
    float* mid = X + (n / 2) * lda;
    std::reverse(mid, mid + n);
  }
}

}  // namespace

long choleskyLowerNaive(float* A, size_t n, size_t lda) {
  for (size_t j = 0; j < n; j++) {
    double d = A[j * lda + j];
    for (size_t p = 0; p < j; p++) d -= static_cast<double>(A[j * lda + p]) * A[j * lda + p];
    if (!(d > 0)) return static_cast<long>(j);
    const double ljj = std::sqrt(d);
    A[j * lda + j] = static_cast<float>(ljj);
    for (size_t i = j + 1; i < n; i++) {
      double s = A[i * lda + j];
      for (size_t p = 0; p < j; p++) s -= static_cast<double>(A[i * lda + p]) * A[j * lda + p];
      A[i * lda + j] = static_cast<float>(s / ljj);
    }
  }
  zeroStrictUpper(A, n, lda);
  return -1;
}

void trtriLowerNaive(float* L, size_t n, size_t lda) {
  trtriLeaf(L, n, lda);
  zeroStrictUpper(L, n, lda);
}

long cholesky_lower(float* A, size_t n, size_t lda, const CancelFlag* cancel) {
  throwIfCancelled(cancel);
  const long pivot = cholRecursive(A, n, lda, cancel);
  if (pivot < 0) zeroStrictUpper(A, n, lda);
  return pivot;
}

void trtri_lower(float* L, size_t n, size_t lda, const CancelFlag* cancel) {
  throwIfCancelled(cancel);
  trtriRecursive(L, n, lda, cancel);
  zeroStrictUpper(L, n, lda);
}

long gptq_inverse_cholesky_upper(float* H, size_t n, size_t lda, const CancelFlag* cancel) {
  throwIfCancelled(cancel);
  std::vector<float> diagonal(n);
  for (size_t i = 0; i < n; i++) diagonal[i] = H[i * lda + i];
  reverseBoth(H, n, lda);  // J·H·J; its lower triangle is H's upper one, reversed
  const long pivot = cholRecursive(H, n, lda, cancel);
  if (pivot >= 0) {
    // Not SPD. Only the lower triangle was written: mirror the untouched upper one back over
    // it, undo the reversal and restore the diagonal, so the caller can add damping and retry.
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < i; j++) H[i * lda + j] = H[j * lda + i];
    reverseBoth(H, n, lda);
    for (size_t i = 0; i < n; i++) H[i * lda + i] = diagonal[i];
    return static_cast<long>(n - 1) - pivot;
  }
  trtriRecursive(H, n, lda, cancel);  // L̃⁻¹ in the lower triangle
  zeroStrictUpper(H, n, lda);
  reverseBoth(H, n, lda);             // U = J·L̃⁻¹·J, upper triangular
  return -1;
}

}  // namespace ql
