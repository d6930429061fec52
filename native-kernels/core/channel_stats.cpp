#include "channel_stats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu.h"
#include "kernels_x86.h"
#include "thread_pool.h"

namespace ql {

// Quarter-octave edges inside [1, 2): 2^(1/4), 2^(2/4), 2^(3/4) as float32 mantissa bits, so the
// bin of |x| is found from its exponent and mantissa without a log.
uint32_t hist_mantissa_edge(int k) {
  float e = std::pow(2.0f, k / 4.0f);
  uint32_t bits;
  std::memcpy(&bits, &e, 4);
  return bits & 0x7fffffu;
}

size_t hist_bin(float a) {
  static const uint32_t edges[3] = {hist_mantissa_edge(1), hist_mantissa_edge(2), hist_mantissa_edge(3)};
  uint32_t bits;
  std::memcpy(&bits, &a, 4);
  const int exp = static_cast<int>((bits >> 23) & 0xffu) - 127;
  if (exp < kHistMinExp) return 0;  // includes zeros and subnormals
  if (exp >= kHistMaxExp) return kHistBins - 1;
  const uint32_t m = bits & 0x7fffffu;
  const int q = (m >= edges[2]) ? 3 : (m >= edges[1]) ? 2 : (m >= edges[0]) ? 1 : 0;
  return static_cast<size_t>((exp - kHistMinExp) * kHistBinsPerOctave + q + 1);
}

namespace {

constexpr size_t kColBlock = 64;  // channels per task: contiguous, vectorizes over c

// The portable kernel: column blocks, two passes in double (mean, then central sums) and a row
// pass, operation for operation as channelBatchStatsRef (bit-identical to it).
int64_t channelBatchStatsScalar(const float* x, size_t rows, size_t C, const ChannelBatchOut& out,
                                const CancelFlag* cancel) {
  const size_t blocks = (C + kColBlock - 1) / kColBlock;
  std::vector<int64_t> nonFinite(blocks, 0);
  std::vector<std::vector<double>> hists(blocks, std::vector<double>(kHistBins, 0.0));
  // Channel blocks: each task owns columns [c0, c1) for all rows (two passes over them).
  pool().parallelFor(blocks, [&](size_t b) {
    if (isCancelled(cancel)) return;
    const size_t c0 = b * kColBlock;
    const size_t c1 = std::min(C, c0 + kColBlock);
    const size_t w = c1 - c0;
    double sum[kColBlock] = {0}, asum[kColBlock] = {0};
    float amax[kColBlock];
    for (size_t j = 0; j < w; ++j) amax[j] = out.absmax[c0 + j];
    int64_t bad = 0;
    std::vector<double>& hist = hists[b];
    for (size_t r = 0; r < rows; ++r) {
      const float* row = x + r * C + c0;
      for (size_t j = 0; j < w; ++j) {
        const float v = row[j];
        if (!std::isfinite(v)) {
          ++bad;
          continue;
        }
        sum[j] += v;
        const float a = std::fabs(v);
        asum[j] += a;
        amax[j] = std::max(amax[j], a);
        hist[hist_bin(a)] += 1.0;
      }
    }
    double mean[kColBlock];
    for (size_t j = 0; j < w; ++j) mean[j] = rows ? sum[j] / static_cast<double>(rows) : 0.0;
    double s2[kColBlock] = {0}, s3[kColBlock] = {0}, s4[kColBlock] = {0};
    for (size_t r = 0; r < rows; ++r) {
      const float* row = x + r * C + c0;
      for (size_t j = 0; j < w; ++j) {
        const float v = row[j];
        if (!std::isfinite(v)) continue;
        const double d = static_cast<double>(v) - mean[j];
        const double d2 = d * d;
        s2[j] += d2;
        s3[j] += d2 * d;
        s4[j] += d2 * d2;
      }
    }
    for (size_t j = 0; j < w; ++j) {
      out.mean[c0 + j] = mean[j];
      out.m2[c0 + j] = s2[j];
      out.m3[c0 + j] = s3[j];
      out.m4[c0 + j] = s4[j];
      out.absmax[c0 + j] = amax[j];
      out.absSum[c0 + j] += asum[j];
    }
    nonFinite[b] = bad;
  });
  throwIfCancelled(cancel);
  // Rows: norm and peak (split over row chunks).
  const size_t rowChunk = 256;
  pool().parallelFor((rows + rowChunk - 1) / rowChunk, [&](size_t t) {
    const size_t r1 = std::min(rows, (t + 1) * rowChunk);
    for (size_t r = t * rowChunk; r < r1; ++r) {
      const float* row = x + r * C;
      double sq = 0;
      float peak = 0, peakAbs = 0;
      int32_t peakC = 0;
      for (size_t c = 0; c < C; ++c) {
        const float v = row[c];
        if (!std::isfinite(v)) continue;
        sq += static_cast<double>(v) * v;
        const float a = std::fabs(v);
        if (a > peakAbs) {
          peakAbs = a;
          peak = v;
          peakC = static_cast<int32_t>(c);
        }
      }
      out.rowNorm[r] = static_cast<float>(std::sqrt(sq));
      out.rowPeak[r] = peak;
      out.rowPeakChannel[r] = peakC;
    }
  });
  int64_t bad = 0;
  for (size_t b = 0; b < blocks; ++b) {
    bad += nonFinite[b];
    for (size_t i = 0; i < kHistBins; ++i) out.hist[i] += hists[b][i];
  }
  return bad;
}

}  // namespace

int64_t channel_batch_stats(const float* x, size_t rows, size_t C, const ChannelBatchOut& out,
                            const CancelFlag* cancel) {
#if QL_X86_SIMD
  // With no rows there is nothing to read; the scalar kernel writes the zero means and sums.
  if (rows > 0 && useAvx2Fma()) return channelBatchStatsAvx2(x, rows, C, out, cancel);
#endif
  return channelBatchStatsScalar(x, rows, C, out, cancel);
}

}  // namespace ql
