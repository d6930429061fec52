// The proxy loss GPTQ minimizes, tr(E H Eᵀ) for an error E = W − Q: the summed squared output
// error of the layer over the calibration inputs (up to H's 2/N).
#pragma once

#include <cstddef>

#include "cancel.h"

namespace ql {

/**
 * tr(E H Eᵀ) = ⟨H, EᵀE⟩ for E: [rows, cols] (row stride lde) and a symmetric H: [cols, cols]
 * (row stride ldh). The lower triangle of G = EᵀE is formed with one sgemmTriangle (rows·cols²
 * flops, half of E·H, in float32 with FMA sums), then ⟨H, G⟩ is summed in double over the
 * triangle, off-diagonal terms twice. `G` is a [cols × cols] workspace (nullptr: allocated here).
 * Results do not depend on the thread count. Throws Cancelled when `cancel` is set.
 */
double proxyLoss(const float* E, size_t rows, size_t cols, size_t lde, const float* H, size_t ldh, float* G = nullptr,
                 const CancelFlag* cancel = nullptr);

}  // namespace ql
