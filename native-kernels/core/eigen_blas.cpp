#include "eigen_blas.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "cpu.h"
#include "kernels_x86.h"
#include "thread_pool.h"

namespace ql {
namespace eig {

namespace {

// dgemm blocking (doubles): a kc × 6 sliver of A (12 KiB) and a kc × 8 sliver of B (16 KiB) stay
// in L1 during a register tile; an mc × kc block of A (288 KiB) stays in L2 while the tiles of one
// task's columns stream past it; the kc × nc panel of B (4 MiB) is shared by all tasks via L3.
constexpr size_t kKc = 256;
constexpr size_t kMc = 144;   // multiple of kGemmMr
constexpr size_t kNc = 2048;  // multiple of kGemmNr
constexpr size_t kTaskCols = 256;
// Below this many multiply-adds one thread is faster than waking the pool.
constexpr double kGemmParallelMin = 1 << 20;

// At most this many columns of C: A is read in place rather than packed (each element of A is
// used by at most 8 register tiles, too few to repay a packing pass over it).
constexpr size_t kInPlaceAMaxN = 64;

using TileFn = void (*)(size_t, const double*, const double*, double*, ptrdiff_t, ptrdiff_t, size_t, size_t, double,
                        double);
using InPlaceTileFn = void (*)(size_t, const double*, ptrdiff_t, ptrdiff_t, const double*, double*, ptrdiff_t,
                               ptrdiff_t, size_t, size_t, double, double);

TileFn tileKernel() {
#if QL_X86_SIMD
  if (useAvx2Fma()) return eigenDgemmTileAvx2;
#endif
  return dgemmTileScalar;
}

InPlaceTileFn inPlaceTileKernel() {
#if QL_X86_SIMD
  if (useAvx2Fma()) return eigenDgemmTileUnpackedAvx2;
#endif
  return dgemmTileUnpackedScalar;
}

size_t ceilDiv(size_t a, size_t b) { return (a + b - 1) / b; }

/** Run body(0..tasks) on the pool, or inline when `parallel` is false. */
template <typename Body>
void forTasks(bool parallel, size_t tasks, const Body& body) {
  if (!parallel || tasks <= 1) {
    for (size_t t = 0; t < tasks; t++) body(t);
    return;
  }
  pool().parallelFor(tasks, body);
}

/** Rows [i0, i0+mr) of A[:, l0..l0+kc) into one 6-row sliver, l-major, zero-padded to 6 rows. */
void packA(size_t mr, size_t kc, const double* a, ptrdiff_t rsa, ptrdiff_t csa, double* out) {
  if (mr == kGemmMr && rsa == 1) {
    for (size_t l = 0; l < kc; l++)
      for (size_t i = 0; i < kGemmMr; i++) out[l * kGemmMr + i] = a[i + l * csa];
    return;
  }
  for (size_t i = 0; i < kGemmMr; i++) {
    if (i < mr) {
      const double* row = a + static_cast<ptrdiff_t>(i) * rsa;
      for (size_t l = 0; l < kc; l++) out[l * kGemmMr + i] = row[static_cast<ptrdiff_t>(l) * csa];
    } else {
      for (size_t l = 0; l < kc; l++) out[l * kGemmMr + i] = 0;
    }
  }
}

/** Columns [j0, j0+nr) of B[l0..l0+kc, :] into one 8-column sliver, l-major, zero-padded. */
void packB(size_t nr, size_t kc, const double* b, ptrdiff_t rsb, ptrdiff_t csb, double* out) {
  if (nr == kGemmNr && csb == 1) {
    for (size_t l = 0; l < kc; l++) {
      const double* row = b + static_cast<ptrdiff_t>(l) * rsb;
      for (size_t j = 0; j < kGemmNr; j++) out[l * kGemmNr + j] = row[j];
    }
    return;
  }
  for (size_t j = 0; j < kGemmNr; j++) {
    if (j < nr) {
      const double* col = b + static_cast<ptrdiff_t>(j) * csb;
      for (size_t l = 0; l < kc; l++) out[l * kGemmNr + j] = col[static_cast<ptrdiff_t>(l) * rsb];
    } else {
      for (size_t l = 0; l < kc; l++) out[l * kGemmNr + j] = 0;
    }
  }
}

void scaleC(size_t m, size_t n, double beta, double* c, ptrdiff_t rsc, ptrdiff_t csc, Part part) {
  for (size_t i = 0; i < m; i++) {
    const size_t jEnd = part == Part::Lower ? std::min(n, i + 1) : n;
    for (size_t j = 0; j < jEnd; j++) {
      double& x = c[static_cast<ptrdiff_t>(i) * rsc + static_cast<ptrdiff_t>(j) * csc];
      x = beta == 0 ? 0.0 : beta * x;
    }
  }
}

}  // namespace

void dgemmTileScalar(size_t kc, const double* a, const double* b, double* c, ptrdiff_t rsc, ptrdiff_t csc, size_t mr,
                     size_t nr, double alpha, double beta) {
  double ab[kGemmMr][kGemmNr] = {};
  for (size_t l = 0; l < kc; l++) {
    const double* al = a + l * kGemmMr;
    const double* bl = b + l * kGemmNr;
    for (size_t i = 0; i < kGemmMr; i++)
      for (size_t j = 0; j < kGemmNr; j++) ab[i][j] += al[i] * bl[j];
  }
  for (size_t i = 0; i < mr; i++) {
    for (size_t j = 0; j < nr; j++) {
      double& x = c[static_cast<ptrdiff_t>(i) * rsc + static_cast<ptrdiff_t>(j) * csc];
      x = beta == 0 ? alpha * ab[i][j] : alpha * ab[i][j] + beta * x;
    }
  }
}

void dgemmTileUnpackedScalar(size_t kc, const double* a, ptrdiff_t rsa, ptrdiff_t csa, const double* b, double* c,
                             ptrdiff_t rsc, ptrdiff_t csc, size_t mr, size_t nr, double alpha, double beta) {
  double ab[kGemmMr][kGemmNr] = {};
  for (size_t l = 0; l < kc; l++) {
    const double* bl = b + l * kGemmNr;
    for (size_t i = 0; i < mr; i++) {
      const double ail = a[static_cast<ptrdiff_t>(i) * rsa + static_cast<ptrdiff_t>(l) * csa];
      for (size_t j = 0; j < kGemmNr; j++) ab[i][j] += ail * bl[j];
    }
  }
  for (size_t i = 0; i < mr; i++) {
    for (size_t j = 0; j < nr; j++) {
      double& x = c[static_cast<ptrdiff_t>(i) * rsc + static_cast<ptrdiff_t>(j) * csc];
      x = beta == 0 ? alpha * ab[i][j] : alpha * ab[i][j] + beta * x;
    }
  }
}

void dgemm(size_t m, size_t n, size_t k, double alpha, const double* a, ptrdiff_t rsa, ptrdiff_t csa,
           const double* b, ptrdiff_t rsb, ptrdiff_t csb, double beta, double* c, ptrdiff_t rsc, ptrdiff_t csc,
           Part part, bool mayUsePool) {
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == 0) {
    if (beta != 1) scaleC(m, n, beta, c, rsc, csc, part);
    return;
  }
  // Register tiles store rows of C with vector moves; a column-major C is the row-major Cᵀ = Bᵀ·Aᵀ.
  if (part == Part::All && csc != 1 && rsc == 1) {
    dgemm(n, m, k, alpha, b, csb, rsb, a, csa, rsa, beta, c, csc, rsc, part, mayUsePool);
    return;
  }
  const TileFn tile = tileKernel();
  const InPlaceTileFn inPlaceTile = inPlaceTileKernel();
  const bool parallel = mayUsePool && static_cast<double>(m) * n * k >= kGemmParallelMin && pool().threads() > 1;
  const bool packedA = !(n <= kInPlaceAMaxN && (rsa == 1 || csa == 1));
  const size_t kcMax = std::min(kKc, k);
  const size_t mPanels = ceilDiv(m, kGemmMr);
  std::unique_ptr<double[]> ap(packedA ? new double[mPanels * kGemmMr * kcMax] : nullptr);
  std::unique_ptr<double[]> bp(new double[ceilDiv(std::min(kNc, n), kGemmNr) * kGemmNr * kcMax]);

  for (size_t jc = 0; jc < n; jc += kNc) {
    const size_t nc = std::min(kNc, n - jc);
    // Lower: columns past the last row of C are all above the diagonal.
    if (part == Part::Lower && jc >= m) break;
    for (size_t pc = 0; pc < k; pc += kKc) {
      const size_t kc = std::min(kKc, k - pc);
      const double betaHere = pc == 0 ? beta : 1.0;
      const size_t nPanels = ceilDiv(nc, kGemmNr);
      const double* bBlock = b + static_cast<ptrdiff_t>(pc) * rsb + static_cast<ptrdiff_t>(jc) * csb;
      const double* aBlock = a + static_cast<ptrdiff_t>(pc) * csa;
      constexpr size_t kPackGroup = 16;
      forTasks(parallel, ceilDiv(nPanels, kPackGroup), [&](size_t t) {
        for (size_t p = t * kPackGroup; p < std::min(nPanels, (t + 1) * kPackGroup); p++) {
          packB(std::min(kGemmNr, nc - p * kGemmNr), kc, bBlock + static_cast<ptrdiff_t>(p * kGemmNr) * csb, rsb, csb,
                bp.get() + p * kGemmNr * kc);
        }
      });
      if (packedA) forTasks(parallel, ceilDiv(mPanels, kPackGroup), [&](size_t t) {
        for (size_t p = t * kPackGroup; p < std::min(mPanels, (t + 1) * kPackGroup); p++) {
          packA(std::min(kGemmMr, m - p * kGemmMr), kc, aBlock + static_cast<ptrdiff_t>(p * kGemmMr) * rsa, rsa, csa,
                ap.get() + p * kGemmMr * kc);
        }
      });
      const size_t rowBlocks = ceilDiv(m, kMc);
      const size_t colBlocks = ceilDiv(nc, kTaskCols);
      forTasks(parallel, rowBlocks * colBlocks, [&](size_t t) {
        const size_t i0 = (t / colBlocks) * kMc, i1 = std::min(m, i0 + kMc);
        const size_t j0 = (t % colBlocks) * kTaskCols, j1 = std::min(nc, j0 + kTaskCols);
        for (size_t jr = j0; jr < j1; jr += kGemmNr) {
          const size_t nr = std::min(kGemmNr, j1 - jr);
          for (size_t ir = i0; ir < i1; ir += kGemmMr) {
            const size_t mr = std::min(kGemmMr, i1 - ir);
            if (part == Part::Lower && jc + jr > ir + mr - 1) continue;  // tile wholly above the diagonal
            double* cTile = c + static_cast<ptrdiff_t>(ir) * rsc + static_cast<ptrdiff_t>(jc + jr) * csc;
            if (packedA) {
              tile(kc, ap.get() + ir * kc, bp.get() + jr * kc, cTile, rsc, csc, mr, nr, alpha, betaHere);
            } else {
              inPlaceTile(kc, aBlock + static_cast<ptrdiff_t>(ir) * rsa, rsa, csa, bp.get() + jr * kc, cTile, rsc, csc,
                          mr, nr, alpha, betaHere);
            }
          }
        }
      });
    }
  }
}

// ---- symmetric matrix-vector product ---------------------------------------------------

namespace {

// One part per this many rows, at most kSymvMaxParts: enough parts to keep 2..16 threads busy on
// a big matrix; small ones (fitting in L2) are not worth a pool wake-up.
constexpr size_t kSymvRowsPerPart = 256;
constexpr size_t kSymvMaxParts = 16;

size_t symvParts(size_t n) { return std::max<size_t>(1, std::min(kSymvMaxParts, n / kSymvRowsPerPart)); }

/** First row of part p: equal areas of the lower triangle, rounded to a multiple of 4. */
size_t symvPartStart(size_t n, size_t parts, size_t p) {
  if (p == 0) return 0;
  if (p >= parts) return n;
  const double r = static_cast<double>(n) * std::sqrt(static_cast<double>(p) / static_cast<double>(parts));
  return std::min(n, static_cast<size_t>(r) & ~size_t{3});
}

using RowsFn = void (*)(const double*, size_t, size_t, size_t, const double*, double*);

RowsFn rowsKernel() {
#if QL_X86_SIMD
  if (useAvx2Fma()) return eigenSymvRowsAvx2;
#endif
  return symvRowsScalar;
}

}  // namespace

size_t symvWorkSize(size_t n) { return symvParts(n) * n; }

void symvRowsScalar(const double* a, size_t lda, size_t r0, size_t r1, const double* x, double* y) {
  size_t i = r0;
  for (; i + 4 <= r1; i += 4) {
    const double* a0 = a + i * lda;
    const double* a1 = a0 + lda;
    const double* a2 = a1 + lda;
    const double* a3 = a2 + lda;
    const double x0 = x[i], x1 = x[i + 1], x2 = x[i + 2], x3 = x[i + 3];
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t j = 0; j < i; j++) {
      const double xj = x[j];
      s0 += a0[j] * xj;
      s1 += a1[j] * xj;
      s2 += a2[j] * xj;
      s3 += a3[j] * xj;
      y[j] += a0[j] * x0 + a1[j] * x1 + a2[j] * x2 + a3[j] * x3;
    }
    // The 4 × 4 diagonal block: strictly lower entries count twice, the diagonal once.
    const double* rows[4] = {a0, a1, a2, a3};
    double s[4] = {s0, s1, s2, s3};
    for (size_t q = 0; q < 4; q++) {
      for (size_t p = 0; p < q; p++) {
        s[q] += rows[q][i + p] * x[i + p];
        y[i + p] += rows[q][i + p] * x[i + q];
      }
      s[q] += rows[q][i + q] * x[i + q];
    }
    for (size_t q = 0; q < 4; q++) y[i + q] += s[q];
  }
  for (; i < r1; i++) {
    const double* ai = a + i * lda;
    const double xi = x[i];
    double s = 0;
    for (size_t j = 0; j < i; j++) {
      s += ai[j] * x[j];
      y[j] += ai[j] * xi;
    }
    y[i] += s + ai[i] * xi;
  }
}

void symvLower(size_t n, const double* a, size_t lda, const double* x, double* y, double* work) {
  if (n == 0) return;
  const RowsFn rows = rowsKernel();
  const size_t parts = symvParts(n);
  const auto part = [&](size_t p) {
    const size_t r0 = symvPartStart(n, parts, p), r1 = symvPartStart(n, parts, p + 1);
    double* yp = work + p * n;
    std::fill(yp, yp + r1, 0.0);
    rows(a, lda, r0, r1, x, yp);
  };
  if (parts == 1) {
    part(0);
    std::copy(work, work + n, y);
    return;
  }
  pool().parallelFor(parts, part);
  std::copy(work, work + symvPartStart(n, parts, 1), y);
  std::fill(y + symvPartStart(n, parts, 1), y + n, 0.0);
  for (size_t p = 1; p < parts; p++) {
    const double* yp = work + p * n;
    const size_t r1 = symvPartStart(n, parts, p + 1);
    for (size_t j = 0; j < r1; j++) y[j] += yp[j];
  }
}

// ---- level 1 ---------------------------------------------------------------------------

double dot(const double* x, const double* y, size_t n) {
#if QL_X86_SIMD
  if (useAvx2Fma()) return eigenDotAvx2(x, y, n);
#endif
  double s = 0;
  for (size_t i = 0; i < n; i++) s += x[i] * y[i];
  return s;
}

void axpy(double alpha, const double* x, double* y, size_t n) {
#if QL_X86_SIMD
  if (useAvx2Fma()) return eigenAxpyAvx2(alpha, x, y, n);
#endif
  for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

}  // namespace eig
}  // namespace ql
