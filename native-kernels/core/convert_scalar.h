// Scalar fp16 / bf16 <-> fp32 conversions on bit patterns, operation for operation as the
// reference (extension/src/engine/kernels/reference.ts). These define the results; the SIMD
// paths in convert_x86.cpp must match them bit for bit over every input.
//
// NaN handling (pinned by test/native/convert.test.ts):
//   fp16 NaN  -> fp32 0x7fc00000 (sign and payload dropped: halfBitsToFloat returns JS NaN)
//   bf16 NaN  -> fp32 bits << 16, signalling bit, sign and payload kept ("the high half")
//   fp32 NaN  -> fp16 sign | 0x7e00
//   fp32 NaN  -> bf16 (bits >> 16) | 0x40 (quiet), sign and payload kept
// (The TypeScript bf16BitsToFloat passes its result through a JS number, and V8 quiets a
// signalling NaN there in some tiers and not in others; the tests accept either for sNaN.)
#pragma once

#include <cstdint>

namespace ql {

/** IEEE binary16 bits -> binary32 bits; exact for every non-NaN input (subnormals included). */
inline uint32_t halfToFloatBits(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t frac = h & 0x3ffu;
  if (exp == 0x1f) return frac ? 0x7fc00000u : (sign | 0x7f800000u);
  if (exp != 0) return sign | ((exp + 112u) << 23) | (frac << 13);  // re-bias 15 -> 127
  if (frac == 0) return sign;
  // Subnormal half frac·2^-24: normalise so the leading one becomes the implicit bit.
  uint32_t p = 9;  // position of the leading one in frac
  while ((frac >> p) == 0) p--;
  return sign | ((p + 103u) << 23) | ((frac << (23 - p)) & 0x7fffffu);
}

/** binary32 bits -> binary16 bits: round to nearest even, overflow to ±Inf, NaN -> sign|0x7e00. */
inline uint16_t floatBitsToHalf(uint32_t x) {
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t exp = (x >> 23) & 0xffu;
  const uint32_t mant = x & 0x7fffffu;
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
  int e = static_cast<int>(exp) - 127 + 15;  // re-bias 127 -> 15
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    // Subnormal half (or zero): shift the mantissa with its implicit one right, round to even.
    if (e < -10) return static_cast<uint16_t>(sign);
    const uint32_t m = mant | 0x800000u;
    const uint32_t shift = static_cast<uint32_t>(14 - e);
    const uint32_t half = 1u << (shift - 1);
    const uint32_t rest = m & ((1u << shift) - 1);
    uint32_t r = m >> shift;
    if (rest > half || (rest == half && (r & 1u))) r++;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t m = mant >> 13;
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (m & 1u))) {
    m++;
    if (m == 0x400u) {  // the mantissa carried into the exponent
      m = 0;
      e++;
      if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
    }
  }
  return static_cast<uint16_t>(sign | (static_cast<uint32_t>(e) << 10) | m);
}

/** bfloat16 bits -> binary32 bits: the high half, every pattern (NaN too) kept as it is. */
inline uint32_t bf16ToFloatBits(uint16_t b) { return static_cast<uint32_t>(b) << 16; }

/** binary32 bits -> bfloat16 bits: round to nearest even (Inf stays Inf), NaN kept quiet. */
inline uint16_t floatBitsToBf16(uint32_t x) {
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace ql
