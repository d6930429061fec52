// AVX2 loops of rtn.cpp. Guarded like every *_x86.cpp (QL_X86_SIMD, per-function targets). All
// three are bit-identical to their scalar twins: min/max is order-free (±0 is folded to +0 by
// the caller), and the codes use the same IEEE division and ties-to-even rounding per element.
#include "kernels_x86.h"

#if QL_X86_SIMD
#include <immintrin.h>

#include <cmath>

#include "rtn.h"

namespace ql {

QL_TARGET_AVX2 bool rtnRangeAvx2(const float* w, size_t n, float* wmin, float* wmax) {
  __m256 lo = _mm256_set1_ps(1.0f / 0.0f), hi = _mm256_set1_ps(-1.0f / 0.0f);
  __m256i bad = _mm256_setzero_si256();
  const __m256i expMask = _mm256_set1_epi32(0x7f800000);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(w + i);
    lo = _mm256_min_ps(lo, v);
    hi = _mm256_max_ps(hi, v);
    // NaN and ±Inf are the floats whose exponent bits are all ones.
    bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(v), expMask), expMask));
  }
  alignas(32) float l[8], h[8];
  _mm256_store_ps(l, lo);
  _mm256_store_ps(h, hi);
  float a = l[0], b = h[0];
  for (int k = 1; k < 8; k++) {
    if (l[k] < a) a = l[k];
    if (h[k] > b) b = h[k];
  }
  bool finite = _mm256_testz_si256(bad, bad);
  for (; i < n; i++) {
    const float v = w[i];
    finite &= std::isfinite(v);
    if (v < a) a = v;
    if (v > b) b = v;
  }
  *wmin = a;
  *wmax = b;
  return finite;
}

namespace {

/** clamp(round(w / scale) + zero, 0, maxq) of 8 floats, as int32 lanes. */
QL_TARGET_AVX2 inline __m256i codes8(const float* w, __m256 scale, __m256 zero, __m256 maxq) {
  const __m256 x = _mm256_div_ps(_mm256_loadu_ps(w), scale);
  __m256 q = _mm256_add_ps(_mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zero);
  q = _mm256_min_ps(_mm256_max_ps(q, _mm256_setzero_ps()), maxq);
  return _mm256_cvttps_epi32(q);
}

}  // namespace

QL_TARGET_AVX2 void rtnCodesAvx2(const float* w, size_t n, float scale, float zero, int maxq, uint8_t* q) {
  const __m256 vs = _mm256_set1_ps(scale), vz = _mm256_set1_ps(zero);
  const __m256 vm = _mm256_set1_ps(static_cast<float>(maxq));
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i a = codes8(w + i, vs, vz, vm);
    const __m256i b = codes8(w + i + 8, vs, vz, vm);
    // int32 -> int16 (lanes a0-3 b0-3 | a4-7 b4-7), put in order, -> uint8 (values are 0..255).
    const __m256i h = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
    const __m256i bytes = _mm256_packus_epi16(h, h);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + i), _mm256_castsi256_si128(bytes));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + i + 8), _mm256_extracti128_si256(bytes, 1));
  }
  for (; i < n; i++) q[i] = rtn_code(w[i], scale, zero, maxq);
}

QL_TARGET_AVX2 void rtnDequantAvx2(const uint8_t* q, size_t n, float scale, float zero, float* out) {
  const __m256 vs = _mm256_set1_ps(scale), vz = _mm256_set1_ps(zero);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + i));
    const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(vs, _mm256_sub_ps(f, vz)));
  }
  for (; i < n; i++) out[i] = rtn_dequant(q[i], scale, zero);
}

}  // namespace ql
#endif
