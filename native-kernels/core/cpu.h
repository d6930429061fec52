// Run-time CPU features and the SIMD switch every kernel dispatches on.
#pragma once

#include <string>

namespace ql {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
};

/** What this CPU supports, detected once. All false where no x86 SIMD is compiled in. */
const CpuFeatures& cpuFeatures();

enum class SimdMode { Auto, Scalar };

/** `Scalar` forces the portable kernels (tests compare both paths; benchmarks show the gain). */
void setSimdMode(SimdMode mode);
SimdMode simdMode();

/** The AVX2+FMA kernels may run: compiled in, present on this CPU, not forced off. */
bool useAvx2Fma();
/** As useAvx2Fma(), and the CPU has F16C (hardware fp16 <-> fp32). */
bool useF16c();

/** The path the kernels take now: "avx2+fma+f16c", "avx2+fma" or "scalar". */
std::string simdName();

}  // namespace ql
