// AVX2+FMA block kernel for moments(). Guarded: compiled only where QL_X86_SIMD is 1, and every
// function carries its own target attribute, so the rest of the addon stays baseline x86-64.
#include "kernels_x86.h"

#if QL_X86_SIMD
#include <immintrin.h>

#include <algorithm>
#include <cmath>

namespace ql {

namespace {

QL_TARGET_AVX2 inline double hsum(__m256d v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/** All-ones lanes where x is finite (exponent not all ones). */
QL_TARGET_AVX2 inline __m256i finiteMask(__m256 x) {
  const __m256i absBits = _mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(0x7fffffff));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(0x7f800000), absBits);
}

/** d = x[0..4) − mean in double lanes; with Masked, lanes holding NaN/±Inf become 0. */
template <bool Masked>
QL_TARGET_AVX2 inline __m256d centered4(const float* x, __m256d mean) {
  const __m128 v = _mm_loadu_ps(x);
  const __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(v), mean);  // vcvtps2pd widens 4 floats
  if (!Masked) return d;
  const __m128i absBits = _mm_and_si128(_mm_castps_si128(v), _mm_set1_epi32(0x7fffffff));
  const __m128i finite = _mm_cmpgt_epi32(_mm_set1_epi32(0x7f800000), absBits);
  // Sign-extend the 32-bit lane mask to 64-bit lanes (all-ones stays all-ones).
  return _mm256_and_pd(d, _mm256_castsi256_pd(_mm256_cvtepi32_epi64(finite)));
}

/**
 * Central sums about a known mean (the masked kernel's second pass, and the one-pass kernel's
 * when its shift was poor): m2 += d², m3 += d²·d, m4 += d²·d² with d = x − mean in double.
 * Three independent accumulator sets (12 floats per step) cover the 4-cycle FMA latency and,
 * with the temporaries, fit the 16 ymm registers (a fourth set measured no faster; loading all
 * sets' inputs first made GCC spill accumulators to the stack and ran 2x slower).
 */
template <bool Masked>
QL_TARGET_AVX2 void centralSums(const float* x, size_t n, double mean, double& m2Out, double& m3Out,
                                double& m4Out) {
  const __m256d mv = _mm256_set1_pd(mean);
  __m256d m2a = _mm256_setzero_pd(), m3a = m2a, m4a = m2a;
  __m256d m2b = m2a, m3b = m2a, m4b = m2a;
  __m256d m2c = m2a, m3c = m2a, m4c = m2a;
  size_t i = 0;
  for (; i + 12 <= n; i += 12) {
    const __m256d da = centered4<Masked>(x + i, mv);
    const __m256d a2 = _mm256_mul_pd(da, da);
    m2a = _mm256_add_pd(m2a, a2);
    m3a = _mm256_fmadd_pd(a2, da, m3a);
    m4a = _mm256_fmadd_pd(a2, a2, m4a);
    const __m256d db = centered4<Masked>(x + i + 4, mv);
    const __m256d b2 = _mm256_mul_pd(db, db);
    m2b = _mm256_add_pd(m2b, b2);
    m3b = _mm256_fmadd_pd(b2, db, m3b);
    m4b = _mm256_fmadd_pd(b2, b2, m4b);
    const __m256d dc = centered4<Masked>(x + i + 8, mv);
    const __m256d c2 = _mm256_mul_pd(dc, dc);
    m2c = _mm256_add_pd(m2c, c2);
    m3c = _mm256_fmadd_pd(c2, dc, m3c);
    m4c = _mm256_fmadd_pd(c2, c2, m4c);
  }
  for (; i + 4 <= n; i += 4) {
    const __m256d da = centered4<Masked>(x + i, mv);
    const __m256d a2 = _mm256_mul_pd(da, da);
    m2a = _mm256_add_pd(m2a, a2);
    m3a = _mm256_fmadd_pd(a2, da, m3a);
    m4a = _mm256_fmadd_pd(a2, a2, m4a);
  }
  double s2 = hsum(_mm256_add_pd(_mm256_add_pd(m2a, m2b), m2c));
  double s3 = hsum(_mm256_add_pd(_mm256_add_pd(m3a, m3b), m3c));
  double s4 = hsum(_mm256_add_pd(_mm256_add_pd(m4a, m4b), m4c));
  for (; i < n; i++) {
    const double v = x[i];
    if (Masked && !std::isfinite(v)) continue;
    const double dv = v - mean;
    const double d2 = dv * dv;
    s2 += d2;
    s3 += d2 * dv;
    s4 += d2 * d2;
  }
  m2Out = s2;
  m3Out = s3;
  m4Out = s4;
}

/**
 * The block holds NaN or ±Inf somewhere: pass 1 with every value masked by finiteness (sum,
 * min/max/absmax and the count skip non-finite lanes), then the masked pass 2.
 */
QL_TARGET_AVX2 Moments maskedBlock(const float* x, size_t len) {
  // Pass 1: sum (double), min/max/absmax (float, exact), count of finite values (per 32-bit lane).
  const __m256 posInf = _mm256_set1_ps(1.0f / 0.0f);
  const __m256 negInf = _mm256_set1_ps(-1.0f / 0.0f);
  __m256d sum[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
  __m256 vmin = posInf, vmax = negInf, vabs = _mm256_setzero_ps();
  __m256i finite = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 16 <= len; i += 16) {
    const __m256 a = _mm256_loadu_ps(x + i);
    const __m256 b = _mm256_loadu_ps(x + i + 8);
    const __m256i fa = finiteMask(a);
    const __m256i fb = finiteMask(b);
    finite = _mm256_sub_epi32(_mm256_sub_epi32(finite, fa), fb);  // mask lanes are −1
    const __m256 az = _mm256_and_ps(a, _mm256_castsi256_ps(fa));  // non-finite → +0
    const __m256 bz = _mm256_and_ps(b, _mm256_castsi256_ps(fb));
    sum[0] = _mm256_add_pd(sum[0], _mm256_cvtps_pd(_mm256_castps256_ps128(az)));
    sum[1] = _mm256_add_pd(sum[1], _mm256_cvtps_pd(_mm256_extractf128_ps(az, 1)));
    sum[2] = _mm256_add_pd(sum[2], _mm256_cvtps_pd(_mm256_castps256_ps128(bz)));
    sum[3] = _mm256_add_pd(sum[3], _mm256_cvtps_pd(_mm256_extractf128_ps(bz, 1)));
    vmin = _mm256_min_ps(vmin, _mm256_blendv_ps(posInf, a, _mm256_castsi256_ps(fa)));
    vmin = _mm256_min_ps(vmin, _mm256_blendv_ps(posInf, b, _mm256_castsi256_ps(fb)));
    vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(negInf, a, _mm256_castsi256_ps(fa)));
    vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(negInf, b, _mm256_castsi256_ps(fb)));
    const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    vabs = _mm256_max_ps(vabs, _mm256_and_ps(az, absMask));
    vabs = _mm256_max_ps(vabs, _mm256_and_ps(bz, absMask));
  }
  double s = hsum(_mm256_add_pd(_mm256_add_pd(sum[0], sum[1]), _mm256_add_pd(sum[2], sum[3])));
  alignas(32) float lmin[8], lmax[8], labs[8];
  alignas(32) int32_t lfin[8];
  _mm256_store_ps(lmin, vmin);
  _mm256_store_ps(lmax, vmax);
  _mm256_store_ps(labs, vabs);
  _mm256_store_si256(reinterpret_cast<__m256i*>(lfin), finite);
  double n = 0, min = 1.0 / 0.0, max = -1.0 / 0.0, absmax = 0;
  for (int k = 0; k < 8; k++) {
    n += lfin[k];
    if (lmin[k] < min) min = lmin[k];
    if (lmax[k] > max) max = lmax[k];
    if (labs[k] > absmax) absmax = labs[k];
  }
  for (; i < len; i++) {
    const double v = x[i];
    if (!std::isfinite(v)) continue;
    n++;
    s += v;
    const double a = std::fabs(v);
    if (a > absmax) absmax = a;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  Moments r;
  r.nonFinite = static_cast<double>(len) - n;
  if (n == 0) return r;
  r.n = n;
  r.mean = s / n;
  r.absmax = absmax;
  r.min = min;
  r.max = max;
  // Pass 2 (the block is still in L2).
  centralSums<true>(x, len, r.mean, r.m2, r.m3, r.m4);
  return r;
}

/**
 * Shifted power sums of a run, one pass: S_k = Σ (x − c)^k for k = 1..4 in double (c a rough
 * mean; Shift = false: c = 0 and no subtraction, ~15% faster), plus min and max (float, exact).
 * Two accumulator sets of four lanes; with the shift, min/max and temporaries that is all 16 ymm
 * registers (a third set, or unrolling the two, spills and runs 2× slower).
 * A NaN or ±Inf in x makes S1 non-finite; the caller checks.
 */
struct ShiftedSums {
  double s1, s2, s3, s4;
  float min, max;
};

template <bool Shift>
QL_TARGET_AVX2 ShiftedSums shiftedSums(const float* x, size_t n, double c) {
  const __m256d cv = _mm256_set1_pd(c);
  __m256d s1a = _mm256_setzero_pd(), s2a = s1a, s3a = s1a, s4a = s1a;
  __m256d s1b = s1a, s2b = s1a, s3b = s1a, s4b = s1a;
  __m256 vmin = _mm256_set1_ps(1.0f / 0.0f), vmax = _mm256_set1_ps(-1.0f / 0.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    vmin = _mm256_min_ps(vmin, v);
    vmax = _mm256_max_ps(vmax, v);
    __m256d da = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
    if (Shift) da = _mm256_sub_pd(da, cv);
    const __m256d a2 = _mm256_mul_pd(da, da);
    s1a = _mm256_add_pd(s1a, da);
    s2a = _mm256_add_pd(s2a, a2);
    s3a = _mm256_fmadd_pd(a2, da, s3a);
    s4a = _mm256_fmadd_pd(a2, a2, s4a);
    __m256d db = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
    if (Shift) db = _mm256_sub_pd(db, cv);
    const __m256d b2 = _mm256_mul_pd(db, db);
    s1b = _mm256_add_pd(s1b, db);
    s2b = _mm256_add_pd(s2b, b2);
    s3b = _mm256_fmadd_pd(b2, db, s3b);
    s4b = _mm256_fmadd_pd(b2, b2, s4b);
  }
  ShiftedSums r;
  r.s1 = hsum(_mm256_add_pd(s1a, s1b));
  r.s2 = hsum(_mm256_add_pd(s2a, s2b));
  r.s3 = hsum(_mm256_add_pd(s3a, s3b));
  r.s4 = hsum(_mm256_add_pd(s4a, s4b));
  alignas(32) float lmin[8], lmax[8];
  _mm256_store_ps(lmin, vmin);
  _mm256_store_ps(lmax, vmax);
  r.min = 1.0f / 0.0f;
  r.max = -1.0f / 0.0f;
  for (int k = 0; k < 8; k++) {
    if (lmin[k] < r.min) r.min = lmin[k];
    if (lmax[k] > r.max) r.max = lmax[k];
  }
  for (; i < n; i++) {
    const double d = static_cast<double>(x[i]) - c;
    const double d2 = d * d;
    r.s1 += d;
    r.s2 += d2;
    r.s3 += d2 * d;
    r.s4 += d2 * d2;
    if (x[i] < r.min) r.min = x[i];
    if (x[i] > r.max) r.max = x[i];
  }
  return r;
}

/** Elements that choose the shift c of a block: a few microseconds of it, in L1 afterwards. */
constexpr size_t kShiftSample = 2048;

/**
 * The shift for the one-pass sums of a block, from its first kShiftSample elements (fp32 lane
 * sums: only a guess, the result does not rely on it): 0 when the sample's mean is small against
 * its root mean square (|mean| ≤ rms/16, no subtraction needed), else the sample's mean.
 * NaN when the sample holds NaN (the caller then finds S1 non-finite).
 */
QL_TARGET_AVX2 double shiftFromSample(const float* x, size_t n) {
  __m256 sum = _mm256_setzero_ps(), sq = sum;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    sum = _mm256_add_ps(sum, v);
    sq = _mm256_fmadd_ps(v, v, sq);
  }
  alignas(32) float lsum[8], lsq[8];
  _mm256_store_ps(lsum, sum);
  _mm256_store_ps(lsq, sq);
  double s = 0, q = 0;
  for (int k = 0; k < 8; k++) {
    s += lsum[k];
    q += lsq[k];
  }
  for (; i < n; i++) {
    s += x[i];
    q += static_cast<double>(x[i]) * x[i];
  }
  const double mean = s / static_cast<double>(n), meanSquare = q / static_cast<double>(n);
  return 256 * mean * mean <= meanSquare ? 0.0 : mean;
}

}  // namespace

QL_TARGET_AVX2 Moments momentsBlockAvx2(const float* x, size_t len) {
  if (len == 0) return Moments{};
  // One pass instead of two: power sums about a shift c (the rough mean of the first elements),
  // S_k = Σ dᵏ with d = x − c, then moved to the block's mean c + e, e = S1/n, exactly by the
  // binomial theorem (Σ(d−e)ᵏ). While |e| is small against the spread, the summands are as large
  // as the central ones and the corrections are small, so the rounding is that of the two-pass
  // sums; otherwise (a block whose start is not typical of it, or no spread at all) the central
  // sums are taken again about the mean now known (the two-pass algorithm, from L2).
  const double c = shiftFromSample(x, std::min(len, kShiftSample));
  const ShiftedSums s = c == 0 ? shiftedSums<false>(x, len, 0) : shiftedSums<true>(x, len, c);
  // A NaN or ±Inf anywhere makes S1 (or c) non-finite; finite floats cannot overflow the double
  // sums (|d|⁴ ≤ (7e38)⁴ ≈ 2e155). Such a block goes to the masked kernel.
  if (!std::isfinite(s.s1) || !std::isfinite(c)) return maskedBlock(x, len);
  Moments r;
  r.n = static_cast<double>(len);
  r.nonFinite = 0;
  r.min = s.min;
  r.max = s.max;
  r.absmax = std::fmax(std::fabs(r.min), std::fabs(r.max));  // |x| is largest at an end of the range
  const double e = s.s1 / r.n;
  r.mean = c + e;
  if (64 * e * s.s1 <= s.s2) {
    // e² ≤ (σ² + e²)/64: with n·e = S1,
    //   Σ(d−e)² = S2 − e·S1,  Σ(d−e)³ = S3 − 3e·S2 + 2e²·S1,  Σ(d−e)⁴ = S4 − 4e·S3 + 6e²·S2 − 3e³·S1.
    const double e2 = e * e;
    r.m2 = s.s2 - e * s.s1;
    r.m3 = s.s3 - 3 * e * s.s2 + 2 * e2 * s.s1;
    r.m4 = s.s4 - 4 * e * s.s3 + 6 * e2 * s.s2 - 3 * e2 * e * s.s1;
  } else {
    centralSums<false>(x, len, r.mean, r.m2, r.m3, r.m4);
  }
  return r;
}

}  // namespace ql
#endif
