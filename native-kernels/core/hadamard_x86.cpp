// AVX2 FWHT of one row. Guarded like every *_x86.cpp. Bit-identical to fwhtRowScalar: each stage
// computes the same a + b / a − b per element, only grouped differently (stages 1, 2, 4 inside a
// register with shuffles, then up to three stages per pass over the row).
#include "kernels_x86.h"

#if QL_X86_SIMD
#include <immintrin.h>

namespace ql {

namespace {

/** One butterfly stage between lanes: lanes in `hiMask` get partner − self, the others self + partner. */
template <int HiMask>
QL_TARGET_AVX2 inline __m256 laneStage(__m256 v, __m256 partner) {
  return _mm256_blend_ps(_mm256_add_ps(v, partner), _mm256_sub_ps(partner, v), HiMask);
}

/** Stages h = 1, 2, 4 on 8 consecutive floats. */
QL_TARGET_AVX2 inline __m256 stages124(__m256 v) {
  v = laneStage<0xAA>(v, _mm256_permute_ps(v, 0xB1));          // partner j^1
  v = laneStage<0xCC>(v, _mm256_permute_ps(v, 0x4E));          // partner j^2
  return laneStage<0xF0>(v, _mm256_permute2f128_ps(v, v, 0x01));  // partner j^4
}

/** Three stages (h, 2h, 4h) per pass over eight vectors j + m·h, m = 0..7; × norm when last. */
template <bool Last>
QL_TARGET_AVX2 inline void radix8Pass(float* x, size_t n, size_t h, __m256 norm) {
  for (size_t i = 0; i < n; i += 8 * h) {
    for (size_t j = i; j < i + h; j += 8) {
      __m256 v[8];
      for (int m = 0; m < 8; m++) v[m] = _mm256_loadu_ps(x + j + m * h);
      for (int span = 1; span < 8; span *= 2) {  // stages h, 2h, 4h: partners m and m + span
        for (int m = 0; m < 8; m++) {
          if (m & span) continue;
          const __m256 a = v[m], b = v[m + span];
          v[m] = _mm256_add_ps(a, b);
          v[m + span] = _mm256_sub_ps(a, b);
        }
      }
      for (int m = 0; m < 8; m++) _mm256_storeu_ps(x + j + m * h, Last ? _mm256_mul_ps(v[m], norm) : v[m]);
    }
  }
}

/** The last one or two stages (h, and 2h when two), × norm. */
QL_TARGET_AVX2 inline void tailPass(float* x, size_t n, size_t h, bool two, __m256 norm) {
  for (size_t i = 0; i < n; i += (two ? 4 : 2) * h) {
    for (size_t j = i; j < i + h; j += 8) {
      const __m256 a = _mm256_loadu_ps(x + j), b = _mm256_loadu_ps(x + j + h);
      const __m256 a1 = _mm256_add_ps(a, b), b1 = _mm256_sub_ps(a, b);
      if (!two) {
        _mm256_storeu_ps(x + j, _mm256_mul_ps(a1, norm));
        _mm256_storeu_ps(x + j + h, _mm256_mul_ps(b1, norm));
        continue;
      }
      const __m256 c = _mm256_loadu_ps(x + j + 2 * h), d = _mm256_loadu_ps(x + j + 3 * h);
      const __m256 c1 = _mm256_add_ps(c, d), d1 = _mm256_sub_ps(c, d);
      _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_add_ps(a1, c1), norm));
      _mm256_storeu_ps(x + j + 2 * h, _mm256_mul_ps(_mm256_sub_ps(a1, c1), norm));
      _mm256_storeu_ps(x + j + h, _mm256_mul_ps(_mm256_add_ps(b1, d1), norm));
      _mm256_storeu_ps(x + j + 3 * h, _mm256_mul_ps(_mm256_sub_ps(b1, d1), norm));
    }
  }
}

}  // namespace

// Passes over the row (it stays in L1 for n ≤ 8192): stages 1, 2, 4 in registers, then three
// stages per pass while they fit, then the last one or two; the × norm rides on the last pass
// (after the final add/sub of each element, as in the scalar code). n = 4096: four passes.
QL_TARGET_AVX2 void fwhtRowAvx2(float* x, size_t n, float norm) {
  const __m256 s = _mm256_set1_ps(norm);
  if (n == 8) {
    _mm256_storeu_ps(x, _mm256_mul_ps(stages124(_mm256_loadu_ps(x)), s));
    return;
  }
  for (size_t i = 0; i < n; i += 8) _mm256_storeu_ps(x + i, stages124(_mm256_loadu_ps(x + i)));
  size_t h = 8;
  for (; 8 * h <= n; h *= 8) {
    if (8 * h == n) return radix8Pass<true>(x, n, h, s);
    radix8Pass<false>(x, n, h, s);
  }
  tailPass(x, n, h, 4 * h == n, s);  // 2h == n or 4h == n remain
}

}  // namespace ql
#endif
