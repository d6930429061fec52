// GPTQ / OPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative
// Pre-trained Transformers"; IST-DASLab gptq.py) for one linear layer. QuIP's LDLQ (Chee et al.
// 2023) is the same rounding seen through H's LDL decomposition, so it is this kernel too.
//
// Notation (the paper's), shapes on first use:
//   W: [rows = out, cols = in]   the layer's weights, one row per output channel
//   H: [cols, cols]              the Hessian proxy 2/N Σ xᵀx of the layer's inputs x: [N, cols]
//   U: [cols, cols]              upper Cholesky factor of (H + λI)⁻¹ = UᵀU ("Hinv" in gptq.py)
//   Q: [rows, cols]              the dequantized result; codes, scales, zeros describe it
//
// The rows are independent: each row's rounding errors are spread only over its own later
// columns, and its group parameters are its own. That is what the thread pool splits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "cancel.h"
#include "rtn.h"

namespace ql {

struct GptqOptions {
  /** Bits (2, 3, 4 or 8) and symmetric/asymmetric grid, as RTN's QuantSpec. */
  QuantSpec spec{4, false};
  /** Input columns per quantization group; 0 = one group per row (per-channel). The last group
   *  may be shorter (ragged) when `cols` is not a multiple. */
  size_t group = 0;
  /** Lazy-batch width B: columns whose updates are applied to the rest of W as one GEMM. The
   *  result does not depend on it beyond float rounding. */
  size_t blockSize = 128;
  /** λ = percdamp · mean(diag H) is added to H's diagonal before inverting it. */
  double percdamp = 0.01;
  /** Quantize columns in order of decreasing H_ii (the most active inputs first). */
  bool actOrder = false;
  /** With groups: take every group's scale/zero up front from the un-updated weights of its
   *  natural column range, instead of from the error-updated weights when the group starts. */
  bool staticGroups = false;
  /** Groups: take a group's scale/zero from the weights as they were when its lazy batch began
   *  (what gptq.py's find_params(W[:, i:i+groupsize]) reads), not from the fully updated ones;
   *  static groups then too are taken when their first column comes (act-order), not up front
   *  from the original W. The result then depends on `blockSize`. Measured on stories260K (GPTQ
   *  W4/W3 g32, act-order): lower KL than the fully updated weights. Static groups taken this way
   *  run on the CPU (the CUDA session keeps later columns on the device). */
  bool batchStartGroups = false;
  /** When H + λI is not positive definite, retry with λ ×10 this many times. */
  int maxDampRetries = 4;
  /** Compute the proxy losses (three passes of ~rows·cols² flops each); off leaves them NaN. */
  bool losses = true;
  /** Clipping: [rows] factors in (0, 1]; every group of row r takes its scale and zero from its
   *  min/max range shrunk to [p·min, p·max], p = rowShrink[r] (rtn_params_shrunk). nullptr: 1.
   *  Rows are independent, so a per-row search over p is exact (quant/gptq-clip.ts). */
  const float* rowShrink = nullptr;
};

/**
 * Caller-allocated outputs.
 *
 *   codes      uint8 [rows, cols]     in the ORIGINAL column order (act-order undone)
 *   scales     float [rows, ngroups]  ngroups = gptqGroupCount(cols, group)
 *   zeros      float [rows, ngroups]  Q[r, j] = scales[r, g] · (codes[r, j] − zeros[r, g]),
 *                                     g = groupIndex[j]
 *   perm       int32 [cols]           perm[p] = the original column quantized p-th (identity
 *                                     without act-order)
 *   groupIndex int32 [cols]           the group of each ORIGINAL column j
 *
 * Group layout: without act-order, and with act-order plus static groups, group g is the natural
 * column range [g·group, (g+1)·group) and groupIndex[j] = j / group, so a plain blocked format
 * (MatMulNBits, blocked DequantizeLinear) can store the result as is. With act-order and dynamic
 * groups, group g is the g-th run of `group` columns in PERMUTED order: groupIndex[j] =
 * invperm[j] / group, and its members are scattered over the input dimension; an exporter needs
 * a group-index input (MatMulNBits' g_idx) or must permute the layer's input (and the previous
 * layer's output) by `perm`.
 */
struct GptqOutputs {
  uint8_t* codes = nullptr;
  float* scales = nullptr;
  float* zeros = nullptr;
  int32_t* perm = nullptr;
  int32_t* groupIndex = nullptr;
  /** Optional [rows]: each row's proxy loss e H eᵀ (undamped H, e = w − q) from GPTQ's own
   *  bookkeeping: Σ_q err_q², err_q = (w_q − q_q) / U_qq, is e (H + λI) eᵀ (OBS: each step's loss
   *  is exact given the compensation of the later columns), less λ‖e‖². O(rows·cols); nullptr
   *  skips it. */
  double* rowLoss = nullptr;
};

struct GptqStats {
  /** λ actually added to H's diagonal, and λ / mean(diag H) (after dead inputs got H_ii = 1). */
  double damp = 0;
  double percdamp = 0;
  /** How many times λ was multiplied by 10 before H + λI factorized. */
  int dampRetries = 0;
  /** Inputs with H_ii == 0 (never active): their weights are set to 0 and H_ii to 1. */
  size_t deadColumns = 0;
  /** tr((W−Q) H (W−Q)ᵀ) with the caller's undamped H and W (dead columns included as given). */
  double proxyLoss = 0;
  /** The same for round-to-nearest with the same bits, group and grid (rtn_quantize of W). */
  double proxyLossRtn = 0;
  /** tr(W H Wᵀ): what the losses are divided by for the relative figures. */
  double weightEnergy = 0;
};

/** Thrown (before any output is written) when W or H holds a NaN or ±Inf: which, and where. */
struct GptqNonFinite : std::invalid_argument {
  GptqNonFinite(const char* arg_, size_t row_, size_t col_)
      : std::invalid_argument(std::string("gptq: ") + arg_ + "[" + std::to_string(row_) + ", " + std::to_string(col_) +
                              "] is not finite"),
        arg(arg_),
        row(row_),
        col(col_) {}
  const char* arg;  // "W" or "H"
  size_t row, col;
};

/** Groups per row: 1 for per-channel (group 0 or group ≥ cols), else ceil(cols / group). */
size_t gptqGroupCount(size_t cols, size_t group);

/**
 * Quantize W with GPTQ. W and H are read only (H must be symmetric; it is never assumed SPD: the
 * damping escalates). Throws GptqNonFinite for a NaN/±Inf in W or H, std::invalid_argument for
 * bad shapes or options, std::runtime_error when H + λI still is not positive definite after
 * the retries, Cancelled when `cancel` is set (polled between lazy batches).
 */
GptqStats gptqQuantize(const float* W, size_t rows, size_t cols, const float* H, const GptqOptions& options,
                       const GptqOutputs& out, const CancelFlag* cancel = nullptr);

}  // namespace ql
