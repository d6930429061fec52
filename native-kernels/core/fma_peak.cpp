#include "fma_peak.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

#include "cpu.h"
#include "kernels_x86.h"
#include "thread_pool.h"

namespace ql {

namespace {

using Clock = std::chrono::steady_clock;

// Portable chains: 8 independent a·x+b recurrences. They converge to b/(1−a), so values stay
// normal. Fused where the target has a fast fma (arm64, or x86 built with FMA), else mul + add;
// either way one step is 2 flops. Compilers may vectorise this with baseline SSE2/NEON.
constexpr int kScalarChains = 8;
constexpr double kScalarChainsFlops = kScalarChains * 2;

float fmaChainsScalar(uint64_t iterations) {
  float acc[kScalarChains];
  for (int k = 0; k < kScalarChains; k++) acc[k] = 0.01f * static_cast<float>(k);
  const float a = 0.999999f, b = 1e-6f;
  for (uint64_t i = 0; i < iterations; i++) {
    for (int k = 0; k < kScalarChains; k++) {
#if defined(FP_FAST_FMAF)
      acc[k] = std::fma(acc[k], a, b);
#else
      acc[k] = acc[k] * a + b;
#endif
    }
  }
  float s = 0;
  for (float v : acc) s += v;
  return s;
}

struct Loop {
  float (*run)(uint64_t);
  double flopsPerIteration;
};

Loop pickLoop() {
#if QL_X86_SIMD
  if (useAvx2Fma()) return {fmaChainsAvx2, kFmaChainsAvx2Flops};
#endif
  return {fmaChainsScalar, kScalarChainsFlops};
}

// Results are summed into a global so the compiler cannot drop the loops.
std::atomic<float> g_sink{0};

double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/** Iterations that take about `seconds` on one thread. */
uint64_t calibrate(const Loop& loop, double seconds) {
  uint64_t iterations = 1 << 16;
  for (;;) {
    const auto t0 = Clock::now();
    g_sink.store(loop.run(iterations), std::memory_order_relaxed);
    const double t = secondsSince(t0);
    if (t >= seconds / 4 || iterations > (uint64_t{1} << 40)) {
      const double scale = seconds / std::max(t, 1e-9);
      return std::max<uint64_t>(1, static_cast<uint64_t>(static_cast<double>(iterations) * scale));
    }
    iterations *= 4;
  }
}

/** Wall time for `threads` threads released together, each running `iterations`. */
double timeOnThreads(const Loop& loop, uint64_t iterations, unsigned threads) {
  std::atomic<unsigned> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> team;
  for (unsigned t = 0; t < threads; t++) {
    team.emplace_back([&] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      g_sink.store(loop.run(iterations), std::memory_order_relaxed);
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  const auto t0 = Clock::now();
  go.store(true, std::memory_order_release);
  for (std::thread& t : team) t.join();
  return secondsSince(t0);
}

}  // namespace

FmaPeak measureFmaPeak(double seconds, unsigned threads) {
  const Loop loop = pickLoop();
  seconds = std::clamp(seconds, 0.01, 10.0);
  if (threads == 0) threads = pool().threads();
  const uint64_t iterations = calibrate(loop, seconds);
  const double flops = static_cast<double>(iterations) * loop.flopsPerIteration;
  double bestOne = 1e300, bestAll = 1e300;
  for (int rep = 0; rep < 3; rep++) {
    const auto t0 = Clock::now();
    g_sink.store(loop.run(iterations), std::memory_order_relaxed);
    bestOne = std::min(bestOne, secondsSince(t0));
  }
  for (int rep = 0; rep < 3; rep++) bestAll = std::min(bestAll, timeOnThreads(loop, iterations, threads));
  FmaPeak r;
  r.one = flops / bestOne / 1e9;
  r.all = flops * threads / bestAll / 1e9;
  r.threads = threads;
  r.simd = loop.run == fmaChainsScalar ? "scalar" : "avx2+fma";
  return r;
}

}  // namespace ql
