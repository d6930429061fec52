// AVX2/FMA inner loops of the triangular-solve leaves in cholesky.cpp (double accumulators, as
// the portable loops there). Guarded: compiled only where QL_X86_SIMD is 1, called after useAvx2Fma().
#include "cholesky_x86.h"

#if QL_X86_SIMD
#include <immintrin.h>

#include "transpose_x86.h"

namespace ql {

namespace {

constexpr size_t kW = kSolveLanes;
static_assert(kW == 32, "the kernels below keep a row of 32 doubles in 8 ymm registers");

/** xc ← (xc − Σ_q l_q·x_q)·inv for the q (and their L entries, stride lstride) in [q0, q1). */
QL_TARGET_AVX2 inline void solveRow(double* xc, const double* x, const float* l, size_t lstride, size_t q0, size_t q1,
                                    double inv) {
  __m256d a0 = _mm256_load_pd(xc), a1 = _mm256_load_pd(xc + 4), a2 = _mm256_load_pd(xc + 8);
  __m256d a3 = _mm256_load_pd(xc + 12), a4 = _mm256_load_pd(xc + 16), a5 = _mm256_load_pd(xc + 20);
  __m256d a6 = _mm256_load_pd(xc + 24), a7 = _mm256_load_pd(xc + 28);
  for (size_t q = q0; q < q1; q++) {
    const __m256d lq = _mm256_set1_pd(l[q * lstride]);
    const double* xq = x + q * kW;
    a0 = _mm256_fnmadd_pd(_mm256_load_pd(xq), lq, a0);
    a1 = _mm256_fnmadd_pd(_mm256_load_pd(xq + 4), lq, a1);
    a2 = _mm256_fnmadd_pd(_mm256_load_pd(xq + 8), lq, a2);
    a3 = _mm256_fnmadd_pd(_mm256_load_pd(xq + 12), lq, a3);
    a4 = _mm256_fnmadd_pd(_mm256_load_pd(xq + 16), lq, a4);
    a5 = _mm256_fnmadd_pd(_mm256_load_pd(xq + 20), lq, a5);
    a6 = _mm256_fnmadd_pd(_mm256_load_pd(xq + 24), lq, a6);
    a7 = _mm256_fnmadd_pd(_mm256_load_pd(xq + 28), lq, a7);
  }
  const __m256d s = _mm256_set1_pd(inv);
  _mm256_store_pd(xc, _mm256_mul_pd(a0, s));
  _mm256_store_pd(xc + 4, _mm256_mul_pd(a1, s));
  _mm256_store_pd(xc + 8, _mm256_mul_pd(a2, s));
  _mm256_store_pd(xc + 12, _mm256_mul_pd(a3, s));
  _mm256_store_pd(xc + 16, _mm256_mul_pd(a4, s));
  _mm256_store_pd(xc + 20, _mm256_mul_pd(a5, s));
  _mm256_store_pd(xc + 24, _mm256_mul_pd(a6, s));
  _mm256_store_pd(xc + 28, _mm256_mul_pd(a7, s));
}

}  // namespace

QL_TARGET_AVX2 void solveSlabAvx2(bool trans, const float* L, size_t ldl, size_t nb, double* x) {
  if (trans) {
    // Row c of L, entries q < c (contiguous).
    for (size_t c = 0; c < nb; c++)
      solveRow(x + c * kW, x, L + c * ldl, 1, 0, c, 1.0 / static_cast<double>(L[c * ldl + c]));
  } else {
    // Column c of L, entries q > c (stride ldl).
    for (size_t c = nb; c-- > 0;)
      solveRow(x + c * kW, x, L + c, ldl, c + 1, nb, 1.0 / static_cast<double>(L[c * ldl + c]));
  }
}

QL_TARGET_AVX2 void loadTransposedAvx2(const float* B, size_t ldb, size_t rows, size_t nb, double* x) {
  size_t r0 = 0;
  for (; r0 + 8 <= rows; r0 += 8) {
    size_t c0 = 0;
    for (; c0 + 8 <= nb; c0 += 8) {
      __m256 t[8];
      for (int j = 0; j < 8; j++) t[j] = _mm256_loadu_ps(B + (r0 + j) * ldb + c0);
      transpose8x8(t);  // t[q][j] = B[r0 + j][c0 + q]
      for (int q = 0; q < 8; q++) {
        double* d = x + (c0 + q) * kW + r0;
        _mm256_store_pd(d, _mm256_cvtps_pd(_mm256_castps256_ps128(t[q])));
        _mm256_store_pd(d + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(t[q], 1)));
      }
    }
    for (; c0 < nb; c0++)
      for (size_t j = 0; j < 8; j++) x[c0 * kW + r0 + j] = B[(r0 + j) * ldb + c0];
  }
  for (; r0 < rows; r0++)
    for (size_t c = 0; c < nb; c++) x[c * kW + r0] = B[r0 * ldb + c];
  for (size_t c = 0; c < nb; c++)
    for (size_t r = rows; r < kW; r++) x[c * kW + r] = 0;
}

QL_TARGET_AVX2 void storeTransposedAvx2(const double* x, size_t rows, size_t nb, float* B, size_t ldb) {
  size_t r0 = 0;
  for (; r0 + 8 <= rows; r0 += 8) {
    size_t c0 = 0;
    for (; c0 + 8 <= nb; c0 += 8) {
      __m256 t[8];
      for (int q = 0; q < 8; q++) {
        const double* s = x + (c0 + q) * kW + r0;
        t[q] = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_load_pd(s + 4)), _mm256_cvtpd_ps(_mm256_load_pd(s)));
      }
      transpose8x8(t);  // t[j][q] = x[c0 + q][r0 + j]
      for (int j = 0; j < 8; j++) _mm256_storeu_ps(B + (r0 + j) * ldb + c0, t[j]);
    }
    for (; c0 < nb; c0++)
      for (size_t j = 0; j < 8; j++) B[(r0 + j) * ldb + c0] = static_cast<float>(x[c0 * kW + r0 + j]);
  }
  for (; r0 < rows; r0++)
    for (size_t c = 0; c < nb; c++) B[r0 * ldb + c] = static_cast<float>(x[c * kW + r0]);
}

QL_TARGET_AVX2 void loadRowsAvx2(const float* B, size_t ldb, size_t rows, size_t width, double* x) {
  for (size_t i = 0; i < rows; i++) {
    const float* b = B + i * ldb;
    double* d = x + i * kW;
    size_t j = 0;
    for (; j + 4 <= width; j += 4) _mm256_store_pd(d + j, _mm256_cvtps_pd(_mm_loadu_ps(b + j)));
    for (; j < width; j++) d[j] = b[j];
    for (; j < kW; j++) d[j] = 0;
  }
}

QL_TARGET_AVX2 void storeRowsAvx2(const double* x, size_t rows, size_t width, float* B, size_t ldb) {
  for (size_t i = 0; i < rows; i++) {
    float* b = B + i * ldb;
    const double* s = x + i * kW;
    size_t j = 0;
    for (; j + 4 <= width; j += 4) _mm_storeu_ps(b + j, _mm256_cvtpd_ps(_mm256_load_pd(s + j)));
    for (; j < width; j++) b[j] = static_cast<float>(s[j]);
  }
}

}  // namespace ql
#endif
