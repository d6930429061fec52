#include "cpu.h"

#include <atomic>

#include "simd_x86.h"

namespace ql {

namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if QL_X86_SIMD
  __builtin_cpu_init();
  // libgcc/compiler-rt also check that the OS saves YMM state (XCR0) before reporting AVX2.
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.f16c = __builtin_cpu_supports("f16c");
#endif
  return f;
}

std::atomic<SimdMode> g_mode{SimdMode::Auto};

}  // namespace

const CpuFeatures& cpuFeatures() {
  static const CpuFeatures features = detect();
  return features;
}

void setSimdMode(SimdMode mode) { g_mode.store(mode, std::memory_order_relaxed); }

SimdMode simdMode() { return g_mode.load(std::memory_order_relaxed); }

bool useAvx2Fma() {
  const CpuFeatures& f = cpuFeatures();
  return simdMode() == SimdMode::Auto && f.avx2 && f.fma;
}

bool useF16c() { return useAvx2Fma() && cpuFeatures().f16c; }

std::string simdName() {
  if (useF16c()) return "avx2+fma+f16c";
  if (useAvx2Fma()) return "avx2+fma";
  return "scalar";
}

}  // namespace ql
