#include "gptq_loss.h"

#include <algorithm>
#include <vector>

#include "gemm.h"
#include "thread_pool.h"

namespace ql {

namespace {

/** Rows of G per pool task when summing ⟨H, G⟩ (fixed, so the sum's order is too). */
constexpr size_t kSumRows = 64;

}  // namespace

double proxyLoss(const float* E, size_t rows, size_t cols, size_t lde, const float* H, size_t ldh, float* G,
                 const CancelFlag* cancel) {
  throwIfCancelled(cancel);
  if (rows == 0 || cols == 0) return 0;
  std::vector<float> own;
  if (G == nullptr) {
    own.resize(cols * cols);
    G = own.data();
  }
  // G = EᵀE: [cols, cols], lower triangle only.
  sgemmTriangle(GemmTriangle::Lower, true, false, cols, cols, rows, 1.0f, E, lde, E, lde, 0.0f, G, cols, cancel);
  // ⟨H, EᵀE⟩ = Σ_i [ H_ii·G_ii + 2·Σ_{j<i} H_ij·G_ij ], by blocks of rows summed in a fixed order.
  const size_t tasks = (cols + kSumRows - 1) / kSumRows;
  std::vector<double> partial(tasks, 0.0);
  const auto sumRows = [&](size_t task) {
    if (isCancelled(cancel)) return;
    double s = 0;
    for (size_t i = task * kSumRows; i < std::min(cols, (task + 1) * kSumRows); i++) {
      const float* g = G + i * cols;
      const float* h = H + i * ldh;
      double off = 0;
      for (size_t j = 0; j < i; j++) off += static_cast<double>(h[j]) * g[j];
      s += 2 * off + static_cast<double>(h[i]) * g[i];
    }
    partial[task] = s;
  };
  if (tasks == 1) {
    sumRows(0);
  } else {
    pool().parallelFor(tasks, sumRows);
  }
  throwIfCancelled(cancel);
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

}  // namespace ql
