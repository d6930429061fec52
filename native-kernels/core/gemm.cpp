#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "cpu.h"
#include "gemm_blocked.h"
#include "kernels_x86.h"
#include "thread_pool.h"

namespace ql {

namespace gemm {

void microKernelScalar(size_t kc, const float* a, const float* b, float* c, size_t ldc, float alpha, float beta) {
  float acc[kMR][kNR] = {};
  for (size_t p = 0; p < kc; p++) {
    const float* ap = a + p * kMR;
    const float* bp = b + p * kNR;
    for (size_t r = 0; r < kMR; r++) {
      const float ar = ap[r];
      for (size_t j = 0; j < kNR; j++) acc[r][j] += ar * bp[j];
    }
  }
  for (size_t r = 0; r < kMR; r++) {
    float* cr = c + r * ldc;
    if (beta == 0) {
      for (size_t j = 0; j < kNR; j++) cr[j] = alpha * acc[r][j];
    } else {
      for (size_t j = 0; j < kNR; j++) cr[j] = alpha * acc[r][j] + beta * cr[j];
    }
  }
}

MicroKernel microKernel() {
#if QL_X86_SIMD
  if (useAvx2Fma()) return sgemmKernel6x16Avx2;
#endif
  return microKernelScalar;
}

void packA(bool transA, const float* A, size_t lda, size_t i0, size_t mc, size_t p0, size_t kc, float* dst) {
  for (size_t s = 0; s < mc; s += kMR) {
    const size_t mr = std::min(kMR, mc - s);
    float* d = dst + s * kc;  // strip s/MR starts at (s/MR)·MR·kc
    if (transA) {
      // op(A)[i][p] = A[p][i]: MR contiguous values per p.
      const float* src = A + p0 * lda + i0 + s;
      for (size_t p = 0; p < kc; p++, src += lda, d += kMR) {
        size_t r = 0;
        for (; r < mr; r++) d[r] = src[r];
        for (; r < kMR; r++) d[r] = 0;
      }
    } else {
      // op(A)[i][p] = A[i][p]: a transpose of an MR × kc slab.
      size_t done = 0;
#if QL_X86_SIMD
      if (mr == kMR && useAvx2Fma()) {
        const float* rows[kMR];
        for (size_t r = 0; r < kMR; r++) rows[r] = A + (i0 + s + r) * lda + p0;
        done = sgemmPackRowsToStripAvx2(rows, kc, d);
      }
#endif
      for (size_t r = 0; r < kMR; r++) {
        if (r < mr) {
          const float* src = A + (i0 + s + r) * lda + p0;
          for (size_t p = done; p < kc; p++) d[p * kMR + r] = src[p];
        } else {
          for (size_t p = done; p < kc; p++) d[p * kMR + r] = 0;
        }
      }
    }
  }
}

void packB(bool transB, const float* B, size_t ldb, size_t p0, size_t kc, size_t j0, size_t nc, float* dst) {
  for (size_t s = 0; s < nc; s += kNR) {
    const size_t nr = std::min(kNR, nc - s);
    float* d = dst + s * kc;
    if (!transB) {
      // op(B)[p][j] = B[p][j]: NR contiguous values per p.
      const float* src = B + p0 * ldb + j0 + s;
      if (nr == kNR) {
        for (size_t p = 0; p < kc; p++, src += ldb, d += kNR) std::memcpy(d, src, kNR * sizeof(float));
      } else {
        for (size_t p = 0; p < kc; p++, src += ldb, d += kNR) {
          size_t j = 0;
          for (; j < nr; j++) d[j] = src[j];
          for (; j < kNR; j++) d[j] = 0;
        }
      }
    } else {
      // op(B)[p][j] = B[j][p]: a transpose of an NR × kc slab.
      size_t done = 0;
#if QL_X86_SIMD
      if (nr == kNR && useAvx2Fma()) {
        const float* cols[kNR];
        for (size_t j = 0; j < kNR; j++) cols[j] = B + (j0 + s + j) * ldb + p0;
        done = sgemmPackColumnsToStripAvx2(cols, kc, d);
      }
#endif
      for (size_t j = 0; j < kNR; j++) {
        if (j < nr) {
          const float* src = B + (j0 + s + j) * ldb + p0;
          for (size_t p = done; p < kc; p++) d[p * kNR + j] = src[p];
        } else {
          for (size_t p = done; p < kc; p++) d[p * kNR + j] = 0;
        }
      }
    }
  }
}

void tile(MicroKernel kernel, size_t kc, const float* a, const float* b, float* c, size_t ldc, size_t mr,
          size_t nr, float alpha, float beta, bool lower, long diag) {
  const bool masked = lower && diag < static_cast<long>(kNR) - 1;
  if (mr == kMR && nr == kNR && !masked) {
    kernel(kc, a, b, c, ldc, alpha, beta);
    return;
  }
  alignas(64) float t[kMR * kNR];
  kernel(kc, a, b, t, kNR, 1.0f, 0.0f);
  for (size_t r = 0; r < mr; r++) {
    size_t end = nr;
    if (lower) {
      const long last = diag + static_cast<long>(r);  // the last column on or below the diagonal
      if (last < 0) continue;
      end = std::min(end, static_cast<size_t>(last) + 1);
    }
    float* cr = c + r * ldc;
    const float* tr = t + r * kNR;
    if (beta == 0) {
      for (size_t j = 0; j < end; j++) cr[j] = alpha * tr[j];
    } else {
      for (size_t j = 0; j < end; j++) cr[j] = alpha * tr[j] + beta * cr[j];
    }
  }
}

AlignedFloats::AlignedFloats(size_t floats) {
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t align = floats * sizeof(float) >= kHuge / 2 ? kHuge : 64;
  const size_t bytes = roundUp(std::max<size_t>(floats, 1) * sizeof(float), align);
  data_ = static_cast<float*>(std::aligned_alloc(align, bytes));
  if (data_ == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (align == kHuge) madvise(data_, bytes, MADV_HUGEPAGE);
#endif
  size_ = bytes / sizeof(float);
}

AlignedFloats::~AlignedFloats() { std::free(data_); }

float* threadBuffer(int which, size_t floats) {
  static thread_local std::unique_ptr<AlignedFloats> buffers[2];
  std::unique_ptr<AlignedFloats>& buf = buffers[which];
  if (!buf || buf->size() < floats) {
    buf.reset();
    buf = std::make_unique<AlignedFloats>(floats);
  }
  return buf->data();
}

}  // namespace gemm

namespace {

using namespace gemm;

// Below this many multiply-adds (m·n·k) a call runs on the calling thread: waking the pool
// costs more than the work (64³ ≈ 4 µs of FMAs).
constexpr size_t kParallelMinMacs = size_t{64} * 64 * 64;
/**
 * Tasks per thread and K block: enough that the last ones (a thread may finish its share while
 * another still works) cost little idle time at the fork-join. Too few MC blocks → the panel's
 * columns are split too, in sub-panels of at least kMinSubPanel columns.
 */
constexpr size_t kTasksPerThread = 8;
constexpr size_t kMinSubPanel = 4 * kNR;

inline float opAt(bool trans, const float* X, size_t ld, size_t r, size_t c) {
  return trans ? X[c * ld + r] : X[r * ld + c];
}

/** C = beta·C over the triangle (beta == 0 writes zeros without reading C). */
void scaleC(bool lower, size_t m, size_t n, float beta, float* C, size_t ldc) {
  for (size_t i = 0; i < m; i++) {
    float* row = C + i * ldc;
    const size_t end = lower ? std::min(n, i + 1) : n;
    if (beta == 0) {
      std::fill(row, row + end, 0.0f);
    } else if (beta != 1) {
      for (size_t j = 0; j < end; j++) row[j] *= beta;
    }
  }
}

}  // namespace

void sgemmNaive(bool transA, bool transB, size_t m, size_t n, size_t k, float alpha, const float* A,
                size_t lda, const float* B, size_t ldb, float beta, float* C, size_t ldc) {
  for (size_t i = 0; i < m; i++) {
    for (size_t j = 0; j < n; j++) {
      float acc = 0;
      if (alpha != 0)
        for (size_t p = 0; p < k; p++) acc += opAt(transA, A, lda, i, p) * opAt(transB, B, ldb, p, j);
      float& c = C[i * ldc + j];
      c = beta == 0 ? alpha * acc : alpha * acc + beta * c;
    }
  }
}

void sgemmTriangle(GemmTriangle tri, bool transA, bool transB, size_t m, size_t n, size_t k, float alpha,
                   const float* A, size_t lda, const float* B, size_t ldb, float beta, float* C, size_t ldc,
                   const CancelFlag* cancel) {
  throwIfCancelled(cancel);
  const bool lower = tri == GemmTriangle::Lower;
  if (lower) n = m = std::min(m, n);  // a triangle of a square matrix
  if (m == 0 || n == 0) return;
  if (alpha == 0 || k == 0) {
    scaleC(lower, m, n, beta, C, ldc);
    return;
  }
  const MicroKernel kernel = microKernel();
  const bool parallel = static_cast<double>(m) * n * k >= kParallelMinMacs && pool().threads() > 1;
  const size_t threads = parallel ? pool().threads() : 1;

  float* packedB = threadBuffer(1, kKC * roundUp(std::min(n, kNC), kNR));
  for (size_t jc = 0; jc < n; jc += kNC) {
    const size_t nc = std::min(kNC, n - jc);
    // Lower: rows above jc have no column of this panel on or below the diagonal.
    const size_t iBegin = lower ? jc : 0;
    const size_t mRange = m - iBegin;
    const size_t mBlocks = (mRange + kMC - 1) / kMC;
    const size_t strips = (nc + kNR - 1) / kNR;
    size_t nSplit = 1;
    if (threads > 1 && mBlocks < kTasksPerThread * threads)
      nSplit = std::max<size_t>(
          1, std::min((kTasksPerThread * threads + mBlocks - 1) / mBlocks, strips * kNR / kMinSubPanel));
    const size_t stripsPerSplit = (strips + nSplit - 1) / nSplit;
    nSplit = (strips + stripsPerSplit - 1) / stripsPerSplit;

    for (size_t pc = 0; pc < k; pc += kKC) {
      const size_t kc = std::min(kKC, k - pc);
      const float betaP = pc == 0 ? beta : 1.0f;
      // Pack the B panel, 8 strips per task.
      constexpr size_t kPackStrips = 8;
      const size_t packTasks = (strips + kPackStrips - 1) / kPackStrips;
      const auto pack = [&](size_t t) {
        if (isCancelled(cancel)) return;
        const size_t s0 = t * kPackStrips * kNR;
        const size_t width = std::min(kPackStrips * kNR, nc - s0);
        packB(transB, B, ldb, pc, kc, jc + s0, width, packedB + s0 * kc);
      };
      // Tasks: MC row blocks × column sub-panels. Lower: the longest rows (bottom) first.
      const size_t computeTasks = mBlocks * nSplit;
      const auto compute = [&](size_t t) {
        if (isCancelled(cancel)) return;
        const size_t blockIndex = lower ? mBlocks - 1 - t / nSplit : t / nSplit;
        const size_t split = t % nSplit;
        const size_t ic = iBegin + blockIndex * kMC;
        const size_t mc = std::min(kMC, m - ic);
        const size_t sBegin = split * stripsPerSplit;
        size_t sEnd = std::min(strips, sBegin + stripsPerSplit);
        if (lower) {
          // Columns jc + s·NR ≤ ic + mc − 1 only.
          const size_t lastCol = ic + mc - 1 - jc;
          sEnd = std::min(sEnd, lastCol / kNR + 1);
        }
        if (sBegin >= sEnd) return;
        float* packedA = threadBuffer(0, kKC * roundUp(kMC, kMR));
        packA(transA, A, lda, ic, mc, pc, kc, packedA);
        for (size_t s = sBegin; s < sEnd; s++) {
          const size_t j = s * kNR;
          const size_t nr = std::min(kNR, nc - j);
          const float* bStrip = packedB + j * kc;
          // B strip (16 KiB) in L1 across the A strips of the block (in L2).
          for (size_t ir = 0; ir < mc; ir += kMR) {
            const long diag = static_cast<long>(ic + ir) - static_cast<long>(jc + j);
            if (lower && diag + static_cast<long>(kMR) - 1 < 0) continue;  // tile above the diagonal
            tile(kernel, kc, packedA + ir * kc, bStrip, C + (ic + ir) * ldc + jc + j, ldc, std::min(kMR, mc - ir), nr,
                 alpha, betaP, lower, diag);
          }
        }
      };
      if (parallel && computeTasks > 1) {
        // One fork-join per panel (recursive factorizations make hundreds of sgemm calls, and each
        // join costs the threads that finish early): the first tasks pack the panel, the compute
        // tasks after them wait for the packing to be done. Tasks are claimed in index order, so
        // every packing task is already running when a compute task waits, and finishes.
        std::atomic<size_t> packed{0};
        pool().parallelFor(packTasks + computeTasks, [&](size_t t) {
          if (t < packTasks) {
            pack(t);
            packed.fetch_add(1, std::memory_order_release);
            return;
          }
          while (packed.load(std::memory_order_acquire) < packTasks) std::this_thread::yield();
          compute(t - packTasks);
        });
      } else {
        for (size_t t = 0; t < packTasks; t++) pack(t);
        throwIfCancelled(cancel);
        for (size_t t = 0; t < computeTasks; t++) compute(t);
      }
      throwIfCancelled(cancel);
    }
  }
}

void sgemm(bool transA, bool transB, size_t m, size_t n, size_t k, float alpha, const float* A, size_t lda,
           const float* B, size_t ldb, float beta, float* C, size_t ldc, const CancelFlag* cancel) {
  sgemmTriangle(GemmTriangle::Full, transA, transB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, cancel);
}

NonFinite findNonFinite(const float* X, size_t rows, size_t cols, size_t ld, bool lowerOnly) {
  // Rows in blocks over the pool; each block reports its first hit, the earliest block wins.
  constexpr size_t kRowsPerTask = 64;
  const size_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  std::vector<NonFinite> hits(tasks);
  const auto scan = [&](size_t t) {
    const size_t end = std::min(rows, (t + 1) * kRowsPerTask);
    for (size_t i = t * kRowsPerTask; i < end; i++) {
      const size_t len = lowerOnly ? std::min(cols, i + 1) : cols;
      const float* row = X + i * ld;
      // Exponent all ones ⇔ NaN or ±Inf; the OR-reduction vectorizes, the search runs only on a hit.
      uint32_t bad = 0;
      for (size_t j = 0; j < len; j++) {
        uint32_t bits;
        std::memcpy(&bits, row + j, sizeof bits);
        bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
      }
      if (!bad) continue;
      for (size_t j = 0; j < len; j++) {
        uint32_t bits;
        std::memcpy(&bits, row + j, sizeof bits);
        if ((bits & 0x7f800000u) == 0x7f800000u) {
          hits[t] = NonFinite{true, i, j};
          return;
        }
      }
    }
  };
  if (rows * cols >= (size_t{1} << 18) && tasks > 1) {
    pool().parallelFor(tasks, scan);
  } else {
    for (size_t t = 0; t < tasks; t++) scan(t);
  }
  for (const NonFinite& h : hits)
    if (h.found) return h;
  return NonFinite{};
}

}  // namespace ql
