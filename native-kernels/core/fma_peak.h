// Measured multiply-add throughput: the yardstick benchmarks divide kernel speed by.
#pragma once

#include <string>

namespace ql {

struct FmaPeak {
  double one = 0;        // GFLOP/s on one thread
  double all = 0;        // GFLOP/s on `threads` threads at once
  unsigned threads = 0;  // threads used for `all`
  std::string simd;      // "avx2+fma" (8-wide fp32 FMA) or "scalar"
};

/**
 * Time independent chains of fp32 multiply-adds (an FMA counts 2 flops): first on the calling
 * thread, then on `threads` threads started together (0 = the pool's size). Each figure is the
 * best of three runs of about `seconds` each.
 */
FmaPeak measureFmaPeak(double seconds, unsigned threads);

}  // namespace ql
