// AVX2+FMA throughput loop for fma_peak. Guarded (QL_X86_SIMD); runs after useAvx2Fma().
#include "kernels_x86.h"

#if QL_X86_SIMD
#include <immintrin.h>

namespace ql {

QL_TARGET_AVX2 float fmaChainsAvx2(uint64_t iterations) {
  // 12 independent chains: enough to cover 4-cycle FMA latency on two FMA ports (8 needed) with
  // room to spare, few enough (plus a and b) to stay in the 16 ymm registers.
  constexpr int kChains = 12;
  static_assert(kChains * 8 * 2 == kFmaChainsAvx2Flops, "flop count must match the loop");
  __m256 acc[kChains];
  for (int k = 0; k < kChains; k++) acc[k] = _mm256_set1_ps(0.01f * static_cast<float>(k));
  const __m256 a = _mm256_set1_ps(0.999999f);
  const __m256 b = _mm256_set1_ps(1e-6f);
  for (uint64_t i = 0; i < iterations; i++) {
    for (int k = 0; k < kChains; k++) acc[k] = _mm256_fmadd_ps(acc[k], a, b);
  }
  __m256 s = acc[0];
  for (int k = 1; k < kChains; k++) s = _mm256_add_ps(s, acc[k]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

}  // namespace ql
#endif
