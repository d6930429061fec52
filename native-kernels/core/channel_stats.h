// Per-channel statistics of one batch of a tapped activation X [rows × C] (rows = tokens), the
// calibration engine's inner loop (extension/src/engine/calib/channel-stats.ts merges batches).
//
// For the batch, per channel c: mean = Σx / rows, and the central sums m2 = Σ(x−mean)², m3, m4
// (double); absmax[c] is raised in place and absSum[c] += Σ|x| (running over batches). Per row:
// L2 norm, the largest |x| and its channel (the first on ties). hist[] (running) counts log2|x|
// in bins of a quarter octave:
//   bin 0: |x| < 2^kHistMinExp (zeros included); bin b ≥ 1: 2^(kHistMinExp + (b−1)/4) ≤ |x| <
//   the next edge; the last bin everything ≥ 2^kHistMaxExp.
// Non-finite values are skipped and counted. Results do not depend on the number of threads.
// The scalar kernel takes two passes and is bit-identical to the TypeScript reference; the AVX2
// one (channel_stats_x86.cpp) reads X once and agrees with it to rounding in the sums and norms,
// exactly in absmax, hist, the row peaks and the count.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cancel.h"

namespace ql {

constexpr int kHistMinExp = -24;
constexpr int kHistMaxExp = 24;
constexpr int kHistBinsPerOctave = 4;
constexpr size_t kHistBins = static_cast<size_t>((kHistMaxExp - kHistMinExp) * kHistBinsPerOctave + 2);

struct ChannelBatchOut {
  double* mean;      // [C] this batch
  double* m2;        // [C] this batch
  double* m3;        // [C]
  double* m4;        // [C]
  float* absmax;     // [C] running (max with the existing values)
  double* absSum;    // [C] running Σ|x| (added to; AWQ's mean |x| = absSum / rows)
  double* hist;      // [kHistBins] running (added to)
  float* rowNorm;    // [rows]
  float* rowPeak;    // [rows] signed value of the largest |x|
  int32_t* rowPeakChannel;  // [rows]
};

/** Returns the number of non-finite values skipped. */
int64_t channel_batch_stats(const float* x, size_t rows, size_t C, const ChannelBatchOut& out,
                            const CancelFlag* cancel = nullptr);

/** The histogram bin of |x| (a ≥ 0, finite). Exact at the edges: uses the float's bits. */
size_t hist_bin(float a);

/** Mantissa bits of the float nearest 2^(k/4), k = 1..3: the edges inside an octave hist_bin uses. */
uint32_t hist_mantissa_edge(int k);

}  // namespace ql
