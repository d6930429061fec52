// AVX2 / F16C conversion kernels. Guarded (QL_X86_SIMD) and per-function target attributes;
// called only after useF16c() / useAvx2Fma(). Each fixes up NaN lanes so that the output equals
// convert_scalar.h bit for bit; tails go through the scalar functions.
#include "kernels_x86.h"

#if QL_X86_SIMD
#include <immintrin.h>

#include <cstring>

#include "convert_scalar.h"

namespace ql {

QL_TARGET_AVX2_F16C void f16ToF32F16c(const uint16_t* src, uint32_t* dst, size_t n) {
  const __m256i absMask = _mm256_set1_epi32(0x7fff);
  const __m256i halfInf = _mm256_set1_epi32(0x7c00);
  const __m256i canonicalNaN = _mm256_set1_epi32(0x7fc00000);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    const __m256i f = _mm256_castps_si256(_mm256_cvtph_ps(h));  // exact for non-NaN
    const __m256i isNaN = _mm256_cmpgt_epi32(_mm256_and_si256(_mm256_cvtepu16_epi32(h), absMask), halfInf);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_blendv_epi8(f, canonicalNaN, isNaN));
  }
  for (; i < n; i++) dst[i] = halfToFloatBits(src[i]);
}

QL_TARGET_AVX2_F16C void f32ToF16F16c(const uint32_t* src, uint16_t* dst, size_t n) {
  const __m128i absMask = _mm_set1_epi16(0x7fff);
  const __m128i halfInf = _mm_set1_epi16(0x7c00);
  const __m128i signMask = _mm_set1_epi16(static_cast<short>(0x8000));
  const __m128i quietNaN = _mm_set1_epi16(0x7e00);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_castsi256_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    // Immediate 0: round to nearest even, whatever MXCSR says. NaN comes out quiet with the top
    // payload bits kept; the scalar rule (sign | 0x7e00) drops the payload, so patch NaN lanes.
    const __m128i h = _mm256_cvtps_ph(x, 0);
    const __m128i isNaN = _mm_cmpgt_epi16(_mm_and_si128(h, absMask), halfInf);
    const __m128i fixed = _mm_or_si128(_mm_and_si128(h, signMask), quietNaN);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm_blendv_epi8(h, fixed, isNaN));
  }
  for (; i < n; i++) dst[i] = floatBitsToHalf(src[i]);
}

QL_TARGET_AVX2 void bf16ToF32Avx2(const uint16_t* src, uint32_t* dst, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    // Interleave a zero half below each bf16: per 128-bit lane, 0..3 then 4..7 (and 8..11, 12..15).
    const __m256i lo = _mm256_unpacklo_epi16(_mm256_setzero_si256(), b);
    const __m256i hi = _mm256_unpackhi_epi16(_mm256_setzero_si256(), b);
    // lo = [0..3 | 8..11], hi = [4..7 | 12..15]: put the 128-bit halves back in order.
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_permute2x128_si256(lo, hi, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
  }
  for (; i < n; i++) dst[i] = bf16ToFloatBits(src[i]);
}

namespace {

/** 8 floats (as bits) -> 8 bf16 in the low 16 bits of each 32-bit lane. */
QL_TARGET_AVX2 inline __m256i toBf16Lanes(__m256i x) {
  const __m256i isNaN = _mm256_cmpgt_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff)),
                                           _mm256_set1_epi32(0x7f800000));
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(_mm256_srli_epi32(x, 16), one));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(x, bias), 16);  // wraps mod 2^32 like uint32
  const __m256i nan = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x40));
  return _mm256_blendv_epi8(rounded, nan, isNaN);
}

}  // namespace

QL_TARGET_AVX2 void f32ToBf16Avx2(const uint32_t* src, uint16_t* dst, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i a = toBf16Lanes(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    const __m256i b = toBf16Lanes(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 8)));
    // packus works per 128-bit lane: [a0..3 b0..3 | a4..7 b4..7]; restore order with a permute.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), packed);
  }
  for (; i < n; i++) dst[i] = floatBitsToBf16(src[i]);
}

}  // namespace ql
#endif
