// AVX2+FMA one-pass kernel of channel_batch_stats (channel_stats.h). Guarded like every *_x86.cpp
// (QL_X86_SIMD, per-function targets).
//
// X is read once, by tasks of kRowGroup rows × kBlockChannels channels, each in tiles of kRowTile
// rows, going down a tile one 8-channel strip (one vector per row) at a time:
//   - per channel (a vector lane): power sums S_k = Σ dᵏ, d = x − c, k = 1..4 in double, Σ|x|
//     and max|x|, kept in registers down the strip; c is a shift per channel from a sample of
//     rows, the same for every task, so the row groups' sums just add up; at the end they are
//     moved to the batch mean exactly (as moments_x86.cpp does per block), or taken again about
//     the mean when the shift was poor;
//   - per row: Σx² (double lanes) and the largest |x| per lane with its channel, in a tile-sized
//     buffer that stays in L1, reduced per tile into one partial per (row, block);
//   - the histogram bin of every value from its bits with integer vector ops, counted in eight
//     per-lane copies so that equal bins in one vector do not wait on each other.
// A vector holding NaN/±Inf (one test per vector) takes the masked step. The task grid is fixed
// by the shape, partials are added in group/block order and histogram counts are integers, so
// nothing depends on the number of threads. Sums run in another order than the scalar kernel's:
// results agree with it to rounding (absmax, histogram, row peaks and the non-finite count
// exactly).
#include "kernels_x86.h"

#if QL_X86_SIMD
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "channel_stats.h"
#include "thread_pool.h"

// The per-row steps must inline into the strip loop, where their accumulators live in registers.
#define QL_INLINE_AVX2 QL_TARGET_AVX2 __attribute__((always_inline)) inline

namespace ql {

namespace {

/**
 * Tasks are kRowGroup rows × kBlockChannels channels. A row contributes 2 KB contiguous to a task
 * (from DRAM, 512 B ran 1.3× slower per value, even prefetched); each task leaves 48 B per channel
 * (5% of the bytes it reads) and there are still 8 tasks at 512 × 2048.
 */
constexpr size_t kBlockChannels = 512;
constexpr size_t kRowGroup = 256;
/** Rows per tile: the per-row accumulators of a tile (96 B a row) stay in L1. */
constexpr size_t kRowTile = 64;
/** Prefetch distance in strips (8 strips = 4 cache lines of each row). */
constexpr size_t kAhead = 8;
/** Rows, spread over the batch, whose mean per channel is the shift c. */
constexpr size_t kShiftRows = 32;
/**
 * The one-pass sums are kept while n·e² ≤ kPoorShift·m2, e = mean − c (|e| ≤ 2σ): then Σdᵏ
 * exceeds the central sum by at most ~(1 + kPoorShift)² (m4), so rounding grows by no more than
 * that. Past it
 * the strip's central sums are taken again about the mean (a sample of rows that is far from the
 * rest, e.g. a few huge first tokens in a channel of small spread).
 */
constexpr double kPoorShift = 4;
/** Histogram counters per lane copy: 8 copies of kHistBins + 1 (the last takes masked lanes). */
constexpr size_t kTrashBin = kHistBins;
constexpr size_t kHistSlots = (kHistBins + 1) * 8;

/** One 8-channel strip's per-channel state, carried across the row tiles of a task. */
struct alignas(32) StripAcc {
  double shift[8];
  double s1[8], s2[8], s3[8], s4[8];
  double absSum[8];
  float absMax[8];
  int32_t nonFinite[8];
};

/** One row of the current tile: Σx² (4 double lanes) and per lane the largest |x| and its channel. */
struct alignas(32) RowAcc {
  double sq[4];
  float peakAbs[8];
  int32_t peakChannel[8];
};

/** A block's contribution to one row. */
struct RowPartial {
  double sq;
  float peakAbs;  // 0 when the block holds no non-zero finite value of the row
  int32_t peakChannel;
};

/** Register copies of a strip's sums (lo: lanes 0–3, hi: lanes 4–7). */
struct StripRegs {
  __m256d s1lo, s1hi, s2lo, s2hi, s3lo, s3hi, s4lo, s4hi, absLo, absHi;
  __m256 absMax;
};

struct HistConstants {
  __m256i mantissa, edge1, edge2, edge3, bias, top, laneIndex;
};

/**
 * Histogram slot (bin·8 + lane) of |x| from its bits (sign cleared), as hist_bin: the exponent
 * field e gives (e − 127 − kHistMinExp)·4 + 1, the mantissa against the three quarter-octave
 * edges adds 0..3; below the range that is ≤ 0 and above it ≥ the last bin, so a clamp does both.
 */
QL_INLINE_AVX2 __m256i histSlot(__m256i bits, const HistConstants& h) {
  const __m256i m = _mm256_and_si256(bits, h.mantissa);
  // Each compare is −1 where the mantissa reaches the edge (edges hold edge − 1).
  const __m256i q = _mm256_add_epi32(
      _mm256_add_epi32(_mm256_cmpgt_epi32(m, h.edge1), _mm256_cmpgt_epi32(m, h.edge2)), _mm256_cmpgt_epi32(m, h.edge3));
  const __m256i raw = _mm256_sub_epi32(_mm256_add_epi32(_mm256_slli_epi32(_mm256_srli_epi32(bits, 23), 2), h.bias), q);
  const __m256i bin = _mm256_min_epi32(_mm256_max_epi32(raw, _mm256_setzero_si256()), h.top);
  return _mm256_add_epi32(_mm256_slli_epi32(bin, 3), h.laneIndex);
}

QL_INLINE_AVX2 void countSlots(__m256i slot, uint32_t* hist) {
  // Two slots per 64-bit extract: fewer uops than eight 32-bit ones.
  const __m128i lo = _mm256_castsi256_si128(slot), hi = _mm256_extracti128_si256(slot, 1);
  const uint64_t q0 = static_cast<uint64_t>(_mm_cvtsi128_si64(lo));
  const uint64_t q1 = static_cast<uint64_t>(_mm_extract_epi64(lo, 1));
  const uint64_t q2 = static_cast<uint64_t>(_mm_cvtsi128_si64(hi));
  const uint64_t q3 = static_cast<uint64_t>(_mm_extract_epi64(hi, 1));
  hist[static_cast<uint32_t>(q0)]++;
  hist[q0 >> 32]++;
  hist[static_cast<uint32_t>(q1)]++;
  hist[q1 >> 32]++;
  hist[static_cast<uint32_t>(q2)]++;
  hist[q2 >> 32]++;
  hist[static_cast<uint32_t>(q3)]++;
  hist[q3 >> 32]++;
}

/**
 * One row of a strip. Masked: `keep` marks the lanes that count (finite, inside the strip);
 * the others add nothing and go to the trash bin.
 */
template <bool Masked>
QL_INLINE_AVX2 void stripStep(StripRegs& a, __m256 v, __m256i bits, __m256i keep, __m256d shiftLo, __m256d shiftHi,
                              __m256i channel, const HistConstants& h, RowAcc& row, uint32_t* hist) {
  __m256i slot = histSlot(bits, h);
  if (Masked) {
    v = _mm256_and_ps(v, _mm256_castsi256_ps(keep));
    bits = _mm256_and_si256(bits, keep);
    slot = _mm256_blendv_epi8(_mm256_set1_epi32(static_cast<int32_t>(kTrashBin * 8)), slot, keep);
  }
  countSlots(slot, hist);
  const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
  const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
  // Row: Σx² and the largest |x| per lane (strict >: the first channel of a lane wins ties).
  const __m256d sq = _mm256_fmadd_pd(hi, hi, _mm256_mul_pd(lo, lo));
  _mm256_store_pd(row.sq, _mm256_add_pd(_mm256_load_pd(row.sq), sq));
  const __m256 absV = _mm256_castsi256_ps(bits);
  const __m256 peak = _mm256_load_ps(row.peakAbs);
  const __m256 gt = _mm256_cmp_ps(absV, peak, _CMP_GT_OQ);
  _mm256_store_ps(row.peakAbs, _mm256_max_ps(peak, absV));
  __m256i* peakChannel = reinterpret_cast<__m256i*>(row.peakChannel);
  _mm256_store_si256(peakChannel, _mm256_blendv_epi8(_mm256_load_si256(peakChannel), channel, _mm256_castps_si256(gt)));
  // Channels.
  a.absMax = _mm256_max_ps(a.absMax, absV);
  const __m256d signMask = _mm256_set1_pd(-0.0);
  a.absLo = _mm256_add_pd(a.absLo, _mm256_andnot_pd(signMask, lo));
  a.absHi = _mm256_add_pd(a.absHi, _mm256_andnot_pd(signMask, hi));
  __m256d dlo = _mm256_sub_pd(lo, shiftLo);
  __m256d dhi = _mm256_sub_pd(hi, shiftHi);
  if (Masked) {
    dlo = _mm256_and_pd(dlo, _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(keep))));
    dhi = _mm256_and_pd(dhi, _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(keep, 1))));
  }
  const __m256d d2lo = _mm256_mul_pd(dlo, dlo);
  const __m256d d2hi = _mm256_mul_pd(dhi, dhi);
  a.s1lo = _mm256_add_pd(a.s1lo, dlo);
  a.s1hi = _mm256_add_pd(a.s1hi, dhi);
  a.s2lo = _mm256_add_pd(a.s2lo, d2lo);
  a.s2hi = _mm256_add_pd(a.s2hi, d2hi);
  a.s3lo = _mm256_fmadd_pd(d2lo, dlo, a.s3lo);
  a.s3hi = _mm256_fmadd_pd(d2hi, dhi, a.s3hi);
  a.s4lo = _mm256_fmadd_pd(d2lo, d2lo, a.s4lo);
  a.s4hi = _mm256_fmadd_pd(d2hi, d2hi, a.s4hi);
}

/**
 * Rows [0, nr) of one strip: p points at its first value in the tile's first row (row stride
 * C). Tail: the strip is the last, narrower one; `inStrip` marks its channels (the load leaves
 * the rest zero and never touches their memory). Row r also prefetches ahead + r·C for
 * r < aheadRows.
 */
template <bool Tail>
QL_TARGET_AVX2 void stripTile(const float* p, size_t C, size_t nr, StripAcc& acc, RowAcc* rows, uint32_t* hist,
                              int32_t channel0, __m256i inStrip, const HistConstants& h, const float* ahead,
                              size_t aheadRows) {
  StripRegs a;
  a.s1lo = _mm256_load_pd(acc.s1), a.s1hi = _mm256_load_pd(acc.s1 + 4);
  a.s2lo = _mm256_load_pd(acc.s2), a.s2hi = _mm256_load_pd(acc.s2 + 4);
  a.s3lo = _mm256_load_pd(acc.s3), a.s3hi = _mm256_load_pd(acc.s3 + 4);
  a.s4lo = _mm256_load_pd(acc.s4), a.s4hi = _mm256_load_pd(acc.s4 + 4);
  a.absLo = _mm256_load_pd(acc.absSum), a.absHi = _mm256_load_pd(acc.absSum + 4);
  a.absMax = _mm256_load_ps(acc.absMax);
  const __m256d shiftLo = _mm256_load_pd(acc.shift), shiftHi = _mm256_load_pd(acc.shift + 4);
  const __m256i channel = _mm256_add_epi32(_mm256_set1_epi32(channel0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i absMask = _mm256_set1_epi32(0x7fffffff);
  const __m256i maxFinite = _mm256_set1_epi32(0x7f7fffff);
  __m256i* nonFinite = reinterpret_cast<__m256i*>(acc.nonFinite);
  for (size_t r = 0; r < nr; r++) {
    const float* x = p + r * C;
    if (r < aheadRows) _mm_prefetch(reinterpret_cast<const char*>(ahead + r * C), _MM_HINT_T0);
    const __m256 v = Tail ? _mm256_maskload_ps(x, inStrip) : _mm256_loadu_ps(x);
    const __m256i bits = _mm256_and_si256(_mm256_castps_si256(v), absMask);
    const __m256i bad = _mm256_cmpgt_epi32(bits, maxFinite);  // NaN or ±Inf
    if (Tail || !_mm256_testz_si256(bad, bad)) {
      const __m256i keep = _mm256_andnot_si256(bad, Tail ? inStrip : _mm256_set1_epi32(-1));
      _mm256_store_si256(nonFinite, _mm256_sub_epi32(_mm256_load_si256(nonFinite), bad));  // lanes are −1
      stripStep<true>(a, v, bits, keep, shiftLo, shiftHi, channel, h, rows[r], hist);
    } else {
      stripStep<false>(a, v, bits, bad, shiftLo, shiftHi, channel, h, rows[r], hist);
    }
  }
  _mm256_store_pd(acc.s1, a.s1lo), _mm256_store_pd(acc.s1 + 4, a.s1hi);
  _mm256_store_pd(acc.s2, a.s2lo), _mm256_store_pd(acc.s2 + 4, a.s2hi);
  _mm256_store_pd(acc.s3, a.s3lo), _mm256_store_pd(acc.s3 + 4, a.s3hi);
  _mm256_store_pd(acc.s4, a.s4lo), _mm256_store_pd(acc.s4 + 4, a.s4hi);
  _mm256_store_pd(acc.absSum, a.absLo), _mm256_store_pd(acc.absSum + 4, a.absHi);
  _mm256_store_ps(acc.absMax, a.absMax);
}

/**
 * Central sums of one strip about known means, over all `rows` (the fallback for a poor shift):
 * m_k[lane] = Σ (x − mean)ᵏ over the finite values.
 */
QL_TARGET_AVX2 void stripCentralSums(const float* p, size_t C, size_t rows, __m256i inStrip, const double* mean,
                                     double* m2, double* m3, double* m4) {
  const __m256d meanLo = _mm256_loadu_pd(mean), meanHi = _mm256_loadu_pd(mean + 4);
  __m256d m2lo = _mm256_setzero_pd(), m2hi = m2lo, m3lo = m2lo, m3hi = m2lo, m4lo = m2lo, m4hi = m2lo;
  const __m256i absMask = _mm256_set1_epi32(0x7fffffff);
  const __m256i maxFinite = _mm256_set1_epi32(0x7f7fffff);
  for (size_t r = 0; r < rows; r++) {
    const __m256 v = _mm256_maskload_ps(p + r * C, inStrip);
    const __m256i bad = _mm256_cmpgt_epi32(_mm256_and_si256(_mm256_castps_si256(v), absMask), maxFinite);
    const __m256i keep = _mm256_andnot_si256(bad, inStrip);
    const __m256d dlo = _mm256_and_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), meanLo),
                                      _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(keep))));
    const __m256d dhi = _mm256_and_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), meanHi),
                                      _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(keep, 1))));
    const __m256d d2lo = _mm256_mul_pd(dlo, dlo), d2hi = _mm256_mul_pd(dhi, dhi);
    m2lo = _mm256_add_pd(m2lo, d2lo), m2hi = _mm256_add_pd(m2hi, d2hi);
    m3lo = _mm256_fmadd_pd(d2lo, dlo, m3lo), m3hi = _mm256_fmadd_pd(d2hi, dhi, m3hi);
    m4lo = _mm256_fmadd_pd(d2lo, d2lo, m4lo), m4hi = _mm256_fmadd_pd(d2hi, d2hi, m4hi);
  }
  _mm256_storeu_pd(m2, m2lo), _mm256_storeu_pd(m2 + 4, m2hi);
  _mm256_storeu_pd(m3, m3lo), _mm256_storeu_pd(m3 + 4, m3hi);
  _mm256_storeu_pd(m4, m4lo), _mm256_storeu_pd(m4 + 4, m4hi);
}

QL_TARGET_AVX2 __m256i laneMask(size_t width) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(width)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/** The shift c of every channel: the mean of its finite values in kShiftRows rows spread evenly. */
QL_TARGET_AVX2 void channelShifts(const float* x, size_t rows, size_t C, double* shift) {
  const size_t samples = std::min(rows, kShiftRows);
  const __m256i absMask = _mm256_set1_epi32(0x7fffffff);
  const __m256i maxFinite = _mm256_set1_epi32(0x7f7fffff);
  for (size_t c = 0; c < C; c += 8) {
    const __m256i inStrip = laneMask(std::min<size_t>(8, C - c));
    __m256d sumLo = _mm256_setzero_pd(), sumHi = sumLo;
    __m256i count = _mm256_setzero_si256();
    for (size_t i = 0; i < samples; i++) {
      const __m256 v = _mm256_maskload_ps(x + (i * rows / samples) * C + c, inStrip);
      const __m256i finite = _mm256_cmpgt_epi32(maxFinite, _mm256_and_si256(_mm256_castps_si256(v), absMask));
      const __m256 vf = _mm256_and_ps(v, _mm256_castsi256_ps(finite));
      sumLo = _mm256_add_pd(sumLo, _mm256_cvtps_pd(_mm256_castps256_ps128(vf)));
      sumHi = _mm256_add_pd(sumHi, _mm256_cvtps_pd(_mm256_extractf128_ps(vf, 1)));
      count = _mm256_sub_epi32(count, finite);
    }
    alignas(32) double sum[8];
    alignas(32) int32_t n[8];
    _mm256_store_pd(sum, sumLo);
    _mm256_store_pd(sum + 4, sumHi);
    _mm256_store_si256(reinterpret_cast<__m256i*>(n), count);
    for (size_t k = 0; k < 8 && c + k < C; k++) shift[c + k] = n[k] ? sum[k] / n[k] : 0.0;
  }
}

/** One channel's sums over a row group. */
struct ChannelPartial {
  double s1, s2, s3, s4, absSum;
  float absMax;
  int32_t nonFinite;
};

/** Rows [r0, r1) × channels [c0, c0 + w): what a task reads and leaves. */
struct Task {
  size_t r0, r1, c0, w, block;
};

/**
 * One task: the channel partials of its row group (part[c], c in [c0, c0 + w)), the block's row
 * partials rowPart[block·rows + r] for r in [r0, r1), and the histogram counts (hist[kHistBins]).
 * Returns early (leaving garbage) when cancelled.
 */
QL_TARGET_AVX2 void channelTask(const float* x, size_t rows, size_t C, const Task& t, const double* shift,
                                ChannelPartial* part, RowPartial* rowPart, uint32_t* histOut,
                                const CancelFlag* cancel) {
  const size_t strips = (t.w + 7) / 8;
  const size_t tailWidth = t.w - 8 * (strips - 1);
  const __m256i inTail = laneMask(tailWidth);
  std::vector<StripAcc> acc(strips, StripAcc{});
  for (size_t j = 0; j < t.w; j++) acc[j / 8].shift[j % 8] = shift[t.c0 + j];
  RowAcc tile[kRowTile];
  alignas(32) uint32_t hist[kHistSlots] = {0};  // per slot ≤ kRowGroup · kBlockChannels / 8 values
  HistConstants h;
  h.mantissa = _mm256_set1_epi32(0x7fffff);
  h.edge1 = _mm256_set1_epi32(static_cast<int32_t>(hist_mantissa_edge(1)) - 1);
  h.edge2 = _mm256_set1_epi32(static_cast<int32_t>(hist_mantissa_edge(2)) - 1);
  h.edge3 = _mm256_set1_epi32(static_cast<int32_t>(hist_mantissa_edge(3)) - 1);
  h.bias = _mm256_set1_epi32(1 - (127 + kHistMinExp) * kHistBinsPerOctave);
  h.top = _mm256_set1_epi32(static_cast<int32_t>(kHistBins - 1));
  h.laneIndex = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (size_t r0 = t.r0; r0 < t.r1; r0 += kRowTile) {
    if (isCancelled(cancel)) return;
    const size_t nr = std::min(kRowTile, t.r1 - r0);
    for (size_t i = 0; i < nr; i++) tile[i] = RowAcc{};
    for (size_t s = 0; s < strips; s++) {
      const float* p = x + r0 * C + t.c0 + 8 * s;
      const int32_t channel0 = static_cast<int32_t>(t.c0 + 8 * s);
      // Prefetch the strip kAhead on (in the next tile after the last ones): a row's 512 B
      // segment is too short a stream for the hardware prefetcher to catch (measured 2× slower
      // from DRAM without).
      size_t aheadS = s + kAhead, aheadR0 = r0;
      if (aheadS >= strips) aheadS -= strips, aheadR0 += kRowTile;
      const size_t aheadRows = aheadR0 < t.r1 ? std::min(kRowTile, t.r1 - aheadR0) : 0;
      const float* ahead = aheadRows ? x + aheadR0 * C + t.c0 + 8 * aheadS : x;
      if (s + 1 < strips || tailWidth == 8) {
        stripTile<false>(p, C, nr, acc[s], tile, hist, channel0, inTail, h, ahead, aheadRows);
      } else {
        stripTile<true>(p, C, nr, acc[s], tile, hist, channel0, inTail, h, ahead, aheadRows);
      }
    }
    for (size_t i = 0; i < nr; i++) {
      const RowAcc& a = tile[i];
      RowPartial& rp = rowPart[t.block * rows + r0 + i];
      rp.sq = (a.sq[0] + a.sq[1]) + (a.sq[2] + a.sq[3]);
      // The largest |x| of the row in this block, and the lowest channel holding it.
      float best = 0;
      int32_t bestC = 0;
      for (int k = 0; k < 8; k++) {
        if (a.peakAbs[k] > best || (a.peakAbs[k] == best && a.peakChannel[k] < bestC)) {
          best = a.peakAbs[k];
          bestC = a.peakChannel[k];
        }
      }
      rp.peakAbs = best;
      rp.peakChannel = bestC;
    }
  }
  for (size_t j = 0; j < t.w; j++) {
    const StripAcc& a = acc[j / 8];
    const size_t k = j % 8;
    part[t.c0 + j] = ChannelPartial{a.s1[k], a.s2[k], a.s3[k], a.s4[k], a.absSum[k], a.absMax[k], a.nonFinite[k]};
  }
  for (size_t i = 0; i < kHistBins; i++) {
    uint32_t n = 0;
    for (size_t k = 0; k < 8; k++) n += hist[i * 8 + k];
    histOut[i] = n;
  }
}

/**
 * Channels [c, c + lanes) (lanes ≤ 8): their row groups' partials added in group order, moved to
 * the batch mean; out.mean/m2/m3/m4 written, Σ|x| and max|x| of the batch and the non-finite
 * count left in absSum/absMax/nonFinite[c + k].
 */
QL_TARGET_AVX2 void finishChannels(const float* x, size_t rows, size_t C, size_t c, size_t lanes, size_t groups,
                                   const double* shift, const ChannelPartial* part, const ChannelBatchOut& out,
                                   double* absSum, float* absMax, int64_t* nonFinite) {
  alignas(32) double mean[8] = {0};
  double m2[8], m3[8], m4[8];
  bool poorShift = false;
  for (size_t k = 0; k < lanes; k++) {
    ChannelPartial sum{0, 0, 0, 0, 0, 0, 0};
    for (size_t g = 0; g < groups; g++) {
      const ChannelPartial& p = part[g * C + c + k];
      sum.s1 += p.s1, sum.s2 += p.s2, sum.s3 += p.s3, sum.s4 += p.s4, sum.absSum += p.absSum;
      sum.absMax = std::max(sum.absMax, p.absMax);
      sum.nonFinite += p.nonFinite;
    }
    // n finite values, Σx = n·c + S1, and the mean over all rows (as the scalar kernel).
    const double n = static_cast<double>(rows) - sum.nonFinite;
    const double sh = shift[c + k];
    mean[k] = (n * sh + sum.s1) / static_cast<double>(rows);
    // Σ(d − e)ᵏ with d = x − c and e = mean − c, by the binomial theorem.
    const double e = mean[k] - sh, e2 = e * e;
    m2[k] = sum.s2 - 2 * e * sum.s1 + n * e2;
    m3[k] = sum.s3 - 3 * e * sum.s2 + 3 * e2 * sum.s1 - n * e2 * e;
    m4[k] = sum.s4 - 4 * e * sum.s3 + 6 * e2 * sum.s2 - 4 * e2 * e * sum.s1 + n * e2 * e2;
    if (!(n * e2 <= kPoorShift * m2[k])) poorShift = true;
    absSum[c + k] = sum.absSum;
    absMax[c + k] = sum.absMax;
    nonFinite[c + k] = sum.nonFinite;
  }
  if (poorShift) stripCentralSums(x + c, C, rows, laneMask(lanes), mean, m2, m3, m4);
  for (size_t k = 0; k < lanes; k++) {
    out.mean[c + k] = mean[k];
    out.m2[c + k] = m2[k];
    out.m3[c + k] = m3[k];
    out.m4[c + k] = m4[k];
  }
}

}  // namespace

int64_t channelBatchStatsAvx2(const float* x, size_t rows, size_t C, const ChannelBatchOut& out,
                              const CancelFlag* cancel) {
  // Tasks: row groups × channel blocks, in a fixed grid (not by thread count).
  const size_t blocks = (C + kBlockChannels - 1) / kBlockChannels;
  const size_t groups = (rows + kRowGroup - 1) / kRowGroup;
  std::vector<double> shift(C);
  channelShifts(x, rows, C, shift.data());
  // Every partial is written by its task: left uninitialized (zeroing megabytes showed in the time).
  std::unique_ptr<ChannelPartial[]> part(new ChannelPartial[groups * C]);
  std::unique_ptr<RowPartial[]> rowPart(new RowPartial[blocks * rows]);
  std::unique_ptr<uint32_t[]> hist(new uint32_t[groups * blocks * kHistBins]);
  pool().parallelFor(groups * blocks, [&](size_t i) {
    if (isCancelled(cancel)) return;
    const size_t g = i / blocks, b = i % blocks;
    const Task t{g * kRowGroup, std::min(rows, (g + 1) * kRowGroup), b * kBlockChannels,
                 std::min(kBlockChannels, C - b * kBlockChannels), b};
    channelTask(x, rows, C, t, shift.data(), part.get() + g * C, rowPart.get(), hist.get() + i * kHistBins, cancel);
  });
  throwIfCancelled(cancel);
  // Channels (8 at a time) and rows (the blocks' partials in block order; strict >: the lowest
  // channel wins ties), as one batch of tasks.
  constexpr size_t kRowChunk = 256;
  const size_t channelTasks = (C + 63) / 64;
  std::vector<double> absSum(C);
  std::vector<float> absMax(C);
  std::vector<int64_t> nonFinite(C);
  pool().parallelFor(channelTasks + (rows + kRowChunk - 1) / kRowChunk, [&](size_t i) {
    if (i < channelTasks) {
      for (size_t c = i * 64; c < std::min(C, (i + 1) * 64); c += 8) {
        finishChannels(x, rows, C, c, std::min<size_t>(8, C - c), groups, shift.data(), part.get(), out,
                       absSum.data(), absMax.data(), nonFinite.data());
      }
      return;
    }
    const size_t r0 = (i - channelTasks) * kRowChunk;
    for (size_t r = r0; r < std::min(rows, r0 + kRowChunk); r++) {
      double sq = 0;
      float best = 0;
      int32_t bestC = 0;
      for (size_t b = 0; b < blocks; b++) {
        const RowPartial& rp = rowPart[b * rows + r];
        sq += rp.sq;
        if (rp.peakAbs > best) {
          best = rp.peakAbs;
          bestC = rp.peakChannel;
        }
      }
      out.rowNorm[r] = static_cast<float>(std::sqrt(sq));
      out.rowPeak[r] = best > 0 ? x[r * C + static_cast<size_t>(bestC)] : 0.0f;
      out.rowPeakChannel[r] = bestC;
    }
  });
  // The running values, last: a cancelled call leaves them as they were.
  int64_t bad = 0;
  for (size_t c = 0; c < C; c++) {
    bad += nonFinite[c];
    out.absSum[c] += absSum[c];
    if (absMax[c] > out.absmax[c]) out.absmax[c] = absMax[c];
  }
  for (size_t i = 0; i < kHistBins; i++) {
    uint64_t n = 0;
    for (size_t t = 0; t < groups * blocks; t++) n += hist[t * kHistBins + i];
    out.hist[i] += static_cast<double>(n);
  }
  return bad;
}

}  // namespace ql
#endif
