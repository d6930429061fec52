// AVX2 version of gptqPanelScalar (gptq_panel.h): the panel's 16 rows are two 8-float vectors per
// column, and the error updates are register-blocked over sub-blocks of columns. Bit-identical to
// the scalar kernel: IEEE division, ties-to-even rounding (roundps), max/min clamping that maps
// NaN and −0 as the scalar comparisons do, and every update a separate multiply and subtract (no
// FMA) applied to each weight in the same column order.
#include "kernels_x86.h"

#if QL_X86_SIMD
#include <immintrin.h>

#include <algorithm>

#include "gptq_panel.h"

namespace ql {

namespace {

struct Quantized {
  __m256 q;    // the codes, as floats
  __m256 err;  // (w − dq) / d
};

/** code = clamp(round(w / s) + z, 0, maxq); err = (w − s·(code − z)) / d, as rtn_code / rtn_dequant. */
QL_TARGET_AVX2 inline Quantized quantize8(__m256 w, __m256 s, __m256 z, __m256 maxq, __m256 d) {
  const __m256 x = _mm256_div_ps(w, s);
  __m256 q = _mm256_add_ps(_mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), z);
  // max_ps returns its second operand when the first is NaN or both are zeros: like `!(q > 0)`.
  q = _mm256_min_ps(_mm256_max_ps(q, _mm256_setzero_ps()), maxq);
  const __m256 dq = _mm256_mul_ps(s, _mm256_sub_ps(q, z));
  return {q, _mm256_div_ps(_mm256_sub_ps(w, dq), d)};
}

/** Columns quantized before their errors reach the rest of the batch in one register-blocked pass. */
constexpr size_t kSub = 6;

/**
 * wt[j] −= Σ_t e_t · U[k1 + t, j] for j in [j0, j1), t = 0 .. N−1 in order (each term a separate
 * multiply and subtract, as the column-at-a-time loop applies them): one load and store of wt[j]
 * for N columns' updates.
 */
template <size_t N>
QL_TARGET_AVX2 inline void subtractErrors(const __m256* elo, const __m256* ehi, const float* U, size_t ldu, size_t k1,
                                          float* wt, size_t j0, size_t j1, size_t i1) {
  for (size_t j = j0; j < j1; j++) {
    float* w = wt + (j - i1) * kGptqLanes;
    __m256 lo = _mm256_loadu_ps(w), hi = _mm256_loadu_ps(w + 8);
    for (size_t t = 0; t < N; t++) {
      const __m256 u = _mm256_set1_ps(U[(k1 + t) * ldu + j]);
      lo = _mm256_sub_ps(lo, _mm256_mul_ps(elo[t], u));
      hi = _mm256_sub_ps(hi, _mm256_mul_ps(ehi[t], u));
    }
    _mm256_storeu_ps(w, lo);
    _mm256_storeu_ps(w + 8, hi);
  }
}

QL_TARGET_AVX2 void subtractErrorsN(size_t n, const __m256* elo, const __m256* ehi, const float* U, size_t ldu, size_t k1,
                                    float* wt, size_t j0, size_t j1, size_t i1) {
  switch (n) {
    case 1: return subtractErrors<1>(elo, ehi, U, ldu, k1, wt, j0, j1, i1);
    case 2: return subtractErrors<2>(elo, ehi, U, ldu, k1, wt, j0, j1, i1);
    case 3: return subtractErrors<3>(elo, ehi, U, ldu, k1, wt, j0, j1, i1);
    case 4: return subtractErrors<4>(elo, ehi, U, ldu, k1, wt, j0, j1, i1);
    case 5: return subtractErrors<5>(elo, ehi, U, ldu, k1, wt, j0, j1, i1);
    default: return subtractErrors<kSub>(elo, ehi, U, ldu, k1, wt, j0, j1, i1);
  }
}

}  // namespace

/**
 * The batch in sub-blocks [k1, k2) of up to kSub columns: each column is quantized and its error
 * spread over the rest of its sub-block, then the sub-block's errors reach columns [k2, i2) in one
 * register-blocked pass. Every weight still receives the updates of the earlier columns one by
 * one in column order, so the result is the scalar kernel's bit for bit. Sub-blocks end at
 * dynamic group starts, so a group always starts on a fully updated batch.
 */
QL_TARGET_AVX2 void gptqPanelAvx2(const GptqPanel& p) {
  static_assert(kGptqLanes == 16, "two 8-float vectors per panel column");
  const GptqLayout& L = *p.L;
  const bool dynamic = L.mode == GptqGroupMode::Dynamic;
  gptqLoadPanel(p);
  alignas(32) float s[kGptqLanes], z[kGptqLanes];
  alignas(32) int32_t codes[kGptqLanes];
  __m256 elo[kSub], ehi[kSub];
  const __m256 maxq = _mm256_set1_ps(static_cast<float>(L.maxq));
  for (size_t k1 = p.i1; k1 < p.i2;) {
    size_t k2 = std::min(k1 + kSub, p.i2);
    if (dynamic) k2 = std::min(k2, (k1 / L.G + 1) * L.G);
    for (size_t i = k1; i < k2; i++) {
      if (dynamic && i % L.G == 0) gptqFindDynamicGroup(p, i);
      if (L.groupStart && L.groupStart[i]) gptqFindStaticGroup(p, i);
      gptqLaneParams(p, i, s, z);
      const float* Ui = p.U + i * L.cols;
      const __m256 d = _mm256_set1_ps(Ui[i]);
      const float* w = p.wt + (i - p.i1) * kGptqLanes;
      const Quantized lo = quantize8(_mm256_loadu_ps(w), _mm256_load_ps(s), _mm256_load_ps(z), maxq, d);
      const Quantized hi = quantize8(_mm256_loadu_ps(w + 8), _mm256_load_ps(s + 8), _mm256_load_ps(z + 8), maxq, d);
      elo[i - k1] = lo.err;
      ehi[i - k1] = hi.err;
      float* et = p.errT + (i - p.i1) * p.ldErr;
      _mm256_storeu_ps(et, lo.err);
      _mm256_storeu_ps(et + 8, hi.err);
      _mm256_store_si256(reinterpret_cast<__m256i*>(codes), _mm256_cvttps_epi32(lo.q));
      _mm256_store_si256(reinterpret_cast<__m256i*>(codes + 8), _mm256_cvttps_epi32(hi.q));
      const size_t column = static_cast<size_t>(L.perm[i]);
      for (size_t l = 0; l < p.lanes; l++) p.codes[l * L.cols + column] = static_cast<uint8_t>(codes[l]);
      // w[i+1:k2] −= err_i · U[i, i+1:k2] (the rest of the sub-block).
      subtractErrors<1>(elo + (i - k1), ehi + (i - k1), p.U, L.cols, i, p.wt, i + 1, k2, p.i1);
    }
    // w[k2:i2] −= Σ_{t ∈ [k1, k2)} err_t · U[t, k2:i2], t in order.
    subtractErrorsN(k2 - k1, elo, ehi, p.U, L.cols, k1, p.wt, k2, p.i2, p.i1);
    k1 = k2;
  }
}

}  // namespace ql
#endif
