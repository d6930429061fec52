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

// gemm_x86.cpp: the sgemm micro-kernel, same contract as gemm::microKernelScalar (gemm_blocked.h:
// one 6×16 tile from packed strips); FMA chains, so results agree to rounding, not bit for bit.
void sgemmKernel6x16Avx2(size_t kc, const float* a, const float* b, float* c, size_t ldc, float alpha, float beta);
// The transposing packers (bit-exact copies): dst[p·6 + r] = rows[r][p], and
// dst[p·16 + j] = cols[j][p] (dst 32-byte aligned), for p < the returned multiple of 8 ≤ kc.
size_t sgemmPackRowsToStripAvx2(const float* const rows[6], size_t kc, float* dst);
size_t sgemmPackColumnsToStripAvx2(const float* const cols[16], size_t kc, float* dst);

// channel_stats_x86.cpp: channel_batch_stats (channel_stats.h) in one pass over X, rows > 0; sums in
// another order than the scalar kernel's (agree to rounding; absmax, histogram, row peaks and the
// non-finite count exactly).
struct ChannelBatchOut;
int64_t channelBatchStatsAvx2(const float* x, size_t rows, size_t C, const ChannelBatchOut& out,
                              const CancelFlag* cancel);

// cholesky_x86.cpp's triangular-solve leaves are declared in cholesky_x86.h.

// rtn_x86.cpp: bit-identical to the scalar loops in rtn.cpp (min/max and finiteness of a group,
// codes, dequantization).
bool rtnRangeAvx2(const float* w, size_t n, float* wmin, float* wmax);
void rtnCodesAvx2(const float* w, size_t n, float scale, float zero, int maxq, uint8_t* q);
void rtnDequantAvx2(const uint8_t* q, size_t n, float scale, float zero, float* out);

// hadamard_x86.cpp: one row's orthonormal FWHT (n a power of two, n ≥ 8), bit-identical to
// fwhtRowScalar (same butterflies per stage, then × norm).
void fwhtRowAvx2(float* x, size_t n, float norm);

// orthogonal_x86.cpp: the dense-factor batch of orthogonal_kernels.h compiled for AVX2
// (bit-identical to the scalar build: independent lanes, no FMA), at 8, 16 and 32 lanes.
void orthoChainAvx2x8(double* buf, size_t d, const double* reflectors, const double* D, bool inverse);
void orthoChainAvx2x16(double* buf, size_t d, const double* reflectors, const double* D, bool inverse);
void orthoChainAvx2x32(double* buf, size_t d, const double* reflectors, const double* D, bool inverse);

// gptq_x86.cpp: one GPTQ panel (16 rows) through a lazy batch, bit-identical to gptqPanelScalar
// (gptq_panel.h: same divisions and rounding, multiply and subtract kept apart).
struct GptqPanel;
void gptqPanelAvx2(const GptqPanel& p);

// eigen_x86.cpp: the symmetric eigensolver's fp64 kernels; contracts and scalar twins in
// eigen_blas.h (FMA: results agree with the scalar ones to rounding, not bit for bit).
void eigenDgemmTileAvx2(size_t kc, const double* a, const double* b, double* c, ptrdiff_t rsc, ptrdiff_t csc,
                        size_t mr, size_t nr, double alpha, double beta);
void eigenDgemmTileUnpackedAvx2(size_t kc, const double* a, ptrdiff_t rsa, ptrdiff_t csa, const double* b, double* c,
                                ptrdiff_t rsc, ptrdiff_t csc, size_t mr, size_t nr, double alpha, double beta);
void eigenSymvRowsAvx2(const double* a, size_t lda, size_t r0, size_t r1, const double* x, double* y);
double eigenDotAvx2(const double* x, const double* y, size_t n);
void eigenAxpyAvx2(double alpha, const double* x, double* y, size_t n);

}  // namespace ql
#endif
