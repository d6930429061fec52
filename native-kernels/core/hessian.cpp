#include "hessian.h"
#include "cuda_backend.h"

#include <algorithm>
#include <functional>
#include <vector>

#include "gemm_blocked.h"
#include "thread_pool.h"

namespace ql {

using namespace gemm;

namespace {

// H is computed in MB×NB blocks of its lower triangle, one block per task. For each slice of
// kHessianChunkRows rows the block's fp32 tile T (MB·NB·4 = 72 KiB, in L2) is formed by the
// micro-kernel and added into a double tile D (144 KiB, in L2); D goes into H once per packed
// chunk (up to 1024 rows), so the big double H is streamed once per chunk, not per slice.
/** Rows per fp32 product: one packed slice. */
constexpr size_t kSlice = kHessianChunkRows;
constexpr size_t kMB = 16 * kMR;  // 96 rows
constexpr size_t kNB = 12 * kNR;  // 192 columns
/** Below this many multiply-adds per chunk (n²·rows/2) the work stays on the calling thread. */
constexpr size_t kParallelMinMacs = size_t{1} << 18;
/** Below this many entries of H, symmetrizing stays on the calling thread. */
constexpr size_t kParallelMinEntries = size_t{1} << 16;
/** Mirror H's lower triangle to the upper one in square tiles of this size (cache-friendly transpose). */
constexpr size_t kMirrorTile = 64;

void runTasks(bool parallel, size_t tasks, const std::function<void(size_t)>& body) {
  if (parallel && tasks > 1) {
    pool().parallelFor(tasks, body);
  } else {
    for (size_t t = 0; t < tasks; t++) body(t);
  }
}

void mirrorLowerToUpper(double* H, size_t n, bool parallel) {
  const size_t blocks = (n + kMirrorTile - 1) / kMirrorTile;
  runTasks(parallel, blocks, [&](size_t bi) {
    // Row block bi of the upper triangle: H[i][j] = H[j][i] for j > i, tile by tile.
    const size_t i0 = bi * kMirrorTile, i1 = std::min(n, i0 + kMirrorTile);
    for (size_t j0 = i0; j0 < n; j0 += kMirrorTile) {
      const size_t j1 = std::min(n, j0 + kMirrorTile);
      for (size_t i = i0; i < i1; i++)
        for (size_t j = std::max(j0, i + 1); j < j1; j++) H[i * n + j] = H[j * n + i];
    }
  });
}

}  // namespace

void hessianUpdateNaive(double* H, size_t n, const float* X, size_t rows, size_t ldx) {
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j <= i; j++) {
      double acc = 0;
      for (size_t r = 0; r < rows; r++) acc += static_cast<double>(X[r * ldx + i]) * X[r * ldx + j];
      H[i * n + j] += acc;
    }
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++) H[i * n + j] = H[j * n + i];
}

void hessian_update(double* H, size_t n, const float* X, size_t rows, size_t ldx, const CancelFlag* cancel, bool mirror) {
  throwIfCancelled(cancel);
  if (n == 0 || rows == 0) return;
  // Optional CUDA backend (core/cuda_backend.h): large updates go to the GPU when a device is
  // present; false means "not taken" (no device, too small, or a runtime error) → CPU below.
  if (cuda::worthHessian(n, rows) && cuda::hessian_update(H, n, X, rows, ldx, cancel)) return;
  const MicroKernel kernel = microKernel();
  // Rows packed at once: every packed chunk sweeps the lower half of the double H once more
  // (n = 11008: 485 MB read and written), so a chunk takes as many rows as keep the two packed
  // copies within 160 MB — a whole call of calibration's row buffer (≤ 64 MiB of X) is one chunk.
  // Measured on 2 cores, 11008 × 1524 rows: 0.70 → 0.78 of the FMA peak (256-row chunks before).
  const size_t packRows = std::min(rows, std::max<size_t>(1, (size_t{20} << 20) / n / kHessianChunkRows) * kHessianChunkRows);
  const bool parallel = static_cast<double>(n) * n / 2 * packRows >= kParallelMinMacs && pool().threads() > 1;
  const size_t slices = (packRows + kHessianChunkRows - 1) / kHessianChunkRows;
  const size_t widthA = roundUp(n, kMR), widthB = roundUp(n, kNR);
  // Xcᵀ packed as A strips and Xc as B strips, slice by slice (slice q at q·KC·width).
  AlignedFloats bufferA(slices * kSlice * widthA), bufferB(slices * kSlice * widthB);
  float* packedA = bufferA.data();
  float* packedB = bufferB.data();

  // Lower-triangle blocks, column block outer so that neighbouring tasks share B strips.
  struct Block {
    size_t i0, j0;
  };
  std::vector<Block> blocks;
  for (size_t j0 = 0; j0 < n; j0 += kNB)
    for (size_t i0 = j0 / kMB * kMB; i0 < n; i0 += kMB) blocks.push_back({i0, j0});

  constexpr size_t kPackColumns = 192;  // columns of X per packing task (a multiple of MR and NR)
  const size_t packColumnTasks = (n + kPackColumns - 1) / kPackColumns;
  for (size_t r0 = 0; r0 < rows; r0 += packRows) {
    const size_t rc = std::min(packRows, rows - r0);
    const size_t rcSlices = (rc + kSlice - 1) / kSlice;
    const float* Xc = X + r0 * ldx;
    runTasks(parallel, rcSlices * packColumnTasks, [&](size_t t) {
      if (isCancelled(cancel)) return;
      const size_t q = t / packColumnTasks, c0 = t % packColumnTasks * kPackColumns;
      const size_t p0 = q * kSlice;
      const size_t kc = std::min(kSlice, rc - p0), width = std::min(kPackColumns, n - c0);
      // op(A) = Xcᵀ: op(A)[i][p] = Xc[p][i] (transA on the stored Xc).
      packA(true, Xc, ldx, c0, width, p0, kc, packedA + q * kSlice * widthA + c0 * kc);
      packB(false, Xc, ldx, p0, kc, c0, width, packedB + q * kSlice * widthB + c0 * kc);
    });
    throwIfCancelled(cancel);
    runTasks(parallel, blocks.size(), [&](size_t t) {
      if (isCancelled(cancel)) return;
      const size_t i0 = blocks[t].i0, j0 = blocks[t].j0;
      const size_t mb = std::min(kMB, n - i0), nb = std::min(kNB, n - j0);
      float* T = threadBuffer(0, kMB * kNB);                                    // one slice, fp32
      double* D = reinterpret_cast<double*>(threadBuffer(1, 2 * kMB * kNB));  // the chunk, fp64
      for (size_t q = 0; q < rcSlices; q++) {
        const size_t kc = std::min(kSlice, rc - q * kSlice);
        const float* aSlice = packedA + q * kSlice * widthA;
        const float* bSlice = packedB + q * kSlice * widthB;
        for (size_t jr = 0; jr < nb; jr += kNR) {
          for (size_t ir = 0; ir < mb; ir += kMR) {
            const long diag = static_cast<long>(i0 + ir) - static_cast<long>(j0 + jr);
            if (diag + static_cast<long>(kMR) - 1 < 0) continue;  // tile above the diagonal
            tile(kernel, kc, aSlice + (i0 + ir) * kc, bSlice + (j0 + jr) * kc, T + ir * kNB + jr, kNB,
                 std::min(kMR, mb - ir), std::min(kNR, nb - jr), 1.0f, 0.0f, true, diag);
          }
        }
        // D (+)= T on and below the diagonal; the last slice goes straight into H.
        const bool last = q + 1 == rcSlices;
        for (size_t r = 0; r < mb; r++) {
          const size_t i = i0 + r;
          if (i < j0) continue;
          const size_t end = std::min(nb, i - j0 + 1);
          const float* tr = T + r * kNB;
          double* dr = D + r * kNB;
          if (rcSlices == 1) {
            double* h = H + i * n + j0;
            for (size_t c = 0; c < end; c++) h[c] += static_cast<double>(tr[c]);
          } else if (q == 0) {
            for (size_t c = 0; c < end; c++) dr[c] = static_cast<double>(tr[c]);
          } else if (!last) {
            for (size_t c = 0; c < end; c++) dr[c] += static_cast<double>(tr[c]);
          } else {
            double* h = H + i * n + j0;
            for (size_t c = 0; c < end; c++) h[c] += dr[c] + static_cast<double>(tr[c]);
          }
        }
      }
    });
    throwIfCancelled(cancel);
  }
  if (mirror) mirrorLowerToUpper(H, n, parallel);
}

void hessian_symmetrize(double* H, size_t n, double scale) {
  const bool parallel = n * n >= kParallelMinEntries && pool().threads() > 1;
  if (scale != 1.0) {
    // The lower triangle first (row blocks), then the mirror reads only scaled entries.
    runTasks(parallel, (n + kMirrorTile - 1) / kMirrorTile, [&](size_t bi) {
      const size_t i1 = std::min(n, (bi + 1) * kMirrorTile);
      for (size_t i = bi * kMirrorTile; i < i1; i++)
        for (size_t j = 0; j <= i; j++) H[i * n + j] *= scale;
    });
  }
  mirrorLowerToUpper(H, n, parallel);
}

}  // namespace ql
