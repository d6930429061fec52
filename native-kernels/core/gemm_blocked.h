// Internals of the blocked sgemm shared by gemm.cpp, hessian.cpp and cholesky.cpp (not an API).
//
// Packed layouts (both zero-padded to whole strips, so the micro-kernel never sees an edge):
//   A block [mc × kc] of op(A): strips of kGemmMR rows; strip s holds a[p][r] at
//       s·MR·kc + p·MR + r          (one column of MR values per p)
//   B panel [kc × nc] of op(B): strips of kGemmNR columns; strip s holds b[p][c] at
//       s·NR·kc + p·NR + c          (one row of NR values per p)
// The micro-kernel computes one MR×NR tile from an A strip and a B strip:
//   C[r][c] = alpha·Σ_p a[p][r]·b[p][c] + beta·C[r][c]   (beta == 0: C is not read)
#pragma once

#include <cstddef>

namespace ql {
namespace gemm {

constexpr size_t kMR = 6;   // rows of a register tile (6 × 2 ymm accumulators)
constexpr size_t kNR = 16;  // columns of a register tile (two 8-float vectors)
/** Depth of a packed block: a B strip (KC·NR·4 = 16 KiB) stays in L1 across A strips. */
constexpr size_t kKC = 256;
/** Rows of a packed A block (MC·KC·4 = 192 KiB, in L2 while B strips stream past). */
constexpr size_t kMC = 192;
/** Columns of a packed B panel (KC·NC·4 = 4 MiB, in the shared L3). */
constexpr size_t kNC = 4096;

using MicroKernel = void (*)(size_t kc, const float* a, const float* b, float* c, size_t ldc, float alpha,
                             float beta);

/** The AVX2/FMA kernel when useAvx2Fma(), else the portable one. */
MicroKernel microKernel();
void microKernelScalar(size_t kc, const float* a, const float* b, float* c, size_t ldc, float alpha, float beta);

inline size_t roundUp(size_t x, size_t to) { return (x + to - 1) / to * to; }

/** Pack op(A)[i0 : i0+mc, p0 : p0+kc] (layout above). op(A)[i][p] = transA ? A[p·lda+i] : A[i·lda+p]. */
void packA(bool transA, const float* A, size_t lda, size_t i0, size_t mc, size_t p0, size_t kc, float* dst);
/** Pack op(B)[p0 : p0+kc, j0 : j0+nc] (layout above). op(B)[p][j] = transB ? B[j·ldb+p] : B[p·ldb+j]. */
void packB(bool transB, const float* B, size_t ldb, size_t p0, size_t kc, size_t j0, size_t nc, float* dst);

/**
 * One tile through the micro-kernel, edges and the lower-triangle mask handled:
 * C[0:mr, 0:nr] (ldc) = alpha·A_strip·B_strip + beta·C, only where `diag + r ≥ c` when `lower`
 * (diag = row index minus column index of the tile's corner in the full matrix).
 */
void tile(MicroKernel kernel, size_t kc, const float* a, const float* b, float* c, size_t ldc, size_t mr,
          size_t nr, float alpha, float beta, bool lower, long diag);

/**
 * A 64-byte aligned float buffer per thread, grown on demand and kept for the next call (small:
 * packed A blocks, one B panel, tiles). Slots: 0 = A block / tile, 1 = B panel / double tile.
 */
float* threadBuffer(int which, size_t floats);

/**
 * 64-byte aligned floats freed on scope exit (for big, one-call buffers); ≥ 1 MiB is placed on
 * 2 MiB boundaries with transparent huge pages requested (fewer TLB misses in the micro-kernel).
 */
class AlignedFloats {
 public:
  explicit AlignedFloats(size_t floats);
  ~AlignedFloats();
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;
  float* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  float* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace gemm
}  // namespace ql
