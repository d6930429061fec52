#include "gptq.h"
#include "cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "cholesky.h"
#include "cpu.h"
#include "gemm.h"
#include "gptq_loss.h"
#include "gptq_panel.h"
#include "kernels_x86.h"
#include "thread_pool.h"

namespace ql {

namespace {

/** Rows per pool task in the row-parallel passes (each row is ~cols floats of work per batch). */
constexpr size_t kRowsPerTask = 16;
/** Panels (of kGptqLanes rows) per pool task in the lazy-batch pass. */
constexpr size_t kPanelsPerTask = 4;

/** A zero (or tiny) percdamp escalates from this when H + λI does not factorize. */
constexpr double kMinRetryPercdamp = 1e-5;

template <typename Body>
void forRowChunks(size_t rows, const CancelFlag* cancel, const Body& body) {
  const size_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  const auto run = [&](size_t t) {
    if (isCancelled(cancel)) return;
    const size_t r0 = t * kRowsPerTask;
    body(r0, std::min(rows, r0 + kRowsPerTask));
  };
  if (tasks == 1) {
    run(0);
  } else {
    pool().parallelFor(tasks, run);
  }
  throwIfCancelled(cancel);
}

void checkFinite(const float* x, size_t rows, size_t cols, const char* name) {
  const NonFinite hit = findNonFinite(x, rows, cols, cols);
  if (hit.found) throw GptqNonFinite(name, hit.row, hit.col);
}

/** Per-channel or static-group parameters, up front, from W with dead columns zeroed. */
void findUpfrontParams(const float* W, const std::vector<char>& dead, size_t deadCount, const GptqLayout& L,
                       const float* rowShrink, float* scales, float* zeros, const CancelFlag* cancel) {
  forRowChunks(L.rows, cancel, [&](size_t r0, size_t r1) {
    std::vector<float> buf;
    for (size_t r = r0; r < r1; r++) {
      for (size_t g = 0; g < L.ng; g++) {
        const size_t c0 = g * L.G;
        const size_t c1 = std::min(c0 + L.G, L.cols);
        const float* src = W + r * L.cols + c0;
        if (deadCount > 0) {
          buf.assign(src, src + (c1 - c0));
          for (size_t c = c0; c < c1; c++)
            if (dead[c]) buf[c - c0] = 0;
          src = buf.data();
        }
        rtn_params_shrunk(src, c1 - c0, 1, L.spec, rowShrink ? rowShrink[r] : 1.0f, scales + r * L.ng + g,
                          zeros + r * L.ng + g);
      }
    }
  });
}

/**
 * U = upper Cholesky factor of (Hp + λI)⁻¹, Hp = H[perm][:, perm] with dead H_ii = 1.
 * λ = percdamp · mean(diag); ×10 per failed attempt (gptq.py has no retry: it just fails).
 */
void dampedInverseCholesky(const float* H, size_t cols, const int32_t* perm, const std::vector<char>& dead,
                           const GptqOptions& options, std::vector<float>& U, GptqStats& stats,
                           const CancelFlag* cancel) {
  double diagSum = 0;
  for (size_t j = 0; j < cols; j++) diagSum += dead[j] ? 1.0 : static_cast<double>(H[j * cols + j]);
  const double meanDiag = diagSum / static_cast<double>(cols);
  if (!(meanDiag > 0)) {
    throw std::invalid_argument("gptq: mean(diag H) is " + std::to_string(meanDiag) +
                                "; H must be a Hessian proxy 2/N Σ xᵀx (positive semi-definite)");
  }
  U.resize(cols * cols);
  for (int attempt = 0;; attempt++) {
    const double percdamp =
        attempt == 0 ? options.percdamp : std::max(options.percdamp, kMinRetryPercdamp) * std::pow(10.0, attempt);
    const double lambda = percdamp * meanDiag;
    forRowChunks(cols, cancel, [&](size_t p0, size_t p1) {
      for (size_t p = p0; p < p1; p++) {
        const float* src = H + static_cast<size_t>(perm[p]) * cols;
        float* dst = U.data() + p * cols;
        for (size_t q = 0; q < cols; q++) dst[q] = src[perm[q]];
        const double diag = dead[perm[p]] ? 1.0 : static_cast<double>(dst[p]);
        dst[p] = static_cast<float>(diag + lambda);
      }
    });
    const long pivot = gptq_inverse_cholesky_upper(U.data(), cols, cols, cancel);
    throwIfCancelled(cancel);
    if (pivot < 0) {
      stats.damp = lambda;
      stats.percdamp = percdamp;
      stats.dampRetries = attempt;
      return;
    }
    if (attempt >= options.maxDampRetries) {
      throw std::runtime_error("gptq: H + λI is not positive definite (pivot " + std::to_string(pivot) +
                               ") even with percdamp " + std::to_string(percdamp) + " after " +
                               std::to_string(attempt) + " retries; check H or raise percdamp / maxDampRetries");
    }
  }
}

/** E = W − Q, Q[r, j] = scale[r, g] · (codes[r, j] − zero[r, g]) with g = groupIndex[j]. */
void dequantError(const float* W, const uint8_t* codes, const float* scales, const float* zeros,
                  const int32_t* groupIndex, size_t rows, size_t cols, size_t ng, float* E, const CancelFlag* cancel) {
  forRowChunks(rows, cancel, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; r++) {
      for (size_t j = 0; j < cols; j++) {
        const size_t g = r * ng + static_cast<size_t>(groupIndex[j]);
        E[r * cols + j] = W[r * cols + j] - rtn_dequant(codes[r * cols + j], scales[g], zeros[g]);
      }
    }
  });
}

}  // namespace

size_t gptqGroupCount(size_t cols, size_t group) {
  if (group == 0 || group >= cols) return 1;
  return (cols + group - 1) / group;
}

GptqStats gptqQuantize(const float* W, size_t rows, size_t cols, const float* H, const GptqOptions& options,
                       const GptqOutputs& out, const CancelFlag* cancel) {
  const int bits = options.spec.bits;
  if (rows == 0 || cols == 0) throw std::invalid_argument("gptq: rows and cols must be positive");
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8) {
    throw std::invalid_argument("gptq: bits must be 2, 3, 4 or 8, got " + std::to_string(bits));
  }
  if (options.blockSize == 0) throw std::invalid_argument("gptq: blockSize must be at least 1");
  if (!(options.percdamp >= 0) || !std::isfinite(options.percdamp)) {
    throw std::invalid_argument("gptq: percdamp must be finite and >= 0");
  }
  if (options.maxDampRetries < 0) throw std::invalid_argument("gptq: maxDampRetries must be >= 0");
  if (options.rowShrink) {
    for (size_t r = 0; r < rows; r++) {
      const float p = options.rowShrink[r];
      if (!(p > 0.0f && p <= 1.0f))
        throw std::invalid_argument("gptq: rowShrink[" + std::to_string(r) + "] must be in (0, 1], got " + std::to_string(p));
    }
  }
  throwIfCancelled(cancel);
  checkFinite(W, rows, cols, "W");
  checkFinite(H, cols, cols, "H");

  GptqStats stats;
  GptqLayout L{};
  L.rows = rows;
  L.cols = cols;
  L.ng = gptqGroupCount(cols, options.group);
  L.G = L.ng == 1 ? cols : options.group;
  L.mode = L.ng == 1 ? GptqGroupMode::PerChannel : options.staticGroups ? GptqGroupMode::Static : GptqGroupMode::Dynamic;
  L.spec = options.spec;
  L.maxq = (1 << bits) - 1;
  L.batchStart = options.batchStartGroups;

  // Dead inputs (never active in the calibration data): H_ii = 1, W[:, i] = 0 (gptq.py).
  std::vector<char> dead(cols, 0);
  for (size_t j = 0; j < cols; j++) {
    dead[j] = H[j * cols + j] == 0.0f;
    stats.deadColumns += dead[j] ? 1 : 0;
  }

  // Act-order: decreasing diag(H) (dead ones count as 1), ties in column order.
  int32_t* perm = out.perm;
  std::iota(perm, perm + cols, 0);
  if (options.actOrder) {
    const auto diag = [&](int32_t j) { return dead[j] ? 1.0f : H[static_cast<size_t>(j) * cols + j]; };
    std::stable_sort(perm, perm + cols, [&](int32_t a, int32_t b) { return diag(a) > diag(b); });
  }
  L.perm = perm;
  for (size_t p = 0; p < cols; p++) {
    out.groupIndex[perm[p]] = static_cast<int32_t>(L.groupOf(p));
  }

  // Per-channel and static-group parameters come from the un-updated (dead-zeroed) weights; with
  // batchStartGroups, static groups are taken when their first column comes (gptqFindStaticGroup).
  std::vector<int32_t> invperm;
  std::vector<char> groupStart;
  const bool lazyStatic = L.mode == GptqGroupMode::Static && options.batchStartGroups;
  L.invperm = nullptr;
  L.groupStart = nullptr;
  if (lazyStatic) {
    invperm.resize(cols);
    groupStart.assign(cols, 0);
    std::vector<char> seen(L.ng, 0);
    for (size_t p = 0; p < cols; p++) {
      invperm[static_cast<size_t>(perm[p])] = static_cast<int32_t>(p);
      const size_t g = static_cast<size_t>(perm[p]) / L.G;
      if (!seen[g]) seen[g] = groupStart[p] = 1;
    }
    L.invperm = invperm.data();
    L.groupStart = groupStart.data();
  } else if (L.mode != GptqGroupMode::Dynamic) {
    findUpfrontParams(W, dead, stats.deadColumns, L, options.rowShrink, out.scales, out.zeros, cancel);
  }

  // U: [cols, cols], upper Cholesky factor of (H + λI)⁻¹ in quantization order (H⁻¹ = UᵀU).
  // The Cholesky-of-the-inverse trick (paper §3, step 3): after column q, OBS needs row q of the
  // inverse Hessian of the columns F = {q, q+1, …} not yet quantized, H_F⁻¹, over its diagonal:
  //   W[:, F] −= (w_q − quant(w_q)) / [H_F⁻¹]_qq · [H_F⁻¹]_{q,F}.
  // Eliminating column q from H⁻¹ is exactly what a Cholesky step does, so [H_F⁻¹]_{q,F} =
  // U_qq · U[q, F] for every q at once, and the update becomes err_q · U[q, q+1:] with
  // err_q = (w_q − quant(w_q)) / U_qq: no inverse is ever re-computed or downdated.
  std::vector<float> U;
  dampedInverseCholesky(H, cols, perm, dead, options, U, stats, cancel);

  // Wp: [rows, cols] the working weights in quantization order, dead columns zeroed.
  std::vector<float> Wp(rows * cols);
  const auto loadWp = [&] {
    forRowChunks(rows, cancel, [&](size_t r0, size_t r1) {
      for (size_t r = r0; r < r1; r++) {
        for (size_t p = 0; p < cols; p++) {
          const size_t j = static_cast<size_t>(perm[p]);
          Wp[r * cols + p] = dead[j] ? 0.0f : W[r * cols + j];
        }
      }
    });
  };
  loadWp();

  if (out.rowLoss) std::fill(out.rowLoss, out.rowLoss + rows, 0.0);
  // Lazy batches [i1, i2): each panel of rows quantizes the batch's columns, spreading each
  // rounding error over the batch only; then one GEMM brings the batch's errors to all later
  // columns:  W[:, i2:] −= Err1 · U[i1:i2, i2:]   Err1: [rows, B], kept transposed as ErrT: [B, rows]
  // (a column of a panel is then one contiguous store).
  const size_t B = std::min(options.blockSize, cols);
  const size_t panels = (rows + kGptqLanes - 1) / kGptqLanes;
  const size_t ldErr = panels * kGptqLanes;
  std::vector<float> ErrT(B * ldErr);
  void (*panelKernel)(const GptqPanel&) = gptqPanelScalar;
#if QL_X86_SIMD
  if (useAvx2Fma()) panelKernel = gptqPanelAvx2;
#endif
  const size_t tasks = (panels + kPanelsPerTask - 1) / kPanelsPerTask;
  // With the optional CUDA backend (core/cuda_backend.h) the trailing updates run on the GPU
  // with W resident there; the host gets back only the columns the next batch reads. Any GPU
  // failure redoes the layer on the CPU from the caller's W.
  const auto runBatches = [&](cuda::GptqSession* gpu) -> bool {
    for (size_t i1 = 0; i1 < cols; i1 += B) {
      throwIfCancelled(cancel);
      const size_t i2 = std::min(i1 + B, cols);
      const auto runPanels = [&](size_t t) {
        if (isCancelled(cancel)) return;
        std::vector<float> wt((i2 - i1) * kGptqLanes), group(L.G);
        for (size_t panel = t * kPanelsPerTask; panel < std::min(panels, (t + 1) * kPanelsPerTask); panel++) {
          const size_t r0 = panel * kGptqLanes;
          const GptqPanel p{&L,          Wp.data() + r0 * cols,    std::min(kGptqLanes, rows - r0),
                            U.data(),    i1,                       i2,
                            ErrT.data() + r0, ldErr,               out.codes + r0 * cols,
                            out.scales + r0 * L.ng, out.zeros + r0 * L.ng, wt.data(),
                            group.data(), options.rowShrink ? options.rowShrink + r0 : nullptr};
          panelKernel(p);
        }
      };
      if (tasks == 1) {
        runPanels(0);
      } else {
        pool().parallelFor(tasks, runPanels);
      }
      throwIfCancelled(cancel);
      if (out.rowLoss) {
        for (size_t i = i1; i < i2; i++) {
          const float* e = ErrT.data() + (i - i1) * ldErr;
          for (size_t r = 0; r < rows; r++) out.rowLoss[r] += static_cast<double>(e[r]) * e[r];
        }
      }
      if (i2 < cols) {
        if (gpu) {
          // The next batch reads columns [i2, i2 + B) and, with dynamic groups, up to G − 1 more.
          const size_t next = std::min(cols - i2, B + (L.mode == GptqGroupMode::Dynamic ? L.G - 1 : 0));
          if (!gpu->update(i1, i2, ErrT.data(), ldErr, Wp.data() + i2, cols, next)) return false;
        } else {
          sgemm(true, false, rows, cols - i2, i2 - i1, -1.0f, ErrT.data(), ldErr, U.data() + i1 * cols + i2, cols,
                1.0f, Wp.data() + i2, cols, cancel);
        }
      }
    }
    return true;
  };
  bool done = false;
  // Static groups taken lazily read any later column of W, which the GPU keeps to itself.
  if (!lazyStatic && cuda::worthGptq(rows, cols)) {
    cuda::GptqSession gpu;
    if (gpu.begin(Wp.data(), rows, cols, cols, U.data(), cols)) {
      done = runBatches(&gpu);
      gpu.end();
      if (!done) {
        loadWp();  // later columns of Wp are stale: start over on the CPU
        if (out.rowLoss) std::fill(out.rowLoss, out.rowLoss + rows, 0.0);
      }
    }
  }
  if (!done) runBatches(nullptr);
  throwIfCancelled(cancel);

  ErrT = std::vector<float>();
  // E = W − Q against the caller's W, once, for the row losses and the proxy loss; Wp's memory
  // holds each error in turn, U's the Gram matrix EᵀE.
  float* E = Wp.data();
  float* G = U.data();
  if (out.rowLoss || options.losses) dequantError(W, out.codes, out.scales, out.zeros, out.groupIndex, rows, cols, L.ng, E, cancel);
  if (out.rowLoss) {
    // Σ err² is the damped loss e (H + λI) eᵀ: take λ‖e‖² off (dead inputs: H's row is 0 there).
    forRowChunks(rows, cancel, [&](size_t r0, size_t r1) {
      for (size_t r = r0; r < r1; r++) {
        double e2 = 0;
        for (size_t j = 0; j < cols; j++)
          if (!dead[j]) e2 += static_cast<double>(E[r * cols + j]) * E[r * cols + j];
        out.rowLoss[r] -= stats.damp * e2;
      }
    });
    throwIfCancelled(cancel);
  }
  if (!options.losses) {
    stats.proxyLoss = stats.proxyLossRtn = stats.weightEnergy = std::numeric_limits<double>::quiet_NaN();
    return stats;
  }
  stats.proxyLoss = proxyLoss(E, rows, cols, cols, H, cols, G, cancel);

  std::vector<uint8_t> rtnCodes(rows * cols);
  std::vector<float> rtnScales(rows * L.ng), rtnZeros(rows * L.ng);
  rtn_quantize(W, rows, cols, L.ng == 1 ? 0 : options.group, options.spec, rtnCodes.data(), rtnScales.data(),
               rtnZeros.data(), cancel);
  std::vector<int32_t> naturalGroups(cols);
  for (size_t j = 0; j < cols; j++) naturalGroups[j] = static_cast<int32_t>(L.ng == 1 ? 0 : j / L.G);
  dequantError(W, rtnCodes.data(), rtnScales.data(), rtnZeros.data(), naturalGroups.data(), rows, cols, L.ng, E, cancel);
  stats.proxyLossRtn = proxyLoss(E, rows, cols, cols, H, cols, G, cancel);

  stats.weightEnergy = proxyLoss(W, rows, cols, cols, H, cols, G, cancel);
  return stats;
}

}  // namespace ql
