// AVX2/FMA inner loops of the triangular-solve leaves in cholesky.cpp (double accumulators, as
// the portable loops there). Guarded: compiled only where QL_X86_SIMD is 1, called after useAvx2Fma().
#include "kernels_x86.h"

#if QL_X86_SIMD
#include <immintrin.h>

namespace ql {

QL_TARGET_AVX2 void solveLanesAvx2(bool trans, const float* L, size_t ldl, size_t nb, double* x) {
  // x: nb rows of 8 doubles (x[c·8 + r], r = one of 8 right-hand-side rows), two ymm per row.
  if (trans) {
    for (size_t c = 0; c < nb; c++) {
      __m256d a0 = _mm256_load_pd(x + c * 8), a1 = _mm256_load_pd(x + c * 8 + 4);
      const float* lc = L + c * ldl;
      for (size_t q = 0; q < c; q++) {
        const __m256d l = _mm256_set1_pd(lc[q]);
        a0 = _mm256_fnmadd_pd(_mm256_load_pd(x + q * 8), l, a0);
        a1 = _mm256_fnmadd_pd(_mm256_load_pd(x + q * 8 + 4), l, a1);
      }
      const __m256d d = _mm256_set1_pd(lc[c]);
      _mm256_store_pd(x + c * 8, _mm256_div_pd(a0, d));
      _mm256_store_pd(x + c * 8 + 4, _mm256_div_pd(a1, d));
    }
  } else {
    for (size_t c = nb; c-- > 0;) {
      __m256d a0 = _mm256_load_pd(x + c * 8), a1 = _mm256_load_pd(x + c * 8 + 4);
      for (size_t q = c + 1; q < nb; q++) {
        const __m256d l = _mm256_set1_pd(L[q * ldl + c]);
        a0 = _mm256_fnmadd_pd(_mm256_load_pd(x + q * 8), l, a0);
        a1 = _mm256_fnmadd_pd(_mm256_load_pd(x + q * 8 + 4), l, a1);
      }
      const __m256d d = _mm256_set1_pd(L[c * ldl + c]);
      _mm256_store_pd(x + c * 8, _mm256_div_pd(a0, d));
      _mm256_store_pd(x + c * 8 + 4, _mm256_div_pd(a1, d));
    }
  }
}

QL_TARGET_AVX2 void solveLeftColumnsAvx2(const float* L, size_t ldl, size_t m, float* B, size_t ldb, size_t width,
                                         double* acc) {
  // Row by row: x[i][:] = (b[i][:] − Σ_{q<i} L[i][q]·x[q][:]) / L[i][i], four columns per vector.
  for (size_t i = 0; i < m; i++) {
    float* bi = B + i * ldb;
    size_t c = 0;
    for (; c + 4 <= width; c += 4) _mm256_storeu_pd(acc + c, _mm256_cvtps_pd(_mm_loadu_ps(bi + c)));
    for (; c < width; c++) acc[c] = bi[c];
    for (size_t q = 0; q < i; q++) {
      const __m256d l = _mm256_set1_pd(L[i * ldl + q]);
      const float* xq = B + q * ldb;
      for (c = 0; c + 4 <= width; c += 4)
        _mm256_storeu_pd(acc + c, _mm256_fnmadd_pd(l, _mm256_cvtps_pd(_mm_loadu_ps(xq + c)), _mm256_loadu_pd(acc + c)));
      for (; c < width; c++) acc[c] -= L[i * ldl + q] * static_cast<double>(xq[c]);
    }
    const __m256d d = _mm256_set1_pd(L[i * ldl + i]);
    for (c = 0; c + 4 <= width; c += 4) _mm_storeu_ps(bi + c, _mm256_cvtpd_ps(_mm256_div_pd(_mm256_loadu_pd(acc + c), d)));
    for (; c < width; c++) bi[c] = static_cast<float>(acc[c] / L[i * ldl + i]);
  }
}

}  // namespace ql
#endif
