// AVX2/FMA micro-kernel for sgemm (gemm.cpp, gemm_blocked.h). Guarded: compiled only where
// QL_X86_SIMD is 1, and only called after useAvx2Fma().
#include "kernels_x86.h"

#if QL_X86_SIMD
#include <immintrin.h>

#include "transpose_x86.h"

namespace ql {

/**
 * One 6×16 tile: 12 ymm accumulators (6 rows × 2 vectors of 8 columns), per k step two loads of
 * B, six broadcasts of A, twelve FMAs. Zen 4 / Haswell+: 2 FMAs and 2 loads per cycle, so the
 * FMA ports bound it (6 cycles of FMAs for 4 of loads) and the 4-cycle FMA latency is covered by
 * 12 independent chains.
 */
QL_TARGET_AVX2 void sgemmKernel6x16Avx2(size_t kc, const float* a, const float* b, float* c, size_t ldc,
                                        float alpha, float beta) {
  // C is usually far away (L3 or memory, one tile per 6 rows of a big matrix): ask for its lines
  // now, so the misses overlap the k loop instead of stalling the stores at the end. Into L2, not
  // L1: with a power-of-two row stride the six rows share an L1 set with the B strip the loop
  // reads, and pulling them into L1 this early evicts it (measured: T0 ~3% slower at n = 4096).
  for (int r = 0; r < 6; r++) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T1);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 15), _MM_HINT_T1);
  }
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#define QL_GEMM_STEP(P)                                         \
  {                                                             \
    const __m256 b0 = _mm256_load_ps(b + (P) * 16);             \
    const __m256 b1 = _mm256_load_ps(b + (P) * 16 + 8);         \
    __m256 av = _mm256_broadcast_ss(a + (P) * 6 + 0);           \
    c00 = _mm256_fmadd_ps(av, b0, c00);                         \
    c01 = _mm256_fmadd_ps(av, b1, c01);                         \
    av = _mm256_broadcast_ss(a + (P) * 6 + 1);                  \
    c10 = _mm256_fmadd_ps(av, b0, c10);                         \
    c11 = _mm256_fmadd_ps(av, b1, c11);                         \
    av = _mm256_broadcast_ss(a + (P) * 6 + 2);                  \
    c20 = _mm256_fmadd_ps(av, b0, c20);                         \
    c21 = _mm256_fmadd_ps(av, b1, c21);                         \
    av = _mm256_broadcast_ss(a + (P) * 6 + 3);                  \
    c30 = _mm256_fmadd_ps(av, b0, c30);                         \
    c31 = _mm256_fmadd_ps(av, b1, c31);                         \
    av = _mm256_broadcast_ss(a + (P) * 6 + 4);                  \
    c40 = _mm256_fmadd_ps(av, b0, c40);                         \
    c41 = _mm256_fmadd_ps(av, b1, c41);                         \
    av = _mm256_broadcast_ss(a + (P) * 6 + 5);                  \
    c50 = _mm256_fmadd_ps(av, b0, c50);                         \
    c51 = _mm256_fmadd_ps(av, b1, c51);                         \
  }
  for (size_t p = 0; p < kc; p++) {
    QL_GEMM_STEP(0)
    a += 6;
    b += 16;
  }
#undef QL_GEMM_STEP
  const __m256 va = _mm256_set1_ps(alpha);
  __m256 acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
  if (beta == 0) {
    for (int r = 0; r < 6; r++) {
      _mm256_storeu_ps(c + r * ldc, _mm256_mul_ps(va, acc[2 * r]));
      _mm256_storeu_ps(c + r * ldc + 8, _mm256_mul_ps(va, acc[2 * r + 1]));
    }
  } else {
    const __m256 vb = _mm256_set1_ps(beta);
    for (int r = 0; r < 6; r++) {
      float* cr = c + r * ldc;
      _mm256_storeu_ps(cr, _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr), _mm256_mul_ps(va, acc[2 * r])));
      _mm256_storeu_ps(cr + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr + 8), _mm256_mul_ps(va, acc[2 * r + 1])));
    }
  }
}

QL_TARGET_AVX2 size_t sgemmPackRowsToStripAvx2(const float* const rows[6], size_t kc, float* dst) {
  // dst[p·6 + r] = rows[r][p], 8 values of p at a time (two rows of zeros complete the 8×8 block).
  size_t p = 0;
  for (; p + 8 <= kc; p += 8) {
    __m256 r[8] = {_mm256_loadu_ps(rows[0] + p), _mm256_loadu_ps(rows[1] + p), _mm256_loadu_ps(rows[2] + p),
                   _mm256_loadu_ps(rows[3] + p), _mm256_loadu_ps(rows[4] + p), _mm256_loadu_ps(rows[5] + p),
                   _mm256_setzero_ps(),          _mm256_setzero_ps()};
    transpose8x8(r);
    float* d = dst + p * 6;
    for (int q = 0; q < 8; q++, d += 6) {
      _mm_storeu_ps(d, _mm256_castps256_ps128(r[q]));
      _mm_storel_pi(reinterpret_cast<__m64*>(d + 4), _mm256_extractf128_ps(r[q], 1));
    }
  }
  return p;  // the caller packs the remaining kc − p columns
}

QL_TARGET_AVX2 size_t sgemmPackColumnsToStripAvx2(const float* const cols[16], size_t kc, float* dst) {
  // dst[p·16 + j] = cols[j][p]: two 8×8 transposes per 8 values of p; dst is 32-byte aligned.
  size_t p = 0;
  for (; p + 8 <= kc; p += 8) {
    for (int half = 0; half < 2; half++) {
      __m256 r[8];
      for (int j = 0; j < 8; j++) r[j] = _mm256_loadu_ps(cols[8 * half + j] + p);
      transpose8x8(r);
      for (int q = 0; q < 8; q++) _mm256_store_ps(dst + (p + q) * 16 + 8 * half, r[q]);
    }
  }
  return p;
}

}  // namespace ql
#endif
