// The random numbers behind the seeded orthogonal transforms, defined operation by operation so
// that the same (seed, n) gives the same factors on every machine and in the TypeScript twin
// (reference-transforms.ts): 32-bit integer arithmetic, IEEE double +, −, ×, ÷ and √ only (no
// libm transcendental, whose last bits differ between C libraries and JavaScript engines).
//
//   stream:   xoshiro128** (Blackman & Vigna), state from (seed, n, factor index) by murmur3's
//             32-bit finalizer, so each factor of a transform has its own stream.
//   uniform:  53 bits from two outputs, (a>>5 · 2^26 + b>>6) / 2^53 ∈ [0, 1).
//   gaussian: Marsaglia's polar method; ln() is our own (frexp-style reduction to [√½, √2] and
//             the atanh series to t^27, ~1e-17 relative), values come in pairs (u·f, then v·f).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace ql {

/** murmur3 fmix32. */
inline uint32_t fmix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return h;
}

/** ln(s) for 0 < s < 2 (the polar method's s ∈ (0, 1)), bit-reproducible. */
inline double reproducibleLog(double s) {
  constexpr double kSqrt2 = 1.4142135623730951;
  constexpr double kLn2 = 0.6931471805599453;
  double f = s;
  int e = 0;
  while (f < 1) {  // exact scalings by 2
    f *= 2;
    e -= 1;
  }
  if (f > kSqrt2) {
    f /= 2;
    e += 1;
  }
  // f ∈ (√½, √2]: ln f = 2·atanh(t), t = (f − 1)/(f + 1), |t| ≤ 0.1716.
  const double t = (f - 1) / (f + 1);
  const double t2 = t * t;
  double sum = 1.0 / 27;
  for (int k = 12; k >= 0; k--) sum = sum * t2 + 1.0 / (2 * k + 1);
  return e * kLn2 + 2 * t * sum;
}

class OrthoRng {
 public:
  OrthoRng(uint32_t seed, uint64_t n, uint32_t factor) {
    const uint32_t key = fmix32(static_cast<uint32_t>(n) ^ fmix32(factor + 0x632BE5ABu));
    for (uint32_t i = 0; i < 4; i++) s_[i] = fmix32(seed + 0x9E3779B9u * (i + 1) + key);
    if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) s_[0] = 1;
  }

  uint32_t next() {
    const uint32_t result = rotl(s_[1] * 5, 7) * 9;
    const uint32_t t = s_[1] << 9;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 11);
    return result;
  }

  /** [0, 1) with 53 random bits. */
  double uniform() {
    const uint32_t a = next() >> 5, b = next() >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
  }

  /** Standard normal (polar method; the second value of each pair is kept for the next call). */
  double gaussian() {
    if (hasSpare_) {
      hasSpare_ = false;
      return spare_;
    }
    for (;;) {
      const double u = 2 * uniform() - 1, v = 2 * uniform() - 1;
      const double s = u * u + v * v;
      if (s >= 1 || s == 0) continue;
      const double f = std::sqrt(-2 * reproducibleLog(s) / s);
      spare_ = v * f;
      hasSpare_ = true;
      return u * f;
    }
  }

 private:
  static uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }
  uint32_t s_[4];
  double spare_ = 0;
  bool hasSpare_ = false;
};

}  // namespace ql
