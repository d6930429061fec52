#include "moments.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu.h"
#include "kernels_x86.h"
#include "thread_pool.h"

namespace ql {

namespace {

// Below this many elements one thread is faster than waking the pool (measured: 2^17 elements
// ~30 us on one AVX2 core, no faster on two; 2^18 ~20% faster on two).
constexpr size_t kParallelMin = size_t{1} << 18;
/** Most consecutive blocks one parallel task reduces (512 KiB). */
constexpr size_t kBlocksPerTask = 4;

// Math.min / Math.max as JavaScript defines them on non-NaN input: −0 < +0. (std::min would
// keep whichever zero came first, and the TypeScript twin would disagree in the sign bit.)
double jsMin(double a, double b) {
  if (a == b) return std::signbit(a) ? a : b;
  return a < b ? a : b;
}

double jsMax(double a, double b) {
  if (a == b) return std::signbit(a) ? b : a;
  return a > b ? a : b;
}

}  // namespace

Moments mergeMoments(const Moments& a, const Moments& b) {
  const double nonFinite = a.nonFinite + b.nonFinite;
  if (a.n == 0) {
    Moments r = b;
    r.nonFinite = nonFinite;
    return r;
  }
  if (b.n == 0) {
    Moments r = a;
    r.nonFinite = nonFinite;
    return r;
  }
  // Written exactly as reference.ts (and built with -ffp-contract=off) so roundings agree.
  const double n = a.n + b.n;
  const double delta = b.mean - a.mean;
  const double d_n = delta / n;
  const double d_n2 = d_n * d_n;
  Moments r;
  r.n = n;
  r.mean = a.mean + d_n * b.n;
  r.m2 = a.m2 + b.m2 + delta * d_n * a.n * b.n;
  r.m3 = a.m3 + b.m3 + delta * d_n2 * a.n * b.n * (a.n - b.n) + 3 * d_n * (a.n * b.m2 - b.n * a.m2);
  r.m4 = a.m4 + b.m4 + delta * d_n2 * d_n * a.n * b.n * (a.n * a.n - a.n * b.n + b.n * b.n) +
         6 * d_n2 * (a.n * a.n * b.m2 + b.n * b.n * a.m2) + 4 * d_n * (a.n * b.m3 - b.n * a.m3);
  r.absmax = jsMax(a.absmax, b.absmax);
  r.min = jsMin(a.min, b.min);
  r.max = jsMax(a.max, b.max);
  r.nonFinite = nonFinite;
  return r;
}

Moments momentsBlockScalar(const float* x, size_t len) {
  double n = 0, sum = 0, absmax = 0, nonFinite = 0;
  double min = 1.0 / 0.0, max = -1.0 / 0.0;
  for (size_t i = 0; i < len; i++) {
    const double v = x[i];
    if (!std::isfinite(v)) {
      nonFinite++;
      continue;
    }
    n++;
    sum += v;
    const double a = std::fabs(v);
    if (a > absmax) absmax = a;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  Moments r;
  r.nonFinite = nonFinite;
  if (n == 0) return r;
  const double mean = sum / n;
  double m2 = 0, m3 = 0, m4 = 0;
  for (size_t i = 0; i < len; i++) {
    const double v = x[i];
    if (!std::isfinite(v)) continue;
    const double d = v - mean;
    const double d2 = d * d;
    m2 += d2;
    m3 += d2 * d;
    m4 += d2 * d2;
  }
  r.n = n;
  r.mean = mean;
  r.m2 = m2;
  r.m3 = m3;
  r.m4 = m4;
  r.absmax = absmax;
  r.min = min;
  r.max = max;
  return r;
}

Moments moments(const float* x, size_t n, const CancelFlag* cancel) {
  throwIfCancelled(cancel);
  if (n == 0) return Moments{};
  Moments (*block)(const float*, size_t) = momentsBlockScalar;
#if QL_X86_SIMD
  if (useAvx2Fma()) block = momentsBlockAvx2;
#endif
  const size_t blocks = (n + kMomentsBlock - 1) / kMomentsBlock;
  std::vector<Moments> parts(blocks);
  const auto reduceBlock = [&](size_t b) {
    if (isCancelled(cancel)) return;
    const size_t begin = b * kMomentsBlock;
    parts[b] = block(x + begin, std::min(kMomentsBlock, n - begin));
  };
  if (n < kParallelMin) {
    for (size_t b = 0; b < blocks; b++) reduceBlock(b);
  } else {
    // Tasks of up to kBlocksPerTask consecutive blocks: each thread streams longer runs of memory
    // (the hardware prefetcher starts over at every jump; measured ~10% faster at 10^7 elements on
    // two threads) while leaving ≥ 8 tasks per thread to balance. Only who computes a block changes.
    const size_t perTask = std::clamp<size_t>(blocks / (8 * size_t{pool().threads()}), 1, kBlocksPerTask);
    pool().parallelFor((blocks + perTask - 1) / perTask, [&](size_t t) {
      for (size_t b = t * perTask; b < std::min(blocks, (t + 1) * perTask); b++) reduceBlock(b);
    });
  }
  throwIfCancelled(cancel);
  // Pairwise tree: level by level, parts[i] = merge(parts[2i], parts[2i+1]), an odd last one
  // carried up unchanged. Rounding error grows with log(blocks), and the order is fixed.
  for (size_t count = blocks; count > 1; count = (count + 1) / 2) {
    for (size_t i = 0; i < count / 2; i++) parts[i] = mergeMoments(parts[2 * i], parts[2 * i + 1]);
    if (count % 2 == 1) parts[count / 2] = parts[count - 1];
  }
  return parts[0];
}

}  // namespace ql
