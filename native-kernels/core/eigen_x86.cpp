// AVX2+FMA kernels of the symmetric eigensolver (contracts in eigen_blas.h, scalar twins in
// eigen_blas.cpp). Guarded: compiled only where QL_X86_SIMD is 1, each function carrying its own
// target attribute, so the rest of the addon stays baseline x86-64.
#include "kernels_x86.h"

#if QL_X86_SIMD
#include <immintrin.h>

#include "eigen_blas.h"

namespace ql {

namespace {

QL_TARGET_AVX2 inline double hsum(__m256d v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/** C = alpha·acc + beta·C on the mr × nr corner of a 6 × 8 tile (beta = 0: C not read). */
QL_TARGET_AVX2 void storeTile(const __m256d (&acc)[6][2], double* c, ptrdiff_t rsc, ptrdiff_t csc, size_t mr,
                              size_t nr, double alpha, double beta) {
  const __m256d va = _mm256_set1_pd(alpha);
  if (mr == eig::kGemmMr && nr == eig::kGemmNr && csc == 1) {
    const __m256d vb = _mm256_set1_pd(beta);
    for (size_t i = 0; i < eig::kGemmMr; i++) {
      double* ci = c + static_cast<ptrdiff_t>(i) * rsc;
      for (size_t h = 0; h < 2; h++) {
        __m256d r = _mm256_mul_pd(va, acc[i][h]);
        if (beta != 0) r = _mm256_fmadd_pd(vb, _mm256_loadu_pd(ci + 4 * h), r);
        _mm256_storeu_pd(ci + 4 * h, r);
      }
    }
    return;
  }
  alignas(32) double tile[eig::kGemmMr][eig::kGemmNr];
  for (size_t i = 0; i < eig::kGemmMr; i++) {
    _mm256_store_pd(tile[i], acc[i][0]);
    _mm256_store_pd(tile[i] + 4, acc[i][1]);
  }
  for (size_t i = 0; i < mr; i++) {
    for (size_t j = 0; j < nr; j++) {
      double& x = c[static_cast<ptrdiff_t>(i) * rsc + static_cast<ptrdiff_t>(j) * csc];
      x = beta == 0 ? alpha * tile[i][j] : alpha * tile[i][j] + beta * x;
    }
  }
}

}  // namespace

/**
 * 6 × 8 register tile: 12 accumulators (two ymm per row of C), one broadcast of A per row and
 * two loads of B per step l; 12 FMAs per 8 loads keeps both FMA pipes busy from L1.
 */
QL_TARGET_AVX2 void eigenDgemmTileAvx2(size_t kc, const double* a, const double* b, double* c, ptrdiff_t rsc,
                                       ptrdiff_t csc, size_t mr, size_t nr, double alpha, double beta) {
  __m256d c00 = _mm256_setzero_pd(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256d c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (size_t l = 0; l < kc; l++) {
    const __m256d b0 = _mm256_loadu_pd(b);
    const __m256d b1 = _mm256_loadu_pd(b + 4);
    __m256d ai = _mm256_broadcast_sd(a);
    c00 = _mm256_fmadd_pd(ai, b0, c00);
    c01 = _mm256_fmadd_pd(ai, b1, c01);
    ai = _mm256_broadcast_sd(a + 1);
    c10 = _mm256_fmadd_pd(ai, b0, c10);
    c11 = _mm256_fmadd_pd(ai, b1, c11);
    ai = _mm256_broadcast_sd(a + 2);
    c20 = _mm256_fmadd_pd(ai, b0, c20);
    c21 = _mm256_fmadd_pd(ai, b1, c21);
    ai = _mm256_broadcast_sd(a + 3);
    c30 = _mm256_fmadd_pd(ai, b0, c30);
    c31 = _mm256_fmadd_pd(ai, b1, c31);
    ai = _mm256_broadcast_sd(a + 4);
    c40 = _mm256_fmadd_pd(ai, b0, c40);
    c41 = _mm256_fmadd_pd(ai, b1, c41);
    ai = _mm256_broadcast_sd(a + 5);
    c50 = _mm256_fmadd_pd(ai, b0, c50);
    c51 = _mm256_fmadd_pd(ai, b1, c51);
    a += eig::kGemmMr;
    b += eig::kGemmNr;
  }
  const __m256d acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  storeTile(acc, c, rsc, csc, mr, nr, alpha, beta);
}

/**
 * As eigenDgemmTileAvx2 with A read in place instead of from a packed sliver: element (i, l) at
 * a[i·rsa + l·csa]. Rows past mr alias row 0 (read, never stored). For products too narrow to
 * repay packing A (each element is used by only a few register tiles).
 */
QL_TARGET_AVX2 void eigenDgemmTileUnpackedAvx2(size_t kc, const double* a, ptrdiff_t rsa, ptrdiff_t csa,
                                               const double* b, double* c, ptrdiff_t rsc, ptrdiff_t csc, size_t mr,
                                               size_t nr, double alpha, double beta) {
  const double* r[6];
  for (size_t i = 0; i < 6; i++) r[i] = a + (i < mr ? static_cast<ptrdiff_t>(i) * rsa : 0);
  __m256d c00 = _mm256_setzero_pd(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256d c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  const double *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3], *r4 = r[4], *r5 = r[5];
  for (size_t l = 0; l < kc; l++) {
    const ptrdiff_t o = static_cast<ptrdiff_t>(l) * csa;
    const __m256d b0 = _mm256_loadu_pd(b);
    const __m256d b1 = _mm256_loadu_pd(b + 4);
    __m256d ai = _mm256_broadcast_sd(r0 + o);
    c00 = _mm256_fmadd_pd(ai, b0, c00);
    c01 = _mm256_fmadd_pd(ai, b1, c01);
    ai = _mm256_broadcast_sd(r1 + o);
    c10 = _mm256_fmadd_pd(ai, b0, c10);
    c11 = _mm256_fmadd_pd(ai, b1, c11);
    ai = _mm256_broadcast_sd(r2 + o);
    c20 = _mm256_fmadd_pd(ai, b0, c20);
    c21 = _mm256_fmadd_pd(ai, b1, c21);
    ai = _mm256_broadcast_sd(r3 + o);
    c30 = _mm256_fmadd_pd(ai, b0, c30);
    c31 = _mm256_fmadd_pd(ai, b1, c31);
    ai = _mm256_broadcast_sd(r4 + o);
    c40 = _mm256_fmadd_pd(ai, b0, c40);
    c41 = _mm256_fmadd_pd(ai, b1, c41);
    ai = _mm256_broadcast_sd(r5 + o);
    c50 = _mm256_fmadd_pd(ai, b0, c50);
    c51 = _mm256_fmadd_pd(ai, b1, c51);
    b += eig::kGemmNr;
  }
  const __m256d acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  storeTile(acc, c, rsc, csc, mr, nr, alpha, beta);
}

/**
 * Four rows at a time: for each 4-wide column slice j < i, four row dot products accumulate in
 * lanes while y[j..j+4) takes the four rows' transposed contributions (one load and one store of
 * y per 4 rows). Memory-bound on big matrices: each element of A is read once.
 */
QL_TARGET_AVX2 void eigenSymvRowsAvx2(const double* a, size_t lda, size_t r0, size_t r1, const double* x, double* y) {
  size_t i = r0;
  for (; i + 4 <= r1; i += 4) {
    const double* a0 = a + i * lda;
    const double* a1 = a0 + lda;
    const double* a2 = a1 + lda;
    const double* a3 = a2 + lda;
    const __m256d x0 = _mm256_set1_pd(x[i]), x1 = _mm256_set1_pd(x[i + 1]);
    const __m256d x2 = _mm256_set1_pd(x[i + 2]), x3 = _mm256_set1_pd(x[i + 3]);
    __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    size_t j = 0;
    for (; j + 4 <= i; j += 4) {  // i is a multiple of 4 (r0 is)
      const __m256d xj = _mm256_loadu_pd(x + j);
      const __m256d v0 = _mm256_loadu_pd(a0 + j);
      const __m256d v1 = _mm256_loadu_pd(a1 + j);
      const __m256d v2 = _mm256_loadu_pd(a2 + j);
      const __m256d v3 = _mm256_loadu_pd(a3 + j);
      s0 = _mm256_fmadd_pd(v0, xj, s0);
      s1 = _mm256_fmadd_pd(v1, xj, s1);
      s2 = _mm256_fmadd_pd(v2, xj, s2);
      s3 = _mm256_fmadd_pd(v3, xj, s3);
      __m256d yj = _mm256_loadu_pd(y + j);
      yj = _mm256_fmadd_pd(v0, x0, yj);
      yj = _mm256_fmadd_pd(v1, x1, yj);
      yj = _mm256_fmadd_pd(v2, x2, yj);
      yj = _mm256_fmadd_pd(v3, x3, yj);
      _mm256_storeu_pd(y + j, yj);
    }
    double s[4] = {hsum(s0), hsum(s1), hsum(s2), hsum(s3)};
    for (; j < i; j++) {  // only when r0 was not a multiple of 4
      s[0] += a0[j] * x[j];
      s[1] += a1[j] * x[j];
      s[2] += a2[j] * x[j];
      s[3] += a3[j] * x[j];
      y[j] += a0[j] * x[i] + a1[j] * x[i + 1] + a2[j] * x[i + 2] + a3[j] * x[i + 3];
    }
    const double* rows[4] = {a0, a1, a2, a3};
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

QL_TARGET_AVX2 double eigenDotAvx2(const double* x, const double* y, size_t n) {
  __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i), s0);
    s1 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i + 4), _mm256_loadu_pd(y + i + 4), s1);
    s2 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i + 8), _mm256_loadu_pd(y + i + 8), s2);
    s3 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i + 12), _mm256_loadu_pd(y + i + 12), s3);
  }
  for (; i + 4 <= n; i += 4) s0 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i), s0);
  double s = hsum(_mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
  for (; i < n; i++) s += x[i] * y[i];
  return s;
}

QL_TARGET_AVX2 void eigenAxpyAvx2(double alpha, const double* x, double* y, size_t n) {
  const __m256d va = _mm256_set1_pd(alpha);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_pd(y + i, _mm256_fmadd_pd(va, _mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i)));
    _mm256_storeu_pd(y + i + 4, _mm256_fmadd_pd(va, _mm256_loadu_pd(x + i + 4), _mm256_loadu_pd(y + i + 4)));
  }
  for (; i + 4 <= n; i += 4) _mm256_storeu_pd(y + i, _mm256_fmadd_pd(va, _mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i)));
  for (; i < n; i++) y[i] += alpha * x[i];
}

}  // namespace ql
#endif
