// Round-to-nearest (RTN) weight quantization with min/max (optionally MSE-clipped) group
// parameters, as GPTQ's `Quantizer` (IST-DASLab/gptq quant.py) defines them. The GPTQ kernel
// quantizes its columns with these same helpers, so RTN and GPTQ share one format.
//
// Shapes: W: [rows = out, cols = in], row-major (the transpose of an ONNX MatMul weight, and
// GPTQ's layout). A group is `group` consecutive input columns of one row; group = 0 means one
// group per row (per-channel); the last group of a row may be shorter (ragged).
//   codes:  [rows, cols]     uint8, one code per weight, in [0, maxq], maxq = 2^bits − 1
//   scales: [rows, ngroups]  float, ngroups = ceil(cols / group) (1 when group = 0)
//   zeros:  [rows, ngroups]  float, integer-valued, in [0, maxq]
//
// Semantics (bit for bit the same in extension/src/engine/kernels/reference-quant.ts):
//   q  = clamp(round(w / scale) + zero, 0, maxq)    round: to nearest, ties to even (torch.round)
//   dq = scale · (q − zero)
// all in float32 arithmetic (w / scale is one correctly rounded float division, never a
// multiplication by a reciprocal), so codes are identical on every path and machine.
//
// Parameters of a group of weights w (min/max rule):
//   asymmetric: xmin = min(min w, 0), xmax = max(max w, 0), scale = (xmax − xmin) / maxq,
//               zero = round(−xmin / scale). Both ends of [xmin, xmax] are within scale/2 of a
//               grid point, so |w − dq| ≤ scale/2 for every weight of the group (plus float
//               rounding of the scale, ≤ (maxq + 1)·2^−23·scale; rtn.test.ts checks the bound).
//   symmetric:  xmax = max |w|, xmin = −xmax, scale = (xmax − xmin) / maxq = 2·xmax / maxq,
//               zero = (maxq + 1) / 2 (8 for 4 bits: codes 0..15 mean −8..7 steps). Deviation
//               from GPTQ, on purpose: GPTQ keeps xmin = 0 for an all-non-negative group
//               (scale = xmax / maxq) and then clips its upper half; we always use ±max|w|.
//   all-zero group (xmin = xmax = 0), or a scale below the smallest normal float (2^−126,
//               i.e. every |w| < ~1e−37): GPTQ's guard xmin = −1, xmax = +1, so scale =
//               2 / maxq (not 1) and zero = round(maxq / 2) (asymmetric; ties to even: 2, 4, 8,
//               128 for 2, 3, 4, 8 bits) or (maxq + 1) / 2: every weight gets the code `zero`
//               and dequantizes to exactly 0.
// Weights must be finite: rtn_params / rtn_quantize throw std::domain_error on NaN or ±Inf
// (rtn_quantize names the row and column), and on a group whose scale overflows float
// (|w| above ~1.7e38).
//
// MSE clipping (GPTQ's `mse=True`, also AWQ-style): candidates shrink the min/max range,
// xmin_i = p_i·xmin, xmax_i = p_i·xmax with p_i = 1 − i/grid for i = 0 .. K−1, K =
// max(1, floor(maxShrink·grid)) (GPTQ's `range(int(maxshrink * grid))`; with grid = 100,
// maxshrink = 0.8: p = 1, 0.99, …, 0.21, so the range shrinks by at most maxShrink − 1/grid).
// p_i is computed in double and rounded to float, xmin_i = float(p_i)·xmin in float; each
// candidate gets its scale (and, asymmetric, its zero) from the rule above, and the one with the smallest
// Σ |w − dq|^norm (norm = 2.4 in GPTQ; summed in double) wins, the earliest on ties. p_0 = 1 is
// the min/max candidate, so clipping is never worse than min/max in that norm. The weight-wise
// scale/2 bound no longer holds for clipped weights. Cost: K times a min/max quantization plus
// one pow() per weight and candidate (scalar, rows over the pool): ~1e6 weights/s on 2 cores.
// |d|^norm uses std::pow (Math.pow in TypeScript); the two may differ in the last bit, which
// could only flip a choice between two candidates whose errors tie to ~1e−16 (never seen).
//
// Bits per weight (as stored by RTN here; pack.h packs codes densely): `bits` for the code
// plus 32/group (fp32 scale) + 32/group (fp32 zero; 0 when symmetric) for the parameters.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "cancel.h"

namespace ql {

struct QuantSpec {
  int bits;        // 2, 3, 4 or 8
  bool symmetric;  // zero fixed at (maxq + 1) / 2
};

/** MSE clipping search; grid = 0 switches it off (plain min/max). */
struct ClipSearch {
  int grid = 0;            // candidate step is 1/grid (GPTQ: 100)
  double maxShrink = 0.8;  // candidates p = 1 − i/grid for i < floor(maxShrink·grid)
  double norm = 2.4;       // p of the p-norm the search minimizes
};

/** 2^bits − 1. */
inline int rtn_maxq(int bits) { return (1 << bits) - 1; }

/** bits ∈ {2, 3, 4, 8}. */
inline bool rtn_bits_supported(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

/** Number of groups per row: ceil(cols / group), or 1 when group = 0 (per-channel). */
inline size_t rtn_groups(size_t cols, size_t group) { return group == 0 ? 1 : (cols + group - 1) / group; }

/**
 * Round to nearest, ties to even, of a float (torch.round; `roundHalfEven` in
 * reference-quant.ts). Adding and removing 2^23 rounds |x| < 2^23 in the default rounding mode
 * (the sum lies in [2^23, 2^24), where floats are the integers; 2^23 is even, so ties go to the
 * even integer) with two float adds, no SSE4.1 roundss needed on baseline x86-64. Floats with
 * |x| ≥ 2^23 are integers already; NaN passes through. The sign is put back with a comparison,
 * so −0.4 gives −0 but −0 gives +0 (the same in TypeScript; codes do not depend on it).
 */
inline float round_half_even(float x) {
  constexpr float kTwo23 = 8388608.0f;
  const float a = std::fabs(x);
  if (!(a < kTwo23)) return x;
  const float r = (a + kTwo23) - kTwo23;
  return x < 0.0f ? -r : r;
}

/**
 * Scale and zero of one group of n weights w[0], w[stride], …, w[(n−1)·stride] by the min/max
 * rule above. Throws std::domain_error on a non-finite weight or an overflowing scale.
 */
void rtn_params(const float* w, size_t n, size_t stride, QuantSpec spec, float* scale, float* zero);

/**
 * As rtn_params, from the min/max range shrunk by `shrink` in (0, 1]: [p·xmin, p·xmax], one
 * candidate of the clipping search (p = 1 − i/grid). shrink = 1 is rtn_params; a shrunk range
 * too small for a normal float scale keeps the unshrunk parameters.
 */
void rtn_params_shrunk(const float* w, size_t n, size_t stride, QuantSpec spec, float shrink, float* scale,
                       float* zero);

/** As rtn_params, with the MSE clipping search when clip.grid > 0. */
void rtn_params(const float* w, size_t n, size_t stride, QuantSpec spec, const ClipSearch& clip, float* scale,
                float* zero);

/** q = clamp(round(w / scale) + zero, 0, maxq); a NaN w gives 0 (callers reject NaN first). */
inline uint8_t rtn_code(float w, float scale, float zero, int maxq) {
  float q = round_half_even(w / scale) + zero;
  if (!(q > 0.0f)) q = 0.0f;
  if (q > static_cast<float>(maxq)) q = static_cast<float>(maxq);
  return static_cast<uint8_t>(q);
}

/** dq = scale · (q − zero), one float subtraction (exact) and one rounding multiply. */
inline float rtn_dequant(uint8_t q, float scale, float zero) { return scale * (static_cast<float>(q) - zero); }

/**
 * Quantize a whole layer W: [rows, cols] (see the top of this file for the outputs). Rows are
 * spread over the pool in fixed blocks; results do not depend on the thread count or SIMD path.
 * Throws std::invalid_argument for unsupported bits, std::domain_error for a non-finite weight
 * (naming row and column), Cancelled when `cancel` is set.
 */
void rtn_quantize(const float* W, size_t rows, size_t cols, size_t group, QuantSpec spec, uint8_t* codes,
                  float* scales, float* zeros, const CancelFlag* cancel = nullptr, const ClipSearch& clip = {});

/** out[r, c] = rtn_dequant(codes[r, c], scales[r, g], zeros[r, g]) with g = c / group. */
void rtn_dequantize(const uint8_t* codes, const float* scales, const float* zeros, size_t rows, size_t cols,
                    size_t group, float* out, const CancelFlag* cancel = nullptr);

}  // namespace ql
