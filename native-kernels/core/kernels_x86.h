// Entry points of the guarded x86-64 SIMD files. Call them only when cpu.h says the CPU has the
// instructions (useAvx2Fma() / useF16c()); each is checked against its scalar twin by the tests.
#pragma once

#include <cstddef>
#include <cstdint>

#include "moments.h"
#include "simd_x86.h"

#if QL_X86_SIMD
namespace ql {

// moments_x86.cpp: same contract as momentsBlockScalar; sums in a different order (4-wide double
// lanes), so results agree to rounding, not bit for bit.
Moments momentsBlockAvx2(const float* x, size_t n);

// convert_x86.cpp: bit-identical to the scalar conversions in convert_scalar.h, NaN included.
void f16ToF32F16c(const uint16_t* src, uint32_t* dst, size_t n);
void f32ToF16F16c(const uint32_t* src, uint16_t* dst, size_t n);
void bf16ToF32Avx2(const uint16_t* src, uint32_t* dst, size_t n);
void f32ToBf16Avx2(const uint32_t* src, uint16_t* dst, size_t n);

// fma_peak_x86.cpp: `iterations` rounds of 12 independent 8-wide FMA chains (192 flops each).
float fmaChainsAvx2(uint64_t iterations);
constexpr double kFmaChainsAvx2Flops = 12 * 8 * 2;

}  // namespace ql
#endif
